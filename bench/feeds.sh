#!/usr/bin/env bash
# Feed build benchmark: wall time (best of 3) and peak RSS (max of 3, GNU time)
# of `newsletter build` over a 10,000-post corpus (~67 MB of Markdown made by
# bench/make_corpus.py from the Prometheus blog), with limit = 0 (every post,
# full content) and limit = 20, and of Hugo building one full-content RSS feed
# of the same posts, for reference.
#
# Targets (exit 1 if one is missed, or if a feed has the wrong item count):
#   newsletter limit=0   wall <= 1.0 s, peak RSS <= 300 MB (MB = 10^6 bytes)
#   newsletter limit=20  wall <= 0.5 s
#   an archive of 1,000 digests (bench/make_archive.py) adds <= 0.2 s to the
#   limit=20 rebuild (the output folder as the last build left it: the build
#   a site runs on every change); the first build into an empty folder,
#   which makes 1,000 folders and pages, is printed beside it
#
# Run from anywhere:  bench/feeds.sh
#   COUNT=N            corpus size (default 10000)
#   NEWSLETTER_BIN=P   use this binary instead of `cargo build --release`
# The corpus is kept in target/bench-corpus and reused while its size matches.
# This is a benchmark, not a test: nothing in the test suite or CI runs it.
set -euo pipefail

cd "$(dirname "$0")/.."
COUNT=${COUNT:-10000}
CORPUS=$PWD/target/bench-corpus
NOW=2026-11-25T00:00:00Z
RUNS=3

apt_install() { (apt-get update -qq && apt-get install -y -qq "$@") >/dev/null; }
[[ -x /usr/bin/time ]] || apt_install time
command -v hugo >/dev/null || apt_install hugo

if [[ -n ${NEWSLETTER_BIN:-} ]]; then
  BIN=$(realpath "$NEWSLETTER_BIN")
else
  cargo build --release
  BIN=$PWD/target/release/newsletter
fi

if [[ "$(cut -d' ' -f1 "$CORPUS/corpus.stamp" 2>/dev/null)" != "$COUNT" ]]; then
  python3 bench/make_corpus.py "$CORPUS" --count "$COUNT"
fi

# write_config NAME LIMIT: $CORPUS/NAME.toml, feeds go to $CORPUS/out/NAME/
write_config() {
  cat >"$CORPUS/$1.toml" <<EOF
[site]
title = "Prometheus Blog"
base_url = "https://prometheus.io"
description = "Benchmark corpus"
author = "Prometheus Authors"
language = "en"
timezone = "UTC"
[content]
dir = "posts"
permalink = "/blog/:year/:month/:day/:slug/"
[feeds]
output_dir = "out/$1"
limit = $2
full_content = true
per_tag = false
iframes = "link"
EOF
}
write_config limit-0 0
write_config limit-20 20
write_config archive 20
printf '[store]\npath = "archive.db"\n[digest]\nfirst_run_posts = 10\n' >>"$CORPUS/archive.toml"
ARCHIVE_COUNT=${ARCHIVE_COUNT:-1000}
rm -f "$CORPUS"/archive.db*
"$BIN" --config "$CORPUS/archive.toml" subscribers add bench@example.org >/dev/null
"$BIN" --config "$CORPUS/archive.toml" preview --output "$CORPUS/preview" --now "$NOW" >/dev/null
python3 bench/make_archive.py "$CORPUS/archive.db" "$CORPUS/preview/digest.html" "$ARCHIVE_COUNT"

declare -A WALL RSS
LOG=$CORPUS/bench.log
# measure NAME OUT_DIR CMD...: run CMD $RUNS times on an emptied OUT_DIR;
# keep the best wall time (s) and the highest peak RSS (MB).
measure() {
  local name=$1 out=$2 t kb; shift 2
  WALL[$name]=999999 RSS[$name]=0
  for _ in $(seq "$RUNS"); do
    [[ -n ${KEEP:-} ]] || rm -rf "$out"
    if ! /usr/bin/time -o "$CORPUS/time.txt" -f '%e %M' "$@" >"$LOG" 2>&1; then
      echo "FAILED: $*" >&2; cat "$LOG" "$CORPUS/time.txt" >&2; exit 1
    fi
    read -r t kb < <(tail -n1 "$CORPUS/time.txt")
    WALL[$name]=$(awk -v a="${WALL[$name]}" -v b="$t" 'BEGIN { print (b < a ? b : a) }')
    RSS[$name]=$(awk -v a="${RSS[$name]}" -v kb="$kb" 'BEGIN { m = kb * 1024 / 1e6; printf "%.0f", (m > a ? m : a) }')
  done
}

