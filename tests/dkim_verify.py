#!/usr/bin/env python3
"""DKIM keys and verification for newsletter's integration tests, with dkimpy.

Usage:
    python tests/dkim_verify.py genkey --type rsa|ed25519 --private KEY.pem --record KEY.txt
    python tests/dkim_verify.py verify --domain D --key S=KEY.txt [--key S2=KEY2.txt] MSG.eml...

genkey writes a new private key (RSA-2048 or Ed25519, unencrypted PKCS#8
PEM, as `openssl genpkey` writes it) to KEY.pem, and the DNS TXT record a
receiver would look up for it (`v=DKIM1; k=rsa; p=...`, RFC 6376 and, for
Ed25519, RFC 8463) to KEY.txt.

verify checks every DKIM-Signature of each message with dkimpy, as a
receiving server would, except that no DNS is asked: dkimpy's `dnsfunc` hook
answers the record in KEY.txt for S._domainkey.D (one --key per selector)
and nothing for any other name. It prints a JSON list, one object per
message, in argument order:

  file         the path given
  signatures   one object per DKIM-Signature header, top first:
    verified     dkimpy's verdict on that signature (bool)
    error        why not, as dkimpy logged or raised it (null when verified)
    tags         its tags, {tag: value} (white space removed from b=, bh=, h=)
    signed_headers  h= as a list of lower-case header names, in order
    lookups      every DNS name dkimpy asked for while checking it

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


def signature_tags(value: str) -> dict:
    tags = {}
    for part in value.split(";"):
        if "=" not in part:
            continue
        name, _, tag = part.partition("=")
        name = name.strip()
        tag = tag.strip()
        if name in ("b", "bh", "h"):
            tag = "".join(tag.split())
        tags[name] = tag
    return tags


def verify_signature(message: bytes, idx: int, value: str, records: dict, label: str) -> dict:
    lookups: list[str] = []

    def dnsfunc(qname, timeout=5):
        lookups.append(qname.decode("ascii", "replace"))
        return records.get(qname.rstrip(b".").lower())

    log = logging.getLogger(f"dkim_verify.{label}.{idx}")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    collect = Collect()
    log.addHandler(collect)
    error = None
    try:
        verified = bool(dkim.DKIM(message, logger=log).verify(idx=idx, dnsfunc=dnsfunc))
    except Exception as e:  # dkimpy raises on malformed signatures and keys
        verified = False
        error = f"{type(e).__name__}: {e}"
    if not verified and error is None:
        reasons = [line for line in collect.lines
                   if not line.startswith(("sig:", "headers:", "body hash"))]
        error = "; ".join(reasons) or "dkimpy rejected the signature"
    tags = signature_tags(value)
    return {
        "verified": verified,
        "error": None if verified else error,
        "tags": tags,
        "signed_headers": [h.strip().lower() for h in tags.get("h", "").split(":") if h.strip()],
        "lookups": lookups,
    }


def verify_one(path: Path, records: dict) -> dict:
    message = path.read_bytes()
    msg = email.message_from_bytes(message, policy=email.policy.compat32)
    values = [str(v) for v in (msg.get_all("DKIM-Signature") or [])]
    return {
        "file": str(path),
        "signatures": [verify_signature(message, i, v, records, path.name)
                       for i, v in enumerate(values)],
    }


def verify(args: argparse.Namespace) -> int:
    records = {}
    for key in args.key:
        selector, sep, record = key.partition("=")
        if not sep:
            sys.stderr.write(f"--key {key!r}: write it as SELECTOR=RECORD.txt\n")
            return 2
        name = f"{selector}._domainkey.{args.domain}".lower().encode("ascii")
        records[name] = Path(record).read_text(encoding="ascii").strip().encode("ascii")
    result = [verify_one(path, records) for path in args.messages]
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
    v.add_argument("--domain", required=True)
    v.add_argument("--key", action="append", required=True,
                   help="SELECTOR=RECORD.txt: the DNS record of SELECTOR._domainkey.DOMAIN")
    v.add_argument("messages", type=Path, nargs="+")
    v.set_defaults(func=verify)
    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
