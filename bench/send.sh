#!/usr/bin/env bash
# Send benchmark: `newsletter send` of one digest to COUNT active subscribers
# (default 100,000) over SMTP to postfix's smtp-sink on loopback, end to end
# (process start to exit: digest creation, the ledger, every message), and the
# same with COUNT/10 subscribers to see whether memory grows with the list.
# Beside it, Python's smtplib sending one of our messages over one
# connection, one message at a time (the way rss2email sends), for reference.
#
# Targets (exit 1 if one is missed, or if a correctness check fails):
#   throughput      >= 3000 messages/s at COUNT subscribers (COUNT / wall time)
#   peak RSS        <= 150 MB at COUNT subscribers (GNU time %M; MB = 10^6 bytes)
#   flat memory     peak RSS at COUNT <= 1.5 x peak RSS at COUNT/10
#   topics          with TOPICS topics (default 20) and every subscriber a
#                   random subset of them (so nearly every one gets other
#                   posts), >= 3000 messages/s and <= 150 MB at COUNT, and
#                   within 15% of the rate when all of them choose one and
#                   the same subset of as many topics (2 in 5), measured in
#                   the same run
#   durable ledger  fsync/fdatasync calls during a send of DURABILITY_COUNT
#                   messages >= DURABILITY_COUNT / CONNECTIONS: every group
#                   commit of outcomes (at most one per connection) reaches the
#                   disk before its workers send again (strace, separate run)
# Checks: the summary line says COUNT sent, 0 failed, 0 pending; the ledger
# (sqlite) has COUNT deliveries of digest 1, all 'sent'; the sink counted
# COUNT messages.
#
# Run from anywhere:  bench/send.sh        (takes minutes; a step that runs
#                                           past its time limit is a FAIL)
#   COUNT=N              subscribers (default 100000); the memory run uses N/10
#   CONNECTIONS=N        smtp.connections (default 8)
#   SMTPLIB_COUNT=M      messages for the smtplib baseline (default 20000; its
#                        msg/s is extrapolated to COUNT)
#   TOPICS=N             topics for the topics runs (default 20, at most 64;
#                        0 skips them)
#   DURABILITY_COUNT=N   subscribers for the fsync-counting run (default 2000;
#                        0 skips it)
#   SEND_TIMEOUT=S       limit for each `send` (default max(600, COUNT/100) s,
#                        i.e. a send slower than 100 msg/s is cut off)
#   SINK_PORT=P          smtp-sink port on 127.0.0.1 (default 2526)
#   RELAYS=N             N [[smtp]] relays, each its own smtp-sink (ports P to
#                        P+N-1), CONNECTIONS/N connections each (default 1:
#                        one [smtp] table); bench/relays.sh compares 1 and 2
#   DKIM=K               sign every message: "rsa" (2048-bit), "ed25519", or
#                        "both" (two [[email.dkim]] keys); keys made by openssl
#   NEWSLETTER_BIN=P     use this binary instead of `cargo build --release`
#   KEEP=1               keep the work folder (sites, ledgers, logs)
# Installs what is missing with apt-get: time, postfix (for smtp-sink),
# sqlite3, strace. This is a benchmark, not a test: nothing in the test suite
# or CI runs it. Only loopback traffic; smtp-sink is stopped at exit.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
COUNT=${COUNT:-100000}
SMALL=$(( COUNT / 10 ))
CONNECTIONS=${CONNECTIONS:-8}
SMTPLIB_COUNT=${SMTPLIB_COUNT:-20000}
DURABILITY_COUNT=${DURABILITY_COUNT:-2000}
TOPICS=${TOPICS:-20}
SEND_TIMEOUT=${SEND_TIMEOUT:-$(( COUNT / 100 > 600 ? COUNT / 100 : 600 ))}
STEP_TIMEOUT=600
PORT=${SINK_PORT:-2526}
RELAYS=${RELAYS:-1}
NOW=2026-11-25T00:00:00Z
MIN_RATE=3000 MAX_RSS_MB=150 MAX_GROWTH=1.5 MIN_TOPICS_SHARE=0.85

