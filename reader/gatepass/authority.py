"""A test issuer and holder: keys, credentials, presentations, status lists, legacy lists.

The demo, the tests and a pilot site use it to make everything a gate reads. It writes
the formats of ``docs/formats.md`` with cbor2 and cryptography, independently of the
verifier's parser, and private keys only to files with mode 0600 (offline_cache.files).
"""

from __future__ import annotations

import datetime as dt
import secrets
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from offline_cache.files import write_atomic, write_private
from reader.gatepass.cose import (
    ALG_EDDSA,
    ALG_ES256,
    ALG_ES384,
    ALG_ES512,
    ALG_NAMES,
    ALG_PS256,
    HEADER_ALG,
    HEADER_KID,
    HEADER_TYP,
    TAG_CWT,
    TAG_SIGN1,
    sig_structure,
)
from reader.gatepass.envelope import DEFAULT_PREFIXES, seal_text
from reader.gatepass.errors import AuthorityError
from reader.gatepass.legacy import CLAIM_CARDS as CLAIM_LEGACY_CARDS
from reader.gatepass.legacy import LEGACY_LIST_TYP
from reader.gatepass.legacy import card_key as legacy_card_key
from reader.gatepass.statuslist import STATUS_LIST_TYP
from reader.gatepass.trust import kid_for_der

ALG_BY_NAME = {name: alg for alg, name in ALG_NAMES.items()}
_ECDSA_CURVES = {ALG_ES256: (ec.SECP256R1, hashes.SHA256, 32), ALG_ES384: (ec.SECP384R1, hashes.SHA384, 48),
                 ALG_ES512: (ec.SECP521R1, hashes.SHA512, 66)}




def generate_private_key(alg: int) -> Any:
    if alg in _ECDSA_CURVES:
        return ec.generate_private_key(_ECDSA_CURVES[alg][0]())
    if alg == ALG_EDDSA:
        return ed25519.Ed25519PrivateKey.generate()
    if alg == ALG_PS256:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise AuthorityError(f"unsupported alg {alg}")


def alg_for_key(private_key: Any) -> int:
    """The one GatePass alg a private key signs with."""
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        for alg, (curve, _hash, _size) in _ECDSA_CURVES.items():
            if isinstance(private_key.curve, curve):
                return alg
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return ALG_EDDSA
    if isinstance(private_key, rsa.RSAPrivateKey):
        return ALG_PS256
    raise AuthorityError(f"no GatePass alg for a {type(private_key).__name__}")


def sign_raw(private_key: Any, alg: int, message: bytes) -> bytes:
    """A COSE signature: ECDSA as fixed-length r || s, EdDSA raw, PS256 with salt 32."""
    if alg in _ECDSA_CURVES:
        _curve, digest, size = _ECDSA_CURVES[alg]
        r, s = decode_dss_signature(private_key.sign(message, ec.ECDSA(digest())))
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    if alg == ALG_EDDSA:
        return private_key.sign(message)
    if alg == ALG_PS256:
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        return private_key.sign(message, pss, hashes.SHA256())
    raise AuthorityError(f"unsupported alg {alg}")


def sign1(
    payload: bytes,
    private_key: Any,
    alg: int,
    *,
    protected: Mapping[int, Any] | None = None,
    unprotected: Mapping[int, Any] | None = None,
    tag: int | None = TAG_SIGN1,
) -> bytes:
    """Encode a COSE_Sign1. ``tag`` is 18, 61 (61 around 18) or None (bare)."""
    header = {HEADER_ALG: alg, **(protected or {})}
    protected_bytes = cbor2.dumps(header)
    signature = sign_raw(private_key, alg, sig_structure(protected_bytes, payload))
    structure: Any = [protected_bytes, dict(unprotected or {}), payload, signature]
    if tag in (TAG_SIGN1, TAG_CWT):
        structure = cbor2.CBORTag(TAG_SIGN1, structure)
        if tag == TAG_CWT:
            structure = cbor2.CBORTag(TAG_CWT, structure)
    elif tag is not None:
        raise AuthorityError(f"tag must be 18, 61 or None, not {tag}")
    return cbor2.dumps(structure)


def _pem_private(private_key: Any) -> bytes:
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _load_private(path: Path) -> Any:
    try:
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise AuthorityError(f"{path}: not a readable unencrypted PEM private key ({exc})") from None


