"""Interop with pycose, an independent COSE implementation (RFC 9052/9053).

Round trips between our own signer (reader/gatepass/authority.py) and our own verifier
(reader/gatepass/cose.py) cannot catch a mistake both share: a Sig_structure built the same
wrong way on both sides, ECDSA in DER instead of r || s, a wrong PSS salt length. So here:

* pycose verifies what the test authority signs: credentials from ``issue_credential`` (every
  issuer alg, every tag form), status list tokens, QR and NFC holder presentations;
* our verifier accepts what pycose signs: a bare Sign1 with the kid of a PEM ``PUBLIC KEY``,
  a credential with the claims of spec 1 inside a holder presentation (granted by
  ``decide_text``), a status list token (read by ``verify_status_token``).

pycose 1.1 verifies ECDSA with python-ecdsa (not the ``cryptography`` library we use), and
PS256 with a PSS salt length equal to the digest size, 32 bytes, as the spec requires, so no
combination needs to be skipped.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from pycose.algorithms import EdDSA, Es256
from pycose.headers import KID, Algorithm
from pycose.keys import CoseKey, EC2Key, OKPKey, RSAKey
from pycose.messages import Sign1Message

from reader.gatepass.authority import (
    Holder,
    Issuer,
    build_status_list,
    issue_credential,
    sign1,
)
from reader.gatepass.cose import ALG_PS256, HEADER_KID, parse_sign1, verify_signature
from reader.gatepass.decide import Clock, decide_nfc, decide_text
from reader.gatepass.envelope import open_text, seal_text
from reader.gatepass.statuslist import STATUS_LIST_TYP, StatusLists, TokenRejected, verify_status_token
from reader.gatepass.trust import TrustStore

ISSUER_ALGS = ("ES256", "ES384", "ES512", "EdDSA", "PS256")
HOLDER_ALGS = ("ES256", "EdDSA")
ISSUED = 1_800_000_000
AT = ISSUED + 600
_CURVES = {"secp256r1": ("P_256", 32), "secp384r1": ("P_384", 48), "secp521r1": ("P_521", 66)}


def _int_bytes(value: int, size: int | None = None) -> bytes:
    return value.to_bytes(size if size is not None else (value.bit_length() + 7) // 8, "big")


def pycose_public_key(public_key: Any) -> CoseKey:
    """A pycose key built from the raw numbers of a ``cryptography`` public key, so that
    pycose does not reuse any of our encoding code."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        crv, size = _CURVES[public_key.curve.name]
        numbers = public_key.public_numbers()
        return EC2Key(crv=crv, x=_int_bytes(numbers.x, size), y=_int_bytes(numbers.y, size))
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return OKPKey(crv="ED25519", x=public_key.public_bytes_raw())
    if isinstance(public_key, rsa.RSAPublicKey):
        numbers = public_key.public_numbers()
        return RSAKey(n=_int_bytes(numbers.n), e=_int_bytes(numbers.e))
    raise TypeError(type(public_key))


def pycose_decode(data: bytes) -> Sign1Message:
    """A pycose Sign1Message from any of the three forms spec 1 allows.

    ``Sign1Message.decode`` takes only the tag-18 form, and with cbor2 >= 6 (which decodes
    what a tag holds as a tuple and a frozendict) it refuses even that ("Bytes cannot be
    decoded as COSE message"): pycose 1.1 checks for a list. So the outer CBOR is decoded
    here and handed to pycose's own ``from_cose_obj`` as the list and dict it expects. The
    protected header and payload byte strings, all the signature covers, pass unchanged.
    """
    item = cbor2.loads(data)
    if isinstance(item, cbor2.CBORTag) and item.tag == 61:
        item = item.value
    if isinstance(item, cbor2.CBORTag):
        assert item.tag == 18
        item = item.value
    protected, unprotected, payload, signature = item
    return Sign1Message.from_cose_obj([protected, dict(unprotected), payload, signature], True)


def pycose_verifies(data: bytes, public_key: Any) -> bool:
    message = pycose_decode(data)
    message.key = pycose_public_key(public_key)
    return message.verify_signature()


@pytest.fixture(scope="module")
def issuers() -> dict[str, Issuer]:
    return {alg: Issuer.generate(alg, f"Interop {alg}") for alg in ISSUER_ALGS}


@pytest.fixture(scope="module")
def holders() -> dict[str, Holder]:
    return {alg: Holder.generate(alg) for alg in HOLDER_ALGS}


