#!/usr/bin/env python3
"""Fills a newsletter store with N mailings for the archive benchmark.

usage: make_archive.py STORE PAGE.html N

STORE must exist with its schema (made by the binary, e.g. by
`subscribers add`). Each mailing is a digest of 10 posts whose mail and
archive page are PAGE.html (a digest rendered by `newsletter preview`),
one a week; its posts are announced with their titles.
"""

import datetime as dt
import sqlite3
import sys


def main():
    store, page_path, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    page = open(page_path, encoding="utf-8").read()
    db = sqlite3.connect(store)
    start = dt.datetime(2006, 1, 2, 9, 0, tzinfo=dt.timezone.utc)
    with db:
        db.execute("DELETE FROM announced")
        db.execute("DELETE FROM deliveries")
        db.execute("DELETE FROM digests")
        for n in range(1, count + 1):
            at = (start + dt.timedelta(weeks=n)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            db.execute(
                "INSERT INTO digests (id, kind, created_at, subject, html, text, page) VALUES (?, 'digest', ?, ?, ?, ?, ?)",
                (n, at, f"Prometheus Blog: issue {n}", page, "text", page),
            )
            for p in range(10):
                db.execute(
                    "INSERT INTO announced (source, permalink, published, digest_id, announced_at, title) VALUES (?, ?, ?, ?, ?, ?)",
                    (f"bench/{n}-{p}.md", f"/blog/bench/{n}/{p}/", at, n, at, f"Post {p} of issue {n}"),
                )


if __name__ == "__main__":
    main()
