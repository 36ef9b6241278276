#!/usr/bin/env python3
"""Writes COUNT bounce messages into a Maildir for bench/bounces.sh.

Usage: make_bounces.py SOURCE_DIR MAILDIR COUNT

The messages are the real ones in SOURCE_DIR (tests/fixtures/bounces/bsd),
repeated in turn; copy k gets a Message-ID of its own and every address in
it a local part ending ".bK", so that no two copies are the same report
(reading them counts each, as new bounces would be).
"""
import re
import sys
from pathlib import Path

ADDRESS = re.compile(rb"([A-Za-z0-9._%+-]+)@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")
MESSAGE_ID = re.compile(rb"^(Message-I[Dd]:[ \t]*)<[^>\r\n]*>", re.M | re.I)


def main() -> int:
    source, maildir, count = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    files = sorted(source.glob("*.eml"))
    originals = [f.read_bytes() for f in files]
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    for k in range(count):
        raw = originals[k % len(originals)]
        tag = b".b%d" % k
        raw = ADDRESS.sub(lambda m: m.group(1) + tag + b"@" + m.group(2), raw)
        raw, found = MESSAGE_ID.subn(lambda m: m.group(1) + b"<bench-%d@bench.example>" % k, raw, count=1)
        if not found:
            raw = b"Message-ID: <bench-%d@bench.example>\r\n" % k + raw
        (maildir / "new" / ("%09d.bench:2," % k)).write_bytes(raw)
    return 0


if __name__ == "__main__":
    sys.exit(main())
