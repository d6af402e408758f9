"""A loopback CloudEvents collector for the upload tests (helpers, not a test module).

The tests' loopback server (``tests.support.http.LoopbackServer``) behind ssl, with a
throwaway PKI made by ``cryptography`` at test time (no files checked in, nothing that
expires in the repo), or over plain HTTP (``tls=False``, no PKI needed). It
stores batches, deduplicates events by id as a real collector must for the gate's resend-
whole-batches rule to be safe, and can be told to misbehave: answer an error status (from
the start or after N batches, or after storing the batch as if the answer were lost), be
down (port closed), be slow, trickle its answer, or demand a bearer token or a client certificate.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import json
import socket
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.http import LoopbackServer, QuietServer

HEARTBEAT_TYPE = "org.gatepass.gate.heartbeat"


@dataclass(frozen=True)
class Pki:
    """Every file a test needs, as paths (what the uploader's settings take)."""

    ca_file: str  # the CA the gate pins; signed the collector's certificate
    other_ca_file: str  # an unrelated CA; signed ``rogue_cert``
    server_cert: str
    server_key: str
    rogue_cert: str  # same names as server_cert, wrong issuer
    rogue_key: str
    client_ca_file: str  # what the collector trusts for client certificates
    client_cert: str
    client_key: str
    stranger_cert: str  # a client certificate from ``other_ca_file``
    stranger_key: str


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(directory: Path, name: str, data: bytes) -> str:
    path = directory / name
    path.write_bytes(data)
    path.chmod(0o600)
    return str(path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    *,
    server: bool = False,
    client: bool = False,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    issuer_name = issuer[0].subject if issuer else _name(subject)
    signing_key = issuer[1] if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()), critical=False
        )
    )
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True).add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        usages = [ExtendedKeyUsageOID.SERVER_AUTH] if server else []
        usages += [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        if server:
            san = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def make_pki(directory: Path) -> Pki:
    """Two CAs and the leaf certificates the tests combine; EC P-256, so it takes ms."""
    directory.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    files: dict[str, str] = {}
    cas = {}
    for label in ("ca", "other-ca", "client-ca"):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(f"test {label}", key, None)
        cas[label] = (cert, key)
        files[label] = _write(directory, f"{label}.pem", cert.public_bytes(pem))
    leaves = {
        "server": ("localhost", "ca", True, False),
        "rogue": ("localhost", "other-ca", True, False),
        "client": ("gate-7", "client-ca", False, True),
        "stranger": ("gate-7", "other-ca", False, True),
    }
    for label, (cn, ca, server, client) in leaves.items():
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(cn, key, cas[ca], server=server, client=client)
        files[label] = _write(directory, f"{label}.pem", cert.public_bytes(pem))
        files[label + "-key"] = _write(directory, f"{label}.key", _key_pem(key))
    return Pki(
        ca_file=files["ca"],
        other_ca_file=files["other-ca"],
        server_cert=files["server"],
        server_key=files["server-key"],
        rogue_cert=files["rogue"],
        rogue_key=files["rogue-key"],
        client_ca_file=files["client-ca"],
        client_cert=files["client"],
        client_key=files["client-key"],
        stranger_cert=files["stranger"],
        stranger_key=files["stranger-key"],
    )


@dataclass
class Received:
    """One request as the collector saw it."""

    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class Collector(LoopbackServer):
    """Start with ``start()`` (or as a context manager); the knobs may change at any time.
    ``stop()`` closes the port (the gate then meets "connection refused") and drops its
    keep-alive connections; ``start()`` again listens on the same port (a collector coming
    back).

    ``events`` holds each distinct event once, by id, in first-arrival order; a resent event
    only bumps ``duplicates``.
    """

    pki: Pki | None = None  # needed with tls
    tls: bool = True
    rogue: bool = False  # present the certificate from the other CA
    token: str | None = None  # require "Authorization: Bearer <token>"
    require_client_cert: bool = False
    fail_status: int | None = None  # answer this instead of storing...
    fail_after: int = 0  # ...once this many batches were stored
    lose_answer: bool = False  # store the batch, then answer 500 as if the reply was lost
    delay_s: float = 0.0
    trickle_s: float = 0.0  # send the answer's head one byte at a time, this long apart
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    batches: list[list[dict[str, Any]]] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    duplicates: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/events"

    def record_ids(self) -> list[str]:
        return [i for i, e in self.events.items() if e["type"] != HEARTBEAT_TYPE]

    def heartbeats(self) -> list[dict[str, Any]]:
        return [e for e in self.events.values() if e["type"] == HEARTBEAT_TYPE]

    def make_server(self) -> _Server:
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.open_sockets = set()
        server.context = self._context() if self.tls else None
        return server

    def closed(self, httpd: QuietServer) -> None:
        httpd.drop_connections()  # type: ignore[attr-defined]  # a collector that is down keeps no keep-alives

    def _context(self) -> ssl.SSLContext:
        assert self.pki is not None, "a TLS collector needs a Pki (make_pki)"
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert, key = (
            (self.pki.rogue_cert, self.pki.rogue_key) if self.rogue else (self.pki.server_cert, self.pki.server_key)
        )
        context.load_cert_chain(cert, key)
        # Optional at the TLS layer, enforced in the handler: so a missing certificate gets
        # an HTTP 403 the test can see instead of a torn handshake.
        context.load_verify_locations(self.pki.client_ca_file)
        context.verify_mode = ssl.CERT_OPTIONAL
        return context

    def _answer(self, headers: dict[str, str], body: bytes, peer_cert: bool) -> tuple[int, dict[str, Any]]:
        if self.token is not None and headers.get("authorization") != f"Bearer {self.token}":
            return 401, {"error": "bearer token required"}
        if self.require_client_cert and not peer_cert:
            return 403, {"error": "client certificate required"}
        if headers.get("content-type", "").split(";")[0].strip() != "application/cloudevents-batch+json":
            return 415, {"error": "expected application/cloudevents-batch+json"}
        if self.delay_s:
            self._stopping.wait(self.delay_s)
        with self._lock:
            if self.fail_status is not None and len(self.batches) >= self.fail_after:
                return self.fail_status, {"error": "collector unhappy"}
            try:
                batch = json.loads(body)
            except ValueError:
                return 400, {"error": "not JSON"}
            if not isinstance(batch, list):
                return 400, {"error": "not a batch"}
            self.batches.append(batch)
            fresh = 0
            for event in batch:
                if event["id"] in self.events:
                    self.duplicates += 1
                else:
                    self.events[event["id"]] = event
                    fresh += 1
            if self.lose_answer:
                return 500, {"error": "stored, but the answer is lost"}
            return 200, {"accepted": fresh}


class _Server(QuietServer):
    owner: Collector
    context: ssl.SSLContext | None

    open_sockets: set[socket.socket]

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = self.socket.accept()
        if self.context is not None:
            # Handshake in the handler's thread, so one stuck client cannot block accept().
            sock = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        self.open_sockets.add(sock)
        return sock, addr

    def shutdown_request(self, request: Any) -> None:
        self.open_sockets.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        for sock in list(self.open_sockets):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        self.open_sockets.clear()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # torn TLS handshakes are what several tests are about; keep the output clean


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so the uploader's pool is exercised
    # Headers and body leave in two writes: without this, Nagle and the client's delayed ACK
    # add ~40 ms to every answer and the throughput figures would measure the fixture.
    disable_nagle_algorithm = True
    timeout = 10
    server: _Server

    def handle(self) -> None:
        if isinstance(self.connection, ssl.SSLSocket):
            try:
                self.connection.do_handshake()
            except (ssl.SSLError, OSError):
                return
        super().handle()

    def do_POST(self) -> None:
        collector = self.server.owner
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        headers = {k.lower(): v for k, v in self.headers.items()}
        peer = isinstance(self.connection, ssl.SSLSocket) and bool(self.connection.getpeercert())
        status, answer = collector._answer(headers, body, peer)
        with collector._lock:
            collector.requests.append(Received(status, headers, body))
        payload = json.dumps(answer).encode()
        if collector.trickle_s:
            head = f"HTTP/1.1 {status} OK\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
            for i in range(len(head)):
                if collector._stopping.wait(collector.trickle_s):
                    return
                self.wfile.write(head[i : i + 1])
                self.wfile.flush()
            self.wfile.write(payload)
            return
        self.send_response(status)
        if status == 401:
            self.send_header("WWW-Authenticate", "Bearer")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass
