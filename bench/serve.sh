#!/usr/bin/env bash
# Serve benchmark: `newsletter serve` on loopback, in three parts.
#  1. Conditional feed GETs: the project's example site is built, served, and
#     wrk (1 thread, CONNECTIONS connections, WRK_DURATION s) asks for
#     /atom.xml with the ETag it was given, so every answer is a 304; the
#     same against nginx serving the same public/ folder (one worker, etag
#     on), for reference. newsletter runs twice: with its default logging
#     (one INFO line per request to stderr, kept in a file in the work
#     folder) and with NEWSLETTER_LOG=warn, to show what request logs cost.
#     Beside req/s and latency: each server's CPU time per request (from
#     /proc/PID/stat) and the load average, since other work on the machine
#     moves req/s and p99 a lot on few CPUs, and CPU per request much less.
#  2. Flat memory: the same requests for DURATION s against a fresh server
#     (default logging), its RSS (/proc/PID/status VmRSS) sampled every second.
#  3. Sign-up bursts (no [smtp]: confirmations go to the outbox folder):
#     SIGNUPS concurrent POST /subscribe from one client with
#     server.signups_per_client = SIGNUPS_PER_CLIENT; then SIGNUPS from as many
#     clients (behind_proxy = true, one X-Forwarded-For each) for ADDRESSES
#     addresses, with server.signups_per_email = SIGNUPS_PER_EMAIL.
#
# Targets (exit 1 if one is missed, or if a correctness check fails):
#   304 rate        newsletter (default logging) >= 60% of nginx's req/s,
#                   measured in the same run
#   p99 latency     newsletter (default logging) < 5 ms
#   flat memory     RSS at the end of part 2 <= 1.2 x RSS at 5 s + 2 MB
#                   (MB = 10^6 bytes)
# Checks: every wrk response is a 304 (bench/status.lua counts them: wrk
# itself counts only statuses >= 400), with no socket errors; burst 1 answers exactly
# min(SIGNUPS, SIGNUPS_PER_CLIENT) x 200 and the rest 429, burst 2 exactly
# SIGNUPS_PER_EMAIL x 200 per address and the rest 429, never another status
# or a connection error; pending subscribers (`subscribers list --status
# pending`) = addresses accepted; .eml files in the outbox (within 10 s) = 200
# answers.
#
# Run from anywhere:  bench/serve.sh       (about 2 minutes with the defaults)
#   CONNECTIONS=N        wrk connections (default 32; wrk uses one thread)
#   WRK_DURATION=S       each measured wrk run of part 1 (default 10)
#   DURATION=S           the memory run of part 2 (default 60; at least 6)
#   SIGNUPS=N            POSTs per burst (default 1000)
#   SIGNUPS_PER_CLIENT=N server.signups_per_client in burst 1 (default 100)
#   SIGNUPS_PER_EMAIL=N  server.signups_per_email in burst 2 (default 3)
#   ADDRESSES=N          distinct addresses in burst 2 (default 100)
#   BURST_CONCURRENCY=N  requests in flight during a burst (default 32)
#   PORT=P               newsletter's port on 127.0.0.1 (default 8181)
#   NGINX_PORT=P         nginx's port on 127.0.0.1 (default 8182)
#   NEWSLETTER_BIN=P     use this binary instead of `cargo build --release`
#   KEEP=1               keep the work folder (sites, server logs, wrk output)
# Installs what is missing with apt-get: wrk, nginx-light, curl. This is a
# benchmark, not a test: nothing in the test suite or CI runs it. Only
# loopback traffic; the servers are stopped at exit. The request logs take
# about 170 bytes a request: some 0.6 GB of disk in the work folder with the
# defaults, removed at exit unless KEEP=1. nginx runs its worker as
# root (`user root;`) so it can read the work folder, which only root may.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
CONNECTIONS=${CONNECTIONS:-32}
WRK_DURATION=${WRK_DURATION:-10}
DURATION=${DURATION:-60}
SIGNUPS=${SIGNUPS:-1000}
SIGNUPS_PER_CLIENT=${SIGNUPS_PER_CLIENT:-100}
SIGNUPS_PER_EMAIL=${SIGNUPS_PER_EMAIL:-3}
ADDRESSES=${ADDRESSES:-100}
BURST_CONCURRENCY=${BURST_CONCURRENCY:-32}
PORT=${PORT:-8181}
NGINX_PORT=${NGINX_PORT:-8182}
NOW=2026-11-25T00:00:00Z
WARMUP=2
MIN_SHARE=0.60 MAX_P99_MS=5 MAX_GROWTH=1.2 SLACK_MB=2
# No server lives longer than this; every step is bounded by `timeout`.
SERVE_LIMIT=$(( 4 * WRK_DURATION + DURATION + 300 ))

