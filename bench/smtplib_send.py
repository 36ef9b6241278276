#!/usr/bin/env python3
"""Baseline for bench/send.sh: send one digest message COUNT times with
Python's smtplib over ONE connection, one message per sendmail() call,
one at a time (no concurrency), the way a simple Python mailer such as
rss2email sends.

Usage: bench/smtplib_send.py EML --count N [--host 127.0.0.1] [--port 2526]
                             [--timeout 30] [--deadline 600]

EML is a message our tool made (`newsletter preview` writes digest.eml). The
envelope sender is the address in its From header; message i goes to
readerNNNNNN@example.net (i = 1..N), like the benchmark's subscribers. The
bytes sent are EML's, unchanged, for every recipient.

Prints one line:  smtplib: SENT messages in SECONDS s = RATE msg/s
and exits 1 if the server refused a message or the deadline passed first.
"""

import argparse
import email.parser
import email.policy
import email.utils
import smtplib
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("eml")
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=2526)
    ap.add_argument("--timeout", type=float, default=30, help="socket timeout, s")
    ap.add_argument("--deadline", type=float, default=600, help="stop after this many s")
    args = ap.parse_args()

    with open(args.eml, "rb") as f:
        data = f.read()
    headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(data)
    sender = email.utils.parseaddr(headers.get("From", ""))[1] or "newsletter@localhost"

    sent = 0
    start = time.perf_counter()
    with smtplib.SMTP(args.host, args.port, timeout=args.timeout) as smtp:
        smtp.ehlo()
        for i in range(1, args.count + 1):
            refused = smtp.sendmail(sender, [f"reader{i:06d}@example.net"], data)
            if refused:
                print(f"smtplib: refused {refused}", file=sys.stderr)
                return 1
            sent += 1
            if time.perf_counter() - start > args.deadline:
                break
    elapsed = time.perf_counter() - start
    print(f"smtplib: {sent} messages in {elapsed:.2f} s = {sent / elapsed:.0f} msg/s")
    if sent < args.count:
        print(f"smtplib: deadline of {args.deadline:.0f} s passed after {sent} messages",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
