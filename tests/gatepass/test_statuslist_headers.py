"""Where a list token's headers may be (spec 3 as amended 2026-11-30, spec 4 unchanged).

A status list token's kid is looked up as a credential's is, protected header first, then
unprotected (the Token Status List draft's own examples carry it unprotected); its alg and
typ count only when protected. A legacy card list (spec 4) was not amended: its kid must
still be protected.
"""

from __future__ import annotations

import zlib

import cbor2
import pytest

from reader.gatepass.authority import Holder, Issuer, issue_credential, sign1
from reader.gatepass.cose import HEADER_ALG, HEADER_KID, HEADER_TYP, parse_sign1
from reader.gatepass.decide import Clock, decide_text
from reader.gatepass.legacy import LEGACY_LIST_TYP, card_key, verify_legacy_token
from reader.gatepass.statuslist import STATUS_LIST_TYP, StatusLists, TokenRejected, verify_status_token
from reader.gatepass.trust import TrustStore, anchors_from_pem, anchors_from_pem_file
from tests.support import VECTORS

VECTOR_AT = 1_798_761_600  # the "at" of every case in cases.json
KIDUNPROT_URI = "https://status.gatepass.example/lists/kidunprot"
NOW = 1_800_000_000
URI = "https://status.example/headers"


def _claims(**more: object) -> bytes:
    claims = {2: URI, 6: NOW - 60, 65533: {"bits": 1, "lst": zlib.compress(b"\x02")}}
    claims.update(more)
    return cbor2.dumps(claims)


def _token(issuer: Issuer, protected: dict, unprotected: dict) -> bytes:
    return sign1(_claims(), issuer.private_key, issuer.alg, protected=protected, unprotected=unprotected)


def test_status_list_kid_is_found_in_either_header_from_the_vector() -> None:
    """The independent implementation's vector: kid unprotected, signed by issuer-A."""
    raw = (VECTORS / "status-kidunprot.cwt").read_bytes()
    sign1_ = parse_sign1(raw)
    assert HEADER_KID not in sign1_.protected and type(sign1_.unprotected[HEADER_KID]) is bytes
    (issuer_a,) = anchors_from_pem_file(VECTORS / "issuer-A.pem")

    status_list = verify_status_token(raw, TrustStore([issuer_a]), now=VECTOR_AT)
    assert status_list.kid == issuer_a.kid == sign1_.unprotected[HEADER_KID]
    assert status_list.uri == KIDUNPROT_URI
    assert (status_list.bits, status_list.entries) == (1, 4096)
    assert all(status_list.value(idx) == 0 for idx in range(status_list.entries))

    # With every vector anchor loaded the same anchor is found by that kid; the others
    # (another kid each) are not consulted.
    everyone = TrustStore.from_pem_files(sorted(VECTORS.glob("issuer-*.pem")))
    assert verify_status_token(raw, everyone, now=VECTOR_AT).kid == issuer_a.kid
    others = TrustStore(a for path in sorted(VECTORS.glob("issuer-[B-F].pem")) for a in anchors_from_pem_file(path))
    with pytest.raises(TokenRejected, match="not trusted"):
        verify_status_token(raw, others, now=VECTOR_AT)


def test_status_list_kid_is_found_in_either_header_and_decides(issuer: Issuer) -> None:
    """A credential whose status entry is on the kid-unprotected vector list is decided by
    that list (valid entry: granted), not status_unknown as when the list was ignored."""
    holder = Holder.generate("ES256")
    anchors = [*TrustStore.from_pem_files(sorted(VECTORS.glob("issuer-*.pem"))), *anchors_from_pem(
        issuer.certificate_pem, "test-issuer")]
    trust = TrustStore(anchors)
    lists = StatusLists([verify_status_token((VECTORS / "status-kidunprot.cwt").read_bytes(), trust, now=VECTOR_AT)])
    credential = issue_credential(
        issuer, sub="E7", iat=VECTOR_AT - 60, exp=VECTOR_AT + 3600, holder=holder, status=(KIDUNPROT_URI, 17)
    )
    decision = decide_text(holder.present_qr(credential, iat=VECTOR_AT), clock=Clock(VECTOR_AT), trust=trust,
                           lists=lists)
    assert decision.granted, decision
    assert decision.checks["status"] == "ok"


