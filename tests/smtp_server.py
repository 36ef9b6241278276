#!/usr/bin/env python3
"""A real SMTP server on loopback for the newsletter's integration tests.

Usage:
    python tests/smtp_server.py --port PORT --maildir DIR
        [--tls-dir DIR] [--auth USER:PASS]
        [--tempfail ADDR ...] [--tempfail-times N] [--permfail ADDR ...]
        [--drop-every N] [--drop-after-every N] [--delay SECONDS]
        [--hold-file PATH] [--garbage]

It is an aiosmtpd ``Controller`` bound to 127.0.0.1:PORT (PORT 0 picks a free
port).  Once it listens (and, with --tls-dir, once the certificates are
written) it prints exactly one line ``READY <port>`` to stdout, flushes, and
serves until SIGTERM or SIGINT, then exits 0.  Nothing else goes to stdout.
One line per event (connection, STARTTLS, AUTH, RCPT, accept, fault) goes to
stderr; a caller that pipes stderr must keep reading it (or send it to a file
or inherit it), or the server stalls once the pipe buffer is full.  The
first connect/disconnect pair in that log is aiosmtpd's own start-up probe.

Options:
  --maildir DIR     Each accepted message (one per DATA, whatever the number
                    of recipients) becomes DIR/<seq>.json (envelope) and
                    DIR/<seq>.eml (the bytes received, CRLF line endings kept,
                    dot-stuffing removed).  <seq> is 6-digit zero-padded, in
                    arrival order, starting after the highest already in DIR.
                    Both are written to a hidden temp file and renamed; the
                    .json is renamed first, the .eml last, so a reader who sees
                    a .eml also sees its .json.  Envelope keys: seq, mail_from,
                    rcpt_tos, peer ("host:port"), received_at (UTC ISO 8601),
                    helo, tls (bool: sent after STARTTLS), auth_user (str or
                    null), mail_options, rcpt_options, size (bytes).
  --tls-dir DIR     Generate a self-signed CA and a server certificate for
                    localhost / 127.0.0.1 (SAN both) signed by it; write
                    DIR/ca.pem, DIR/server.pem, DIR/server.key; offer
                    STARTTLS and require it (MAIL etc. before STARTTLS get
                    530).  Clients verify the server with DIR/ca.pem.
  --auth USER:PASS  Require AUTH PLAIN or LOGIN with these credentials (bad
                    ones get 535; MAIL/RCPT/DATA before AUTH get 530).  With
                    --tls-dir, AUTH is offered only after STARTTLS; without
                    it, plaintext AUTH is allowed (loopback tests only).
                    Without --auth, no AUTH is advertised or accepted.
Faults (deterministic; counters are shared by all connections):
  --tempfail ADDR...    RCPT TO for these addresses (case-insensitive) gets
                        "451 4.3.0 try again later" the first N times per
                        address, then is accepted.
  --tempfail-times N    N for --tempfail (default 1).
  --permfail ADDR...    RCPT TO for these always gets "550 5.1.1 no such user"
                        (checked before --tempfail).
  --closing             MAIL FROM always gets "421 4.3.2 shutting down" (a
                        server going away, for every message).
  --drop-every N        Every N-th DATA the server answers (counted when the
                        server would answer, after --delay: the N-th, 2N-th,
                        ...) is NOT saved and NOT answered: the connection is
                        aborted instead.  The client must retry; a correct
                        client produces no duplicate.
  --drop-after-every N  Every N-th DATA (same counter) IS saved and answered
                        "250", then the connection is closed without waiting
                        for QUIT.  (Checked after --drop-every.)
  --delay SECONDS       Sleep this long before answering each DATA.  A client
                        that hangs up during the sleep has its message
                        discarded (not saved).
  --hold-file PATH      While PATH exists, each DATA (after --delay) waits
                        before it is saved and answered, logging one line
                        "fault=hold peer=... data#=N" as it starts to wait
                        (N counts the DATA transfers that reached the hold).
                        Deleting PATH lets every waiting one go on: a test
                        holds a client mid-message for as long as it needs,
                        with no clock involved.  A client that hangs up
                        meanwhile has its message discarded.
  --garbage             After the EHLO/HELO reply, answer every command with
                        the line b"HELLO?? \\xff\\xfe" (not an SMTP reply);
                        no command is carried out (QUIT also closes).

Example:
    python tests/smtp_server.py --port 0 --maildir /tmp/mail --tls-dir /tmp/tls \\
        --auth user:secret --tempfail a@example.com --drop-every 3
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hmac
import ipaddress
import json
import logging
import os
import re
import signal
import ssl
import sys
import threading
import warnings
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword, TLSSetupException

GARBAGE_LINE = b"HELLO?? \xff\xfe"
TEMPFAIL_REPLY = "451 4.3.0 try again later"
PERMFAIL_REPLY = "550 5.1.1 no such user"
SEQ_WIDTH = 6

log = logging.getLogger("smtp_server")


def peer_str(peer) -> str:
    if isinstance(peer, (tuple, list)) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


# --------------------------------------------------------------------------
# TLS material
# --------------------------------------------------------------------------

def make_tls_files(tls_dir: Path) -> ssl.SSLContext:
    """Write ca.pem, server.pem, server.key into tls_dir; return a server context."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    tls_dir.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)
    not_before = now - dt.timedelta(days=1)
    not_after = now + dt.timedelta(days=365)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "newsletter tests"),
        x509.NameAttribute(NameOID.COMMON_NAME, "newsletter test CA"),
    ])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    srv_key = ec.generate_private_key(ec.SECP256R1())
    srv_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "newsletter tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
        ]))
        .issuer_name(ca_name)
        .public_key(srv_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            ]),
            critical=False,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(srv_key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

    pem = serialization.Encoding.PEM
    write_atomic(tls_dir / "ca.pem", ca_cert.public_bytes(pem))
    write_atomic(tls_dir / "server.pem", srv_cert.public_bytes(pem))
    write_atomic(
        tls_dir / "server.key",
        srv_key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()),
        mode=0o600,
    )

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(tls_dir / "server.pem"), str(tls_dir / "server.key"))
    return ctx