(( SMALL >= 1 )) || { echo "COUNT must be at least 10" >&2; exit 2; }
(( RELAYS >= 1 && CONNECTIONS % RELAYS == 0 )) || { echo "RELAYS must divide CONNECTIONS ($CONNECTIONS)" >&2; exit 2; }
(( SMTPLIB_COUNT <= COUNT )) || SMTPLIB_COUNT=$COUNT

# --- tools -------------------------------------------------------------------
APT_UPDATED=
apt_install() {
  [[ -n $APT_UPDATED ]] || { apt-get update -qq >/dev/null; APT_UPDATED=1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
[[ -x /usr/bin/time ]] || apt_install time
if [[ ! -x /usr/sbin/smtp-sink ]]; then
  # "No configuration": install the binaries, do not set up or start an MTA.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  apt_install postfix
fi
command -v sqlite3 >/dev/null || apt_install sqlite3 || true
if (( DURABILITY_COUNT > 0 )); then command -v strace >/dev/null || apt_install strace || true; fi

if [[ -n ${NEWSLETTER_BIN:-} ]]; then
  BIN=$(realpath "$NEWSLETTER_BIN")
else
  cargo build --release
  BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/newsletter
fi
[[ -x $BIN ]] || { echo "no binary at $BIN" >&2; exit 1; }

# sql DB QUERY: one value, with the sqlite3 shell or else Python's sqlite3
sql() {
  if command -v sqlite3 >/dev/null; then
    sqlite3 -readonly "$1" "$2"
  else
    python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0])' "$1" "$2"
  fi
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/newsletter-send-bench.XXXXXX")
SINK_PIDS=()
cleanup() {
  local pid
  for pid in "${SINK_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  if [[ ${KEEP:-} == 1 ]]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# --- the sinks: one per relay, on PORT, PORT+1, ... ------------------------------------
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for (( r = 0; r < RELAYS; r++ )); do
  p=$(( PORT + r ))
  if port_open "$p"; then
    echo "127.0.0.1:$p is already in use; stop what listens there or set SINK_PORT" >&2; exit 1
  fi
  # -c prints "sess=S quit=Q mesg=M" (\r-separated) each time a counter changes.
  /usr/sbin/smtp-sink -u nobody -c "127.0.0.1:$p" 1000 >"$WORK/sink$r.out" 2>"$WORK/sink$r.err" &
  SINK_PIDS+=($!)
  for _ in $(seq 100); do port_open "$p" && break; sleep 0.1; done
  port_open "$p" || { echo "smtp-sink did not start:" >&2; cat "$WORK/sink$r.err" >&2; exit 1; }
done
# sink_messages: the messages all sinks received
sink_messages() {
  local r n total=0
  for (( r = 0; r < RELAYS; r++ )); do
    n=$(tr '\r' '\n' <"$WORK/sink$r.out" | grep -o 'mesg=[0-9]*' | tail -n1 | cut -d= -f2 || true)
    total=$(( total + ${n:-0} ))
  done
  echo "$total"
}
# wait_sink WANT: the sinks' message count, once it reaches WANT (or after 5 s)
wait_sink() {
  local n
  for _ in $(seq 50); do n=$(sink_messages); [[ ${n:-0} -ge $1 ]] && break; sleep 0.1; done
  echo "${n:-0}"
}

# --- results and verdicts ----------------------------------------------------------
STATUS=0
VERDICTS=()
verdict() { VERDICTS+=("$1"); [[ $1 == FAIL* ]] && STATUS=1; return 0; }
check() {   # check WHAT GOT WANT
  if [[ $2 == "$3" ]]; then verdict "PASS  $1: $2"; else verdict "FAIL  $1: $2, want $3"; fi
}
mb() { awk -v kb="$1" 'BEGIN { printf "%.0f", kb * 1024 / 1e6 }'; }

# make_site NAME N: a fresh site in $WORK/NAME with N imported subscribers
make_site() {
  local dir=$WORK/$1 n=$2 t
  mkdir -p "$dir"
  # the project's config without any [smtp] table, then ours
  awk '/^[[:space:]]*\[/ { skip = ($0 ~ /^[[:space:]]*\[smtp\]/) } !skip' "$ROOT/config.toml" >"$dir/config.toml"
  local r table="[smtp]"
  (( RELAYS == 1 )) || table="[[smtp]]"
  for (( r = 0; r < RELAYS; r++ )); do
    cat >>"$dir/config.toml" <<EOF

$table
host = "127.0.0.1"
port = $(( PORT + r ))
security = "none"
connections = $(( CONNECTIONS / RELAYS ))
timeout = 30
EOF
  done
  local kind
  for kind in $(case "${DKIM:-}" in both) echo rsa ed25519 ;; *) echo "${DKIM:-}" ;; esac); do
    case $kind in
      rsa) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/$kind.pem" 2>/dev/null ;;
      ed25519) openssl genpkey -algorithm ED25519 -out "$dir/$kind.pem" ;;
      *) echo "DKIM=$DKIM: say rsa, ed25519 or both" >&2; exit 2 ;;
    esac
    printf '\n[[email.dkim]]\nselector = "%s"\ndomain = "example.org"\nkey_file = "%s.pem"\n' "$kind" "$kind" >>"$dir/config.toml"
  done
  cp -r "$ROOT/content" "$ROOT/templates" "$dir/"
  (( n > 0 )) || return 0
  case ${3:-} in
    '')
      awk -v n="$n" 'BEGIN { print "email,name"; for (i = 1; i <= n; i++) printf "reader%06d@example.net,Reader %d\n", i, i }' >"$dir/subs.csv" ;;
    one|random)
      # TOPICS topics, a post in each (and none in no topic), and every
      # subscriber's choice: one subset for all, or a random one each.
      local t
      for (( t = 0; t < TOPICS; t++ )); do
        printf '\n[[topics]]\nkey = "t%02d"\nlabel = "Topic %d"\ntags = ["topic-%d"]\n' "$t" "$t" "$t" >>"$dir/config.toml"
      done
      sed -i 's/^first_run_posts = .*//' "$dir/config.toml"
      awk '/^\[digest\]/ { print; print "first_run_posts = 100"; next } 1' "$dir/config.toml" >"$dir/config.new" && mv "$dir/config.new" "$dir/config.toml"
      grep -q '^\[digest\]' "$dir/config.toml" || printf '\n[digest]\nfirst_run_posts = 100\n' >>"$dir/config.toml"
      rm -rf "$dir/content" && mkdir "$dir/content"
      local EXCERPT="What changed in this release, and why: [the notes](https://example.org/notes) list every change, and the **upgrade guide** the few that need care. Thanks to everyone who reported bugs and sent fixes."
      for (( t = 0; t < TOPICS; t++ )); do
        printf -- '---\ntitle: "News of topic %d"\ncreated_at: 2026-11-%02dT09:00:00Z\ntags: [topic-%d]\n---\n\n%s\n\n<!-- more -->\n\nThe rest.\n' \
          "$t" $(( 1 + t % 24 )) "$t" "$EXCERPT" \
          >"$dir/content/2026-11-$(printf %02d $(( 1 + t % 24 )))-topic-$t.md"
      done
      awk -v n="$n" -v topics="$TOPICS" -v mode="$3" 'BEGIN {
        srand(14); print "email,name,topics"
        for (i = 1; i <= n; i++) {
          keys = ""
          # one: the first 2 in 5 topics, as many as a random subset has on average
          if (mode == "one") { for (t = 0; t < topics * 2 / 5; t++) keys = keys (keys == "" ? "" : ",") sprintf("t%02d", t) }
          else {
            while (keys == "") for (t = 0; t < topics; t++) if (rand() < 0.4) keys = keys (keys == "" ? "" : ",") sprintf("t%02d", t)
          }
          printf "reader%06d@example.net,Reader %d,\"%s\"\n", i, i, keys
        }
      }' >"$dir/subs.csv" ;;
  esac
  if ! timeout "$STEP_TIMEOUT" /usr/bin/time -o "$dir/import.time" -f '%e %M' \
      "$BIN" --config "$dir/config.toml" subscribers import "$dir/subs.csv" >"$dir/import.log" 2>&1; then
    echo "FAILED: subscribers import of $n rows" >&2; cat "$dir/import.log" "$dir/import.time" >&2; exit 1
  fi
  read -r t _ < <(tail -n1 "$dir/import.time")
  echo "import of $n subscribers: $t s ($(tail -n1 "$dir/import.log"))"
  IMPORT_S[$n]=$t
}

