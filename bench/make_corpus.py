#!/usr/bin/env python3
"""Make the feed benchmark corpus: N posts (default 10,000) cloned from the
59 Prometheus blog posts in shared/corpus/prometheus-blog, plus a Hugo site
over the same files for comparison.

Usage: bench/make_corpus.py OUT_DIR [--count 10000] [--source DIR]

Writes (deterministically; OUT_DIR/posts and OUT_DIR/hugo-site are replaced):
  OUT_DIR/posts/YYYY-MM-DD-<origslug>-<n>.md   the corpus, n = 1..count
  OUT_DIR/hugo-site/                           hugo.toml, layouts/, and
                                               content/posts/ (hard links)
  OUT_DIR/corpus.stamp                         "<count> <bytes>" when done

Post n is a copy of source post (n-1) % 59. Dates are one per day, the newest
(post n = count) on 2026-10-31, so every date and slug is unique. The title
gets " #n" and is rewritten as a double-quoted YAML string (an unquoted " #"
would start a YAML comment); created_at becomes the new bare date. The one
`draft: true` line is dropped, so all posts are published in both tools.
"""

import argparse
import datetime as dt
import json
import os
import re
import shutil
from pathlib import Path

DEFAULT_SOURCE = Path(__file__).resolve().parents[2] / "shared/corpus/prometheus-blog"
LAST_DATE = dt.date(2026, 10, 31)
FIELD = re.compile(r"^(\s*)([A-Za-z_]+):\s*(.*?)\s*$")

HUGO_TOML = """\
baseURL = "https://prometheus.io/"
title = "Prometheus Blog"
languageCode = "en"
# Feed-only build: no HTML pages, no sections/taxonomies, only the home RSS.
disableKinds = ["taxonomy", "term", "section", "sitemap", "robotsTXT", "404"]

[outputs]
home = ["RSS"]

# Posts get a permalink and their .Content goes into the feed, but no page is written.
[[cascade]]
_target = { kind = "page" }
_build = { render = "link", list = "always" }

[frontmatter]
date = ["created_at", ":default"]
# Same date as created_at; the :filename handler also sets the slug from the
# file name (minus the date), like newsletter, instead of the title ("... #n").
publishDate = [":filename", ":default"]

[permalinks]
posts = "/blog/:year/:month/:day/:slug/"

[services.rss]
limit = -1
"""

# Hugo's built-in RSS template uses .Summary; newsletter is run with
# full_content = true, so the fair comparison puts each post's full .Content.
RSS_TEMPLATE = """\
{{- printf "<?xml version=\\"1.0\\" encoding=\\"utf-8\\" standalone=\\"yes\\"?>" | safeHTML }}
<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom">
  <channel>
    <title>{{ .Site.Title }}</title>
    <link>{{ .Permalink }}</link>
    <description>Benchmark corpus</description>
    <language>{{ .Site.LanguageCode }}</language>
    {{- range .Site.RegularPages }}
    <item>
      <title>{{ .Title }}</title>
      <link>{{ .Permalink }}</link>
      <pubDate>{{ .Date.Format "Mon, 02 Jan 2006 15:04:05 -0700" | safeHTML }}</pubDate>
      <guid>{{ .Permalink }}</guid>
      <description>{{ .Content | html }}</description>
    </item>
    {{- end }}
  </channel>
</rss>
"""


def yaml_scalar(raw: str) -> str:
    """The string value of a one-line YAML scalar (plain, '...' or "...")."""
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        return json.loads(raw)  # close enough to YAML double-quoted for titles
    if len(raw) >= 2 and raw[0] == raw[-1] == "'":
        return raw[1:-1].replace("''", "'")
    return raw


def clone(text: str, name: str, n: int, date: dt.date) -> str:
    lines = text.split("\n")
    if lines[0].strip() != "---":
        raise SystemExit(f"{name}: no YAML front matter")
    end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    front = []
    for line in lines[1:end]:
        m = FIELD.match(line)
        key = m and m.group(2)
        if key == "title":
            title = json.dumps(f"{yaml_scalar(m.group(3))} #{n}", ensure_ascii=False)
            line = f"{m.group(1)}title: {title}"
        elif key == "created_at":
            line = f"{m.group(1)}created_at: {date.isoformat()}"
        elif key == "draft":
            continue
        front.append(line)
    return "\n".join(["---", *front, *lines[end:]])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--count", type=int, default=10_000)
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    args = ap.parse_args()

    sources = sorted(args.source.glob("*.md"))
    if not sources:
        raise SystemExit(f"{args.source}: no *.md posts found")
    texts = [p.read_text(encoding="utf-8") for p in sources]
    slugs = [re.sub(r"^\d{4}-\d{2}-\d{2}-", "", p.stem) for p in sources]

    out = args.out_dir
    posts, site = out / "posts", out / "hugo-site"
    (out / "corpus.stamp").unlink(missing_ok=True)
    for d in (posts, site):
        shutil.rmtree(d, ignore_errors=True)
    hugo_posts = site / "content/posts"
    hugo_posts.mkdir(parents=True)
    (site / "layouts").mkdir()
    posts.mkdir()
    (site / "hugo.toml").write_text(HUGO_TOML)
    (site / "layouts/index.rss.xml").write_text(RSS_TEMPLATE)

    total = 0
    for n in range(1, args.count + 1):
        i = (n - 1) % len(sources)
        date = LAST_DATE - dt.timedelta(days=args.count - n)
        data = clone(texts[i], sources[i].name, n, date).encode("utf-8")
        path = posts / f"{date.isoformat()}-{slugs[i]}-{n}.md"
        path.write_bytes(data)
        try:
            os.link(path, hugo_posts / path.name)
        except OSError:
            shutil.copyfile(path, hugo_posts / path.name)
        total += len(data)

    (out / "corpus.stamp").write_text(f"{args.count} {total}\n")
    first = LAST_DATE - dt.timedelta(days=args.count - 1)
    print(f"{args.count} posts ({len(sources)} sources), {first} .. {LAST_DATE}, "
          f"{total:,} bytes = {total / 1e6:.1f} MB of Markdown in {posts}")


if __name__ == "__main__":
    main()
