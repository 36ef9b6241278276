#!/usr/bin/env python3
"""Prints, as JSON, what readers of the web archive see.

usage: archive_check.py ARCHIVE_DIR ATOM_SCHEMA

The archive's Atom feed (ARCHIVE_DIR/atom.xml, when there is one) is read
with feedparser and validated against RFC 4287's RELAX NG schema by lxml;
every HTML page under ARCHIVE_DIR is parsed by lxml.html into its title,
its visible text and its links.

{"feed": {"bozo": false, "valid": true, "errors": [], "title": "...",
          "links": [{"rel", "href"}],
          "entries": [{"title", "link", "id", "published", "summary"}]} or null,
 "pages": {"index.html": {"title", "text", "links": [href...],
                          "alternates": [{"type", "href"}]}, "1/index.html": ...}}
"""

import json
import os
import sys

import feedparser
import lxml.html
from lxml import etree


def read_feed(path, schema_path):
    if not os.path.exists(path):
        return None
    parsed = feedparser.parse(path, sanitize_html=False, resolve_relative_uris=False)
    schema = etree.RelaxNG(etree.parse(schema_path))
    valid = schema.validate(etree.parse(path))
    return {
        "bozo": bool(parsed.bozo),
        "error": str(parsed.get("bozo_exception")) if parsed.bozo else None,
        "valid": valid,
        "errors": [str(e) for e in schema.error_log],
        "title": parsed.feed.get("title"),
        "links": [{"rel": l.get("rel"), "href": l.get("href")} for l in parsed.feed.get("links", [])],
        "entries": [
            {
                "title": e.get("title"),
                "link": e.get("link"),
                "id": e.get("id"),
                "published": e.get("published"),
                "summary": e.get("summary"),
            }
            for e in parsed.entries
        ],
    }


def read_page(path):
    with open(path, "rb") as f:
        root = lxml.html.fromstring(f.read())
    title = root.findtext(".//title")
    for hidden in root.xpath("//*[contains(@style, 'display:none') or contains(@style, 'display: none')]"):
        hidden.drop_tree()
    return {
        "title": title,
        "text": " ".join(root.text_content().split()),
        "links": [a.get("href") for a in root.iter("a")],
        "alternates": [
            {"type": l.get("type"), "href": l.get("href")}
            for l in root.iter("link")
            if l.get("rel") == "alternate"
        ],
    }


def main():
    folder, schema = sys.argv[1], sys.argv[2]
    pages = {}
    for here, _, files in os.walk(folder):
        for name in files:
            if name.endswith(".html"):
                path = os.path.join(here, name)
                pages[os.path.relpath(path, folder)] = read_page(path)
    json.dump({"feed": read_feed(os.path.join(folder, "atom.xml"), schema), "pages": pages}, sys.stdout)


if __name__ == "__main__":
    main()