declare -A IMPORT_S WALL RSS RATE CPU
# measure_send N [TOPICS_MODE]: make a site of N subscribers (with topics:
# "one" set for all, or a "random" one each), send, check, record figures
# under N or under the mode
measure_send() {
  local n=$1 mode=${2:-} key=${2:-$1} dir=$WORK/send-$1${2:+-$2} rc=0 wall kb user sys summary sent before after
  echo "== newsletter send, $n subscribers${mode:+, $TOPICS topics ($mode subset)}, $CONNECTIONS connections over $RELAYS relay(s)"
  make_site "send-$n${mode:+-$mode}" "$n" "$mode"
  before=$(sink_messages)
  /usr/bin/time -o "$dir/send.time" -f '%e %M %U %S' \
    timeout -k 10 "$SEND_TIMEOUT" "$BIN" --config "$dir/config.toml" send --now "$NOW" \
    >"$dir/send.out" 2>"$dir/send.err" || rc=$?
  read -r wall kb user sys < <(tail -n1 "$dir/send.time")
  summary=$(grep -E '^digest [0-9]+ ' "$dir/send.out" | tail -n1 || true)
  echo "${summary:-(no summary line)}"
  sent=$(sql "$dir/newsletter.db" "SELECT count(*) FROM deliveries WHERE digest_id = 1 AND status = 'sent'" 2>/dev/null || echo 0)
  WALL[$key]=$wall RSS[$key]=$(mb "$kb")
  CPU[$key]=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.1f", u + s }')
  if (( rc == 124 || rc == 137 )); then
    RATE[$key]=$(awk -v s="$sent" -v t="$wall" 'BEGIN { printf "%.0f", s / t }')
    verdict "FAIL  send of $n: cut off after $SEND_TIMEOUT s with $sent sent (${RATE[$key]} msg/s)"
    return 0
  fi
  RATE[$key]=$(awk -v n="$n" -v t="$wall" 'BEGIN { printf "%.0f", n / t }')
  echo "wall $wall s, peak RSS ${RSS[$key]} MB, CPU ${CPU[$key]} s: ${RATE[$key]} msg/s end to end (exit $rc)"
  check "send $n: exit status" "$rc" 0
  check "send $n: summary" "$(grep -oE '[0-9]+ sent, [0-9]+ failed, [0-9]+ pending' <<<"$summary" || echo none)" "$n sent, 0 failed, 0 pending"
  check "send $n: ledger rows of digest 1" "$(sql "$dir/newsletter.db" 'SELECT count(*) FROM deliveries WHERE digest_id = 1')" "$n"
  check "send $n: ledger rows 'sent'" "$sent" "$n"
  after=$(wait_sink $(( before + n )))
  check "send $n: messages the sink received" "$(( after - before ))" "$n"
}

