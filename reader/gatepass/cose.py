"""COSE_Sign1 (RFC 9052) parsing and signature checks for the five GatePass algorithms.

Built on :mod:`reader.gatepass.cbor` and ``cryptography`` directly rather than on a COSE
library: see ``docs/formats.md`` ("Why no COSE library") for the measurements.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cbor2 import frozendict
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from reader.gatepass.cbor import CborError, Tag, loads
from reader.gatepass.errors import CoseFormatError

ALG_ES256 = -7
ALG_ES384 = -35
ALG_ES512 = -36
ALG_EDDSA = -8
ALG_PS256 = -37
ALG_NAMES = {ALG_ES256: "ES256", ALG_ES384: "ES384", ALG_ES512: "ES512", ALG_EDDSA: "EdDSA", ALG_PS256: "PS256"}

HEADER_ALG = 1
HEADER_KID = 4
HEADER_TYP = 16  # RFC 9596 content type of the whole token

TAG_SIGN1 = 18
TAG_CWT = 61

_SHA256 = hashes.SHA256()
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)

_SIGNATURE1_PREFIX = b"\x84" + b"\x6aSignature1"

# Item budgets (cbor.loads ``max_items``) of the decodes a COSE object needs before its
# signature can be checked. A COSE_Sign1 is five items and its unprotected header; a
# GatePass header holds one to three parameters (a pair is two items). The budgets leave
# room for what other COSE producers add (a content type, an x5chain array), not for the
# thousands of items a hostile code packs into 4096 characters: past them the decode stops.
MAX_ENVELOPE_ITEMS = 64
MAX_HEADER_ITEMS = 32




# A kid header that is present but not a byte string: distinct from "absent".
KID_INVALID = object()


@dataclass(slots=True)
class Sign1:
    """One decoded COSE_Sign1, with the protected header kept exactly as received.
    Treat it as immutable (not frozen only because frozen dataclasses are slow to build)."""

    protected_bytes: bytes
    protected: dict[Any, Any]
    unprotected: Mapping[Any, Any]
    payload: bytes
    signature: bytes
    # The Sig_structure when the split below could cut it from the received bytes.
    signed: bytes | None = None

    @property
    def alg(self) -> Any:
        """The alg from the protected header only (an unprotected alg does not count)."""
        return self.protected.get(HEADER_ALG)

    def kid(self, protected_only: bool = False) -> bytes | object | None:
        """The kid: protected header first, then unprotected; ``KID_INVALID`` if not a bstr."""
        if HEADER_KID in self.protected:
            kid = self.protected[HEADER_KID]
        elif not protected_only and HEADER_KID in self.unprotected:
            kid = self.unprotected[HEADER_KID]
        else:
            return None
        return kid if type(kid) is bytes else KID_INVALID

    def to_be_signed(self) -> bytes:
        """``Sig_structure = ["Signature1", protected, h'', payload]`` as CBOR."""
        if self.signed is not None:
            return self.signed
        return b"".join(
            (
                _SIGNATURE1_PREFIX,
                _bstr_header(len(self.protected_bytes)),
                self.protected_bytes,
                b"\x40",
                _bstr_header(len(self.payload)),
                self.payload,
            )
        )


def _bstr_header(length: int) -> bytes:
    if length < 24:
        return bytes((0x40 | length,))
    if length < 0x100:
        return bytes((0x58, length))
    if length < 0x10000:
        return b"\x59" + length.to_bytes(2, "big")
    if length < 0x100000000:
        return b"\x5a" + length.to_bytes(4, "big")
    return b"\x5b" + length.to_bytes(8, "big")


def sig_structure(protected_bytes: bytes, payload: bytes) -> bytes:
    """The bytes a COSE_Sign1 signer signs (RFC 9052 section 4.4)."""
    return Sign1(protected_bytes, {}, {}, payload, b"").to_be_signed()


def parse_sign1(data: bytes) -> Sign1:
    """Decode a COSE_Sign1: bare, in tag 18, or in tag 61 around tag 18 (spec section 1)."""
    sign1 = _split_common_sign1(data)
    if sign1 is not None:
        return sign1
    try:
        item = loads(data, max_items=MAX_ENVELOPE_ITEMS)
    except CborError as exc:
        raise CoseFormatError(f"CBOR: {exc}") from None
    return sign1_from_item(item)


def string_span(data: bytes, pos: int, major: int = 0x40) -> tuple[int, int]:
    """(start, end) of the content of the definite byte string (``major`` 0x40) or text
    string (0x60) whose head is at ``pos``, its length in the head or in one or two more
    bytes and in its shortest form; (0, -1) for anything else. May raise IndexError.

    Shortest form only, so that the head can go into a Sig_structure as received: the
    decoder path encodes lengths that way. Anything else is left to the decoder."""
    info = data[pos] - major
    if 0 <= info < 24:
        return pos + 1, pos + 1 + info
    if info == 24:
        length = data[pos + 1]
        if length >= 24:
            return pos + 2, pos + 2 + length
    elif info == 25:
        length = data[pos + 1] << 8 | data[pos + 2]
        if length >= 0x100:
            return pos + 3, pos + 3 + length
    return 0, -1


def _split_common_sign1(data: bytes) -> Sign1 | None:
    """The shape nearly every credential and presentation has -- optional tag 61 around
    tag 18 or tag 18 alone, four items, byte strings with their lengths in at most two more
    bytes (shortest form), an empty unprotected map, nothing after -- split by hand; None
    for anything else, which the full decoder then decides. What it accepts, the decoder
    accepts too, with the same result (tested against it). It saves a general decode per
    COSE object right after OpenSSL ran, twice per decision."""
    try:
        pos = 0
        head = data[0]
        if head == 0xD8:
            if data[1] != TAG_CWT or data[2] != 0xD2:
                return None  # another tag, or tag 61 not around tag 18: the decoder says why
            pos = 3
        elif head == 0xD2:
            pos = 1
        if data[pos] != 0x84:
            return None
        protected_start = pos + 1
        protected_body, protected_end = string_span(data, protected_start)
        if protected_end < 0 or data[protected_end] != 0xA0:
            return None
        payload_start = protected_end + 1
        payload_body, payload_end = string_span(data, payload_start)
        if payload_end < 0:
            return None
        signature_body, signature_end = string_span(data, payload_end)
    except IndexError:
        return None
    if signature_end != len(data):
        return None  # short, or bytes after the item
    protected_bytes = data[protected_body:protected_end]
    protected = _PROTECTED_SEEN.get(protected_bytes)
    if protected is None:
        protected = _decode_protected(protected_bytes)
    # The protected and payload byte strings, heads included, are the Sig_structure's last
    # two items exactly as received (string_span takes shortest-form heads only).
    signed = b"".join(
        (_SIGNATURE1_PREFIX, data[protected_start:protected_end], b"\x40", data[payload_start:payload_end])
    )
    return Sign1(
        protected_bytes, protected, {}, data[payload_body:payload_end], data[signature_body:signature_end], signed
    )


def sign1_from_item(item: Any) -> Sign1:
    """Shape-check an already decoded CBOR item as a COSE_Sign1. (Inside a tag cbor2 hands
    arrays over as tuples and maps as frozendicts: both are accepted.)"""
    if type(item) is Tag:
        if item.tag == TAG_CWT:
            item = item.value
            if type(item) is not Tag or item.tag != TAG_SIGN1:
                raise CoseFormatError("tag 61 must wrap tag 18")
        if item.tag != TAG_SIGN1:
            raise CoseFormatError(f"unexpected CBOR tag {item.tag}")
        item = item.value
    if (type(item) is not list and type(item) is not tuple) or len(item) != 4:
        raise CoseFormatError("COSE_Sign1 must be an array of four items")
    protected_bytes, unprotected, payload, signature = item
    if type(protected_bytes) is not bytes:
        raise CoseFormatError("protected header is not a byte string")
    protected = _PROTECTED_SEEN.get(protected_bytes)
    if protected is None:
        protected = _decode_protected(protected_bytes)
    if type(unprotected) is not dict and type(unprotected) is not frozendict:
        raise CoseFormatError("unprotected header is not a map")
    if type(payload) is not bytes:
        raise CoseFormatError("payload is not a byte string")
    if type(signature) is not bytes:
        raise CoseFormatError("signature is not a byte string")
    return Sign1(protected_bytes, protected, unprotected, payload, signature)


# Protected headers repeat: every credential of an issuer carries the same {alg, kid} and
# every holder presentation the same {alg}. Remembering the decoded maps (never mutated by
# callers) saves a decode per signature on the hot path; the bound keeps hostile input
# from growing it.
_PROTECTED_SEEN: dict[bytes, dict[Any, Any]] = {}
_PROTECTED_SEEN_MAX = 256
_PROTECTED_SEEN_MAX_BYTES = 256  # real headers are 3-30 bytes; larger ones are decoded each time


def _decode_protected(protected_bytes: bytes) -> dict[Any, Any]:
    if not protected_bytes:
        return {}
    try:
        protected = loads(protected_bytes, max_items=MAX_HEADER_ITEMS)
    except CborError as exc:
        raise CoseFormatError(f"protected header: {exc}") from None
    if type(protected) is not dict:
        raise CoseFormatError("protected header is not a map")
    if len(protected_bytes) <= _PROTECTED_SEEN_MAX_BYTES:
        if len(_PROTECTED_SEEN) >= _PROTECTED_SEEN_MAX:
            _PROTECTED_SEEN.clear()
        _PROTECTED_SEEN[protected_bytes] = protected
    return protected


def is_supported_alg(alg: Any) -> bool:
    return type(alg) is int and alg in ALG_NAMES


# The key kind each alg needs (spec section 1: the alg and the key must fit together).
ALG_KEY_KINDS = {ALG_ES256: "P-256", ALG_ES384: "P-384", ALG_ES512: "P-521", ALG_EDDSA: "Ed25519", ALG_PS256: "RSA"}
_CURVE_KINDS = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
# alg -> (coordinate size in bytes, signature algorithm) for ECDSA. The ECDSA objects are
# built once: making one costs about a microsecond per call.
_ECDSA = {
    ALG_ES256: (32, ec.ECDSA(hashes.SHA256())),
    ALG_ES384: (48, ec.ECDSA(hashes.SHA384())),
    ALG_ES512: (66, ec.ECDSA(hashes.SHA512())),
}


def key_kind(public_key: Any) -> str:
    """"P-256", "P-384", "P-521", "Ed25519", "RSA" or "other". Worked out once per key (trust
    anchors when loaded, holder keys when built) and handed to :func:`verify_signature`:
    asking a key for its curve builds a new object every time."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return _CURVE_KINDS.get(public_key.curve.name, "other")
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(public_key, rsa.RSAPublicKey):
        return "RSA"
    return "other"


