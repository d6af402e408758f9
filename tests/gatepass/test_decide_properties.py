"""Property tests for the decision (reader/gatepass/decide.py, spec sections 1, 2, 7).

``decide_text`` and ``decide_nfc`` run on whatever a scanner or a phone sends: they must
never raise, every decision must be well formed (one reason from section 7, exactly the
section 7 checks, nothing but "skipped" after a format failure), and no corruption of a
real credential may turn into a grant.

Inputs come from three sources: random text and bytes; the vector payloads of
tests/data/gatepass-v1/cases.json with bytes flipped, inserted and deleted; and COSE
structures built with cbor2 and signed with keys made here (added to a test trust store),
so that wrong-but-well-signed claims, headers, keys and tags reach the checks past the
signature.

Example counts come from ``GATE_HYPOTHESIS_EXAMPLES`` (default 300; the profile in
tests/conftest.py); the 10,000-example run:

    GATE_HYPOTHESIS_EXAMPLES=10000 .venv/bin/pytest tests/gatepass -k properties
"""

# Over ~400 lines on purpose: the properties of one function, decide(), with the strategies that build its
# hostile inputs; they share those strategies.

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import given
from hypothesis import strategies as st

from reader.gatepass.cbor import loads
from reader.gatepass.claims import parse_credential_claims
from reader.gatepass.cose import CoseFormatError, parse_sign1, sig_structure
from reader.gatepass.decide import (
    CHECKS,
    GRANTED,
    REASONS,
    Clock,
    Decision,
    Policy,
    decide_nfc,
    decide_text,
)
from reader.gatepass.envelope import base45_encode, open_text, seal_text
from reader.gatepass.statuslist import StatusLists, verify_status_token
from reader.gatepass.trust import TrustAnchor, TrustStore
from tests.support import VECTORS

DATA = VECTORS
CASES: list[dict[str, Any]] = json.loads((DATA / "cases.json").read_text())["cases"]
NOW = CASES[0]["at"]
assert all(case["at"] == NOW for case in CASES), "the tests below use one clock for every case"

VECTOR_TRUST = TrustStore.from_pem_files(sorted(DATA.glob("issuer-*.pem")))
LISTS = StatusLists(
    verify_status_token((DATA / name).read_bytes(), VECTOR_TRUST, now=NOW) for name in ("status-1.cwt", "status-2.cwt")
)
CLOCK = Clock(NOW)
FORMAT_REASONS = {"malformed", "too_large"}
CHECK_VALUES = {"ok", "fail", "skipped"}
DEFAULT_POLICY = Policy()

# The check each reason is reported on (spec 7); reasons missing here have no check of their own.
REASON_CHECK = {
    "unsupported_alg": "issuer_signature",
    "unknown_issuer": "issuer_signature",
    "bad_issuer_signature": "issuer_signature",
    "expired": "validity",
    "not_yet_valid": "validity",
    "bad_holder_signature": "holder_signature",
    "challenge_mismatch": "freshness",
    "presentation_stale": "freshness",
    "presentation_future": "freshness",
    "replayed": "freshness",
    "revoked": "status",
    "suspended": "status",
    "status_unknown": "status",
    "status_stale": "status",
}


def check_decision(decision: Decision) -> None:
    """The shape every decision must have, whatever the input (spec section 7)."""
    assert isinstance(decision, Decision)
    assert decision.reason == GRANTED or decision.reason in REASONS, decision.reason
    assert decision.granted == (decision.reason == GRANTED)
    assert tuple(decision.checks) == CHECKS
    assert set(decision.checks.values()) <= CHECK_VALUES
    if decision.checks["format"] == "fail":
        assert decision.reason in FORMAT_REASONS
        assert all(value == "skipped" for name, value in decision.checks.items() if name != "format")
    else:
        assert decision.checks["format"] == "ok"
        assert decision.reason != "too_large"
        if decision.reason == "malformed":
            assert decision.checks["claims"] == "fail"
    if decision.reason in REASON_CHECK:
        assert decision.checks[REASON_CHECK[decision.reason]] == "fail", decision
    if decision.granted:
        assert "fail" not in decision.checks.values()
        assert decision.checks["issuer_signature"] == decision.checks["claims"] == "ok"
    json.dumps(decision.to_json())


def text_decision(text: str, trust: TrustStore = VECTOR_TRUST, policy: Policy = DEFAULT_POLICY) -> Decision:
    decision = decide_text(text, clock=CLOCK, trust=trust, lists=LISTS, policy=policy)
    check_decision(decision)
    return decision


def nfc_decision(response: bytes, challenge: bytes, trust: TrustStore = VECTOR_TRUST) -> Decision:
    decision = decide_nfc(response, challenge, clock=CLOCK, trust=trust, lists=LISTS)
    check_decision(decision)
    return decision