# --------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------

def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write data to a hidden temp file beside path, fsync, then rename over path."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


class Maildir:
    """Numbered .json/.eml pairs; the .eml is renamed into place last."""

    def __init__(self, path: Path):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        seqs = [int(m.group(1)) for p in path.iterdir()
                if (m := re.fullmatch(r"(\d+)\.(?:eml|json)", p.name))]
        self.next_seq = max(seqs, default=0) + 1

    def save(self, envelope_info: dict, content: bytes) -> int:
        seq = self.next_seq
        self.next_seq += 1
        stem = f"{seq:0{SEQ_WIDTH}d}"
        envelope_info = {"seq": seq, **envelope_info}
        write_atomic(self.path / f"{stem}.json",
                     (json.dumps(envelope_info, indent=2) + "\n").encode())
        write_atomic(self.path / f"{stem}.eml", content)
        dir_fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return seq


# --------------------------------------------------------------------------
# SMTP behaviour
# --------------------------------------------------------------------------

class Handler:
    """aiosmtpd handler hooks: RCPT faults, DATA faults, saving."""

    def __init__(self, args: argparse.Namespace, maildir: Maildir):
        self.maildir = maildir
        self.auth_enabled = args.auth is not None
        self.permfail = {a.lower() for a in args.permfail}
        self.tempfail = {a.lower() for a in args.tempfail}
        self.tempfail_times = args.tempfail_times
        self.tempfail_count: dict[str, int] = {}
        self.drop_every = args.drop_every
        self.drop_after_every = args.drop_after_every
        self.delay = args.delay
        self.hold_file = args.hold_file
        self.held = 0  # DATA transfers that reached the hold
        self.closing = args.closing
        self.data_count = 0  # DATA transfers the server got as far as answering

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        # With this hook present aiosmtpd leaves session.host_name to us.
        session.host_name = hostname
        if not self.auth_enabled:
            responses = [r for r in responses if not r[4:].upper().startswith("AUTH")]
        log.info("ehlo peer=%s name=%s tls=%s", peer_str(session.peer), hostname,
                 session.ssl is not None)
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.closing:
            log.info("fault=closing peer=%s from=<%s>", peer_str(session.peer), address)
            return "421 4.3.2 shutting down"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        log.info("mail peer=%s from=<%s> options=%s", peer_str(session.peer), address,
                 " ".join(mail_options))
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        key = address.lower()
        peer = peer_str(session.peer)
        if key in self.permfail:
            log.info("fault=permfail peer=%s rcpt=<%s>", peer, address)
            return PERMFAIL_REPLY
        if key in self.tempfail:
            n = self.tempfail_count.get(key, 0)
            if n < self.tempfail_times:
                self.tempfail_count[key] = n + 1
                log.info("fault=tempfail peer=%s rcpt=<%s> time=%d/%d", peer, address,
                         n + 1, self.tempfail_times)
                return TEMPFAIL_REPLY
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        log.info("rcpt peer=%s to=<%s>", peer, address)
        return "250 OK"

    async def handle_exception(self, error):
        # A failed STARTTLS handshake (e.g. the client rejects the certificate)
        # is an expected event in tests: one line.  Anything else is a bug here:
        # full traceback.  aiosmtpd sends the returned reply (except after a
        # failed handshake, where it just closes the connection).
        if isinstance(error, TLSSetupException):
            log.info("starttls FAILED: %r", error.__cause__)
        else:
            log.error("session exception", exc_info=error)
        return f"500 Error: ({type(error).__name__}) {error}"

    async def handle_DATA(self, server, session, envelope):
        peer = peer_str(session.peer)
        if self.delay > 0:
            log.info("fault=delay peer=%s seconds=%s", peer, self.delay)
            # If the client hangs up meanwhile, aiosmtpd cancels us here: not saved.
            await asyncio.sleep(self.delay)
        if self.hold_file is not None and self.hold_file.exists():
            self.held += 1
            log.info("fault=hold peer=%s data#=%d", peer, self.held)
            # If the client hangs up meanwhile, aiosmtpd cancels us here: not saved.
            while self.hold_file.exists():
                await asyncio.sleep(0.01)
        self.data_count += 1
        n = self.data_count
        if self.drop_every and n % self.drop_every == 0:
            log.info("fault=drop-before-reply peer=%s data#=%d (message NOT saved)", peer, n)
            await drop_connection(server, abort=True)
        content = envelope.original_content or b""
        auth = session.auth_data
        info = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "peer": peer,
            "received_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"),
            "helo": session.host_name,
            # STARTTLS sets session.ssl; implicit TLS shows on the transport.
            "tls": session.ssl is not None
                   or server.transport.get_extra_info("ssl_object") is not None,
            "auth_user": (auth.login.decode("utf-8", "replace")
                          if isinstance(auth, LoginPassword) else None),
            "mail_options": list(envelope.mail_options),
            "rcpt_options": list(envelope.rcpt_options),
            "size": len(content),
        }
        seq = self.maildir.save(info, content)
        log.info("accept peer=%s data#=%d seq=%d from=<%s> to=%s size=%d", peer, n, seq,
                 envelope.mail_from, ",".join(f"<{r}>" for r in envelope.rcpt_tos),
                 len(content))
        if self.drop_after_every and n % self.drop_after_every == 0:
            await server.push("250 OK")
            log.info("fault=drop-after-reply peer=%s data#=%d seq=%d (message saved)",
                     peer, n, seq)
            await drop_connection(server, abort=False)
        return "250 OK"


