#!/usr/bin/env python3
"""A stand-in WebSub hub on loopback for the newsletter's integration tests.

Usage:
    python tests/hub_server.py LOG [--status N]

It is a stdlib ThreadingHTTPServer bound to 127.0.0.1 on a free port. Once it
listens it prints exactly one line ``READY <port>`` to stdout, flushes, and
serves until SIGTERM or SIGINT. Nothing else goes to stdout; one line per
request goes to stderr.

Each POST is appended to LOG as one JSON line, before the answer is sent:
    {"path": "/", "content_type": "...", "user_agent": "...", "body": "..."}
(body decoded as UTF-8, undecodable bytes replaced). The answer is 204 No
Content, or status N with a short text body when --status N is given.
Any other method gets 405 and is not logged.
"""

import argparse
import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def make_handler(log_path, status, lock):
    class Hub(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes; with Nagle on, the body
        # waits for the client's delayed ACK (~40 ms a request).
        disable_nagle_algorithm = True

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            record = {
                "path": self.path,
                "content_type": self.headers.get("Content-Type"),
                "user_agent": self.headers.get("User-Agent"),
                "body": body.decode("utf-8", "replace"),
            }
            with lock, open(log_path, "a", encoding="utf-8") as log:
                log.write(json.dumps(record) + "\n")
            self.answer(status)

        def do_GET(self):
            self.answer(405)

        def answer(self, code):
            payload = b"" if code == 204 else f"hub says {code}\n".encode()
            self.send_response(code)
            self.send_header("Content-Length", str(len(payload)))
            if payload:
                self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format, *args):
            sys.stderr.write("hub_server " + (format % args) + "\n")

    return Hub


def main(argv=None):
    p = argparse.ArgumentParser(description="Loopback WebSub hub that records publish requests.")
    p.add_argument("log", help="file that gets one JSON line per POST")
    p.add_argument("--status", type=int, default=204, help="status to answer POSTs with")
    args = p.parse_args(argv)

    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(args.log, args.status, threading.Lock()))
    server.daemon_threads = True

    def stop(signum, _frame):
        # shutdown() waits for serve_forever, which runs in this thread: use another.
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sys.stdout.write(f"READY {server.server_address[1]}\n")
    sys.stdout.flush()
    server.serve_forever()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
