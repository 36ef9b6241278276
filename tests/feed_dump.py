#!/usr/bin/env python3
"""Prints, as JSON, what a feed reader sees in an Atom, an RSS and a JSON feed.

usage: feed_dump.py ATOM RSS JSON

The Rust tests assert on this output. Atom and RSS are read with feedparser
(HTML sanitising and relative-URL resolving turned off, so that the dump shows
what newsletter wrote, not what feedparser repaired), JSON with json. Each
entry's HTML is parsed with lxml.html into its visible text and its elements.

{"atom": {"bozo": false, "error": null, "well_formed": true, "title": "...",
           "subtitle": the text a reader shows (Atom subtitle, RSS description),
           "hubs": [WebSub hub URLs the feed names], "entries": [
   {"title", "link", "id", "published" (UTC, RFC 3339 with Z), "authors",
    "tags", "summary": HTML, "content": HTML or null}]}, "rss": ..., "json": ...}
HTML = {"html": "...", "text": "visible text, spaces collapsed",
        "elements": [{"tag": "a", "attrs": {"href": "..."}}]}
"""

import calendar
import datetime as dt
import json
import sys

import feedparser
import lxml.html
from lxml import etree


def html(value):
    if value is None:
        return None
    root = lxml.html.fragment_fromstring(value, create_parent="div")
    etree.strip_elements(root, etree.Comment, with_tail=False)
    elements = [
        {"tag": el.tag, "attrs": dict(el.attrib)}
        for el in root.iterdescendants()
        if isinstance(el.tag, str)
    ]
    text = " ".join(" ".join(root.itertext()).split())
    return {"html": value, "text": text, "elements": elements}


def plain(value):
    if value is None:
        return None
    return {"html": None, "text": " ".join(value.split()), "elements": []}


def visible(detail):
    """The text a reader shows for a feedparser text construct: HTML's
    visible text, plain text as it is."""
    if not detail:
        return None
    if detail.get("type") in ("text/html", "application/xhtml+xml"):
        root = lxml.html.fragment_fromstring(detail.value, create_parent="div")
        return root.text_content()
    return detail.value


def utc(struct):
    if not struct:
        return None
    moment = dt.datetime.fromtimestamp(calendar.timegm(struct), dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def xml_feed(path):
    parsed = feedparser.parse(path, sanitize_html=False, resolve_relative_uris=False)
    try:
        etree.parse(path)
        well_formed = True
    except etree.XMLSyntaxError:
        well_formed = False
    entries = []
    for e in parsed.entries:
        content = e.get("content")
        entries.append(
            {
                "title": e.get("title"),
                "link": e.get("link"),
                "id": e.get("id"),
                "published": utc(e.get("published_parsed")),
                "authors": [a.get("name") for a in e.get("authors", []) if a.get("name")],
                "tags": [t.get("term") for t in e.get("tags", [])],
                "summary": html(e.get("summary")),
                "content": html(content[0].value) if content else None,
            }
        )
    error = parsed.get("bozo_exception")
    return {
        "bozo": bool(parsed.bozo),
        "error": str(error) if error else None,
        "well_formed": well_formed,
        "title": parsed.feed.get("title"),
        "subtitle": visible(parsed.feed.get("subtitle_detail")),
        "hubs": [l.get("href") for l in parsed.feed.get("links", []) if l.get("rel") == "hub"],
        "entries": entries,
    }


def json_feed(path):
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    entries = []
    for item in doc.get("items", []):
        published = item.get("date_published")
        if published:
            moment = dt.datetime.fromisoformat(published).astimezone(dt.timezone.utc)
            published = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        entries.append(
            {
                "title": item.get("title"),
                "link": item.get("url"),
                "id": item.get("id"),
                "published": published,
                "authors": [a.get("name") for a in item.get("authors", [])],
                "tags": item.get("tags", []),
                "summary": plain(item.get("summary")),
                "content": html(item.get("content_html")),
            }
        )
    return {
        "bozo": False,
        "error": None,
        "well_formed": True,
        "title": doc.get("title"),
        "subtitle": doc.get("description"),
        "hubs": [h.get("url") for h in doc.get("hubs", []) if h.get("type") == "WebSub"],
        "entries": entries,
    }


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    atom, rss, json_path = sys.argv[1:]
    out = {"atom": xml_feed(atom), "rss": xml_feed(rss), "json": json_feed(json_path)}
    json.dump(out, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