def seal(cose: bytes, compress: bool) -> str:
    """``seal_text`` that falls back to compression for bytes that start like zlib."""
    if not compress and cose[:1] == b"\x78":
        compress = True
    return seal_text(cose, compress=compress)


# --- the vectors -----------------------------------------------------------------------


@dataclass(frozen=True)
class Seed:
    """A vector's COSE bytes, how it is presented and what the gate decides on it."""

    name: str
    cose: bytes
    challenge: bytes | None  # the NFC challenge, None for a QR text
    reason: str

    def decide(self, cose: bytes, compress: bool = False) -> Decision:
        if self.challenge is not None:
            return nfc_decision(cose, self.challenge)
        return text_decision(seal(cose, compress))


def _seeds() -> list[Seed]:
    seeds = []
    for case in CASES:
        if "nfc" in case:
            seeds.append(Seed(case["name"], bytes.fromhex(case["payload"]), bytes.fromhex(case["nfc"]), ""))
        elif case["payload"].startswith("GP1:") and len(case["payload"]) <= 4096:
            seeds.append(Seed(case["name"], open_text(case["payload"]), None, ""))
    return [Seed(s.name, s.cose, s.challenge, s.decide(s.cose).reason) for s in seeds]


SEEDS = _seeds()


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_vectors_decide_as_expected_here(case: dict[str, Any]) -> None:
    """The fixtures above reproduce the vectors' own expectations (stale-list uses its own list)."""
    lists = LISTS
    if case["status"] != ["status-1.cwt", "status-2.cwt"]:
        lists = StatusLists(verify_status_token((DATA / n).read_bytes(), VECTOR_TRUST, now=NOW) for n in case["status"])
    policy = Policy(allow_static=case["allow_static"])
    if "nfc" in case:
        decision = decide_nfc(
            bytes.fromhex(case["payload"]), bytes.fromhex(case["nfc"]), clock=CLOCK, trust=VECTOR_TRUST, lists=lists
        )
    else:
        decision = decide_text(case["payload"], clock=CLOCK, trust=VECTOR_TRUST, lists=lists, policy=policy)
    check_decision(decision)
    assert decision.reason == case["expect"]["reason"]


def signed_parts(cose: bytes) -> tuple[bytes, bytes, bytes] | None:
    """What a signature covers (and the signature): the unprotected header and the tag
    around the array are not signed, so changing them may legitimately keep a grant."""
    try:
        sign1 = parse_sign1(cose)
    except CoseFormatError:
        return None
    return sign1.protected_bytes, sign1.payload, sign1.signature


MUTATION = st.tuples(
    st.sampled_from(["flip", "set", "insert", "delete", "duplicate"]),
    st.integers(min_value=0, max_value=1 << 16),
    st.integers(min_value=0, max_value=255),
    st.integers(min_value=1, max_value=16),
)


def mutate(data: bytes, mutations: list[tuple[str, int, int, int]]) -> bytes:
    out = bytearray(data)
    for op, where, value, span in mutations:
        at = where % (len(out) + 1)
        if op == "flip" and out:
            out[at % len(out)] ^= 1 << (value & 7)
        elif op == "set" and out:
            out[at % len(out)] = value
        elif op == "insert":
            out[at:at] = bytes([value]) * (1 + span % 3)
        elif op == "delete":
            del out[at : at + span]
        elif op == "duplicate":
            out[at:at] = out[at : at + span]
    return bytes(out)


@given(st.sampled_from(SEEDS), st.lists(MUTATION, min_size=1, max_size=4), st.booleans())
def test_mutated_vectors_are_never_wrongly_granted(seed: Seed, mutations: list[Any], compress: bool) -> None:
    """A mutated credential is granted only when what the signatures cover is unchanged and
    the original was granted too. (Deleting the leading tag-18 byte leaves a bare COSE_Sign1,
    which spec 1 requires the gate to accept: byte equality is too strict an oracle.)"""
    mutated = mutate(seed.cose, mutations)
    decision = seed.decide(mutated, compress)
    other_path = text_decision(seal(mutated, not compress)) if seed.challenge else nfc_decision(mutated, b"\x00" * 16)
    assert not other_path.granted  # a QR presentation has no rnonce, an NFC one no nonce
    if mutated == seed.cose:
        assert decision.reason == seed.reason
    if decision.granted:
        assert seed.reason == GRANTED
        assert signed_parts(mutated) == signed_parts(seed.cose)


@given(st.sampled_from(SEEDS), st.integers(min_value=0, max_value=1 << 16), st.integers(min_value=0, max_value=7))
def test_any_single_bit_flip_is_denied(seed: Seed, where: int, bit: int) -> None:
    """Stronger than the above for one flipped bit: the tag and the empty unprotected header,
    the only unsigned bytes, have no one-bit neighbour that is still accepted."""
    at = where % len(seed.cose)
    mutated = bytearray(seed.cose)
    mutated[at] ^= 1 << bit
    assert not seed.decide(bytes(mutated)).granted