# Ed25519 public keys that prove nothing. OpenSSL verifies under any 32 bytes it can decode,
# including the eight points of small order (the 8-torsion subgroup: the identity, one
# point of order 2, two of order 4, four of order 8) and encodings of them that are not
# canonical. Under the identity A, R = B and S = 1 satisfy [S]B = R + [k]A for every
# message; under the others, for one message in eight. So such a key in a cnf lets anyone
# present without a holder key, and such a trust anchor lets anyone issue.
# The test follows libsodium: ge25519_is_canonical (y < p, y read with the sign bit
# cleared) and ge25519_has_small_order (the blocklist of small-order y-coordinates, compared
# with the sign bit cleared, so both signs of x are caught), in
# src/libsodium/crypto_core/ed25519/ref10/ed25519_ref10.c. The sign bit set on a point
# whose x is 0 (y = 1 or p - 1) is also non-canonical (RFC 8032 5.1.3 step 4): both are
# small-order y values, so the blocklist catches them.
_ED25519_P = 2**255 - 19
_ED25519_Y_MASK = (1 << 255) - 1
_ED25519_ORDER8_Y = 2707385501144840649318225287225658788936804267575313519463743609750303402022
_ED25519_SMALL_ORDER_Y = frozenset(
    {
        1,  # the identity (order 1)
        _ED25519_P - 1,  # (0, -1), order 2
        0,  # (+-sqrt(-1), 0), order 4
        _ED25519_ORDER8_Y,  # order 8, both signs of x
        _ED25519_P - _ED25519_ORDER8_Y,  # order 8, both signs of x
    }
)


