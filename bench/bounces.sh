#!/usr/bin/env bash
# Bounce reading benchmark: `newsletter bounces read` of a Maildir of COUNT
# bounce messages (default 100,000), made by repeating the 629 real ones in
# tests/fixtures/bounces/bsd with new recipients and Message-IDs (so none
# is the same report as another), end to end (process start to exit:
# parsing, the store, one transaction per 1,000 messages); the same with
# COUNT/10 to see whether memory grows with the mailbox; and, beside it,
# Python's flufl.bounce (GNU Mailman's bounce detector) on the same files.
#
# Targets (exit 1 if one is missed, or if a check fails):
#   rate          >= 20000 messages/s at COUNT (COUNT / wall time)
#   flat memory   peak RSS at COUNT <= 1.5 x peak RSS at COUNT/10
# Checks: the summary says COUNT messages read; a second run over the same
# Maildir says every report was read before.
#
# Run from anywhere:  bench/bounces.sh
#   COUNT=N            messages (default 100000); the memory run uses N/10
#   FLUFL_COUNT=M      messages for flufl.bounce (default 20000; its rate
#                      is per message, so a sample is enough)
#   NEWSLETTER_BIN=P   use this binary instead of `cargo build --release`
#   KEEP=1             keep the work folder
# Needs python3 (a venv with flufl.bounce is made in the work folder) and
# GNU time (installed with apt-get when missing). A benchmark, not a test.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
COUNT=${COUNT:-100000}
SMALL=$(( COUNT / 10 ))
FLUFL_COUNT=${FLUFL_COUNT:-20000}
MIN_RATE=20000 MAX_GROWTH=1.5
(( SMALL >= 1 )) || { echo "COUNT must be at least 10" >&2; exit 2; }
(( FLUFL_COUNT <= COUNT )) || FLUFL_COUNT=$COUNT

[[ -x /usr/bin/time ]] || { apt-get update -qq >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }
if [[ -n ${NEWSLETTER_BIN:-} ]]; then
  BIN=$(realpath "$NEWSLETTER_BIN")
else
  cargo build --release
  BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/newsletter
fi

WORK=$(mktemp -d /tmp/newsletter-bounces.XXXXXX)
[[ -n ${KEEP:-} ]] || trap 'rm -rf "$WORK"' EXIT
echo "work folder: $WORK"

python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install --quiet --disable-pip-version-check flufl.bounce

FAIL=0
# run NAME N: a site, a Maildir of N bounces, `bounces read` of it timed.
run() {
  local name=$1 n=$2 dir=$WORK/$1
  mkdir -p "$dir"
  printf '[site]\ntitle = "Bench"\nbase_url = "https://bench.example/"\n' >"$dir/config.toml"
  python3 "$ROOT/bench/make_bounces.py" "$ROOT/tests/fixtures/bounces/bsd" "$dir/Maildir" "$n"
  sync
  /usr/bin/time -o "$dir/time" -f '%e %M' "$BIN" --config "$dir/config.toml" bounces read "$dir/Maildir" \
    >"$dir/out" 2>"$dir/err"
  read -r SECONDS_TAKEN RSS_KB <"$dir/time"
  grep -q "read $n messages" "$dir/out" || { echo "FAIL: $name: the summary does not say $n messages" >&2; cat "$dir/out" >&2; FAIL=1; }
}

run big "$COUNT"
BIG_S=$SECONDS_TAKEN BIG_RSS=$RSS_KB
RATE=$(awk -v n="$COUNT" -v s="$BIG_S" 'BEGIN { printf "%.0f", n / s }')
echo "newsletter bounces read: $COUNT messages in $BIG_S s: $RATE messages/s, peak RSS $(( BIG_RSS / 1024 )) MiB"
echo "  $(cat "$WORK/big/out")"

"$BIN" --config "$WORK/big/config.toml" bounces read "$WORK/big/Maildir" >"$WORK/big/again" 2>/dev/null
AGAIN=$(grep -o '[0-9]* read before' "$WORK/big/again" | grep -o '^[0-9]*')
echo "  read again: $AGAIN reports read before"

run small "$SMALL"
SMALL_RSS=$RSS_KB
echo "newsletter bounces read: $SMALL messages: peak RSS $(( SMALL_RSS / 1024 )) MiB"

mkdir -p "$WORK/flufl"
python3 "$ROOT/bench/make_bounces.py" "$ROOT/tests/fixtures/bounces/bsd" "$WORK/flufl/Maildir" "$FLUFL_COUNT"
read -r F_N F_S F_FOUND < <("$WORK/venv/bin/python" "$ROOT/bench/flufl_bounces.py" "$WORK/flufl/Maildir")
F_RATE=$(awk -v n="$F_N" -v s="$F_S" 'BEGIN { printf "%.0f", n / s }')
echo "flufl.bounce: $F_N messages in $F_S s: $F_RATE messages/s (a recipient found in $F_FOUND)"

awk -v r="$RATE" -v min="$MIN_RATE" 'BEGIN { exit !(r >= min) }' \
  && echo "PASS rate $RATE >= $MIN_RATE messages/s" || { echo "FAIL rate $RATE < $MIN_RATE messages/s"; FAIL=1; }
awk -v big="$BIG_RSS" -v small="$SMALL_RSS" -v g="$MAX_GROWTH" 'BEGIN { exit !(big <= g * small) }' \
  && echo "PASS flat memory: $(( BIG_RSS / 1024 )) MiB at $COUNT, $(( SMALL_RSS / 1024 )) MiB at $SMALL" \
  || { echo "FAIL memory grows: $(( BIG_RSS / 1024 )) MiB at $COUNT, $(( SMALL_RSS / 1024 )) MiB at $SMALL"; FAIL=1; }
exit $FAIL