def test_status_list_kid_is_found_in_either_header(issuer: Issuer, trust: TrustStore) -> None:
    unprotected = verify_status_token(
        _token(issuer, {HEADER_TYP: STATUS_LIST_TYP}, {HEADER_KID: issuer.kid}), trust, now=NOW
    )
    assert unprotected.kid == issuer.kid and unprotected.value(1) == 1
    protected = verify_status_token(issuer.sign(_claims(), typ=STATUS_LIST_TYP), trust, now=NOW)
    assert protected.kid == issuer.kid


def test_status_list_protected_kid_comes_first(issuer: Issuer, trust: TrustStore) -> None:
    """Protected first: an unprotected kid never overrides (nor rescues) a protected one."""
    other = Issuer.generate("ES256")
    both = TrustStore([*trust, *anchors_from_pem(other.certificate_pem, "other")])
    token = _token(issuer, {HEADER_TYP: STATUS_LIST_TYP, HEADER_KID: issuer.kid}, {HEADER_KID: other.kid})
    assert verify_status_token(token, both, now=NOW).kid == issuer.kid

    token = _token(issuer, {HEADER_TYP: STATUS_LIST_TYP, HEADER_KID: other.kid}, {HEADER_KID: issuer.kid})
    with pytest.raises(TokenRejected, match="does not verify"):
        verify_status_token(token, both, now=NOW)

    token = _token(issuer, {HEADER_TYP: STATUS_LIST_TYP, HEADER_KID: "text kid"}, {HEADER_KID: issuer.kid})
    with pytest.raises(TokenRejected, match="kid is not a byte string"):
        verify_status_token(token, trust, now=NOW)


@pytest.mark.parametrize(
    ("protected", "unprotected", "match"),
    [
        ({HEADER_TYP: STATUS_LIST_TYP}, {HEADER_KID: "kid"}, "kid is not a byte string in either header"),
        ({HEADER_TYP: STATUS_LIST_TYP}, {}, "kid is not a byte string in either header"),
        ({HEADER_TYP: STATUS_LIST_TYP}, {HEADER_KID: b"\x00" * 8}, "not trusted"),
        ({}, {HEADER_TYP: STATUS_LIST_TYP, HEADER_KID: "issuer"}, "protected typ"),  # typ only unprotected
    ],
)
def test_status_list_headers_that_are_still_refused(
    issuer: Issuer, trust: TrustStore, protected: dict, unprotected: dict, match: str
) -> None:
    if unprotected.get(HEADER_KID) == "issuer":
        unprotected = {**unprotected, HEADER_KID: issuer.kid}
    with pytest.raises(TokenRejected, match=match):
        verify_status_token(_token(issuer, protected, unprotected), trust, now=NOW)


def test_status_list_alg_only_unprotected_is_refused(issuer: Issuer, trust: TrustStore) -> None:
    """The authority always protects the alg, so this token is put together by hand: an
    empty protected map but for typ, and the alg and kid unprotected."""
    from reader.gatepass.authority import sign_raw
    from reader.gatepass.cose import sig_structure

    protected_bytes = cbor2.dumps({HEADER_TYP: STATUS_LIST_TYP})
    payload = _claims()
    signature = sign_raw(issuer.private_key, issuer.alg, sig_structure(protected_bytes, payload))
    token = cbor2.dumps([protected_bytes, {HEADER_ALG: issuer.alg, HEADER_KID: issuer.kid}, payload, signature])
    with pytest.raises(TokenRejected, match="unsupported alg"):
        verify_status_token(token, trust, now=NOW)


def test_legacy_list_kid_must_still_be_protected(issuer: Issuer, trust: TrustStore) -> None:
    """Spec 4 was not amended: the legacy card list keeps its kid protected-only."""
    claims = cbor2.dumps({6: NOW, 4: NOW + 10, -65537: {card_key("X"): {"sub": "E", "exp": NOW + 5}}})
    protected = verify_legacy_token(issuer.sign(claims, typ=LEGACY_LIST_TYP), trust, now=NOW)
    assert protected.kid == issuer.kid
    token = sign1(claims, issuer.private_key, issuer.alg, protected={HEADER_TYP: LEGACY_LIST_TYP},
                  unprotected={HEADER_KID: issuer.kid})
    with pytest.raises(TokenRejected, match="in the protected header"):
        verify_legacy_token(token, trust, now=NOW)