STATUS=0
# check WHAT GOT WANT: a correctness check that fails the run like a missed target
check() {
  if [[ $2 == "$3" ]]; then echo "PASS  $1: $2"; else echo "FAIL  $1: $2, want $3"; STATUS=1; fi
}
# within WHAT VALUE MAX UNIT
within() {
  if awk -v v="$2" -v m="$3" 'BEGIN { exit !(v <= m) }'; then
    echo "PASS  $1: $2 $4 <= $3 $4"
  else
    echo "FAIL  $1: $2 $4 > $3 $4"; STATUS=1
  fi
}
items() { grep -o "$1" "$2" | wc -l; }   # occurrences of a tag in a feed file

echo "== newsletter build, limit = 0"
measure limit-0 "$CORPUS/out/limit-0" "$BIN" --config "$CORPUS/limit-0.toml" build --now "$NOW"
tail -n1 "$LOG"
echo "== newsletter build, limit = 20"
measure limit-20 "$CORPUS/out/limit-20" "$BIN" --config "$CORPUS/limit-20.toml" build --now "$NOW"
tail -n1 "$LOG"
echo "== newsletter build, limit = 20, with an archive of $ARCHIVE_COUNT digests, into an empty folder"
measure archive-first "$CORPUS/out/archive" "$BIN" --config "$CORPUS/archive.toml" build --now "$NOW"
tail -n1 "$LOG"
echo "== the same, rebuilt (limit = 20 too)"
KEEP=1 measure archive "$CORPUS/out/archive" "$BIN" --config "$CORPUS/archive.toml" build --now "$NOW"
tail -n1 "$LOG"
KEEP=1 measure limit-20-again "$CORPUS/out/limit-20" "$BIN" --config "$CORPUS/limit-20.toml" build --now "$NOW"
echo "== hugo (one full-content RSS feed)"
measure hugo "$CORPUS/hugo-site/public" hugo --quiet --source "$CORPUS/hugo-site"
hugo version

echo
printf '%-22s %10s %10s\n' run "wall (s)" "RSS (MB)"
for name in limit-0 limit-20 limit-20-again archive-first archive hugo; do
  printf '%-22s %10s %10s\n' "$name" "${WALL[$name]}" "${RSS[$name]}"
done
echo

for n in 0 20; do
  out=$CORPUS/out/limit-$n want=$(( n == 0 ? COUNT : n ))
  check "limit=$n atom entries" "$(items '<entry[ >]' "$out/atom.xml")" "$want"
  check "limit=$n rss items" "$(items '<item[ >]' "$out/rss.xml")" "$want"
  check "limit=$n json items" "$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["items"]))' "$out/feed.json")" "$want"
done
check "archive pages" "$(find "$CORPUS/out/archive/archive" -name index.html | wc -l)" "$(( ARCHIVE_COUNT + 1 ))"
check "archive feed entries" "$(items '<entry[ >]' "$CORPUS/out/archive/archive/atom.xml")" "$ARCHIVE_COUNT"
check "hugo rss items" "$(items '<item[ >]' "$CORPUS/hugo-site/public/index.xml")" "$COUNT"
within "newsletter limit=0 wall" "${WALL[limit-0]}" 1.0 s
within "newsletter limit=0 peak RSS" "${RSS[limit-0]}" 300 MB
within "newsletter limit=20 wall" "${WALL[limit-20]}" 0.5 s
ADDED=$(awk -v a="${WALL[archive]}" -v b="${WALL[limit-20-again]}" 'BEGIN { printf "%.2f", a - b }')
FIRST=$(awk -v a="${WALL[archive-first]}" -v b="${WALL[limit-20]}" 'BEGIN { printf "%.2f", a - b }')
echo "INFO  archive of $ARCHIVE_COUNT digests, first build into an empty folder, adds: $FIRST s"
within "archive of $ARCHIVE_COUNT digests adds to a rebuild" "$ADDED" 0.2 s
exit "$STATUS"