echo "newsletter: $BIN"
echo "work folder: $WORK"

# --- 1. the smtplib baseline, on a message our tool made ---------------------------
echo "== preview (a message to replay with smtplib)"
make_site preview 0
timeout "$STEP_TIMEOUT" "$BIN" --config "$WORK/preview/config.toml" preview \
  --output "$WORK/preview/out" --now "$NOW" >"$WORK/preview/preview.log" 2>&1 ||
  { cat "$WORK/preview/preview.log" >&2; exit 1; }
EML=$WORK/preview/out/digest.eml
echo "digest.eml: $(wc -c <"$EML") bytes"
echo "== Python smtplib, one connection, one message at a time: $SMTPLIB_COUNT messages"
before=$(sink_messages)
SMTPLIB_LINE=$(timeout -k 10 "$STEP_TIMEOUT" python3 "$ROOT/bench/smtplib_send.py" "$EML" \
  --count "$SMTPLIB_COUNT" --port "$PORT" --deadline $(( STEP_TIMEOUT - 30 ))) ||
  verdict "FAIL  smtplib baseline did not finish: ${SMTPLIB_LINE:-no output}"
echo "$SMTPLIB_LINE"
SMTPLIB_RATE=$(grep -oE '= [0-9]+ msg/s' <<<"$SMTPLIB_LINE" | grep -oE '[0-9]+' || echo 0)
SMTPLIB_SENT=$(grep -oE 'smtplib: [0-9]+' <<<"$SMTPLIB_LINE" | grep -oE '[0-9]+' || echo 0)
check "smtplib: messages the sink received" "$(( $(wait_sink $(( before + SMTPLIB_SENT ))) - before ))" "$SMTPLIB_SENT"
if (( SMTPLIB_COUNT < COUNT && SMTPLIB_RATE > 0 )); then
  echo "(measured on $SMTPLIB_COUNT messages, not $COUNT; the msg/s above is that run's, and at that rate $COUNT would take $(awk -v n="$COUNT" -v r="$SMTPLIB_RATE" 'BEGIN { printf "%.1f", n / r }') s)"