@pytest.fixture(scope="module")
def trust(issuers: dict[str, Issuer], tmp_path_factory: pytest.TempPathFactory) -> TrustStore:
    path = tmp_path_factory.mktemp("interop") / "issuers.pem"
    path.write_bytes(b"".join(issuer.certificate_pem for issuer in issuers.values()))
    return TrustStore.from_pem_files([path])


def trust_label(trust: TrustStore, alg: str) -> str:
    """The label of the anchor whose certificate says ``CN=Interop <alg>``."""
    (label,) = [anchor.label for anchor in trust if anchor.subject == f"CN=Interop {alg}"]
    return label


def holder_public_key(holder: Holder) -> Any:
    return holder.private_key.public_key()


# --- pycose verifies what the authority signs ---------------------------------------------------


@pytest.mark.parametrize("tag", [18, 61, None], ids=["tag18", "tag61", "bare"])
@pytest.mark.parametrize("alg", ISSUER_ALGS)
def test_pycose_verifies_credentials(
    issuers: dict[str, Issuer], holders: dict[str, Holder], trust: TrustStore, alg: str, tag: int | None
) -> None:
    issuer = issuers[alg]
    credential = issue_credential(
        issuer,
        sub="E1",
        iat=ISSUED,
        exp=ISSUED + 86_400,
        holder=holders["ES256"],
        status=("https://pki.example/s1", 3),
        groups=["lobby"],
        tag=tag,
    )
    message = pycose_decode(credential)
    message.key = pycose_public_key(issuer.certificate.public_key())
    assert message.verify_signature()
    # The kid pycose reads is the one a gate computes from the certificate PEM it trusts.
    assert [anchor.label for anchor in trust.lookup(message.get_attr(KID))] == [trust_label(trust, alg)]
    assert message.get_attr(Algorithm).fullname == alg.upper()
    assert cbor2.loads(message.payload)[2] == "E1"


@pytest.mark.parametrize("alg", ISSUER_ALGS)
def test_pycose_verifies_status_lists(issuers: dict[str, Issuer], alg: str) -> None:
    issuer = issuers[alg]
    token = build_status_list(
        issuer,
        uri="https://pki.example/s1",
        size=64,
        values={3: 1, 9: 2},
        bits=2,
        iat=ISSUED,
        exp=ISSUED + 3_600,
        ttl=300,
    )
    message = pycose_decode(token)
    message.key = pycose_public_key(issuer.certificate.public_key())
    assert message.verify_signature()
    assert message.phdr[16] == STATUS_LIST_TYP


@pytest.mark.parametrize("holder_alg", HOLDER_ALGS)
@pytest.mark.parametrize("alg", ISSUER_ALGS)
def test_pycose_verifies_presentations(
    issuers: dict[str, Issuer], holders: dict[str, Holder], alg: str, holder_alg: str
) -> None:
    issuer, holder = issuers[alg], holders[holder_alg]
    credential = issue_credential(issuer, sub="E2", iat=ISSUED, exp=ISSUED + 86_400, holder=holder)
    for presentation in (
        open_text(holder.present_qr(credential, iat=AT)),  # through the QR envelope
        holder.present(credential, iat=AT, rnonce=bytes(16), gate_id="g1"),  # NFC
    ):
        assert pycose_verifies(presentation, holder_public_key(holder))
        inner = cbor2.loads(pycose_decode(presentation).payload)[1]
        assert inner == credential
        assert pycose_verifies(inner, issuer.certificate.public_key())


def test_pycose_refuses_a_tampered_signature(issuers: dict[str, Issuer]) -> None:
    """The checks above mean something only if pycose does say False."""
    for alg, issuer in issuers.items():
        credential = bytearray(issue_credential(issuer, sub="E3", iat=ISSUED, exp=ISSUED + 1))
        credential[-1] ^= 1
        assert not pycose_verifies(bytes(credential), issuer.certificate.public_key()), alg


def test_pss_salt_other_than_32_is_refused_by_both(issuers: dict[str, Issuer]) -> None:
    """Spec 1: PS256 uses salt 32. A maximal salt is valid RSASSA-PSS, yet neither pycose nor
    our verifier may accept it, or the two sides would disagree with other issuers."""
    issuer = issuers["PS256"]
    protected = cbor2.dumps({1: ALG_PS256, HEADER_KID: issuer.kid})
    payload = cbor2.dumps({1: "x", 2: "E4", 4: ISSUED + 1, 6: ISSUED, 7: bytes(16)})
    to_be_signed = cbor2.dumps(["Signature1", protected, b"", payload])
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH)
    signature = issuer.private_key.sign(to_be_signed, pss, hashes.SHA256())
    data = cbor2.dumps(cbor2.CBORTag(18, [protected, {}, payload, signature]))
    public_key = issuer.certificate.public_key()
    assert not pycose_verifies(data, public_key)
    parsed = parse_sign1(data)
    assert not verify_signature(ALG_PS256, public_key, parsed.signature, parsed.to_be_signed())


