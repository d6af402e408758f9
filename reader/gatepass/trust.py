"""Trust anchors: issuer certificates and bare public keys, indexed by kid (spec section 1).

kid = SHA-256(certificate DER)[:8] for an X.509 certificate, SHA-256(SubjectPublicKeyInfo
DER)[:8] for a bare ``PUBLIC KEY``. Certificates are used as keys only: v1 rotates keys
through the distributed trust list, so validity dates and chains are not checked.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_der_public_key

from reader.gatepass.cose import ed25519_key_problem, key_kind
from reader.gatepass.errors import TrustStoreError
from reader.gatepass.files import read_limited

_PEM_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)\r?\n-----END \1-----", re.DOTALL
)
MAX_TRUST_FILE_BYTES = 1 << 20
# RSA anchors verify PS256. A key under 2048 bits can be factored (512 bits: hours of
# rented computing), after which its signatures prove nothing. 65537 is the exponent
# issuers use; any other is refused rather than reasoned about (tiny ones are what the
# known forgeries against lax RSA verifiers exploit).
MIN_RSA_BITS = 2048
RSA_EXPONENT = 65537


def kid_for_der(der: bytes) -> bytes:
    """The GatePass kid of a certificate's DER or a SubjectPublicKeyInfo DER."""
    return hashlib.sha256(der).digest()[:8]


def spki_der(public_key: Any) -> bytes:
    return public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def anchor_key_problem(public_key: Any) -> str | None:
    """Why a key must not be trusted as an issuer key, or None: an Ed25519 point of small
    order or not canonically encoded (see cose.ed25519_key_problem), an RSA key under
    2048 bits or with an exponent other than 65537. EC keys need no such test: OpenSSL
    checks their points are on the curve, and P-256/384/521 have no small subgroups."""
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        problem = ed25519_key_problem(public_key.public_bytes(Encoding.Raw, PublicFormat.Raw))
        return None if problem is None else f"{problem} cannot be a trust anchor"
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < MIN_RSA_BITS:
            return f"an RSA key of {public_key.key_size} bits is too weak (at least {MIN_RSA_BITS} needed)"
        exponent = public_key.public_numbers().e
        if exponent != RSA_EXPONENT:
            return f"an RSA key with public exponent {exponent} is refused ({RSA_EXPONENT} needed)"
    return None


@dataclass(frozen=True, slots=True)
class TrustAnchor:
    """One issuer key the gate trusts. ``label`` says where it came from, for messages."""

    kid: bytes
    public_key: Any
    label: str
    subject: str | None = None
    kind: str = field(init=False)  # cose.key_kind of the key, worked out once

    def __post_init__(self) -> None:
        # anchors_from_pem refuses such keys naming the file and block; this is for anchors
        # built in code, so that no way into a trust store skips the test.
        problem = anchor_key_problem(self.public_key)
        if problem is not None:
            raise TrustStoreError(f"trust anchor {self.label}: {problem}")
        object.__setattr__(self, "kind", key_kind(self.public_key))


class TrustStore:
    """Issuer keys by kid. Several anchors may share a kid; each is tried."""

    def __init__(self, anchors: Iterable[TrustAnchor] = ()) -> None:
        self._by_kid: dict[bytes, list[TrustAnchor]] = {}
        self._anchors: list[TrustAnchor] = []
        for anchor in anchors:
            self.add(anchor)

    def add(self, anchor: TrustAnchor) -> None:
        self._by_kid.setdefault(anchor.kid, []).append(anchor)
        self._anchors.append(anchor)

    def lookup(self, kid: bytes) -> list[TrustAnchor]:
        return self._by_kid.get(kid, [])

    def __iter__(self):
        return iter(self._anchors)

    def __len__(self) -> int:
        return len(self._anchors)

    @classmethod
    def from_pem_files(cls, paths: Iterable[str | Path]) -> TrustStore:
        store = cls()
        for path in paths:
            for anchor in anchors_from_pem_file(path):
                store.add(anchor)
        return store


def anchors_from_pem_file(path: str | Path) -> list[TrustAnchor]:
    data = read_limited(path, MAX_TRUST_FILE_BYTES, f"trust file {path}", TrustStoreError)
    return anchors_from_pem(data, str(path))


def anchors_from_pem(data: bytes, label: str) -> list[TrustAnchor]:
    """Every ``CERTIFICATE`` and ``PUBLIC KEY`` block of a PEM bundle, in file order.

    Any other block is refused by name, a private key above all: a trust file is public
    material, and a key that leaked into one should be noticed, not skipped. So is a key
    that would prove nothing (:func:`anchor_key_problem`): one weak anchor refuses the file.
    """
    anchors: list[TrustAnchor] = []
    for number, match in enumerate(_PEM_BLOCK.finditer(data), start=1):
        kind = match.group(1).decode("ascii")
        where = f"trust file {label}, block {number} ({kind})"
        if "PRIVATE" in kind:
            raise TrustStoreError(f"{where}: a private key does not belong in a trust file")
        if kind not in ("CERTIFICATE", "PUBLIC KEY"):
            raise TrustStoreError(f"{where}: only CERTIFICATE and PUBLIC KEY blocks are accepted")
        subject = None
        try:
            der = base64.b64decode(b"".join(match.group(2).split()), validate=True)
            if kind == "CERTIFICATE":
                cert = x509.load_der_x509_certificate(der)
                public_key = cert.public_key()
                subject = cert.subject.rfc4514_string()
            else:
                public_key = load_der_public_key(der)
        except (ValueError, TypeError, binascii.Error, UnsupportedAlgorithm) as exc:
            # UnsupportedAlgorithm (a key type OpenSSL does not know) is no ValueError.
            raise TrustStoreError(f"{where}: does not parse ({exc})") from None
        problem = anchor_key_problem(public_key)
        if problem is not None:
            raise TrustStoreError(f"{where}: {problem}")
        anchors.append(TrustAnchor(kid_for_der(der), public_key, f"{label}#{number}", subject))
    if not anchors:
        raise TrustStoreError(f"trust file {label}: no PEM certificate or public key in it")
    return anchors
