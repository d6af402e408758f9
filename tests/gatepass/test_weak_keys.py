"""Public keys that prove nothing are refused wherever a key enters (issue 8, item 1).

OpenSSL verifies Ed25519 signatures under a public key of small order, and under
non-canonical encodings of one: under the identity, R = B and S = 1 satisfy the verification
equation for every message, under a point of order 2, 4 or 8 for one message in 2, 4 or 8.
The tests below find the small-order points with their own curve arithmetic (not the
module's table), forge with each, show that OpenSSL accepts the forgery and that the gate
would grant it without the check, and that the gate refuses it: as a holder key in ``cnf``
(``bad_holder_signature``, spec 2) and as a trust anchor (a TrustStoreError naming the file
and the block). RSA anchors under 2048 bits or with an exponent other than 65537 are
refused the same way.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from pathlib import Path

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

import reader.gatepass.decide as decide_module
import reader.gatepass.trust as trust_module
from reader.gatepass.authority import Issuer
from reader.gatepass.cose import ALG_EDDSA, TAG_SIGN1, ed25519_key_problem, sig_structure, verify_signature
from reader.gatepass.decide import Clock, decide_nfc, decide_text
from reader.gatepass.envelope import seal_text
from reader.gatepass.errors import TrustStoreError
from reader.gatepass.statuslist import StatusLists
from reader.gatepass.trust import TrustAnchor, TrustStore, anchors_from_pem, kid_for_der
from tests.support import VECTORS

NOW = 1_800_000_000

# --- Edwards25519 arithmetic, written here so the test does not lean on the module's table --

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493  # the order of the base point
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)
IDENTITY = (0, 1)
Point = tuple[int, int]


def add(p1: Point, p2: Point) -> Point:
    (x1, y1), (x2, y2) = p1, p2
    t = D * x1 * x2 * y1 * y2 % P
    x3 = (x1 * y2 + x2 * y1) * pow(1 + t, P - 2, P) % P
    y3 = (y1 * y2 + x1 * x2) * pow(1 - t, P - 2, P) % P
    return x3, y3


def times(k: int, point: Point) -> Point:
    out = IDENTITY
    while k:
        if k & 1:
            out = add(out, point)
        point = add(point, point)
        k >>= 1
    return out


def x_for(y: int, sign: int) -> int | None:
    """RFC 8032 5.1.3 without the canonicity checks (as a lax decoder does it)."""
    u, v = (y * y - 1) % P, (D * y * y + 1) % P
    x = u * pow(v, 3, P) * pow(u * pow(v, 7, P), (P - 5) // 8, P) % P
    if v * x * x % P != u:
        x = x * SQRT_M1 % P
        if v * x * x % P != u:
            return None
    return P - x if (x & 1) != sign and x else x


def encode(y: int, sign: int) -> bytes:
    raw = bytearray(y.to_bytes(32, "little"))
    raw[31] |= sign << 7
    return bytes(raw)


def decode_lax(encoded: bytes) -> Point | None:
    """How OpenSSL reads a public key: y taken modulo p, x = 0 whatever the sign bit."""
    value = int.from_bytes(encoded, "little")
    y, sign = (value & ((1 << 255) - 1)) % P, value >> 255
    x = x_for(y, sign)
    return None if x is None else (x, y)


def torsion_points() -> list[Point]:
    """E[8], found as the multiples of [L]Q for a point Q whose [L]Q has order 8."""
    for seed in range(2, 1000):
        x = x_for(seed, 0)
        if x is None:
            continue
        t = times(L, (x, seed))
        if times(4, t) != IDENTITY:  # order 8
            return [times(i, t) for i in range(8)]
    raise AssertionError("no point with an order-8 component found")


TORSION = torsion_points()


def small_order_encodings() -> Iterator[tuple[str, bytes]]:
    """Every 32 bytes a lax decoder reads as a point of E[8]: the 8 canonical encodings, and
    y + p (when below 2^255) and the sign bit set on x = 0, which are not canonical."""
    ys = sorted({y for _x, y in TORSION})
    for y in ys:
        for sign in (0, 1):
            point = decode_lax(encode(y, sign))
            order = next(k for k in (1, 2, 4, 8) if times(k, point) == IDENTITY)
            canonical = not (point[0] == 0 and sign)
            yield f"order{order}-y{y % 1000:03d}-s{sign}{'' if canonical else '-noncanonical'}", encode(y, sign)
            if y + P < 2**255:
                yield f"order{order}-y{y % 1000:03d}+p-s{sign}-noncanonical", encode(y + P, sign)


ENCODINGS = dict(small_order_encodings())
B_ENCODED = encode(4 * pow(5, P - 2, P) % P, 0)  # the base point
FORGED_SIGNATURE = B_ENCODED + (1).to_bytes(32, "little")  # R = B, S = 1


def test_the_small_order_encodings_are_those_of_e8() -> None:
    assert len(set(TORSION)) == 8 and all(times(8, point) == IDENTITY for point in TORSION)
    assert all(decode_lax(raw) in TORSION for raw in ENCODINGS.values())
    canonical = [name for name in ENCODINGS if "noncanonical" not in name]
    assert len(canonical) == 8  # one per point
    assert len(ENCODINGS) == 14  # and six non-canonical variants


@pytest.mark.parametrize("name", ENCODINGS)
def test_small_order_holder_key_encodings_are_named(name: str) -> None:
    problem = ed25519_key_problem(ENCODINGS[name])
    assert problem is not None
    assert ("non-canonical" in problem) == ("+p" in name)


def test_ordinary_and_other_noncanonical_ed25519_keys() -> None:
    for _ in range(50):
        raw = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes_raw()
        assert ed25519_key_problem(raw) is None
    for y in range(P, 2**255):  # every y >= p: not canonical, small order or not
        assert ed25519_key_problem(encode(y, 0)) is not None


def _grind(make_message, public: bytes) -> tuple[bytes, bytes]:
    """(nonce, message) for which [k]A is the identity for any A of order dividing 8, so that
    R = B, S = 1 verifies under A: k = SHA-512(R || A || M) mod L must be a multiple of 8."""
    for counter in range(1000):
        nonce = counter.to_bytes(16, "big")
        message = make_message(nonce)
        k = int.from_bytes(hashlib.sha512(B_ENCODED + public + message).digest(), "little") % L
        if k % 8 == 0:
            return nonce, message
    raise AssertionError("no nonce found")


def _forged_presentation(issuer: Issuer, public: bytes, nfc: bool = False) -> tuple[bytes, bytes]:
    """(COSE bytes, nonce) of a presentation nobody signed, for a credential whose cnf is
    ``public``; OpenSSL verifies its signature."""
    claims = {1: "iss", 2: "E1", 4: NOW + 3600, 6: NOW - 60, 7: b"c" * 16, 8: {1: {1: 1, -1: 6, -2: public}}}
    credential = issuer.sign(cbor2.dumps(claims))
    protected = cbor2.dumps({1: ALG_EDDSA})

    def payload(nonce: bytes) -> bytes:
        return cbor2.dumps({1: credential, 2: NOW, 4 if nfc else 3: nonce})

    nonce, message = _grind(lambda nonce: sig_structure(protected, payload(nonce)), public)
    assert verify_signature(ALG_EDDSA, ed25519.Ed25519PublicKey.from_public_bytes(public), FORGED_SIGNATURE, message)
    return cbor2.dumps(cbor2.CBORTag(TAG_SIGN1, [protected, {}, payload(nonce), FORGED_SIGNATURE])), nonce


@pytest.mark.parametrize("name", ENCODINGS)
def test_small_order_holder_keys_are_refused(
    issuer: Issuer, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    trust = TrustStore(anchors_from_pem(issuer.certificate_pem, "issuer"))
    cose, _nonce = _forged_presentation(issuer, ENCODINGS[name])
    text = seal_text(cose)
    decision = decide_text(text, clock=Clock(NOW), trust=trust, lists=StatusLists())
    assert decision.reason == "bad_holder_signature", decision
    assert decision.checks["holder_signature"] == "fail"
    assert decision.checks["issuer_signature"] == "ok"
    assert "small order" in decision.detail or "non-canonical" in decision.detail

    # Without the check the forgery is granted: OpenSSL alone does not refuse these keys.
    monkeypatch.setattr(decide_module, "ed25519_key_problem", lambda _raw: None)
    assert decide_text(text, clock=Clock(NOW), trust=trust, lists=StatusLists()).granted


@pytest.mark.parametrize("name", ["order1-y001-s0", "order8-y022-s1"])
def test_small_order_holder_keys_are_refused_over_nfc(issuer: Issuer, name: str) -> None:
    trust = TrustStore(anchors_from_pem(issuer.certificate_pem, "issuer"))
    cose, rnonce = _forged_presentation(issuer, ENCODINGS[name], nfc=True)
    decision = decide_nfc(cose, rnonce, clock=Clock(NOW), trust=trust, lists=StatusLists())
    assert decision.reason == "bad_holder_signature", decision


# --- trust anchors ----------------------------------------------------------------------


def _spki_pem(public: bytes) -> bytes:
    """A PEM PUBLIC KEY holding the raw Ed25519 bytes (id-Ed25519 SubjectPublicKeyInfo)."""
    public_key = ed25519.Ed25519PublicKey.from_public_bytes(public)
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _certificate_pem(public_key, signer=None) -> bytes:
    """A self-issued certificate for ``public_key``, signed by another key (a trust anchor's
    certificate is only a key holder in v1: its signature is not checked)."""
    signer = signer or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "weak anchor")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(signer, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize("name", ENCODINGS)
def test_small_order_trust_anchors_are_refused(issuer: Issuer, name: str, tmp_path: Path) -> None:
    public = ENCODINGS[name]
    bare = _spki_pem(public)
    cert = _certificate_pem(ed25519.Ed25519PublicKey.from_public_bytes(public))
    good = issuer.certificate_pem
    why = "(small order|non-canonical)"
    bundles = ((bare, 1, "PUBLIC KEY"), (good + cert, 2, "CERTIFICATE"), (good + good + bare, 3, "PUBLIC KEY"))
    for pem, block, kind in bundles:
        path = tmp_path / "issuers.pem"
        path.write_bytes(pem)
        with pytest.raises(TrustStoreError, match=rf"trust file {path}, block {block} \({kind}\): .*{why}") as err:
            TrustStore.from_pem_files([path])
        assert "cannot be a trust anchor" in str(err.value)
    with pytest.raises(TrustStoreError, match=rf"trust anchor made-in-code: .*{why}"):
        TrustAnchor(b"k" * 8, ed25519.Ed25519PublicKey.from_public_bytes(public), "made-in-code")


def test_small_order_trust_anchor_would_let_anyone_issue(monkeypatch: pytest.MonkeyPatch) -> None:
    """Why the anchors are refused: a static pass "signed" with R = B, S = 1 under an
    identity-key anchor verifies, so the gate would admit whoever wrote it."""
    public = ENCODINGS["order1-y001-s0"]
    pem = _spki_pem(public)
    monkeypatch.setattr(trust_module, "anchor_key_problem", lambda _key: None)
    (anchor,) = anchors_from_pem(pem, "weak")
    assert anchor.kid == kid_for_der(anchor.public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))
    protected = cbor2.dumps({1: ALG_EDDSA, 4: anchor.kid})

    def claims(cti: bytes) -> bytes:
        return cbor2.dumps({1: "forger", 2: "E666", 4: NOW + 3600, 6: NOW - 60, 7: cti})

    cti, _message = _grind(lambda cti: sig_structure(protected, claims(cti)), public)
    cose = cbor2.dumps(cbor2.CBORTag(TAG_SIGN1, [protected, {}, claims(cti), FORGED_SIGNATURE]))
    decision = decide_text(seal_text(cose), clock=Clock(NOW), trust=TrustStore([anchor]), lists=StatusLists(),
                           policy=decide_module.Policy(allow_static=True))
    assert decision.granted and decision.subject == "E666"


def _rsa_public(bits: int, exponent: int) -> rsa.RSAPublicKey:
    """An RSA public key of any size and exponent (the modulus need not be a real product
    of two primes: only its size and the exponent are looked at)."""
    modulus = (1 << (bits - 1)) | int.from_bytes(hashlib.sha512(bytes(bits % 251)).digest() * 8, "big") % (
        1 << (bits - 1)) | 1
    return rsa.RSAPublicNumbers(exponent, modulus).public_key()


@pytest.mark.parametrize(
    ("bits", "exponent", "match"),
    [
        (512, 65537, "of 512 bits is too weak"),
        (1024, 65537, "of 1024 bits is too weak"),
        (2047, 65537, "of 2047 bits is too weak"),
        (2048, 3, "public exponent 3 is refused"),
        (2048, 17, "public exponent 17 is refused"),
        (3072, 2**32 + 15, f"public exponent {2**32 + 15} is refused"),
    ],
)
def test_weak_rsa_trust_anchors_are_refused(bits: int, exponent: int, match: str, tmp_path: Path) -> None:
    public_key = _rsa_public(bits, exponent)
    assert public_key.key_size == bits
    bare = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    cert = _certificate_pem(public_key)
    good = _certificate_pem(ec.generate_private_key(ec.SECP256R1()).public_key())
    for pem, block, kind in ((bare, 1, "PUBLIC KEY"), (good + cert, 2, "CERTIFICATE")):
        path = tmp_path / "rsa.pem"
        path.write_bytes(pem)
        where = rf"trust file {path}, block {block} \({kind}\)"
        with pytest.raises(TrustStoreError, match=rf"{where}: an RSA key .*{match}"):
            TrustStore.from_pem_files([path])
    with pytest.raises(TrustStoreError, match="trust anchor code: an RSA key"):
        TrustAnchor(b"k" * 8, public_key, "code")


@pytest.mark.parametrize("bits", [2048, 3072, 4096])
def test_rsa_trust_anchors_of_2048_bits_or_more_with_65537_load(bits: int) -> None:
    pem = _rsa_public(bits, 65537).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (anchor,) = anchors_from_pem(pem, "rsa")
    assert anchor.kind == "RSA"


def test_vector_trust_anchors_all_load() -> None:
    vectors = VECTORS
    store = TrustStore.from_pem_files(sorted(vectors.glob("issuer-*.pem")))
    assert sorted(anchor.kind for anchor in store) == ["Ed25519", "Ed25519", "P-256", "P-384", "P-521", "RSA"]


def test_trust_file_key_of_a_type_openssl_does_not_know_is_a_clear_error() -> None:
    """A SubjectPublicKeyInfo with an unknown algorithm OID made cryptography raise
    UnsupportedAlgorithm, which is no ValueError and escaped the loader."""
    import base64

    der = bytes.fromhex("302a300506032a0304032100") + bytes(32)  # OID 1.2.3.4
    pem = b"-----BEGIN PUBLIC KEY-----\n" + base64.encodebytes(der) + b"-----END PUBLIC KEY-----\n"
    with pytest.raises(TrustStoreError, match=r"trust file odd.pem, block 1 \(PUBLIC KEY\): does not parse"):
        anchors_from_pem(pem, "odd.pem")


def test_an_ordinary_forgery_attempt_is_still_a_bad_signature(issuer: Issuer) -> None:
    """Control: with a real Ed25519 holder key, R = B and S = 1 verify for no message."""
    public = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    claims = {1: "iss", 2: "E1", 4: NOW + 3600, 6: NOW - 60, 7: b"c" * 16, 8: {1: {1: 1, -1: 6, -2: public}}}
    credential = issuer.sign(cbor2.dumps(claims))
    protected = cbor2.dumps({1: ALG_EDDSA})
    payload = cbor2.dumps({1: credential, 2: NOW, 3: b"n" * 16})
    cose = cbor2.dumps([protected, {}, payload, FORGED_SIGNATURE])
    trust = TrustStore(anchors_from_pem(issuer.certificate_pem, "issuer"))
    decision = decide_text(seal_text(cose), clock=Clock(NOW), trust=trust, lists=StatusLists())
    assert decision.reason == "bad_holder_signature"
    assert decision.detail == "the holder signature does not verify"