# --- our verifier accepts what pycose signs ---------------------------------------------------


@dataclass(frozen=True)
class PycoseIssuer:
    """An issuer whose keys pycose generated and whose signatures pycose computes; the gate
    trusts it through a PEM ``PUBLIC KEY`` file, so its kid is SHA-256(SPKI DER)[:8]."""

    key: CoseKey
    alg: Any
    trust: TrustStore

    @property
    def kid(self) -> bytes:
        (anchor,) = self.trust
        return anchor.kid

    def sign(self, payload: bytes, extra_protected: dict[Any, Any] | None = None) -> bytes:
        message = Sign1Message(phdr={Algorithm: self.alg, KID: self.kid, **(extra_protected or {})}, payload=payload)
        message.key = self.key
        return message.encode()


def _cryptography_public_key(key: CoseKey) -> Any:
    if isinstance(key, EC2Key):
        numbers = ec.EllipticCurvePublicNumbers(
            int.from_bytes(key.x, "big"), int.from_bytes(key.y, "big"), ec.SECP256R1()
        )
        return numbers.public_key()
    return ed25519.Ed25519PublicKey.from_public_bytes(key.x)


@pytest.fixture(scope="module", params=["ES256", "EdDSA"])
def pycose_issuer(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> PycoseIssuer:
    if request.param == "ES256":
        key, alg = EC2Key.generate_key(crv="P_256"), Es256
    else:
        key, alg = OKPKey.generate_key(crv="ED25519"), EdDSA
    public_key = _cryptography_public_key(key)
    pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    path: Path = tmp_path_factory.mktemp("pycose") / "issuer-key.pem"
    path.write_bytes(pem)
    assert pem.startswith(b"-----BEGIN PUBLIC KEY-----")
    return PycoseIssuer(key, alg, TrustStore.from_pem_files([path]))


def spec1_claims(cose_key: dict[int, Any], **more: Any) -> bytes:
    """Every claim of spec 1's table, encoded by cbor2 (not by our authority); ``more`` adds
    claims by name (``status``)."""
    claims: dict[Any, Any] = {
        1: "pycose-issuer",
        2: "E5",
        4: ISSUED + 86_400,
        5: ISSUED,
        6: ISSUED,
        7: bytes(range(16)),
        8: {1: cose_key},
        "name": "Pat",
        "org": "ACME",
        "grp": ["lobby"],
        "car": "mobile",
    }
    if "status" in more:
        claims[65535] = more["status"]
    return cbor2.dumps(claims)


def test_our_parser_verifies_a_pycose_sign1(pycose_issuer: PycoseIssuer) -> None:
    data = pycose_issuer.sign(b"any payload")
    parsed = parse_sign1(data)
    assert parsed.kid() == pycose_issuer.kid and parsed.payload == b"any payload"
    (anchor,) = pycose_issuer.trust.lookup(pycose_issuer.kid)
    assert verify_signature(parsed.alg, anchor.public_key, parsed.signature, parsed.to_be_signed())
    assert not verify_signature(parsed.alg, anchor.public_key, parsed.signature, parsed.to_be_signed() + b"x")


@pytest.mark.parametrize("holder_alg", HOLDER_ALGS)
def test_pycose_credential_in_a_presentation_is_granted(
    pycose_issuer: PycoseIssuer, holders: dict[str, Holder], holder_alg: str
) -> None:
    holder = holders[holder_alg]
    credential = pycose_issuer.sign(spec1_claims(holder.cose_key()))
    text = holder.present_qr(credential, iat=AT)
    decision = decide_text(text, clock=Clock(AT), trust=pycose_issuer.trust, lists=StatusLists())
    assert decision.granted, decision
    assert (decision.subject, decision.issuer, decision.kid) == ("E5", "pycose-issuer", pycose_issuer.kid)
    answer = holder.present(credential, iat=AT, rnonce=b"r" * 16)
    assert decide_nfc(answer, b"r" * 16, clock=Clock(AT), trust=pycose_issuer.trust, lists=StatusLists()).granted


@pytest.mark.parametrize("holder_alg", HOLDER_ALGS)
def test_pycose_holder_presentation_is_granted(pycose_issuer: PycoseIssuer, holder_alg: str) -> None:
    """Both layers signed by pycose, with a holder key pycose generated and bound in cnf by
    its public coordinates (spec 1 COSE_Key shapes)."""
    holder_key: CoseKey
    if holder_alg == "ES256":
        holder_key, alg = EC2Key.generate_key(crv="P_256"), Es256
        cnf_key = {1: 2, -1: 1, -2: holder_key.x, -3: holder_key.y}
    else:
        holder_key, alg = OKPKey.generate_key(crv="ED25519"), EdDSA
        cnf_key = {1: 1, -1: 6, -2: holder_key.x}
    credential = pycose_issuer.sign(spec1_claims(cnf_key))
    presentation = Sign1Message(phdr={Algorithm: alg}, payload=cbor2.dumps({1: credential, 2: AT, 3: b"n" * 16}))
    presentation.key = holder_key
    decision = decide_text(
        seal_text(presentation.encode()), clock=Clock(AT), trust=pycose_issuer.trust, lists=StatusLists()
    )
    assert decision.granted, decision


def test_pycose_status_list_is_read(pycose_issuer: PycoseIssuer, holders: dict[str, Holder]) -> None:
    uri = "https://pki.example/pycose"
    holder = holders["ES256"]
    lst = bytes([0b0000_0100])  # 2 bits per entry: index 1 holds 1 (revoked)
    token = pycose_issuer.sign(
        cbor2.dumps({2: uri, 6: ISSUED, 65533: {"bits": 2, "lst": zlib.compress(lst)}}), {16: STATUS_LIST_TYP}
    )
    status = verify_status_token(token, pycose_issuer.trust, now=AT)
    assert (status.value(0), status.value(1)) == (0, 1)
    lists = StatusLists([status])
    for idx, reason in ((0, "granted"), (1, "revoked")):
        status_claim = {"status_list": {"idx": idx, "uri": uri}}
        credential = pycose_issuer.sign(spec1_claims(holder.cose_key(), status=status_claim))
        decision = decide_text(
            holder.present_qr(credential, iat=AT), clock=Clock(AT), trust=pycose_issuer.trust, lists=lists
        )
        assert decision.reason == reason


def test_authority_sign1_matches_pycose_sig_structure(issuers: dict[str, Issuer]) -> None:
    """pycose rebuilds Sig_structure from the decoded message; ours signs the bytes we
    build. Equal to-be-signed bytes are what makes the signatures above interoperate."""
    issuer = issuers["EdDSA"]
    data = sign1(b"\xa0", issuer.private_key, -8, protected={HEADER_KID: issuer.kid})
    message = pycose_decode(data)
    assert message._create_sig_structure() == parse_sign1(data).to_be_signed()


def test_headers_where_other_cose_libraries_put_them(pycose_issuer: PycoseIssuer, holders: dict[str, Holder]) -> None:
    """Many COSE producers (HCERT issuers among them) put the kid in the unprotected header:
    spec 1 accepts that for a credential and spec 3 (amended 2026-11-30) for a status list,
    but an alg only in the unprotected header is unsupported_alg, and a status list's typ
    counts only when protected."""
    holder = holders["EdDSA"]
    clock, lists = Clock(AT), StatusLists()

    def pycose_sign1(phdr: dict[Any, Any], uhdr: dict[Any, Any], payload: bytes) -> bytes:
        message = Sign1Message(phdr=phdr, uhdr=uhdr, payload=payload)
        message.key = pycose_issuer.key
        return message.encode()

    kid = pycose_issuer.kid
    credential = pycose_sign1({Algorithm: pycose_issuer.alg}, {KID: kid}, spec1_claims(holder.cose_key()))
    decision = decide_text(holder.present_qr(credential, iat=AT), clock=clock, trust=pycose_issuer.trust, lists=lists)
    assert decision.granted, decision

    credential = pycose_sign1({KID: kid}, {Algorithm: pycose_issuer.alg}, spec1_claims(holder.cose_key()))
    decision = decide_text(holder.present_qr(credential, iat=AT), clock=clock, trust=pycose_issuer.trust, lists=lists)
    assert decision.reason == "unsupported_alg"

    claims = cbor2.dumps({2: "u", 6: ISSUED, 65533: {"bits": 1, "lst": zlib.compress(b"\x00")}})
    token = pycose_sign1({Algorithm: pycose_issuer.alg, 16: STATUS_LIST_TYP}, {KID: kid}, claims)
    assert verify_status_token(token, pycose_issuer.trust, now=AT).kid == kid
    token = pycose_sign1({Algorithm: pycose_issuer.alg}, {KID: kid, 16: STATUS_LIST_TYP}, claims)
    with pytest.raises(TokenRejected, match="typ"):
        verify_status_token(token, pycose_issuer.trust, now=AT)