async def drop_connection(server: SMTP, abort: bool) -> None:
    """Close the connection and never return (aiosmtpd cancels this handler)."""
    transport = server.transport
    if transport is not None:
        if abort:
            transport.abort()  # pending output is discarded: no reply reaches the client
        else:
            transport.close()  # flush what was already pushed, then close
    # connection_lost() cancels the handler coroutine; wait for that.
    await asyncio.get_running_loop().create_future()


class FaultySMTP(SMTP):
    """SMTP with connection logging, AUTH logging and the --garbage mode."""

    def __init__(self, handler, *, garbage: bool = False, **kwargs):
        super().__init__(handler, **kwargs)
        self._garbage = garbage
        self._garbage_armed = False
        if garbage:
            for name, method in list(self._smtp_methods.items()):
                self._smtp_methods[name] = self._garbage_wrap(name, method)

    def _garbage_wrap(self, name, method):
        async def wrapped(arg):
            if self._garbage_armed:
                log.info("fault=garbage peer=%s command=%s", peer_str(self.session.peer), name)
                await self.push(GARBAGE_LINE)
                if name == "QUIT" and self.transport is not None:
                    self.transport.close()
                return
            await method(arg)
            if name in ("EHLO", "HELO") and self.session.host_name:
                self._garbage_armed = True
        return wrapped

    async def push(self, status):
        if self._garbage_armed:
            self._writer.write(GARBAGE_LINE + b"\r\n")
            await self._writer.drain()
            return
        await super().push(status)

    def connection_made(self, transport):
        starttls = self._original_transport is not None
        super().connection_made(transport)
        if starttls:
            log.info("starttls peer=%s %s", peer_str(self.session.peer),
                     (self.session.ssl or {}).get("cipher"))
        else:
            log.info("connect peer=%s", peer_str(self.session.peer))

    def connection_lost(self, error):
        if self.session is not None:
            log.info("disconnect peer=%s%s", peer_str(self.session.peer),
                     f" error={error!r}" if error else "")
        super().connection_lost(error)