@given(st.sampled_from(SEEDS), st.binary(min_size=1, max_size=40))
def test_padding_around_the_cose_bytes_is_malformed(seed: Seed, extra: bytes) -> None:
    """Spec 1: exactly one CBOR item, so bytes after the COSE_Sign1 are never ignored."""
    decision = seed.decide(seed.cose + extra)
    assert decision.reason == "malformed"
    assert decision.checks["format"] == "fail"


def test_bare_cose_sign1_of_a_granted_vector_is_still_granted() -> None:
    """The reason the oracle above compares signed parts, not bytes (spec 1: bare is fine)."""
    seed = next(s for s in SEEDS if s.reason == GRANTED and s.challenge is None and s.cose[:1] == b"\xd2")
    assert seed.decide(seed.cose[1:]).reason == GRANTED
    assert seed.decide(b"\xd8\x3d" + seed.cose).reason == GRANTED  # tag 61 around tag 18
    assert seed.decide(b"\xd8\x3d" + seed.cose[1:]).reason == "malformed"  # tag 61 around the bare array
    assert seed.decide(b"\xd2" + seed.cose).reason == "malformed"  # tag 18 twice


# --- arbitrary input -------------------------------------------------------------------


@given(st.text(max_size=5000))
def test_arbitrary_text_never_raises(text: str) -> None:
    text_decision(text)


@given(st.binary(max_size=3000))
def test_prefixed_base45_of_arbitrary_bytes_never_raises(data: bytes) -> None:
    decision = text_decision("GP1:" + base45_encode(data))
    assert not decision.granted


@given(st.binary(max_size=5000), st.binary(min_size=0, max_size=20))
def test_arbitrary_nfc_bytes_never_raise(response: bytes, challenge: bytes) -> None:
    decision = nfc_decision(response, challenge)
    assert not decision.granted
    if len(response) > 4096:
        assert decision.reason == "too_large"


# --- COSE structures built with cbor2 --------------------------------------------------