fi

# --- 2. memory vs list size, and throughput ------------------------------------------
measure_send "$SMALL"
measure_send "$COUNT"
if (( TOPICS > 0 )); then
  measure_send "$COUNT" one
  measure_send "$COUNT" random
fi

# --- 3. is the ledger durable? -------------------------------------------------------------
DURABLE="skipped"
if (( DURABILITY_COUNT > 0 )) && command -v strace >/dev/null; then
  echo "== durability: fsync/fdatasync calls while sending $DURABILITY_COUNT messages (strace)"
  make_site durable "$DURABILITY_COUNT"
  # --seccomp-bpf stops the process only at the traced calls: little slowdown
  rc=0
  timeout -k 10 "$SEND_TIMEOUT" strace -f -qq --seccomp-bpf -e trace=fsync,fdatasync -c -o "$WORK/durable/strace.txt" \
    "$BIN" --config "$WORK/durable/config.toml" send --now "$NOW" >"$WORK/durable/send.out" 2>&1 || rc=$?
  # strace -c: "% time  seconds  usecs/call  calls  [errors]  syscall"; the total line
  syncs=$(awk '$NF == "total" { print $4 + 0 }' "$WORK/durable/strace.txt")
  syncs=${syncs:-0}
  need=$(( (DURABILITY_COUNT + CONNECTIONS - 1) / CONNECTIONS ))
  DURABLE="$syncs fsyncs for $DURABILITY_COUNT messages"
  echo "$DURABLE (at least $need needed: one per group commit of at most $CONNECTIONS outcomes; exit $rc)"
  if (( rc == 0 && syncs >= need )); then
    verdict "PASS  durable ledger: $syncs fsync/fdatasync calls >= $need"
  else
    verdict "FAIL  durable ledger: $syncs fsync/fdatasync calls for $DURABILITY_COUNT messages, want >= $need (exit $rc): outcomes are committed without reaching the disk"
  fi
elif (( DURABILITY_COUNT > 0 )); then
  verdict "SKIP  durable ledger: strace is not installed"
fi

# --- 4. the table -------------------------------------------------------------------------
echo
printf '%-44s %12s %10s %10s %10s\n' run "msg/s" "wall (s)" "RSS (MB)" "CPU (s)"
printf '%-44s %12s %10s %10s %10s\n' "newsletter send, $COUNT subscribers, $RELAYS relay(s)" "${RATE[$COUNT]}" "${WALL[$COUNT]}" "${RSS[$COUNT]}" "${CPU[$COUNT]}"
printf '%-44s %12s %10s %10s %10s\n' "newsletter send, $SMALL subscribers" "${RATE[$SMALL]}" "${WALL[$SMALL]}" "${RSS[$SMALL]}" "${CPU[$SMALL]}"
if (( TOPICS > 0 )); then
  printf '%-44s %12s %10s %10s %10s\n' "$TOPICS topics, all on one subset" "${RATE[one]}" "${WALL[one]}" "${RSS[one]}" "${CPU[one]}"
  printf '%-44s %12s %10s %10s %10s\n' "$TOPICS topics, a random subset each" "${RATE[random]}" "${WALL[random]}" "${RSS[random]}" "${CPU[random]}"
