#!/usr/bin/env python3
"""flufl.bounce (GNU Mailman's bounce detector) over a Maildir, for
bench/bounces.sh: prints "MESSAGES SECONDS WITH_RECIPIENT" on one line.

Usage: flufl_bounces.py MAILDIR
"""
import email
import email.policy
import sys
import time
from pathlib import Path

from flufl.bounce import scan_message


def main() -> int:
    files = sorted((Path(sys.argv[1]) / "new").iterdir())
    start = time.perf_counter()
    found = 0
    for path in files:
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.compat32)
        try:
            if scan_message(msg):
                found += 1
        except Exception:
            pass
    print(len(files), f"{time.perf_counter() - start:.3f}", found)
    return 0


if __name__ == "__main__":
    sys.exit(main())