def _es256(key: ec.EllipticCurvePrivateKey, message: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(message, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


@dataclass(frozen=True)
class Signer:
    """A key made for these tests; issuer signers get a kid in :data:`TEST_TRUST`."""

    alg: int
    kid: bytes
    private: Any

    def sign(self, message: bytes) -> bytes:
        if self.alg == -7:
            return _es256(self.private, message)
        return self.private.sign(message)

    def cnf(self) -> dict[int, Any]:
        public = self.private.public_key()
        if self.alg == -7:
            numbers = public.public_numbers()
            x, y = numbers.x.to_bytes(32, "big"), numbers.y.to_bytes(32, "big")
            return {1: {1: 2, -1: 1, -2: x, -3: y}}
        return {1: {1: 1, -1: 6, -2: public.public_bytes_raw()}}


ISSUERS = [
    Signer(-7, b"prop-es2", ec.generate_private_key(ec.SECP256R1())),
    Signer(-8, b"prop-ed2", ed25519.Ed25519PrivateKey.generate()),
]
HOLDERS = [
    Signer(-7, b"", ec.generate_private_key(ec.SECP256R1())),
    Signer(-8, b"", ed25519.Ed25519PrivateKey.generate()),
]
UNTRUSTED = Signer(-7, b"prop-es2", ec.generate_private_key(ec.SECP256R1()))  # trusted kid, wrong key
TEST_TRUST = TrustStore([*VECTOR_TRUST, *(TrustAnchor(s.kid, s.private.public_key(), "test") for s in ISSUERS)])
CHALLENGE = bytes(range(16))

_KEYS = st.one_of(st.integers(min_value=-70_000, max_value=70_000), st.text(max_size=6), st.binary(max_size=6))
ANY_CBOR = st.recursive(
    st.one_of(
        st.integers(min_value=-(2**70), max_value=2**70),
        st.binary(max_size=40),
        st.text(max_size=20),
        st.floats(),
        st.booleans(),
        st.none(),
        st.builds(cbor2.CBORTag, st.sampled_from([0, 1, 2, 3, 4, 18, 24, 61, 55799]), st.binary(max_size=16)),
    ),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(_KEYS, children, max_size=4)),
    max_leaves=10,
)
NOT_TEXT = st.one_of(
    st.integers(),
    st.binary(max_size=8),
    st.none(),
    st.booleans(),
    st.lists(st.text(max_size=4), max_size=2),
    st.builds(cbor2.CBORTag, st.integers(min_value=0, max_value=300), st.text(max_size=8)),
)
NOT_NUMERIC_DATE = st.one_of(
    st.builds(cbor2.CBORTag, st.sampled_from([1, 2, 3, 4, 5, 100, 1001]), st.integers(min_value=0, max_value=2**62)),
    st.builds(cbor2.CBORTag, st.sampled_from([2, 3]), st.binary(min_size=1, max_size=9)),
    st.text(max_size=12),
    st.sampled_from(
        [float("nan"), float("inf"), float("-inf"), True, False, None, -1, -0.5, 2**63, 2**64 - 1, 2.0**63]
    ),
    st.integers(max_value=-1),
    st.integers(min_value=2**63, max_value=2**64 - 1),
    st.binary(max_size=8),
)
NOT_CTI = st.one_of(
    st.binary(max_size=40).filter(lambda b: len(b) != 16),
    st.text(min_size=16, max_size=16),
    st.builds(cbor2.CBORTag, st.integers(min_value=0, max_value=100), st.binary(min_size=16, max_size=16)),
    st.integers(),
)
_X32 = st.binary(min_size=32, max_size=32)
NOT_CNF = st.one_of(
    NOT_TEXT,
    st.builds(lambda v: {1: v}, NOT_TEXT),
    st.builds(lambda x, y: {2: {1: 2, -1: 1, -2: x, -3: y}}, _X32, _X32),  # COSE_Key under the wrong key
    st.builds(lambda x: {1: {1: 2, -1: 1, -2: x}}, _X32),  # EC2 without y
    st.builds(lambda x, y: {1: {1: 2, -1: 6, -2: x, -3: y}}, _X32, _X32),  # EC2 with the Ed25519 crv
    st.builds(lambda x: {1: {1: 1, -1: 1, -2: x}}, _X32),  # OKP with the P-256 crv
    st.builds(lambda x: {1: {1: 1, -1: 6, -2: x}}, st.binary(max_size=64).filter(lambda b: len(b) != 32)),
    st.builds(
        lambda x, y: {1: {1: 2, -1: 1, -2: x, -3: y}}, _X32, st.binary(max_size=33).filter(lambda b: len(b) != 32)
    ),
    st.builds(lambda x: {1: {1: True, -1: 6, -2: x}}, _X32),
    st.builds(lambda x: {1: {1: 1.0, -1: 6, -2: x}}, _X32),
    st.builds(lambda x: {1: {"1": 1, -1: 6, -2: x}}, _X32),
    st.builds(lambda x: {1: cbor2.CBORTag(101, {1: 1, -1: 6, -2: x})}, _X32),
)
GOOD_STATUS = {"status_list": {"idx": 6, "uri": "https://status.gatepass.example/lists/1"}}
NOT_STATUS = st.one_of(
    NOT_TEXT,
    st.builds(lambda v: {"status_list": v}, NOT_TEXT),
    st.builds(
        lambda i: {"status_list": {"idx": i, "uri": "u"}},
        st.one_of(st.integers(max_value=-1), NOT_TEXT.filter(lambda v: type(v) is not int), st.floats()),
    ),
    st.builds(lambda u: {"status_list": {"idx": 1, "uri": u}}, NOT_TEXT),
    st.just({"status_list": {"idx": 1}}),
    st.just({"status_list": {"uri": "u"}}),
    st.just({"statuslist": {"idx": 1, "uri": "u"}}),
)
NOT_GROUPS = st.one_of(
    st.text(max_size=8),
    st.lists(NOT_TEXT.filter(lambda v: type(v) is not str), min_size=1, max_size=3),
    st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2),
)
NOT_CARRIER = st.one_of(NOT_TEXT, st.text(max_size=8).filter(lambda t: t not in ("mobile", "card")))

# claim key: (the value a good issuer writes, a strategy of values that are certainly wrong)
CLAIM_SHAPES: dict[Any, tuple[Any, st.SearchStrategy[Any]]] = {
    1: ("KR-TEST", NOT_TEXT),
    2: ("E2026099", NOT_TEXT),
    4: (NOW + 3600, NOT_NUMERIC_DATE),
    5: (NOW - 60, NOT_NUMERIC_DATE),
    6: (NOW - 3600, NOT_NUMERIC_DATE),
    7: (b"\x11" * 16, NOT_CTI),
    65535: (GOOD_STATUS, NOT_STATUS),
    "name": ("Test Person", NOT_TEXT),
    "org": ("1741000", NOT_TEXT),
    "grp": (["hq-staff"], NOT_GROUPS),
    "car": ("mobile", NOT_CARRIER),
}
REQUIRED_CLAIMS = {1, 2, 4, 6, 7}
SIGN1_PARTS = ("header", "signature", "shape", "tag", "unprotected")
# Where the generator may put a fault; a few per example, so most examples get past the
# format stage and reach the signature, claims, validity, holder and status checks.
FAULT_POINTS = (
    *(f"claim:{key}" for key in CLAIM_SHAPES),
    "claim:8",
    "claims:payload",
    *(f"credential:{part}" for part in SIGN1_PARTS),
    "presentation:1",
    "presentation:2",
    "presentation:nonce",
    "presentation:5",
    "presentation:signer",
    *(f"outer:{part}" for part in SIGN1_PARTS),
)
FAULTS = st.dictionaries(st.sampled_from(FAULT_POINTS), st.sampled_from(["bad", "random", "absent"]), max_size=3)


