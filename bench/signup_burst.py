#!/usr/bin/env python3
"""Sign-up burst for bench/serve.sh: POST /subscribe COUNT times, CONCURRENCY
at a time, and count the answers by status.

Usage: bench/signup_burst.py URL --count N [--addresses A] [--concurrency C]
                             [--forwarded] [--timeout 10]

Request i (0-based) signs up reader{i % A}@example.net as "Reader {i % A}"
(A defaults to N: every request a new address). With --forwarded each request
carries its own X-Forwarded-For address (10.x.y.z), as a reverse proxy would
add for N different clients.

Prints one line:
  burst: 200=N 429=M other=O errors=E wall=S
where `other` counts any other HTTP status and `errors` requests that got no
HTTP answer (refused, reset, timed out); the first few of either are printed
to stderr. Exits 0 whatever the counts: the caller judges them.
"""

import argparse
import collections
import concurrent.futures
import sys
import time
import urllib.error
import urllib.request


def post(url: str, i: int, addresses: int, forwarded: bool, timeout: float):
    n = i % addresses
    body = f"email=reader{n}@example.net&name=Reader+{n}".encode()
    request = urllib.request.Request(url, data=body, method="POST")
    request.add_header("Content-Type", "application/x-www-form-urlencoded")
    if forwarded:
        request.add_header("X-Forwarded-For", f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as e:  # 4xx and 5xx answers
        e.read()
        return e.code
    except OSError as e:
        return f"{type(e).__name__}: {e}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url")
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--addresses", type=int, help="distinct addresses (default: count)")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--forwarded", action="store_true", help="one X-Forwarded-For per request")
    ap.add_argument("--timeout", type=float, default=10, help="per request, s")
    args = ap.parse_args()
    addresses = args.addresses or args.count

    counts = collections.Counter()
    problems = []
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        futures = [
            pool.submit(post, args.url, i, addresses, args.forwarded, args.timeout)
            for i in range(args.count)
        ]
        for future in concurrent.futures.as_completed(futures):
            outcome = future.result()
            if outcome in (200, 429):
                counts[outcome] += 1
            elif isinstance(outcome, int):
                counts["other"] += 1
                problems.append(f"HTTP {outcome}")
            else:
                counts["errors"] += 1
                problems.append(outcome)
    wall = time.monotonic() - start
    for problem in problems[:5]:
        print(f"burst: {problem}", file=sys.stderr)
    print(
        f"burst: 200={counts[200]} 429={counts[429]} other={counts['other']} "
        f"errors={counts['errors']} wall={wall:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