(( DURATION >= 6 )) || { echo "DURATION must be at least 6 (RSS is compared with its value at 5 s)" >&2; exit 2; }
(( ADDRESSES >= 1 && ADDRESSES <= SIGNUPS )) || { echo "ADDRESSES must be between 1 and SIGNUPS" >&2; exit 2; }

# --- tools -------------------------------------------------------------------
APT_UPDATED=
apt_install() {
  [[ -n $APT_UPDATED ]] || { apt-get update -qq >/dev/null; APT_UPDATED=1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
command -v wrk >/dev/null || apt_install wrk
[[ -x /usr/sbin/nginx ]] || apt_install nginx-light
command -v curl >/dev/null || apt_install curl

if [[ -n ${NEWSLETTER_BIN:-} ]]; then
  BIN=$(realpath "$NEWSLETTER_BIN")
else
  cargo build --release
  BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/newsletter
fi
[[ -x $BIN ]] || { echo "no binary at $BIN" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$PORT" "$NGINX_PORT"; do
  if port_open "$p"; then
    echo "127.0.0.1:$p is already in use; stop what listens there or set PORT / NGINX_PORT" >&2; exit 1
  fi
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/newsletter-serve-bench.XXXXXX")
# Servers run under `timeout`; these are the `timeout` processes.
SERVE_WRAPPER= NGINX_WRAPPER=
# stop PID: SIGTERM (timeout passes it on to the server), at most 10 s of
# waiting, then SIGKILL to it and its child
stop() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "process $pid did not stop within 10 s of SIGTERM; killing it" >&2
    pkill -KILL -P "$pid" 2>/dev/null || true
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  [[ -z $SERVE_WRAPPER ]] || stop "$SERVE_WRAPPER"
  [[ -z $NGINX_WRAPPER ]] || stop "$NGINX_WRAPPER"
  if [[ ${KEEP:-} == 1 ]]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# --- results and verdicts ----------------------------------------------------------
STATUS=0
VERDICTS=()
verdict() { VERDICTS+=("$1"); [[ $1 == FAIL* ]] && STATUS=1; return 0; }
check() {   # check WHAT GOT WANT
  if [[ $2 == "$3" ]]; then verdict "PASS  $1: $2"; else verdict "FAIL  $1: $2, want $3"; fi
}
mb() { awk -v kb="$1" 'BEGIN { printf "%.1f", kb * 1024 / 1e6 }'; }
field() { grep -oE "(^| )$1=[^ ]*" <<<"$2" | cut -d= -f2 || true; }   # field NAME LINE

# make_site NAME [SERVER_TOML]: the project's site in $WORK/NAME, built, with
# SERVER_TOML as its [server] table (and no [smtp]: mail goes to the outbox)
make_site() {
  local dir=$WORK/$1
  mkdir -p "$dir"
  awk '/^[[:space:]]*\[/ { skip = ($0 ~ /^[[:space:]]*\[(smtp|server)\]/) } !skip' "$ROOT/config.toml" >"$dir/config.toml"
  if [[ -n ${2:-} ]]; then printf '\n[server]\n%s\n' "$2" >>"$dir/config.toml"; fi
  cp -r "$ROOT/content" "$ROOT/templates" "$dir/"
  if ! timeout 120 "$BIN" --config "$dir/config.toml" build --now "$NOW" >"$dir/build.log" 2>&1; then
    echo "FAILED: newsletter build in $dir" >&2; cat "$dir/build.log" >&2; exit 1
  fi
}

# start_serve SITE LOG [VAR=VALUE...]: serve SITE on $PORT with stderr to LOG;
# sets SERVE_PID (the server itself, for /proc) once /healthz answers
start_serve() {
  local dir=$WORK/$1 log=$2; shift 2
  env "$@" timeout -k 5 "$SERVE_LIMIT" "$BIN" --config "$dir/config.toml" \
    serve --listen "127.0.0.1:$PORT" --now "$NOW" >"$dir/serve.out" 2>"$log" &
  SERVE_WRAPPER=$!
  for _ in $(seq 100); do curl -fsS -o /dev/null "http://127.0.0.1:$PORT/healthz" 2>/dev/null && break; sleep 0.1; done
  if ! curl -fsS -o /dev/null "http://127.0.0.1:$PORT/healthz"; then
    echo "newsletter serve did not answer /healthz within 10 s:" >&2; tail -n 20 "$log" >&2; exit 1
  fi
  SERVE_PID=$(pgrep -P "$SERVE_WRAPPER" | head -n1)
}
stop_serve() { stop "$SERVE_WRAPPER"; SERVE_WRAPPER=; }

# etag URL: the ETag of an unconditional GET
etag() { curl -sS -o /dev/null -D - "$1" | tr -d '\r' | awk 'tolower($1) == "etag:" { print $2 }'; }

# run_wrk NAME URL SECONDS WANT [wrk options]: the result line of status.lua;
# wrk's own report goes to $WORK/wrk-NAME.out
run_wrk() {
  local name=$1 url=$2 seconds=$3 want=$4; shift 4
  timeout -k 5 $(( seconds + 30 )) wrk -t1 -c"$CONNECTIONS" -d"${seconds}s" --latency "$@" \
    -s "$ROOT/bench/status.lua" "$url" -- "$want" >"$WORK/wrk-$name.out" 2>&1 || true
  grep '^result ' "$WORK/wrk-$name.out" | tail -n1 || echo "result (wrk failed: see $WORK/wrk-$name.out)"
}

# cpu_ticks PID: user + system time of a process (all its threads), in clock ticks
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)

declare -A RATE P99 P50 REQS LOGBYTES CPU_US LOAD
# measure_304 NAME URL ETAG PID [LOG]: warm up, then WRK_DURATION s of
# conditional GETs; records the figures, the CPU time PID used per request
# (less sensitive than req/s to other work on the machine) and the load
# average, and checks every answer is a 304
measure_304() {
  local name=$1 url=$2 tag=$3 pid=$4 log=${5:-} line before=0 after=0 status ticks
  status=$(curl -sS -o /dev/null -w '%{http_code}' -H "If-None-Match: $tag" "$url")
  check "$name: status of a GET with If-None-Match: $tag" "$status" 304
  run_wrk "$name-warmup" "$url" "$WARMUP" 304 -H "If-None-Match: $tag" >/dev/null
  [[ -z $log ]] || before=$(stat -c %s "$log")
  ticks=$(cpu_ticks "$pid")
  line=$(run_wrk "$name" "$url" "$WRK_DURATION" 304 -H "If-None-Match: $tag")
  ticks=$(( $(cpu_ticks "$pid") - ticks ))
  [[ -z $log ]] || after=$(stat -c %s "$log")
  LOAD[$name]=$(cut -d' ' -f1 /proc/loadavg)
  echo "$line"
  RATE[$name]=$(field rate "$line") P99[$name]=$(field p99_ms "$line") P50[$name]=$(field p50_ms "$line")
  REQS[$name]=$(field requests "$line") LOGBYTES[$name]=$(( after - before ))
  CPU_US[$name]=$(awk -v t="$ticks" -v hz="$TICK" -v n="${REQS[$name]:-0}" 'BEGIN { printf "%.1f", (n > 0 ? t * 1e6 / hz / n : 0) }')
  echo "server CPU: ${CPU_US[$name]} us/request; load average (1 min) ${LOAD[$name]} on $(nproc) CPUs"
  check "$name: 304 answers of ${REQS[$name]:-?} (other statuses $(field other "$line"), socket errors $(field errors "$line"))" \
    "$(field matched "$line")/$(field other "$line")/$(field errors "$line")" "${REQS[$name]:-?}/0/0"
}

echo "newsletter: $BIN"
echo "work folder: $WORK"
echo "$(nproc) CPUs; wrk: 1 thread, $CONNECTIONS connections"

# --- 1. conditional GETs: newsletter and nginx ----------------------------------------
make_site feeds
PUBLIC=$WORK/feeds/public
echo "== newsletter serve, default logging (stderr to $WORK/feeds/serve-info.log)"
start_serve feeds "$WORK/feeds/serve-info.log"
URL=http://127.0.0.1:$PORT/atom.xml
TAG=$(etag "$URL")
echo "ETag of /atom.xml: $TAG"
measure_304 newsletter-info "$URL" "$TAG" "$SERVE_PID" "$WORK/feeds/serve-info.log"
stop_serve

echo "== nginx $(/usr/sbin/nginx -v 2>&1 | sed 's/.*nginx\///'), 1 worker, the same public/"
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<EOF
user root;
worker_processes 1;
daemon off;
error_log $WORK/nginx/error.log;
pid $WORK/nginx/nginx.pid;
events { }
http {
  access_log off;
  etag on;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    root $PUBLIC;
    types { application/atom+xml xml; }
  }
}
EOF
# -e: the error log before the config is read (not /var/log/nginx)
timeout -k 5 "$SERVE_LIMIT" /usr/sbin/nginx -e "$WORK/nginx/error.log" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" \
  >"$WORK/nginx/nginx.out" 2>&1 &
NGINX_WRAPPER=$!
for _ in $(seq 100); do port_open "$NGINX_PORT" && break; sleep 0.1; done
port_open "$NGINX_PORT" || { echo "nginx did not start:" >&2; cat "$WORK/nginx/nginx.out" "$WORK/nginx/error.log" >&2; exit 1; }
NGINX_URL=http://127.0.0.1:$NGINX_PORT/atom.xml
NGINX_TAG=$(etag "$NGINX_URL")
echo "ETag of /atom.xml: $NGINX_TAG"
NGINX_WORKER=$(pgrep -P "$(pgrep -P "$NGINX_WRAPPER" | head -n1)" | head -n1)
measure_304 nginx "$NGINX_URL" "$NGINX_TAG" "$NGINX_WORKER"
stop "$NGINX_WRAPPER"; NGINX_WRAPPER=

echo "== newsletter serve, NEWSLETTER_LOG=warn (no request logs)"
start_serve feeds "$WORK/feeds/serve-warn.log" NEWSLETTER_LOG=warn
measure_304 newsletter-warn "$URL" "$TAG" "$SERVE_PID" "$WORK/feeds/serve-warn.log"
stop_serve

# --- 2. memory over a long run ------------------------------------------------------------
echo "== memory: $DURATION s of conditional GETs, default logging, VmRSS every second"
start_serve feeds "$WORK/feeds/serve-memory.log"
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$SERVE_PID/status" 2>/dev/null || echo 0; }
RSS_IDLE=$(rss_kb)
timeout -k 5 $(( DURATION + 30 )) wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -H "If-None-Match: $TAG" \
  -s "$ROOT/bench/status.lua" "$URL" -- 304 >"$WORK/wrk-memory.out" 2>&1 &
WRK_PID=$!
RSS_SAMPLES=()
START=$(date +%s.%N)
for s in $(seq "$DURATION"); do
  # sample at START + s, not after s sleeps of 1 s plus the time of each read
  sleep "$(awk -v t0="$START" -v s="$s" -v now="$(date +%s.%N)" 'BEGIN { d = t0 + s - now; print (d > 0 ? d : 0) }')"
  RSS_SAMPLES+=("$(rss_kb)")
done
wait "$WRK_PID" || true
MEM_LINE=$(grep '^result ' "$WORK/wrk-memory.out" | tail -n1 || echo "result (wrk failed)")
echo "$MEM_LINE"
check "memory run: 304 answers of $(field requests "$MEM_LINE") (other statuses, socket errors)" \
  "$(field matched "$MEM_LINE")/$(field other "$MEM_LINE")/$(field errors "$MEM_LINE")" "$(field requests "$MEM_LINE")/0/0"
RSS_5=${RSS_SAMPLES[4]}
RSS_END=${RSS_SAMPLES[-1]}
RSS_MAX=$(printf '%s\n' "${RSS_SAMPLES[@]}" | sort -n | tail -n1)
series=""
for (( s = 10; s <= DURATION; s += 10 )); do series+=" ${s}s=$(mb "${RSS_SAMPLES[s - 1]}")"; done
echo "RSS (MB): idle $(mb "$RSS_IDLE"), 5s=$(mb "$RSS_5")$series, end $(mb "$RSS_END"), max $(mb "$RSS_MAX")"
stop_serve
MEM_LOG_MB=$(awk -v b="$(stat -c %s "$WORK/feeds/serve-memory.log")" 'BEGIN { printf "%.0f", b / 1e6 }')
echo "request log of the memory run: $MEM_LOG_MB MB"

# --- 3. sign-up bursts --------------------------------------------------------------------
declare -A BURST_WALL BURST_LINE
# burst NAME WANT_200 WANT_PENDING [signup_burst.py options]: one burst on a
# fresh site whose [server] table was given to make_site
burst() {
  local name=$1 want_ok=$2 want_pending=$3 dir=$WORK/$1 line pending eml; shift 3
  start_serve "$name" "$dir/serve.log"
  line=$(timeout 300 python3 "$ROOT/bench/signup_burst.py" "http://127.0.0.1:$PORT/subscribe" \
    --count "$SIGNUPS" --concurrency "$BURST_CONCURRENCY" "$@") || line="burst: (did not finish)"
  echo "$line"
  BURST_LINE[$name]=$line BURST_WALL[$name]=$(field wall "$line")
  check "$name: answers 200/429/other/no answer" \
    "$(field 200 "$line")/$(field 429 "$line")/$(field other "$line")/$(field errors "$line")" \
    "$want_ok/$(( SIGNUPS - want_ok ))/0/0"
  pending=$(timeout 60 "$BIN" --config "$dir/config.toml" subscribers list --status pending | wc -l) || true
  check "$name: pending subscribers" "$pending" "$want_pending"
  for _ in $(seq 100); do
    eml=$(find "$dir/outbox" -name '*.eml' 2>/dev/null | wc -l) || true
    (( eml >= want_ok )) && break
    sleep 0.1
  done
  check "$name: confirmation .eml files in the outbox" "$eml" "$want_ok"
  stop_serve
}

echo "== sign-up burst 1: $SIGNUPS POSTs from one client, signups_per_client = $SIGNUPS_PER_CLIENT"
make_site burst-client "signups_per_client = $SIGNUPS_PER_CLIENT"
WANT1=$(( SIGNUPS < SIGNUPS_PER_CLIENT ? SIGNUPS : SIGNUPS_PER_CLIENT ))
burst burst-client "$WANT1" "$WANT1"

echo "== sign-up burst 2: $SIGNUPS POSTs, one X-Forwarded-For each, $ADDRESSES addresses, signups_per_email = $SIGNUPS_PER_EMAIL"
make_site burst-email "behind_proxy = true
signups_per_client = $SIGNUPS_PER_CLIENT
signups_per_email = $SIGNUPS_PER_EMAIL"
# request i goes to address i % ADDRESSES: each gets SIGNUPS/ADDRESSES, the
# first SIGNUPS%ADDRESSES one more; each is accepted at most SIGNUPS_PER_EMAIL times
WANT2=$(awk -v n="$SIGNUPS" -v a="$ADDRESSES" -v m="$SIGNUPS_PER_EMAIL" \
  'BEGIN { for (i = 0; i < a; i++) { k = int(n / a) + (i < n % a); t += (k < m ? k : m) } print t }')
burst burst-email "$WANT2" "$ADDRESSES" --addresses "$ADDRESSES" --forwarded

# --- 4. the table ------------------------------------------------------------------------
echo
printf '%-28s %9s %9s %9s %9s %10s %8s %6s\n' "run ($WRK_DURATION s, $CONNECTIONS conn.)" "req/s" "p50 (ms)" "p99 (ms)" requests "CPU us/req" "log B/req" load
for name in newsletter-info newsletter-warn nginx; do
  per=-
  [[ $name == nginx ]] || per=$(awk -v b="${LOGBYTES[$name]}" -v n="${REQS[$name]:-0}" 'BEGIN { printf "%.0f", (n > 0 ? b / n : 0) }')
  printf '%-28s %9s %9s %9s %9s %10s %8s %6s\n' "$name" "${RATE[$name]:-?}" "${P50[$name]:-?}" "${P99[$name]:-?}" "${REQS[$name]:-?}" "${CPU_US[$name]:-?}" "$per" "${LOAD[$name]:-?}"
done
echo "request log (default logging): $(awk -v b="${LOGBYTES[newsletter-info]}" 'BEGIN { printf "%.1f", b / 1e6 }') MB written in $WRK_DURATION s; with NEWSLETTER_LOG=warn: ${LOGBYTES[newsletter-warn]} bytes"
echo "memory ($DURATION s, $(field rate "$MEM_LINE") req/s, p99 $(field p99_ms "$MEM_LINE") ms, $MEM_LOG_MB MB of request log): RSS idle $(mb "$RSS_IDLE") MB, at 5 s $(mb "$RSS_5") MB, at the end $(mb "$RSS_END") MB, max $(mb "$RSS_MAX") MB"
echo "burst 1 (one client):   ${BURST_LINE[burst-client]}"
echo "burst 2 (behind proxy): ${BURST_LINE[burst-email]}"
echo

share() { awk -v a="${RATE[$1]:-0}" -v b="${RATE[nginx]:-0}" 'BEGIN { printf "%.0f", (b > 0 ? 100 * a / b : 0) }'; }
SHARE_INFO=$(share newsletter-info) SHARE_WARN=$(share newsletter-warn)
if awk -v s="$SHARE_INFO" -v m="$MIN_SHARE" 'BEGIN { exit !(s >= 100 * m) }'; then
  verdict "PASS  304 rate: newsletter ${RATE[newsletter-info]} req/s = $SHARE_INFO% of nginx's ${RATE[nginx]} >= $(awk -v m="$MIN_SHARE" 'BEGIN { print 100 * m }')%"
else
  verdict "FAIL  304 rate: newsletter ${RATE[newsletter-info]} req/s = $SHARE_INFO% of nginx's ${RATE[nginx]} < $(awk -v m="$MIN_SHARE" 'BEGIN { print 100 * m }')% (with NEWSLETTER_LOG=warn: ${RATE[newsletter-warn]} req/s = $SHARE_WARN%)"
fi
if awk -v p="${P99[newsletter-info]:-999}" -v m="$MAX_P99_MS" 'BEGIN { exit !(p < m) }'; then
  verdict "PASS  p99 latency: newsletter ${P99[newsletter-info]} ms < $MAX_P99_MS ms (nginx ${P99[nginx]} ms)"
else
  verdict "FAIL  p99 latency: newsletter ${P99[newsletter-info]} ms >= $MAX_P99_MS ms (nginx ${P99[nginx]} ms; with NEWSLETTER_LOG=warn ${P99[newsletter-warn]} ms)"
fi
verdict "INFO  with NEWSLETTER_LOG=warn (not a target): ${RATE[newsletter-warn]} req/s = $SHARE_WARN% of nginx, p99 ${P99[newsletter-warn]} ms"
LIMIT_KB=$(awk -v r="$RSS_5" -v g="$MAX_GROWTH" -v s="$SLACK_MB" 'BEGIN { printf "%.0f", r * g + s * 1e6 / 1024 }')
if (( RSS_END <= LIMIT_KB )); then
  verdict "PASS  flat memory: RSS $(mb "$RSS_END") MB at $DURATION s <= $(mb "$LIMIT_KB") MB ($MAX_GROWTH x $(mb "$RSS_5") MB at 5 s + $SLACK_MB MB)"
else
  verdict "FAIL  flat memory: RSS $(mb "$RSS_END") MB at $DURATION s > $(mb "$LIMIT_KB") MB ($MAX_GROWTH x $(mb "$RSS_5") MB at 5 s + $SLACK_MB MB)"
fi
printf '%s\n' "${VERDICTS[@]}"
exit "$STATUS"