@dataclass
class Built:
    """A COSE structure and what the generator knows about it, for the oracles."""

    cose: bytes
    nfc: bool
    static: bool
    claims_bad: bool  # a claim certainly breaks spec 1: the reason must be malformed
    format_bad: bool  # the structure certainly breaks spec 1/2: a format failure
    may_grant: bool  # no part is certainly wrong (static passes: where the policy allows them)
    must_grant: bool  # every part is as a good issuer and holder make it, or harmlessly odd


def _wrap(array: list[Any], how: str, other_tag: int = 0) -> Any:
    """The COSE array bare, in tag 18, in 61(18(...)), or ("bad") any other tag or nesting."""
    if how == "bare":
        return array
    if how == "18":
        return cbor2.CBORTag(18, array)
    if how == "61/18":
        return cbor2.CBORTag(61, cbor2.CBORTag(18, array))
    wrong = {
        0: cbor2.CBORTag(61, array),
        1: cbor2.CBORTag(18, cbor2.CBORTag(18, array)),
        2: cbor2.CBORTag(18, cbor2.CBORTag(61, cbor2.CBORTag(18, array))),
        3: cbor2.CBORTag(61, cbor2.CBORTag(61, cbor2.CBORTag(18, array))),
        4: cbor2.CBORTag(61, cbor2.CBORTag(18, cbor2.CBORTag(18, array))),
    }
    return wrong.get(other_tag % 8, cbor2.CBORTag(other_tag + 1000 if other_tag in (18, 61) else other_tag, array))


@dataclass
class _Signed:
    cose: bytes
    good: bool  # a trusted key signed it with a header that names the right alg (and kid)
    format_bad: bool  # certainly not a COSE_Sign1 as spec 1 accepts it


@st.composite
def _sign1(draw: st.DrawFn, signer: Signer, payload: bytes, kid: bool, faults: set[str]) -> _Signed:
    """A COSE_Sign1 of ``payload`` by ``signer``, with a fault in each part named in ``faults``."""
    good = True
    format_bad = False
    protected: dict[Any, Any] = {1: signer.alg}
    unprotected: dict[Any, Any] = {}
    if kid:
        protected[4] = signer.kid
    protected_bytes = cbor2.dumps(protected)
    if "header" in faults:
        kind = draw(
            st.sampled_from(
                [
                    "kid_unprotected",
                    "random_map",
                    "bytes",
                    "non_map",
                    "empty",
                    "alg_unprotected",
                    "other_alg",
                    "float_kid",
                ]
            )
        )
        good = kind in ("kid_unprotected", "float_kid") and not kid  # a presentation has no kid to get wrong
        if kind == "kid_unprotected":  # spec 1: an issuer kid may be in the unprotected header
            good = True
            unprotected = {4: protected.pop(4, b"holder-kid")}
        elif kind == "random_map":
            protected = draw(
                st.dictionaries(st.one_of(st.sampled_from([1, 4, 16, 3, -1]), _KEYS), ANY_CBOR, max_size=4)
            )
            if protected.get(1) in (-7, -8):  # the alg a good signer uses: not "random" any more
                del protected[1]
        elif kind == "bytes":  # never starts like a map (0xa0..0xbf), so never holds an alg
            protected = None
            protected_bytes = draw(st.binary(max_size=12).filter(lambda b: not (b and 0xA0 <= b[0] <= 0xBF)))
        elif kind == "non_map":
            protected = None
            format_bad = True
            protected_bytes = cbor2.dumps(
                draw(st.one_of(st.lists(ANY_CBOR, max_size=3), st.integers(), st.text(max_size=5)))
            )
        elif kind == "empty":
            protected = None
            protected_bytes = b""
        elif kind == "alg_unprotected":  # spec 1: an alg only in the unprotected header does not count
            unprotected = {1: protected.pop(1)}
        elif kind == "other_alg":
            protected[1] = draw(
                st.sampled_from([-7, -8, -35, -36, -37, -257, 1, 0, "ES256"]).filter(lambda a: a != signer.alg)
            )
        else:  # float_kid: a kid that is not a bstr (unknown_issuer for an issuer)
            protected[4] = draw(st.one_of(st.text(max_size=8), st.integers(), st.floats()))
        if protected is not None:
            protected_bytes = cbor2.dumps(protected)
    if "unprotected" in faults:  # not signed, and neither alg nor a second kid there matter
        extra = draw(st.dictionaries(_KEYS.filter(lambda k: k != 4), ANY_CBOR, max_size=3))
        unprotected = {**extra, **unprotected}
    signature = signer.sign(sig_structure(protected_bytes, payload))
    if "signature" in faults:
        good = False
        kind = draw(st.sampled_from(["garbage", "wrong_key", "truncated", "extended", "other_payload"]))
        if kind == "garbage":
            signature = draw(st.binary(max_size=140))
        elif kind == "wrong_key":
            signature = UNTRUSTED.sign(sig_structure(protected_bytes, payload))
        elif kind == "truncated":
            signature = signature[:-1]
        elif kind == "extended":
            signature += b"\x00"
        else:
            signature = signer.sign(sig_structure(protected_bytes, payload + b"\x00"))
    array: list[Any] = [protected_bytes, unprotected, payload, signature]
    if "shape" in faults:
        good = False
        format_bad = True
        kind = draw(st.integers(min_value=0, max_value=6))
        if kind == 0:
            array = array[:3]
        elif kind == 1:
            array = [*array, b""]
        elif kind == 2:
            array[1] = [unprotected]
        elif kind == 3:
            array[2] = "payload"
        elif kind == 4:
            array[3] = None
        elif kind == 5:
            array[0] = protected
        else:
            array = dict(enumerate(array))
    how = draw(st.sampled_from(["bare", "18", "61/18"]))
    if "tag" in faults:
        how = "bad"
        good = False
        format_bad = True
    cose = cbor2.dumps(_wrap(array, how, draw(st.integers(min_value=0, max_value=2**16))))
    return _Signed(cose, good, format_bad)