def make_authenticator(user: str, password: str):
    want_user, want_pass = user.encode(), password.encode()

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword)
              and hmac.compare_digest(auth_data.login, want_user)
              and hmac.compare_digest(auth_data.password, want_pass))
        login = auth_data.login.decode("utf-8", "replace") if isinstance(
            auth_data, LoginPassword) else "?"
        log.info("auth %s peer=%s mechanism=%s user=%s", "ok" if ok else "FAILED (535)",
                 peer_str(session.peer), mechanism, login)
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    return authenticator


class ServerController(Controller):
    """Controller that builds FaultySMTP and learns the real port when given 0."""

    def __init__(self, handler, *, garbage: bool, **kwargs):
        self._garbage = garbage
        super().__init__(handler, **kwargs)

    def factory(self):
        return FaultySMTP(self.handler, garbage=self._garbage, **self.SMTP_kwargs)

    def _trigger_server(self):
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------

def positive_int(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return n


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Loopback SMTP test server with deterministic faults "
                    "(see the module docstring).")
    p.add_argument("--port", type=int, required=True, help="0 picks a free port")
    p.add_argument("--maildir", type=Path, required=True)
    p.add_argument("--tls-dir", type=Path)
    p.add_argument("--implicit-tls", action="store_true",
                   help="with --tls-dir: TLS from the first byte (port 465 style) instead of STARTTLS")
    p.add_argument("--auth", metavar="USER:PASS")
    p.add_argument("--tempfail", metavar="ADDR", nargs="+", action="extend", default=[])
    p.add_argument("--tempfail-times", type=positive_int, default=1, metavar="N")
    p.add_argument("--permfail", metavar="ADDR", nargs="+", action="extend", default=[])
    p.add_argument("--closing", action="store_true")
    p.add_argument("--drop-every", type=positive_int, metavar="N")
    p.add_argument("--drop-after-every", type=positive_int, metavar="N")
    p.add_argument("--delay", type=float, default=0.0, metavar="SECONDS")
    p.add_argument("--hold-file", type=Path, metavar="PATH")
    p.add_argument("--garbage", action="store_true")
    p.add_argument("--no-smtputf8", action="store_true",
                   help="do not offer SMTPUTF8 (clients cannot send to non-ASCII addresses)")
    args = p.parse_args(argv)
    if args.auth is not None and ":" not in args.auth:
        p.error("--auth takes USER:PASS")
    if args.delay < 0:
        p.error("--delay must be >= 0")
    if args.implicit_tls and not args.tls_dir:
        p.error("--implicit-tls needs --tls-dir")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO,
        format="smtp_server %(asctime)s.%(msecs)03d %(message)s", datefmt="%H:%M:%S")
    # aiosmtpd's own logger: only errors (it is chatty, and warns on every
    # connection about plaintext AUTH, which is intended here).
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")

    maildir = Maildir(args.maildir)
    tls_context = make_tls_files(args.tls_dir) if args.tls_dir else None

    starttls = tls_context is not None and not args.implicit_tls
    smtp_kwargs: dict = {
        "tls_context": tls_context if starttls else None,
        "require_starttls": starttls,
        "auth_require_tls": starttls,
        "enable_SMTPUTF8": not args.no_smtputf8,
    }
    if args.auth is not None:
        user, _, password = args.auth.partition(":")
        smtp_kwargs["auth_required"] = True
        smtp_kwargs["authenticator"] = make_authenticator(user, password)
    else:
        smtp_kwargs["auth_exclude_mechanism"] = ["LOGIN", "PLAIN"]

    controller = ServerController(
        Handler(args, maildir), garbage=args.garbage,
        hostname="127.0.0.1", port=args.port, server_hostname="localhost",
        ssl_context=tls_context if args.implicit_tls else None,
        **smtp_kwargs)

    stop = threading.Event()

    def on_signal(signum, _frame):
        log.info("signal %s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    try:
        controller.start()
    except Exception as e:  # e.g. port in use
        log.error("could not start: %r", e)
        return 1
    faults = {k: v for k, v in vars(args).items()
              if k in ("tempfail", "permfail", "closing", "drop_every", "drop_after_every",
                       "delay", "hold_file", "garbage") and v}
    if args.tempfail:
        faults["tempfail_times"] = args.tempfail_times
    log.info("listening on 127.0.0.1:%d maildir=%s tls=%s auth=%s faults=%s",
             controller.port, args.maildir, bool(tls_context), args.auth is not None, faults)
    sys.stdout.write(f"READY {controller.port}\n")
    sys.stdout.flush()

    while not stop.wait(0.2):
        pass
    controller.stop()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