fi
printf '%-44s %12s %10s %10s %10s\n' "python smtplib, 1 connection ($SMTPLIB_COUNT msgs)" "$SMTPLIB_RATE" - - -
echo "import: ${IMPORT_S[$COUNT]:-?} s for $COUNT subscribers, ${IMPORT_S[$SMALL]:-?} s for $SMALL"
echo "ledger: $DURABLE"
echo

ratio=$(awk -v a="${RSS[$COUNT]}" -v b="${RSS[$SMALL]}" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 99) }')
if awk -v r="${RATE[$COUNT]}" -v m="$MIN_RATE" 'BEGIN { exit !(r >= m) }'; then
  verdict "PASS  throughput at $COUNT: ${RATE[$COUNT]} msg/s >= $MIN_RATE"
else
  verdict "FAIL  throughput at $COUNT: ${RATE[$COUNT]} msg/s < $MIN_RATE (smtplib, one connection: $SMTPLIB_RATE msg/s)"
fi
if awk -v r="${RSS[$COUNT]}" -v m="$MAX_RSS_MB" 'BEGIN { exit !(r <= m) }'; then
  verdict "PASS  peak RSS at $COUNT: ${RSS[$COUNT]} MB <= $MAX_RSS_MB MB"
else
  verdict "FAIL  peak RSS at $COUNT: ${RSS[$COUNT]} MB > $MAX_RSS_MB MB"
fi
if awk -v r="$ratio" -v m="$MAX_GROWTH" 'BEGIN { exit !(r <= m) }'; then
  verdict "PASS  flat memory: ${RSS[$COUNT]} MB at $COUNT vs ${RSS[$SMALL]} MB at $SMALL (x$ratio <= x$MAX_GROWTH)"
else
  verdict "FAIL  flat memory: ${RSS[$COUNT]} MB at $COUNT vs ${RSS[$SMALL]} MB at $SMALL (x$ratio > x$MAX_GROWTH)"
fi
if (( TOPICS > 0 )); then
  copies=$(sql "$WORK/send-$COUNT-random/newsletter.db" 'SELECT count(DISTINCT choice) FROM deliveries WHERE digest_id = 1' 2>/dev/null || echo '?')
  echo "topics: $copies different copies of the digest among $COUNT subscribers"
  if awk -v r="${RATE[random]}" -v m="$MIN_RATE" 'BEGIN { exit !(r >= m) }'; then
    verdict "PASS  throughput with $TOPICS topics, a random subset each: ${RATE[random]} msg/s >= $MIN_RATE"
  else
    verdict "FAIL  throughput with $TOPICS topics, a random subset each: ${RATE[random]} msg/s < $MIN_RATE"
  fi
  if awk -v r="${RSS[random]}" -v m="$MAX_RSS_MB" 'BEGIN { exit !(r <= m) }'; then
    verdict "PASS  peak RSS with topics: ${RSS[random]} MB <= $MAX_RSS_MB MB"
  else
    verdict "FAIL  peak RSS with topics: ${RSS[random]} MB > $MAX_RSS_MB MB"
  fi
  share=$(awk -v a="${RATE[random]}" -v b="${RATE[one]}" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
  if awk -v r="$share" -v m="$MIN_TOPICS_SHARE" 'BEGIN { exit !(r >= m) }'; then
    verdict "PASS  random subsets vs one subset: ${RATE[random]} vs ${RATE[one]} msg/s (x$share >= x$MIN_TOPICS_SHARE)"
  else
    verdict "FAIL  random subsets vs one subset: ${RATE[random]} vs ${RATE[one]} msg/s (x$share < x$MIN_TOPICS_SHARE)"
  fi
fi
printf '%s\n' "${VERDICTS[@]}"
exit "$STATUS"