def _points(faults: dict[str, str], prefix: str) -> set[str]:
    return {point.split(":", 1)[1] for point in faults if point.startswith(prefix + ":")}


@st.composite
def built_cose(draw: st.DrawFn) -> Built:
    """A presentation (QR or NFC) or a static pass with a few faults, and the generator's
    knowledge of which are certain to break the spec and which are merely random."""
    faults = draw(FAULTS)
    issuer = draw(st.sampled_from(ISSUERS))
    holder = draw(st.sampled_from(HOLDERS))
    mode = draw(st.sampled_from(["qr", "qr", "nfc", "static"]))
    claims_bad = False
    random_used = False

    claims: dict[Any, Any] = {}
    for key, (good_value, bad_values) in [*CLAIM_SHAPES.items(), (8, (holder.cnf(), NOT_CNF))]:
        fault = faults.get(f"claim:{key}")
        if fault is None:
            claims[key] = good_value
        elif fault == "bad":
            claims[key] = draw(bad_values)
            claims_bad = True
        elif fault == "random":
            claims[key] = draw(ANY_CBOR)
            random_used = True
        elif key in REQUIRED_CLAIMS or (key == 8 and mode != "static"):
            claims_bad = True  # a required claim is absent (cnf only inside a presentation)
    unknown_keys = _KEYS.filter(lambda k: k not in CLAIM_SHAPES and k != 8)
    claims.update(draw(st.dictionaries(unknown_keys, ANY_CBOR, max_size=2)))  # unknown claims are ignored
    payload = cbor2.dumps(claims)
    if "claims:payload" in faults:  # raw bytes: whether they make a claims map is not known here
        payload = draw(st.binary(max_size=30))
        claims_bad = False
        random_used = True
    credential = draw(_sign1(issuer, payload, True, _points(faults, "credential")))
    certain_bad = claims_bad or not credential.good
    if mode == "static":
        return Built(
            credential.cose,
            False,
            True,
            claims_bad,
            credential.format_bad,
            not certain_bad,
            not certain_bad and not random_used,
        )

    nfc = mode == "nfc"
    bad_nonce = st.binary(max_size=40).filter((lambda b: len(b) != 16) if nfc else (lambda b: not 8 <= len(b) <= 32))
    fields: dict[Any, tuple[Any, st.SearchStrategy[Any], bool]] = {
        1: (credential.cose, st.one_of(st.integers(), st.none(), st.lists(st.binary(max_size=4), max_size=2)), True),
        2: (NOW - 5, NOT_NUMERIC_DATE, True),
        "nonce": (CHALLENGE if nfc else b"\x42" * 16, bad_nonce, True),
        5: ("gate-7", NOT_TEXT.filter(lambda v: type(v) is not str), False),
    }
    presentation: dict[Any, Any] = {}
    fields_bad = False
    for name, (good_value, bad_values, required) in fields.items():
        key = (4 if nfc else 3) if name == "nonce" else name
        fault = faults.get(f"presentation:{name}")
        if fault is None:
            presentation[key] = good_value
        elif fault == "bad":
            presentation[key] = draw(bad_values)
            fields_bad = True
        elif fault == "random":
            presentation[key] = draw(ANY_CBOR)
            random_used = True
        elif required:
            fields_bad = True
    signer = holder
    if "presentation:signer" in faults:
        signer = next(h for h in HOLDERS if h is not holder)
        certain_bad = True
    outer = draw(_sign1(signer, cbor2.dumps(presentation), False, _points(faults, "outer")))
    certain_bad = certain_bad or fields_bad or not outer.good

    # Spec 2: key 1 decides what the payload is, and only a presentation's fields are checked.
    first = presentation.get(1)
    if first is credential.cose:
        format_bad = outer.format_bad or fields_bad or credential.format_bad
    elif type(first) is bytes:  # random bytes as the credential: the fields are checked first
        format_bad = outer.format_bad or fields_bad
        claims_bad = False
    elif type(first) is str:  # read as a static pass made of the presentation payload
        format_bad = outer.format_bad
        claims_bad = False
    else:
        format_bad = True
    return Built(outer.cose, nfc, False, claims_bad, format_bad, not certain_bad, not certain_bad and not random_used)