def ed25519_key_problem(encoded: bytes) -> str | None:
    """Why a 32-byte Ed25519 public key must not be used, or None when it may.

    Cheap (an integer conversion and a set lookup), so it runs on every holder key built.
    Points that are not on the curve at all are left to OpenSSL, which refuses to verify
    under them."""
    y = int.from_bytes(encoded, "little") & _ED25519_Y_MASK
    if y >= _ED25519_P:
        return "a non-canonical Ed25519 encoding (y >= p)"
    if y in _ED25519_SMALL_ORDER_Y:
        return "an Ed25519 point of small order"
    return None


def _der_integer(value: bytes) -> bytes:
    value = value.lstrip(b"\0")
    if not value or value[0] & 0x80:
        value = b"\0" + value
    return b"\x02" + bytes((len(value),)) + value


def ecdsa_der(signature: bytes, size: int) -> bytes:
    """COSE's fixed-size r||s (RFC 9053 section 2.1) as the DER SEQUENCE OpenSSL verifies."""
    r, s = signature[:size], signature[size:]
    if r[0] and s[0] and size == 32:
        # Nearly every P-256 signature: no leading zero byte to strip, only a sign byte to add.
        r_head = b"\x02\x21\x00" if r[0] & 0x80 else b"\x02\x20"
        s_head = b"\x02\x21\x00" if s[0] & 0x80 else b"\x02\x20"
        return b"".join((bytes((0x30, len(r_head) + len(s_head) + 64)), r_head, r, s_head, s))
    body = _der_integer(r) + _der_integer(s)
    length = bytes((len(body),)) if len(body) < 0x80 else bytes((0x81, len(body)))
    return b"\x30" + length + body


def verify_signature(alg: Any, public_key: Any, signature: bytes, message: bytes, kind: str | None = None) -> bool:
    """True when ``signature`` is valid for ``message`` under ``alg`` and ``public_key``.

    ``kind`` is :func:`key_kind` of the key when the caller already knows it. A key whose
    kind does not fit the alg, or an ECDSA signature whose length is not twice the
    coordinate size, is simply invalid (False), never an exception.
    """
    if kind is None:
        kind = key_kind(public_key)
    if type(alg) is not int or ALG_KEY_KINDS.get(alg) != kind:
        return False
    try:
        ecdsa = _ECDSA.get(alg)
        if ecdsa is not None:
            size, algorithm = ecdsa
            if len(signature) != 2 * size:
                return False
            public_key.verify(ecdsa_der(signature, size), message, algorithm)
        elif alg == ALG_EDDSA:
            public_key.verify(signature, message)
        else:
            public_key.verify(signature, message, _PSS, _SHA256)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True
