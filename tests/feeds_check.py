#!/usr/bin/env python3
"""Checks newsletter's Atom, RSS and JSON feeds the way a real consumer would.

The expected entries come from reading the content folder independently of
newsletter (PyYAML for `---` front matter, tomllib for `+++`), not from the
feeds themselves. The feeds are read with feedparser (HTML sanitising and URL
resolving turned off, so that we see exactly what was written), json, and lxml
(RELAX NG for Atom, lxml.html for the entry HTML).

usage: feeds_check.py --corpus DIR --atom FILE --rss FILE --json FILE
                      --schema atom.rng --base-url URL --permalink PATTERN
                      --author NAME [--timezone ZONE] [--now RFC3339]
                      [--limit N] [--expect-count N] [--summaries-only]

Prints one line per mismatch and exits 1 when there is any, else prints a
one-line "ok: ..." summary and exits 0.
"""

import argparse
import calendar
import datetime as dt
import json
import re
import sys
import tomllib
import urllib.parse
import zoneinfo
from pathlib import Path

import feedparser
import lxml.html
import yaml
from lxml import etree

MARKER = re.compile(r"<!--\s*more\s*-->", re.IGNORECASE)
FILE_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})-(.+)$")
URL_ATTRIBUTES = ("href", "src", "poster", "cite")
# Long words: a word that only the text after `<!-- more -->` uses must not
# show up in the summary. Short words are too common to tell anything.
WORD = re.compile(r"[a-z]{6,}")


class Problems:
    def __init__(self):
        self.items = []

    def add(self, where, message):
        self.items.append(f"{where}: {message}")


# ---------------------------------------------------------------- the corpus


class Expected:
    """One publishable post, as the content folder describes it."""

    def __init__(self, path, title, published, authors, permalink, id_date, summary_key, before, after):
        self.path = path
        self.title = title
        self.published = published
        self.authors = authors
        self.permalink = permalink
        # The date in the entry's tag: URI (RFC 4151).
        self.id_date = id_date
        self.summary_key = summary_key
        # Markdown before and after the first `<!-- more -->`; `after` is None
        # when the post has no marker.
        self.before = before
        self.after = after


def split_front_matter(text):
    lines = text.split("\n")
    delimiter = lines[0].rstrip()
    if delimiter not in ("---", "+++"):
        raise ValueError("no front matter")
    for i in range(1, len(lines)):
        if lines[i].rstrip() == delimiter:
            front = "\n".join(lines[1:i])
            body = "\n".join(lines[i + 1 :])
            if delimiter == "---":
                return (yaml.safe_load(front) or {}), body
            return tomllib.loads(front), body
    raise ValueError("front matter is never closed")


