#!/usr/bin/env python3
"""Dump mail saved by tests/smtp_server.py (or any .eml file) as JSON.

Usage:
    python tests/mail_dump.py DIR          # every DIR/<seq>.eml, a JSON list
    python tests/mail_dump.py --file F.eml # one file, a single JSON object

In DIR mode the output is a list in sequence order (numeric file stem; hidden
temp files are ignored).  Each message is parsed with the stdlib MIME parser
(email.policy.default) and described as:

  file          path of the .eml
  envelope      the sibling <stem>.json written by smtp_server.py, or null
  headers       {name: [{"raw", "decoded", "defects"}, ...]} for the top-level
                headers, names exactly as written (a name written in two
                spellings gives two keys), values in order of appearance.
                raw is the value as it appears in the file (folding kept,
                8-bit bytes read as UTF-8); decoded is the policy's decoded,
                unfolded value (RFC 2047 decoded); defects lists the header
                parser's complaints about that value.  An address header
                (From, To, Cc, Bcc, Reply-To, ...) also has "addresses": the
                addr-spec of every address the parser finds in it.
  defects       strings "Class: text" from msg.defects and from every part's
                defects (part defects prefixed with "part N (type): "), plus
                "unknown charset" for a text part whose charset is unknown.
  content_type  top-level content type
  parts         for every non-multipart part, in walk order:
                {content_type, charset, transfer_encoding, disposition,
                 filename, content}.  content is the decoded text (CRLF turned
                 into LF) for text/* parts, null for others (size then gives
                 the decoded byte count).
  html_links    every href= and src= value (entity-decoded, in document
                order, duplicates kept) in the text/html part(s)
  html_tags     sorted set of tag names in the text/html part(s)

Output is UTF-8 JSON on stdout.  Exit status 2 on a usage error.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

POLICY = email.policy.default


def clean(text: str) -> str:
    """Make a str safe for UTF-8 JSON: bytes smuggled as surrogates are re-read as UTF-8."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")


def defect_str(defect) -> str:
    text = str(defect)
    name = type(defect).__name__
    return f"{name}: {clean(text)}" if text else name


class LinkCollector(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        for name, value in attrs:
            if name in ("href", "src") and value is not None:
                self.links.append(value)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag):
        self.tags.add(tag)


def header_entries(msg) -> dict:
    headers: dict[str, list] = {}
    for name, raw in msg.raw_items():
        try:
            parsed = POLICY.header_fetch_parse(name, raw)
            decoded = str(parsed)
            hdefects = [defect_str(d) for d in getattr(parsed, "defects", ())]
        except Exception as e:  # the header parser should not raise, but be safe
            parsed = None
            decoded = raw
            hdefects = [f"{type(e).__name__}: {e}"]
        entry = {"raw": clean(raw), "decoded": clean(decoded), "defects": hdefects}
        addresses = getattr(parsed, "addresses", None)
        if addresses is not None:
            entry["addresses"] = [clean(a.addr_spec) for a in addresses]
        headers.setdefault(name, []).append(entry)
    return headers


def part_text(part, where: str, defects: list) -> str:
    try:
        text = part.get_content()
    except LookupError:
        charset = part.get_content_charset()
        defects.append(f"{where}unknown charset {charset!r}, decoded as UTF-8")
        text = (part.get_payload(decode=True) or b"").decode("utf-8", "replace")
    if isinstance(text, bytes):  # should not happen for text/*
        text = text.decode("utf-8", "replace")
    return clean(text.replace("\r\n", "\n"))


def describe(path: Path, envelope) -> dict:
    msg = email.message_from_bytes(path.read_bytes(), policy=POLICY)
    defects = [defect_str(d) for d in msg.defects]
    parts = []
    html = LinkCollector()
    for index, part in enumerate(msg.walk()):
        ctype = part.get_content_type()
        where = f"part {index} ({ctype}): "
        if part is not msg:
            defects.extend(where + defect_str(d) for d in part.defects)
        if part.is_multipart():
            continue
        info = {
            "content_type": ctype,
            "charset": part.get_content_charset(),
            "transfer_encoding": part.get("Content-Transfer-Encoding", None)
            and str(part["Content-Transfer-Encoding"]).strip().lower(),
            "disposition": part.get_content_disposition(),
            "filename": part.get_filename(),
        }
        if part.get_content_maintype() == "text":
            info["content"] = part_text(part, where, defects)
        else:
            info["content"] = None
            info["size"] = len(part.get_payload(decode=True) or b"")
        parts.append(info)
        if ctype == "text/html":
            html.feed(info["content"])
    html.close()
    return {
        "file": str(path),
        "envelope": envelope,
        "headers": header_entries(msg),
        "defects": defects,
        "content_type": msg.get_content_type(),
        "parts": parts,
        "html_links": [clean(u) for u in html.links],
        "html_tags": sorted(html.tags),
    }


def load_envelope(eml: Path):
    env = eml.with_suffix(".json")
    if env.is_file():
        return json.loads(env.read_text(encoding="utf-8"))
    return None


def sort_key(path: Path):
    m = re.fullmatch(r"\d+", path.stem)
    return (0, int(path.stem), path.name) if m else (1, 0, path.name)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Dump saved mail as JSON (see the module docstring).")
    p.add_argument("dir", nargs="?", type=Path, help="maildir written by smtp_server.py")
    p.add_argument("--file", type=Path, help="a single .eml file (prints one object)")
    args = p.parse_args(argv)
    if (args.dir is None) == (args.file is None):
        p.error("give either DIR or --file F.eml")

    if args.file is not None:
        result = describe(args.file, load_envelope(args.file))
    else:
        if not args.dir.is_dir():
            p.error(f"not a directory: {args.dir}")
        emls = sorted((f for f in args.dir.glob("*.eml")
                       if not f.name.startswith(".") and f.is_file()), key=sort_key)
        result = [describe(f, load_envelope(f)) for f in emls]

    out = json.dumps(result, indent=2, ensure_ascii=False) + "\n"
    sys.stdout.buffer.write(out.encode("utf-8"))
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