def _decide_built(built: Built, compress: bool, policy: Policy = DEFAULT_POLICY) -> Decision:
    if built.nfc:
        decision = decide_nfc(built.cose, CHALLENGE, clock=CLOCK, trust=TEST_TRUST, lists=LISTS, policy=policy)
    else:
        decision = decide_text(seal(built.cose, compress), clock=CLOCK, trust=TEST_TRUST, lists=LISTS, policy=policy)
    check_decision(decision)
    return decision


@given(built_cose(), st.booleans())
def test_structured_cose_decisions(built: Built, compress: bool) -> None:
    """Never raises, well-formed decisions, and the generator's knowledge holds: a certain
    format fault is a format failure, a certain claims fault is malformed, and a grant
    happens when every part is good and never when one is certainly wrong."""
    decision = _decide_built(built, compress)
    if built.format_bad:
        assert decision.checks["format"] == "fail", (decision, built)
    elif built.claims_bad:
        assert decision.reason in FORMAT_REASONS, (decision, built)
        if decision.checks["format"] == "ok":
            assert decision.checks["claims"] == "fail"
    if built.static:
        assert not decision.granted
        allowed = _decide_built(built, compress, Policy(allow_static=True))
        assert allowed.checks == decision.checks
        granted = allowed.granted
    else:
        granted = decision.granted
    if built.must_grant:
        assert granted, (decision, built)
    if granted:
        assert built.may_grant, (decision, built)


@given(
    st.sampled_from(ISSUERS),
    st.sampled_from(HOLDERS),
    st.sampled_from(["bare", "18", "61/18"]),
    st.sampled_from(["qr", "nfc"]),
    st.booleans(),
)
def test_builder_makes_grants_when_everything_is_good(
    issuer: Signer, holder: Signer, how: str, mode: str, compress: bool
) -> None:
    """The oracle above is only worth something if the good branch really grants."""
    decision = _decide_built(_good(issuer, holder, how, mode), compress)
    assert decision.reason == GRANTED, decision


def _sign1_bytes(signer: Signer, protected: dict[Any, Any], payload: bytes, how: str = "18") -> bytes:
    protected_bytes = cbor2.dumps(protected)
    signature = signer.sign(sig_structure(protected_bytes, payload))
    return cbor2.dumps(_wrap([protected_bytes, {}, payload, signature], how, 0))


def _good(
    issuer: Signer,
    holder: Signer,
    how: str = "18",
    mode: str = "qr",
    claims: dict[Any, Any] | None = None,
    presentation: dict[Any, Any] | None = None,
    holder_protected: dict[Any, Any] | None = None,
) -> Built:
    base_claims = {1: "KR-TEST", 2: "E2026099", 4: NOW + 3600, 6: NOW - 3600, 7: b"\x11" * 16, 8: holder.cnf()}
    credential = _sign1_bytes(
        issuer, {1: issuer.alg, 4: issuer.kid}, cbor2.dumps({**base_claims, **(claims or {})}), how
    )
    fields = {1: credential, 2: NOW - 5}
    fields.update({4: CHALLENGE} if mode == "nfc" else {3: b"\x42" * 16})
    fields.update(presentation or {})
    outer = _sign1_bytes(holder, holder_protected or {1: holder.alg}, cbor2.dumps(fields), how)
    return Built(outer, mode == "nfc", False, False, False, True, True)


# --- NumericDate: bignums and other tags ------------------------------------------------