@dataclass(frozen=True)
class Issuer:
    """An issuer signing key and its self-signed certificate (the gate's trust anchor)."""

    private_key: Any
    certificate: x509.Certificate

    @property
    def alg(self) -> int:
        return alg_for_key(self.private_key)

    @property
    def kid(self) -> bytes:
        return kid_for_der(self.certificate.public_bytes(serialization.Encoding.DER))

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @classmethod
    def generate(cls, alg_name: str = "ES256", common_name: str = "GatePass Test Issuer", days: int = 3650) -> Issuer:
        alg = ALG_BY_NAME.get(alg_name)
        if alg is None:
            raise AuthorityError(f"unknown alg {alg_name!r}: choose one of {', '.join(ALG_BY_NAME)}")
        private_key = generate_private_key(alg)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = dt.datetime.now(dt.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(private_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(private_key, None if alg == ALG_EDDSA else hashes.SHA256())
        )
        return cls(private_key, certificate)

    def save(self, key_path: Path, cert_path: Path) -> None:
        write_private(key_path, _pem_private(self.private_key), replace=True)
        write_atomic(cert_path, self.certificate_pem)

    @classmethod
    def load(cls, key_path: Path, cert_path: Path) -> Issuer:
        private_key = _load_private(key_path)
        try:
            certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        except (OSError, ValueError) as exc:
            raise AuthorityError(f"{cert_path}: not a readable PEM certificate ({exc})") from None
        own = private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        theirs = certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if own != theirs:
            raise AuthorityError(f"{cert_path} does not hold the public key of {key_path}")
        alg_for_key(private_key)
        return cls(private_key, certificate)

    def sign(self, payload: bytes, typ: str | None = None, tag: int | None = TAG_SIGN1) -> bytes:
        protected: dict[int, Any] = {HEADER_KID: self.kid}
        if typ is not None:
            protected[HEADER_TYP] = typ
        return sign1(payload, self.private_key, self.alg, protected=protected, tag=tag)


@dataclass(frozen=True)
class Holder:
    """A holder device key (the phone's or card's), P-256 (ES256) or Ed25519 (EdDSA)."""

    private_key: Any

    @classmethod
    def generate(cls, alg_name: str = "ES256") -> Holder:
        if alg_name not in ("ES256", "EdDSA"):
            raise AuthorityError(f"holder keys are ES256 or EdDSA, not {alg_name!r}")
        return cls(generate_private_key(ALG_BY_NAME[alg_name]))

    @property
    def alg(self) -> int:
        alg = alg_for_key(self.private_key)
        if alg not in (ALG_ES256, ALG_EDDSA):
            raise AuthorityError("a holder key must be P-256 or Ed25519")
        return alg

    def cose_key(self) -> dict[int, Any]:
        public_key = self.private_key.public_key()
        if self.alg == ALG_EDDSA:
            return {1: 1, -1: 6, -2: public_key.public_bytes_raw()}
        numbers = public_key.public_numbers()
        return {1: 2, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")}

    def save(self, path: Path) -> None:
        write_private(path, _pem_private(self.private_key), replace=True)

    @classmethod
    def load(cls, path: Path) -> Holder:
        holder = cls(_load_private(path))
        holder.alg  # noqa: B018 - refuses a key GatePass cannot bind
        return holder

    def present(
        self, credential: bytes, *, iat: int | float, nonce: bytes | None = None,
        rnonce: bytes | None = None, gate_id: str | None = None,
    ) -> bytes:
        """The COSE bytes of a presentation: QR (``nonce``) or NFC (``rnonce``, ``gate_id``)."""
        payload: dict[int, Any] = {1: credential, 2: iat}
        if rnonce is not None:
            payload[4] = rnonce
            if gate_id is not None:
                payload[5] = gate_id
        else:
            payload[3] = nonce if nonce is not None else secrets.token_bytes(16)
        return sign1(cbor2.dumps(payload), self.private_key, self.alg)

    def present_qr(
        self, credential: bytes, *, iat: int | float, nonce: bytes | None = None,
        prefix: str = DEFAULT_PREFIXES[0], compress: bool | None = None,
    ) -> str:
        return seal_text(self.present(credential, iat=iat, nonce=nonce), prefix, compress)

    def answer_challenge(self, challenge: bytes, credential: bytes, *, iat: int | float) -> bytes:
        """What a holder answers to the CHALLENGE APDU data ``{1: rnonce, 2: gate id}``."""
        try:
            request = cbor2.loads(challenge)
        except (cbor2.CBORDecodeError, ValueError) as exc:
            raise AuthorityError(f"challenge is not CBOR ({exc})") from None
        if not isinstance(request, dict) or not isinstance(request.get(1), bytes) or len(request[1]) != 16:
            raise AuthorityError("challenge is not {1: 16-byte rnonce, 2: gate id}")
        gate_id = request.get(2)
        if not isinstance(gate_id, str):
            gate_id = None
        return self.present(credential, iat=iat, rnonce=request[1], gate_id=gate_id)


def issue_credential(
    issuer: Issuer,
    *,
    sub: str,
    iat: int | float,
    exp: int | float,
    iss: str = "gatepass-test-issuer",
    cti: bytes | None = None,
    nbf: int | float | None = None,
    holder: Holder | None = None,
    status: tuple[str, int] | None = None,
    name: str | None = None,
    org: str | None = None,
    groups: Iterable[str] | None = None,
    carrier: str | None = None,
    extra: Mapping[Any, Any] | None = None,
    tag: int | None = TAG_SIGN1,
) -> bytes:
    """An issuer credential (spec 1). ``status`` is ``(uri, idx)``."""
    claims: dict[Any, Any] = {1: iss, 2: sub, 4: exp, 6: iat, 7: cti if cti is not None else secrets.token_bytes(16)}
    if nbf is not None:
        claims[5] = nbf
    if holder is not None:
        claims[8] = {1: holder.cose_key()}
    if status is not None:
        claims[65535] = {"status_list": {"idx": status[1], "uri": status[0]}}
    for key, value in (("name", name), ("org", org), ("car", carrier)):
        if value is not None:
            claims[key] = value
    if groups is not None:
        claims["grp"] = list(groups)
    claims.update(extra or {})
    return issuer.sign(cbor2.dumps(claims), tag=tag)


def set_status_value(data: bytearray, bits: int, idx: int, value: int) -> None:
    """Put ``value`` at index ``idx`` of a packed status byte array: byte ``idx*bits // 8``,
    bit offset ``(idx*bits) % 8``, least significant bit first (spec 3)."""
    if not 0 <= idx < len(data) * 8 // bits:
        raise AuthorityError(f"index {idx} outside a list of {len(data) * 8 // bits} entries")
    if not 0 <= value < (1 << bits):
        raise AuthorityError(f"status value {value} does not fit in {bits} bits")
    bit = idx * bits
    data[bit >> 3] &= ~(((1 << bits) - 1) << (bit & 7)) & 0xFF
    data[bit >> 3] |= value << (bit & 7)


def status_entries(data: bytes, bits: int) -> Iterator[tuple[int, int]]:
    """Every (index, value) with a non-zero value, in order. Runs of zero bytes are skipped a
    chunk at a time: a 16 MiB list with a few revocations is read in milliseconds."""
    per_byte, mask, step = 8 // bits, (1 << bits) - 1, 4096
    zeros = bytes(step)
    for start in range(0, len(data), step):
        chunk = data[start : start + step]
        if chunk == zeros[: len(chunk)]:
            continue
        for offset, byte in enumerate(chunk):
            if byte:
                for k in range(per_byte):
                    value = (byte >> (k * bits)) & mask
                    if value:
                        yield (start + offset) * per_byte + k, value


def revoked_indexes(data: bytes, bits: int) -> Iterator[int]:
    """Every index whose value is 1 (revoked), in order."""
    return (idx for idx, value in status_entries(data, bits) if value == 1)


def pack_status_bits(size: int, bits: int, values: Mapping[int, int]) -> bytes:
    """The uncompressed status byte array for ``size`` entries (spec 3)."""
    if bits not in (1, 2, 4, 8):
        raise AuthorityError("bits must be 1, 2, 4 or 8")
    data = bytearray((size * bits + 7) // 8)
    for idx, value in values.items():
        if not 0 <= idx < size:
            raise AuthorityError(f"index {idx} outside a list of {size} entries")
        set_status_value(data, bits, idx, value)
    return bytes(data)


def sign_status_list(
    issuer: Issuer, *, uri: str, bits: int, data: bytes, iat: int | float,
    exp: int | float | None = None, ttl: int | None = None,
) -> bytes:
    """A signed status list token (spec 3) over an already packed byte array: what revoke
    and refresh use to sign the entries of a published list again, unchanged or edited."""
    if bits not in (1, 2, 4, 8):
        raise AuthorityError("bits must be 1, 2, 4 or 8")
    claims: dict[int, Any] = {2: uri, 6: iat, 65533: {"bits": bits, "lst": zlib.compress(bytes(data), 9)}}
    if exp is not None:
        claims[4] = exp
    if ttl is not None:
        claims[65534] = ttl
    return issuer.sign(cbor2.dumps(claims), typ=STATUS_LIST_TYP)


def build_status_list(
    issuer: Issuer, *, uri: str, size: int, values: Mapping[int, int], iat: int | float,
    bits: int = 1, exp: int | float | None = None, ttl: int | None = None,
) -> bytes:
    """A signed status list token (spec 3) covering indexes ``0 .. size-1``."""
    return sign_status_list(issuer, uri=uri, bits=bits, data=pack_status_bits(size, bits, values), iat=iat,
                            exp=exp, ttl=ttl)


def sign_legacy_cards(
    issuer: Issuer, *, entries: Mapping[bytes, tuple[str, int]], iat: int | float, exp: int | float
) -> bytes:
    """A signed legacy card list (spec 4) from entries already keyed by SHA-256(identifier)[:16]:
    a published list holds only those hashes, so this is how it is signed again."""
    claims = {6: iat, 4: exp, CLAIM_LEGACY_CARDS: {key: {"sub": sub, "exp": card_exp}
                                                   for key, (sub, card_exp) in entries.items()}}
    return issuer.sign(cbor2.dumps(claims), typ=LEGACY_LIST_TYP)


def build_legacy_list(
    issuer: Issuer, *, cards: Mapping[str, tuple[str, int]], iat: int | float, exp: int | float
) -> bytes:
    """A signed legacy card list (spec 4): identifier -> (subject, card expiry)."""
    entries = {legacy_card_key(identifier): card for identifier, card in cards.items()}
    return sign_legacy_cards(issuer, entries=entries, iat=iat, exp=exp)


def qr_png(text: str, path: Path, scale: int = 4) -> None:
    """Write the QR text as a PNG (segno picks the smallest version; error level M keeps a
    580-character code scannable from a phone screen)."""
    import segno

    segno.make_qr(text, error="m").save(str(path), scale=scale, border=4)
