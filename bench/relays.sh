#!/usr/bin/env bash
# Several relays: `newsletter send` of one digest to COUNT subscribers
# (default 100,000) over one smtp-sink relay, then spread over two (each its
# own smtp-sink, half the connections each, so the messages in flight are
# the same), each run by bench/send.sh with its checks (every message sent,
# recorded and received). Both sinks share the machine's cores with the
# sender, so two relays cannot be faster here; the target is that spreading
# costs nothing measurable:
#   two relays >= 0.9 x one relay, in messages per second (exit 1 if not)
#
#   COUNT=N  subscribers (default 100000)    CONNECTIONS=N  in all (default 8)
#   ROUNDS=N runs of each, alternating; the best of each counts (default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${COUNT:-100000}
CONNECTIONS=${CONNECTIONS:-8}
ROUNDS=${ROUNDS:-2}
cargo build --release --quiet
export NEWSLETTER_BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/newsletter
export COUNT CONNECTIONS DURABILITY_COUNT=0 SMTPLIB_COUNT=1000

declare -A BEST
for (( round = 1; round <= ROUNDS; round++ )); do
  for relays in 1 2; do
    log=$(mktemp)
    if ! RELAYS=$relays bench/send.sh >"$log" 2>&1; then
      cat "$log"; echo "FAIL  bench/send.sh with RELAYS=$relays failed" >&2; exit 1
    fi
    rate=$(awk -v n="$COUNT" '$0 ~ "^newsletter send, " n " subscribers" { print $(NF-3) }' "$log")
    echo "round $round, $relays relay(s): $rate msg/s ($(grep -E '^digest [0-9]+ ' "$log" | tail -n1))"
    rm -f "$log"
    (( rate > ${BEST[$relays]:-0} )) && BEST[$relays]=$rate
  done
done
ratio=$(awk -v a="${BEST[2]}" -v b="${BEST[1]}" 'BEGIN { printf "%.2f", a / b }')
echo "best: one relay ${BEST[1]} msg/s, two relays ${BEST[2]} msg/s (x$ratio)"
if awk -v r="$ratio" 'BEGIN { exit !(r >= 0.9) }'; then
  echo "PASS  two relays within noise of one: x$ratio >= x0.9"
else
  echo "FAIL  two relays: x$ratio < x0.9 of one relay"; exit 1
fi
