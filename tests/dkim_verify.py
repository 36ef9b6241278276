#!/usr/bin/env python3
"""DKIM keys and verification for newsletter's integration tests, with dkimpy.

Usage:
    python tests/dkim_verify.py genkey --type rsa|ed25519 --private KEY.pem --record KEY.txt
    python tests/dkim_verify.py verify --record KEY.txt --selector S --domain D MSG.eml...

genkey writes a new private key (RSA-2048 or Ed25519, unencrypted PKCS#8
PEM, as `openssl genpkey` writes it) to KEY.pem, and the DNS TXT record a
receiver would look up for it (`v=DKIM1; k=rsa; p=...`, RFC 6376 and, for
Ed25519, RFC 8463) to KEY.txt.

verify checks the DKIM-Signature of each message with dkimpy, as a
receiving server would, except that no DNS is asked: dkimpy's `dnsfunc` hook
answers the record in KEY.txt for S._domainkey.D and nothing for any other
name. It prints a JSON list, one object per message, in argument order:

  file         the path given
  verified     dkimpy's verdict (bool)
  error        why not, as dkimpy logged or raised it (null when verified)
  signatures   how many DKIM-Signature headers the message has
  tags         the tags of the first DKIM-Signature, {tag: value} (white
               space removed from b=, bh= and h=)
  signed_headers  h= as a list of lower-case header names, in order
  lookups      every DNS name dkimpy asked for

Exit status 0 whatever the verdicts (the caller judges them); 2 on a usage
error.
"""

from __future__ import annotations

import argparse
import base64
import email
import email.policy
import json
import logging
import sys
from pathlib import Path

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa


def genkey(args: argparse.Namespace) -> int:
    if args.type == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        record = f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}"
    else:
        key = ed25519.Ed25519PrivateKey.generate()
        public = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        record = f"v=DKIM1; k=ed25519; p={base64.b64encode(public).decode()}"
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    args.private.write_bytes(pem)
    args.record.write_text(record + "\n", encoding="ascii")
    return 0


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def signature_tags(message: bytes) -> tuple[int, dict]:
    msg = email.message_from_bytes(message, policy=email.policy.compat32)
    values = msg.get_all("DKIM-Signature") or []
    if not values:
        return 0, {}
    tags = {}
    for part in str(values[0]).split(";"):
        if "=" not in part:
            continue
        name, _, value = part.partition("=")
        name = name.strip()
        value = value.strip()
        if name in ("b", "bh", "h"):
            value = "".join(value.split())
        tags[name] = value
    return len(values), tags


def verify_one(path: Path, record: bytes, name: bytes) -> dict:
    message = path.read_bytes()
    lookups: list[str] = []

    def dnsfunc(qname, timeout=5):
        lookups.append(qname.decode("ascii", "replace"))
        return record if qname.rstrip(b".").lower() == name else None

    log = logging.getLogger(f"dkim_verify.{path}")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    collect = Collect()
    log.addHandler(collect)
    error = None
    try:
        verified = bool(dkim.verify(message, logger=log, dnsfunc=dnsfunc))
    except Exception as e:  # dkimpy raises on malformed signatures and keys
        verified = False
        error = f"{type(e).__name__}: {e}"
    if not verified and error is None:
        reasons = [line for line in collect.lines
                   if not line.startswith(("sig:", "headers:", "body hash"))]
        error = "; ".join(reasons) or "dkimpy rejected the signature"
    count, tags = signature_tags(message)
    return {
        "file": str(path),
        "verified": verified,
        "error": None if verified else error,
        "signatures": count,
        "tags": tags,
        "signed_headers": [h.strip().lower() for h in tags.get("h", "").split(":") if h.strip()],
        "lookups": lookups,
    }


def verify(args: argparse.Namespace) -> int:
    record = args.record.read_text(encoding="ascii").strip().encode("ascii")
    name = f"{args.selector}._domainkey.{args.domain}".lower().encode("ascii")
    result = [verify_one(path, record, name) for path in args.messages]
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="DKIM keys and verification (see the docstring).")
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("genkey", help="write a private key and its DNS TXT record")
    g.add_argument("--type", choices=["rsa", "ed25519"], required=True)
    g.add_argument("--private", type=Path, required=True)
    g.add_argument("--record", type=Path, required=True)
    g.set_defaults(func=genkey)
    v = sub.add_parser("verify", help="verify messages' DKIM signatures")
    v.add_argument("--record", type=Path, required=True)
    v.add_argument("--selector", required=True)
    v.add_argument("--domain", required=True)
    v.add_argument("messages", type=Path, nargs="+")
    v.set_defaults(func=verify)
    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