def parse_date(value, zone):
    """A front-matter date (YAML/TOML value or text) as an aware datetime."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=zone)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=zone)
    if isinstance(value, (dt.time,)):
        raise ValueError(f"a time is not a date: {value!r}")
    text = str(value).strip()
    for form in ("%Y-%m-%d %H:%M:%S %z", "%Y-%m-%d %H:%M %z"):
        try:
            return dt.datetime.strptime(text, form)
        except ValueError:
            pass
    parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)


def names(value):
    if value is None:
        return []
    if isinstance(value, list):
        return [n for v in value for n in names(v)]
    if isinstance(value, dict):
        return names(value.get("name"))
    text = str(value).strip()
    return [text] if text else []


def read_corpus(folder, args, zone):
    posts = []
    for path in sorted(Path(folder).rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if not path.is_file() or path.suffix not in (".md", ".markdown"):
            continue
        text = path.read_bytes().decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")
        meta, body = split_front_matter(text)
        if meta.get("draft") in (True, "true"):
            continue
        stem = path.stem
        if stem in ("index", "_index"):
            stem = path.parent.name
        dated = FILE_DATE.match(stem)
        date = meta.get("created_at", meta.get("date"))
        if date is None and dated:
            date = dated.group(1)
        published = parse_date(date, zone)
        slug = str(meta.get("slug") or (dated.group(2) if dated else stem)).strip()
        local = published.astimezone(zone)
        # As prometheus.io's nanoc `Rules` do: a post dated by `created_at`
        # takes its URL's year, month and day from the file name; Jekyll and
        # Hugo posts (`date`) from their own date.
        url_date = local.date()
        if "created_at" in meta and dated:
            url_date = dt.date.fromisoformat(dated.group(1))
        permalink = (
            args.permalink.replace(":year", f"{url_date.year:04}")
            .replace(":month", f"{url_date.month:02}")
            .replace(":day", f"{url_date.day:02}")
            .replace(":slug", urllib.parse.quote(slug, safe="@!$&'()*+,;=:~-._"))
        )
        authors = []
        for key in ("author_name", "author", "authors"):
            for name in names(meta.get(key)):
                if name not in authors:
                    authors.append(name)
        marker = MARKER.search(body)
        if marker and not WORD.search(body[: marker.start()].lower()):
            # Nothing worth an excerpt before the marker: the excerpt is automatic.
            marker = None
        posts.append(
            Expected(
                path=str(relative),
                title=str(meta["title"]).strip(),
                published=published,
                authors=authors or [args.author],
                permalink=permalink,
                id_date=local.date().isoformat(),
                summary_key=meta.get("summary") or meta.get("description"),
                before=body[: marker.start()] if marker else body,
                after=body[marker.end() :] if marker else None,
            )
        )
    return posts


def select(posts, now, limit):
    """The posts a feed should carry, newest first."""
    live = [p for p in posts if now is None or p.published <= now]
    live.sort(key=lambda p: p.published, reverse=True)
    if limit:
        live = live[:limit]
    return live


# ----------------------------------------------------------------- the feeds


class Seen:
    """One feed entry as a reader sees it."""

    def __init__(self, title, link, id, published, authors, summary_html, summary_text, content_html):
        self.title = title
        self.id = id
        self.link = link
        self.published = published
        self.authors = authors
        self.summary_html = summary_html
        self.summary_text = summary_text
        self.content_html = content_html


def read_xml_feed(path, label, problems):
    parsed = feedparser.parse(str(path), sanitize_html=False, resolve_relative_uris=False)
    if parsed.bozo:
        problems.add(label, f"feedparser: not well-formed ({parsed.get('bozo_exception')})")
    entries = []
    for e in parsed.entries:
        published = None
        if e.get("published_parsed"):
            published = dt.datetime.fromtimestamp(
                calendar.timegm(e.published_parsed), dt.timezone.utc
            )
        content = e.get("content")
        entries.append(
            Seen(
                title=e.get("title"),
                link=e.get("link"),
                id=e.get("id"),
                published=published,
                authors=[a.get("name") for a in e.get("authors", [])],
                summary_html=e.get("summary"),
                summary_text=None,
                content_html=content[0].value if content else None,
            )
        )
    return parsed, entries


def read_json_feed(path, label, problems):
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except ValueError as e:
        problems.add(label, f"not JSON: {e}")
        return []
    if doc.get("version") != "https://jsonfeed.org/version/1.1":
        problems.add(label, f"version is {doc.get('version')!r}, not JSON Feed 1.1")
    entries = []
    for item in doc.get("items", []):
        try:
            published = dt.datetime.fromisoformat(item["date_published"])
        except (KeyError, ValueError) as e:
            problems.add(label, f"item {item.get('url')}: bad date_published ({e})")
            published = None
        entries.append(
            Seen(
                title=item.get("title"),
                link=item.get("url"),
                id=item.get("id"),
                published=published,
                authors=[a.get("name") for a in item.get("authors", [])],
                summary_html=None,
                summary_text=item.get("summary"),
                content_html=item.get("content_html"),
            )
        )
    return entries


# ------------------------------------------------------------ HTML in entries


def html_root(html):
    root = lxml.html.fragment_fromstring(html, create_parent="div")
    etree.strip_elements(root, etree.Comment, with_tail=False)
    return root


def html_words(html):
    """The visible text of an HTML fragment, for word checks."""
    return text_words(" ".join(html_root(html).itertext()))


def text_words(text):
    return set(WORD.findall(text.lower()))


def check_url(value, attribute, where, problems):
    if re.search(r"\s", value):
        problems.add(where, f"{attribute}={value!r} contains white space")
    parts = urllib.parse.urlsplit(value)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        if not parts.netloc:
            problems.add(where, f"{attribute}={value!r} has no host")
    elif scheme == "mailto":
        if not parts.path:
            problems.add(where, f"{attribute}={value!r} has no address")
    else:
        problems.add(where, f"{attribute}={value!r} is not an absolute http(s) or mailto URL")


def check_html(html, where, problems):
    root = html_root(html)
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        if el.tag.lower() == "script":
            problems.add(where, "a <script> element survived")
        for name, value in el.attrib.items():
            lower = name.lower()
            if lower.startswith("on"):
                problems.add(where, f"<{el.tag} {name}=...> event handler survived")
            squashed = re.sub(r"[\s\x00-\x1f]", "", value).lower()
            if squashed.startswith("javascript:"):
                problems.add(where, f"<{el.tag} {name}={value!r}> javascript: URL survived")
            if lower in URL_ATTRIBUTES:
                check_url(value, name, where, problems)
            elif lower == "srcset":
                for candidate in value.split(","):
                    url = candidate.strip().split()[0] if candidate.strip() else ""
                    if url:
                        check_url(url, name, where, problems)


# ------------------------------------------------------------------- checks


def check_entries(label, seen, expected, problems):
    by_link = {}
    for entry in seen:
        by_link.setdefault(entry.link, []).append(entry)
    wanted = {p.permalink: p for p in expected}
    for link, entries in by_link.items():
        if link not in wanted:
            problems.add(label, f"unexpected entry {link} ({entries[0].title!r})")
        elif len(entries) > 1:
            problems.add(label, f"{link} appears {len(entries)} times")
    if len(seen) != len(expected):
        problems.add(label, f"{len(seen)} entries, expected {len(expected)}")

    for post in expected:
        found = by_link.get(post.permalink)
        where = f"{label}: {post.path}"
        if not found:
            problems.add(where, f"missing (expected link {post.permalink})")
            continue
        entry = found[0]
        if entry.title != post.title:
            problems.add(where, f"title {entry.title!r}, expected {post.title!r}")
        host = urllib.parse.urlsplit(post.permalink).hostname
        path = urllib.parse.urlsplit(post.permalink).path
        expected_id = f"tag:{host},{post.id_date}:{path}"
        if entry.id != expected_id:
            problems.add(where, f"id {entry.id!r}, expected {expected_id!r}")
        if entry.published != post.published:
            problems.add(where, f"published {entry.published}, expected {post.published}")
        if entry.authors != post.authors:
            problems.add(where, f"authors {entry.authors!r}, expected {post.authors!r}")

    dates = [e.published for e in seen if e.published is not None]
    for newer, older in zip(dates, dates[1:]):
        if newer < older:
            problems.add(label, f"not newest first: {newer} comes before {older}")


def check_summary(label, post, entry, full_content, problems):
    where = f"{label}: {post.path}"
    if entry.summary_html is not None:
        check_html(entry.summary_html, f"{where} summary", problems)
        summary_text = " ".join(html_root(entry.summary_html).itertext())
    else:
        summary_text = entry.summary_text or ""
    if not summary_text.strip():
        problems.add(where, "summary is empty")
        return

    if entry.content_html is not None:
        check_html(entry.content_html, f"{where} content", problems)

    summary_words = text_words(summary_text)
    if post.summary_key:
        missing = text_words(str(post.summary_key)) - summary_words
        if missing:
            problems.add(where, f"summary is not the `summary` key: lacks {sorted(missing)}")
        return
    if post.after is None:
        stray = summary_words - text_words(post.before) - text_words(post.title)
        if stray:
            problems.add(where, f"automatic excerpt has words not in the post: {sorted(stray)}")
        return

    after_only = text_words(post.after) - text_words(post.before) - text_words(post.title)
    leaked = summary_words & after_only
    if leaked:
        problems.add(
            where,
            f"summary goes past <!-- more -->: it has {sorted(leaked)[:5]}, "
            "which only the text after the marker uses",
        )
    if not summary_words & text_words(post.before) and text_words(post.before):
        problems.add(where, "summary shares no word with the text before <!-- more -->")

    if entry.content_html is None:
        if full_content and label != "json":
            problems.add(where, "has no full content")
        return
    content_words = html_words(entry.content_html)
    if full_content and after_only and not content_words & after_only:
        problems.add(where, "content lacks the text after <!-- more -->")
    if not full_content and content_words & after_only:
        problems.add(where, "summaries-only feed carries the text after <!-- more -->")
    if not full_content and label != "json":
        problems.add(where, "summaries-only feed has content")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--atom", required=True)
    ap.add_argument("--rss", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--schema", required=True, help="atom.rng")
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--permalink", required=True)
    ap.add_argument("--author", required=True, help="the site's author")
    ap.add_argument("--timezone", default="UTC")
    ap.add_argument("--now", help="RFC 3339; posts dated later are not expected")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--expect-count", type=int, help="how many entries the corpus must give")
    ap.add_argument("--summaries-only", action="store_true")
    args = ap.parse_args()

    zone = zoneinfo.ZoneInfo(args.timezone)
    now = dt.datetime.fromisoformat(args.now.replace("Z", "+00:00")) if args.now else None
    problems = Problems()

    posts = read_corpus(args.corpus, args, zone)
    base = args.base_url.rstrip("/")
    for post in posts:
        post.permalink = base + post.permalink
    expected = select(posts, now, args.limit)
    if args.expect_count is not None and len(expected) != args.expect_count:
        problems.add(
            "corpus", f"{len(expected)} publishable posts read, expected {args.expect_count}"
        )
    if not expected:
        problems.add("corpus", "no publishable post: nothing would be checked")

    _, atom = read_xml_feed(args.atom, "atom", problems)
    _, rss = read_xml_feed(args.rss, "rss", problems)
    json_items = read_json_feed(args.json, "json", problems)

    try:
        schema = etree.RelaxNG(etree.parse(args.schema))
        document = etree.parse(args.atom)
        if not schema.validate(document):
            for error in schema.error_log:
                problems.add("atom: RELAX NG", f"line {error.line}: {error.message}")
    except etree.XMLSyntaxError as e:
        problems.add("atom", f"not well-formed XML: {e}")
    try:
        etree.parse(args.rss)
    except etree.XMLSyntaxError as e:
        problems.add("rss", f"not well-formed XML: {e}")

    full = not args.summaries_only
    for label, seen in (("atom", atom), ("rss", rss), ("json", json_items)):
        check_entries(label, seen, expected, problems)
        by_link = {e.link: e for e in seen}
        for post in expected:
            if post.permalink in by_link:
                check_summary(label, post, by_link[post.permalink], full, problems)

    if problems.items:
        print(f"{len(problems.items)} mismatch(es):")
        for item in problems.items:
            print(f"  {item}")
        return 1
    print(f"ok: {len(expected)} entries checked in atom, rss and json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