@pytest.mark.parametrize("claim", [4, 5, 6], ids=["exp", "nbf", "iat"])
@pytest.mark.parametrize("tag", [2, 3, 1], ids=["bignum", "negative_bignum", "epoch_tag"])
@pytest.mark.parametrize("mode", ["qr", "nfc"])
def test_tagged_numeric_date_in_a_credential_is_malformed(claim: int, tag: int, mode: str) -> None:
    """Spec 1: a tag (bignums included) is not a NumericDate. The value inside would be
    valid as a plain integer, so a decoder that unwrapped it would grant."""
    good = {4: NOW + 3600, 5: NOW - 60, 6: NOW - 3600}[claim]
    content: Any = good if tag == 1 else good.to_bytes(8, "big")
    built = _good(ISSUERS[0], HOLDERS[0], mode=mode, claims={claim: cbor2.CBORTag(tag, content)})
    decision = _decide_built(built, compress=False)
    assert decision.reason == "malformed"
    assert decision.checks["format"] == "ok"  # a claims problem, not a format failure (spec 1)
    assert decision.checks["claims"] == "fail"
    assert decision.checks["issuer_signature"] == "ok"


def test_bignum_exp_is_malformed_not_accepted() -> None:
    """The case the spec calls out: cbor2.loads would read this exp as 2**40, far in the future."""
    exp = cbor2.CBORTag(2, (2**40).to_bytes(6, "big"))
    assert cbor2.loads(cbor2.dumps(exp)) == 2**40  # what a permissive decoder would see
    for mode in ("qr", "nfc"):
        built = _good(ISSUERS[1], HOLDERS[1], mode=mode, claims={4: exp})
        assert _decide_built(built, compress=True).reason == "malformed"
    claims = parse_credential_claims(
        loads(cbor2.dumps({1: "i", 2: "s", 4: exp, 6: 1, 7: b"\0" * 16})), require_cnf=False
    )
    assert claims.exp is None
    assert claims.problems == ["exp is not a NumericDate"]


@pytest.mark.parametrize("mode", ["qr", "nfc"])
def test_bignum_presentation_iat_is_malformed(mode: str) -> None:
    built = _good(ISSUERS[0], HOLDERS[1], mode=mode, presentation={2: cbor2.CBORTag(2, (NOW - 5).to_bytes(8, "big"))})
    decision = _decide_built(built, compress=False)
    assert decision.reason == "malformed"
    assert decision.checks["format"] == "fail"


@pytest.mark.parametrize("holder", HOLDERS, ids=["es256-holder", "eddsa-holder"])
def test_presentation_alg_must_be_the_integer(holder: Signer) -> None:
    """Spec 2: an alg that does not fit the cnf key is bad_holder_signature, and the float -7.0
    is not the alg -7. (Regression: the holder check compared with ==, so -7.0 passed.)"""
    built = _good(ISSUERS[0], holder, holder_protected={1: float(holder.alg)})
    assert _decide_built(built, compress=False).reason == "bad_holder_signature"


@pytest.mark.parametrize("alg", [-7.0, True, "-7", cbor2.CBORTag(1, -7)])
def test_issuer_alg_must_be_the_integer(alg: Any) -> None:
    """Spec 1: anything but one of the five integer algs in the protected header is unsupported."""
    issuer = ISSUERS[0]
    holder = HOLDERS[0]
    claims = {1: "KR-TEST", 2: "E2026099", 4: NOW + 3600, 6: NOW - 3600, 7: b"\x11" * 16, 8: holder.cnf()}
    credential = _sign1_bytes(issuer, {1: alg, 4: issuer.kid}, cbor2.dumps(claims))
    outer = _sign1_bytes(holder, {1: holder.alg}, cbor2.dumps({1: credential, 2: NOW - 5, 3: b"\x42" * 16}))
    assert (
        _decide_built(Built(outer, False, False, False, False, False, False), compress=False).reason
        == "unsupported_alg"
    )


@pytest.mark.parametrize(
    "extra_key",
    [b"\xf5", b"\xf9\x44\x00", b"\xfb\x40\x18\x00\x00\x00\x00\x00\x00"],
    ids=["true-next-to-iss", "half-4.0-next-to-exp", "double-6.0-next-to-iat"],
)
def test_unknown_claim_with_a_non_integer_key_is_ignored(extra_key: bytes) -> None:
    """Spec 1: unknown claims are ignored, and true, 4.0 and 6.0 are keys distinct from 1, 4, 6
    (RFC 8949). The claims map is built by hand: in a Python dict they would merge. (Regression:
    the cbor2 fast path took them for duplicates and the credential was malformed.)"""
    issuer, holder = ISSUERS[0], HOLDERS[0]
    claims = {1: "KR-TEST", 2: "E2026099", 4: NOW + 3600, 6: NOW - 3600, 7: b"\x11" * 16, 8: holder.cnf()}
    body = cbor2.dumps(claims)
    payload = bytes([body[0] + 1]) + body[1:] + extra_key + cbor2.dumps("unknown claim")
    credential = _sign1_bytes(issuer, {1: issuer.alg, 4: issuer.kid}, payload)
    outer = _sign1_bytes(holder, {1: holder.alg}, cbor2.dumps({1: credential, 2: NOW - 5, 3: b"\x42" * 16}))
    assert _decide_built(Built(outer, False, False, False, False, True, True), compress=False).reason == GRANTED
