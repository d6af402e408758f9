"""The decision of spec section 7, one rule at a time, on credentials the test authority makes."""

# Over ~400 lines on purpose: every reason of spec section 7 through decide(), one test each, on shared fixtures.

from __future__ import annotations

import math
import zlib
from dataclasses import replace

import cbor2
import pytest

from reader.gatepass.authority import (
    Holder,
    Issuer,
    build_status_list,
    issue_credential,
    sign1,
)
from reader.gatepass.cose import ALG_EDDSA, ALG_ES256, TAG_CWT, TAG_SIGN1
from reader.gatepass.decide import (
    CHECKS,
    Clock,
    CredentialCache,
    InMemoryReplay,
    Policy,
    decide_cose,
    decide_nfc,
    decide_text,
)
from reader.gatepass.envelope import base45_encode, seal_text
from reader.gatepass.statuslist import StatusLists, TokenRejected, verify_status_token
from reader.gatepass.trust import TrustAnchor, TrustStore, anchors_from_pem

NOW = 1_800_000_000
URI = "https://status.example/1"


@pytest.fixture(scope="module")
def holder() -> Holder:
    return Holder.generate("ES256")


def credential(issuer: Issuer, holder: Holder | None, **claims) -> bytes:
    fields = {"sub": "E1", "iat": NOW - 3600, "exp": NOW + 3600, "holder": holder}
    fields.update(claims)
    return issue_credential(issuer, **fields)


def lists_for(issuer: Issuer, trust: TrustStore, values: dict[int, int], bits: int = 1, **kw) -> StatusLists:
    token = build_status_list(issuer, uri=URI, size=64, bits=bits, values=values, iat=kw.pop("iat", NOW - 60), **kw)
    return StatusLists([verify_status_token(token, trust, now=NOW)])


def qr(holder: Holder, cred: bytes, **kw) -> str:
    return holder.present_qr(cred, iat=kw.pop("iat", NOW), **kw)


def decide(text: str, trust: TrustStore, lists: StatusLists | None = None, clock: Clock | None = None, **kw):
    return decide_text(text, clock=clock or Clock(NOW), trust=trust, lists=lists or StatusLists(), **kw)


# --- envelope and COSE structure -------------------------------------------------------


@pytest.mark.parametrize("compress", [True, False])
def test_compressed_and_plain_envelopes_both_grant(issuer, holder, trust, compress) -> None:
    text = qr(holder, credential(issuer, holder), compress=compress)
    decision = decide(text, trust)
    assert decision.granted and decision.reason == "granted"
    assert decision.assurance == "high" and decision.subject == "E1"


@pytest.mark.parametrize("tag", [None, TAG_SIGN1, TAG_CWT])
def test_bare_tag18_and_tag61_credentials_grant(issuer, holder, trust, tag) -> None:
    assert decide(qr(holder, credential(issuer, holder, tag=tag)), trust).granted


@pytest.mark.parametrize(
    "wrap",
    [
        lambda body: cbor2.CBORTag(98, body),  # COSE_Sign (multi-signer) is not accepted
        lambda body: cbor2.CBORTag(TAG_CWT, body),  # 61 must wrap 18
        lambda body: cbor2.CBORTag(TAG_SIGN1, cbor2.CBORTag(TAG_SIGN1, body)),
        lambda body: body[:3],
        lambda body: [*body, b""],
    ],
)
def test_other_tags_and_shapes_are_malformed(issuer, holder, trust, wrap) -> None:
    cose = cbor2.loads(holder.present(credential(issuer, holder), iat=NOW))
    text = seal_text(cbor2.dumps(wrap(list(cose.value))))
    decision = decide(text, trust)
    assert decision.reason == "malformed"
    assert decision.checks["format"] == "fail"
    assert all(decision.checks[name] == "skipped" for name in CHECKS if name != "format")


def test_prefix_is_exact_and_configurable(issuer, holder, trust) -> None:
    text = qr(holder, credential(issuer, holder), prefix="HC1:")
    assert decide(text, trust).reason == "malformed"
    assert decide(text, trust, prefixes=("GP1:", "HC1:")).granted
    assert decide("gp1:" + text[4:], trust, prefixes=("GP1:",)).reason == "malformed"


def test_text_is_taken_exactly_as_given(issuer, holder, trust) -> None:
    text = qr(holder, credential(issuer, holder))
    assert decide(text + "\n", trust).reason == "malformed"
    assert decide(" " + text, trust).reason == "malformed"


def test_too_large_only_after_a_known_prefix(trust) -> None:
    assert decide("GP1:" + "0" * 4093, trust).reason == "too_large"
    assert decide("XX1:" + "0" * 5000, trust).reason == "malformed"


def test_zlib_errors_are_malformed_and_bombs_too_large(trust) -> None:
    assert decide("GP1:" + base45_encode(zlib.compress(b"x" * 100) + b"junk"), trust).reason == "malformed"
    assert decide("GP1:" + base45_encode(zlib.compress(b"x" * 100)[:-3]), trust).reason == "malformed"
    assert decide("GP1:" + base45_encode(zlib.compress(bytes(200_000), 9)), trust).reason == "too_large"


def test_trailing_bytes_after_the_cose_item_are_malformed(issuer, holder, trust) -> None:
    cose = holder.present(credential(issuer, holder), iat=NOW)
    assert decide(seal_text(cose + b"\x00"), trust).reason == "malformed"


# --- issuer signature -------------------------------------------------------------------


@pytest.mark.parametrize("issuer_alg", ["ES256", "ES384", "ES512", "EdDSA", "PS256"])
@pytest.mark.parametrize("holder_alg", ["ES256", "EdDSA"])
def test_every_algorithm_pair_grants(issuer_alg, holder_alg) -> None:
    issuer = Issuer.generate(issuer_alg)
    holder = Holder.generate(holder_alg)
    trust = TrustStore(anchors_from_pem(issuer.certificate_pem, "x"))
    decision = decide(qr(holder, credential(issuer, holder)), trust)
    assert decision.granted, decision.detail
    assert decision.kid == issuer.kid


def _resign(issuer: Issuer, claims: dict, protected: dict, unprotected: dict | None = None) -> bytes:
    return sign1(cbor2.dumps(claims), issuer.private_key, issuer.alg, protected=protected, unprotected=unprotected)


def _claims(holder: Holder, extra: dict | None = None) -> dict:
    claims = {1: "iss", 2: "E1", 4: NOW + 3600, 6: NOW - 60, 7: b"c" * 16, 8: {1: holder.cose_key()}}
    claims.update(extra or {})
    return claims


def test_kid_in_the_unprotected_header_is_found(issuer, holder, trust) -> None:
    cred = _resign(issuer, _claims(holder), {}, {4: issuer.kid})
    assert decide(qr(holder, cred), trust).granted


@pytest.mark.parametrize(
    ("protected", "unprotected", "reason"),
    [
        ({1: -9}, None, "unsupported_alg"),
        ({1: "ES256"}, None, "unsupported_alg"),
        ({}, {1: ALG_ES256, 4: "KID"}, "unsupported_alg"),  # alg only unprotected
        ({1: ALG_ES256}, None, "unknown_issuer"),  # no kid
        ({1: ALG_ES256, 4: "kid-as-text"}, None, "unknown_issuer"),
        ({1: ALG_ES256, 4: b"\x00" * 8}, None, "unknown_issuer"),
    ],
)
def test_issuer_header_failures(issuer, holder, trust, protected, unprotected, reason) -> None:
    payload = cbor2.dumps(_claims(holder))
    protected_bytes = cbor2.dumps(protected)
    cred = cbor2.dumps(cbor2.CBORTag(18, [protected_bytes, unprotected or {}, payload, b"\x01" * 64]))
    decision = decide(qr(holder, cred), trust)
    assert decision.reason == reason
    assert decision.checks["issuer_signature"] == "fail"
    assert decision.checks["holder_signature"] == "ok"  # still evaluated


def test_ecdsa_signature_of_the_wrong_length_is_a_bad_signature(issuer, holder, trust) -> None:
    good = cbor2.loads(credential(issuer, holder))
    for signature in (good.value[3][:-1], good.value[3] + b"\x00", b""):
        cred = cbor2.dumps(cbor2.CBORTag(18, [*good.value[:3], signature]))
        assert decide(qr(holder, cred), trust).reason == "bad_issuer_signature"


def test_alg_that_does_not_fit_the_key_is_a_bad_signature(holder) -> None:
    ed_issuer = Issuer.generate("EdDSA")
    trust = TrustStore(anchors_from_pem(ed_issuer.certificate_pem, "x"))
    # Claims EdDSA key but says ES256 in the header.
    cred = sign1(
        cbor2.dumps(_claims(holder)), ed_issuer.private_key, ALG_EDDSA, protected={1: ALG_ES256, 4: ed_issuer.kid}
    )
    assert decide(qr(holder, cred), trust).reason == "bad_issuer_signature"


def test_every_anchor_sharing_a_kid_is_tried(issuer, holder) -> None:
    impostor = Issuer.generate("ES256").private_key.public_key()
    right = anchors_from_pem(issuer.certificate_pem, "right")[0]
    trust = TrustStore([TrustAnchor(issuer.kid, impostor, "wrong"), right])
    assert decide(qr(holder, credential(issuer, holder)), trust).granted


def test_bare_public_key_anchor_kid_is_the_spki_hash(holder) -> None:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    issuer = Issuer.generate("EdDSA")
    pem = issuer.private_key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    anchor = anchors_from_pem(pem, "bare")[0]
    cred = _resign(issuer, _claims(holder), {4: anchor.kid})
    assert decide(qr(holder, cred), TrustStore([anchor])).granted


# --- claims and validity ----------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {7: b"c" * 15},
        {4: "tomorrow"},
        {4: cbor2.CBORTag(2, (NOW + 3600).to_bytes(8, "big"))},  # bignum NumericDate
        {4: cbor2.CBORTag(1, NOW + 3600)},
        {4: math.nan},
        {4: math.inf},
        {4: -1},
        {4: 2**63},
        {6: True},
        {2: 12345},
        {8: {1: {1: 2, -1: 1, -2: b"x" * 32}}},  # EC2 without y
        {8: {1: {1: 1, -1: 6, -2: b"x" * 31}}},
        {65535: {"status_list": {"idx": -1, "uri": URI}}},
        {65535: {"status_list": {"idx": 1}}},
        {"grp": "staff"},
        {"car": "tablet"},
    ],
)
def test_ill_typed_claims_are_malformed_but_signature_still_reported(issuer, holder, trust, change) -> None:
    cred = _resign(issuer, _claims(holder, change), {4: issuer.kid})
    decision = decide(qr(holder, cred), trust)
    assert decision.reason == "malformed"
    assert decision.checks["format"] == "ok"
    assert decision.checks["claims"] == "fail"
    assert decision.checks["issuer_signature"] == "ok"


def test_missing_cnf_is_malformed_only_inside_a_presentation(issuer, holder, trust) -> None:
    claims = _claims(holder)
    del claims[8]
    cred = _resign(issuer, claims, {4: issuer.kid})
    assert decide(qr(holder, cred), trust).reason == "malformed"
    assert decide(seal_text(cred), trust, policy=Policy(allow_static=True)).granted


def test_another_cwt_profile_reports_signature_and_validity(issuer, holder, trust) -> None:
    cred = _resign(issuer, {1: "iss", 4: NOW - 1, 6: NOW - 60, 8: {1: holder.cose_key()}}, {4: issuer.kid})
    decision = decide(qr(holder, cred), trust)
    assert decision.reason == "malformed"
    assert decision.checks["issuer_signature"] == "ok"
    assert decision.checks["validity"] == "fail"  # expired, still evaluated


def test_float_numeric_dates_are_accepted(issuer, holder, trust) -> None:
    cred = _resign(issuer, _claims(holder, {4: NOW + 3600.5, 6: NOW - 60.25}), {4: issuer.kid})
    assert decide(qr(holder, cred), trust).granted


def test_validity_boundaries(issuer, holder, trust) -> None:
    assert decide(qr(holder, credential(issuer, holder, exp=NOW)), trust).reason == "expired"
    assert decide(qr(holder, credential(issuer, holder, exp=NOW + 1)), trust).granted
    assert decide(qr(holder, credential(issuer, holder, nbf=NOW + 1)), trust).reason == "not_yet_valid"
    assert decide(qr(holder, credential(issuer, holder, nbf=NOW)), trust).granted
    assert decide(qr(holder, credential(issuer, holder, iat=NOW + 300)), trust).granted
    assert decide(qr(holder, credential(issuer, holder, iat=NOW + 301)), trust).reason == "not_yet_valid"


def test_first_failing_check_wins_but_all_are_reported(issuer, trust) -> None:
    holder = Holder.generate("ES256")
    other = Holder.generate("ES256")
    text = other.present_qr(credential(issuer, holder, exp=NOW - 1), iat=NOW - 100)
    decision = decide(text, trust)
    assert decision.reason == "expired"
    assert decision.checks["validity"] == "fail"
    assert decision.checks["holder_signature"] == "fail"
    assert decision.checks["freshness"] == "fail"


# --- holder binding, freshness, replay ----------------------------------------------------


def test_presentation_signed_by_another_key_is_refused(issuer, holder, trust) -> None:
    text = Holder.generate("ES256").present_qr(credential(issuer, holder), iat=NOW)
    decision = decide(text, trust)
    assert decision.reason == "bad_holder_signature"
    assert decision.checks["issuer_signature"] == "ok"


def test_presentation_alg_must_fit_the_cnf_key(issuer, holder, trust) -> None:
    cred = credential(issuer, holder)
    payload = cbor2.dumps({1: cred, 2: NOW, 3: b"n" * 16})
    cose = sign1(payload, holder.private_key, ALG_ES256, protected={1: ALG_EDDSA})
    assert decide(seal_text(cose), trust).reason == "bad_holder_signature"


def test_cnf_point_not_on_the_curve_is_a_bad_holder_signature(issuer, holder, trust) -> None:
    key = holder.cose_key()
    key[-3] = bytes(32)
    cred = _resign(issuer, _claims(holder, {8: {1: key}}), {4: issuer.kid})
    decision = decide(qr(holder, cred), trust)
    assert decision.reason == "bad_holder_signature"
    assert decision.checks["claims"] == "ok"


@pytest.mark.parametrize(
    ("iat", "reason"),
    [(NOW - 30, "granted"), (NOW - 31, "presentation_stale"), (NOW + 5, "granted"), (NOW + 6, "presentation_future")],
)
def test_qr_freshness_window(issuer, holder, trust, iat, reason) -> None:
    assert decide(qr(holder, credential(issuer, holder), iat=iat), trust).reason == reason


@pytest.mark.parametrize(
    "payload",
    [
        {2: NOW, 3: b"n" * 16},  # no credential
        {1: 5, 2: NOW, 3: b"n" * 16},
        {1: b"CRED", 3: b"n" * 16},  # no iat
        {1: b"CRED", 2: NOW},  # no nonce
        {1: b"CRED", 2: NOW, 3: b"n" * 7},
        {1: b"CRED", 2: NOW, 3: b"n" * 33},
        {1: b"CRED", 2: "now", 3: b"n" * 16},
        {1: b"CRED", 2: NOW, 3: b"n" * 16, 5: 7},
    ],
)
def test_ill_shaped_presentations_are_malformed(issuer, holder, trust, payload) -> None:
    payload = {k: (credential(issuer, holder) if v == b"CRED" else v) for k, v in payload.items()}
    cose = sign1(cbor2.dumps(payload), holder.private_key, holder.alg)
    assert decide(seal_text(cose), trust).reason == "malformed"


def test_replay_memory_refuses_a_second_showing(issuer, holder, trust) -> None:
    replay = InMemoryReplay()
    text = qr(holder, credential(issuer, holder))
    assert decide(text, trust, replay=replay).granted
    again = decide(text, trust, replay=replay, clock=Clock(NOW + 10))
    assert again.reason == "replayed" and again.checks["freshness"] == "fail"
    # A fresh code (new nonce) of the same credential passes.
    assert decide(qr(holder, credential(issuer, holder)), trust, replay=replay).granted
    # One-shot checks have no memory.
    assert decide(text, trust).granted


def test_a_denied_code_is_not_remembered(issuer, holder, trust) -> None:
    replay = InMemoryReplay()
    text = qr(holder, credential(issuer, holder, status=(URI, 3)))
    assert decide(text, trust, replay=replay).reason == "status_unknown"
    assert len(replay) == 0


def test_replay_memory_forgets_after_the_window(issuer, holder, trust) -> None:
    replay = InMemoryReplay()
    text = qr(holder, credential(issuer, holder))
    decide(text, trust, replay=replay)
    replay.prune(NOW + 31)
    assert len(replay) == 0


def test_static_pass_needs_the_policy(issuer, trust) -> None:
    text = seal_text(credential(issuer, None))
    refused = decide(text, trust)
    assert refused.reason == "static_not_allowed"
    assert refused.assurance == "static"
    allowed = decide(text, trust, policy=Policy(allow_static=True))
    assert allowed.granted and allowed.assurance == "static"
    assert allowed.checks["holder_signature"] == "skipped" and allowed.checks["freshness"] == "skipped"


# --- NFC ----------------------------------------------------------------------------------


def test_nfc_challenge(issuer, holder, trust) -> None:
    cred = credential(issuer, holder)
    challenge = bytes(range(16))
    answer = holder.answer_challenge(cbor2.dumps({1: challenge, 2: "gate-1"}), cred, iat=NOW - 86_400)
    ok = decide_nfc(answer, challenge, clock=Clock(NOW), trust=trust, lists=StatusLists())
    assert ok.granted, ok.detail  # the holder's iat is informative over NFC
    wrong = decide_nfc(answer, bytes(16), clock=Clock(NOW), trust=trust, lists=StatusLists())
    assert wrong.reason == "challenge_mismatch"


def test_nfc_answer_without_rnonce_is_malformed(issuer, holder, trust) -> None:
    cose = holder.present(credential(issuer, holder), iat=NOW)  # a QR-shaped presentation
    assert decide_nfc(cose, bytes(16), clock=Clock(NOW), trust=trust, lists=StatusLists()).reason == "malformed"


def test_nfc_answer_over_4096_bytes_is_too_large(trust) -> None:
    assert decide_nfc(bytes(4097), bytes(16), clock=Clock(NOW), trust=trust, lists=StatusLists()).reason == "too_large"


# --- status lists -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bits", "value", "reason"),
    [(1, 0, "granted"), (1, 1, "revoked"), (2, 2, "suspended"), (2, 3, "status_unknown"), (8, 200, "status_unknown")],
)
def test_status_values(issuer, holder, trust, bits, value, reason) -> None:
    lists = lists_for(issuer, trust, {9: value}, bits=bits)
    assert decide(qr(holder, credential(issuer, holder, status=(URI, 9))), trust, lists).reason == reason


def test_status_index_past_the_end_or_no_list_is_unknown(issuer, holder, trust) -> None:
    lists = lists_for(issuer, trust, {})
    assert decide(qr(holder, credential(issuer, holder, status=(URI, 64))), trust, lists).reason == "status_unknown"
    other = credential(issuer, holder, status=("https://status.example/none", 1))
    assert decide(qr(holder, other), trust, lists).reason == "status_unknown"


def test_stale_list_denies_valid_entries_only(issuer, holder, trust) -> None:
    stale = lists_for(issuer, trust, {2: 1}, iat=NOW - 86_401)
    assert decide(qr(holder, credential(issuer, holder, status=(URI, 1))), trust, stale).reason == "status_stale"
    assert decide(qr(holder, credential(issuer, holder, status=(URI, 2))), trust, stale).reason == "revoked"
    expired = lists_for(issuer, trust, {}, exp=NOW)
    assert decide(qr(holder, credential(issuer, holder, status=(URI, 1))), trust, expired).reason == "status_stale"


def test_stale_list_accepted_when_the_policy_says_so(issuer, holder, trust) -> None:
    stale = lists_for(issuer, trust, {}, iat=NOW - 90_000)
    decision = decide(
        qr(holder, credential(issuer, holder, status=(URI, 1))), trust, stale, policy=Policy(on_stale="allow")
    )
    assert decision.granted and decision.warnings


def test_newest_list_per_uri_wins_and_never_goes_back(issuer, trust) -> None:
    old = verify_status_token(build_status_list(issuer, uri=URI, size=8, values={1: 1}, iat=NOW - 100), trust, now=NOW)
    new = verify_status_token(build_status_list(issuer, uri=URI, size=8, values={}, iat=NOW - 50), trust, now=NOW)
    same = verify_status_token(build_status_list(issuer, uri=URI, size=8, values={2: 1}, iat=NOW - 50), trust, now=NOW)
    lists = StatusLists([new, old, same])
    assert lists.get(URI) is new


@pytest.mark.parametrize(
    "mutate",
    [
        lambda iss, claims: iss.sign(cbor2.dumps(claims), typ="application/cwt"),
        lambda iss, claims: sign1(  # typ only in the unprotected header does not count
            cbor2.dumps(claims),
            iss.private_key,
            iss.alg,
            protected={4: iss.kid},
            unprotected={16: "application/statuslist+cwt"},
        ),
        lambda iss, claims: Issuer.generate("ES256").sign(cbor2.dumps(claims), typ="application/statuslist+cwt"),
        lambda iss, claims: iss.sign(
            cbor2.dumps({**claims, 65533: {"bits": 3, "lst": zlib.compress(b"\0")}}), typ="application/statuslist+cwt"
        ),
        lambda iss, claims: iss.sign(
            cbor2.dumps({**claims, 65533: {"bits": 1, "lst": b"not zlib"}}), typ="application/statuslist+cwt"
        ),
        lambda iss, claims: iss.sign(cbor2.dumps({**claims, 6: NOW + 301}), typ="application/statuslist+cwt"),
        lambda iss, claims: iss.sign(cbor2.dumps({**claims, 2: 7}), typ="application/statuslist+cwt"),
    ],
)
def test_bad_status_tokens_are_ignored(issuer, trust, mutate) -> None:
    claims = {2: URI, 6: NOW - 60, 65533: {"bits": 1, "lst": zlib.compress(bytes(8))}}
    with pytest.raises(TokenRejected):
        verify_status_token(mutate(issuer, claims), trust, now=NOW)


def test_status_list_bomb_is_refused(issuer, trust) -> None:
    claims = {2: URI, 6: NOW - 60, 65533: {"bits": 1, "lst": zlib.compress(bytes((16 << 20) + 1), 9)}}
    with pytest.raises(TokenRejected, match="inflates past"):
        verify_status_token(issuer.sign(cbor2.dumps(claims), typ="application/statuslist+cwt"), trust, now=NOW)


# --- trusted time -------------------------------------------------------------------------


def test_untrusted_clock(issuer, holder, trust) -> None:
    floor = NOW + 10_000
    untrusted = Clock(NOW, trusted=False, floor=floor)
    lists = lists_for(issuer, trust, {})
    qr_text = qr(holder, credential(issuer, holder, exp=NOW + 86_400))
    assert decide(qr_text, trust, clock=untrusted).reason == "clock_untrusted"
    expired = qr(holder, credential(issuer, holder, exp=floor))
    assert decide(expired, trust, clock=untrusted).reason == "expired"

    challenge = bytes(16)
    cred = credential(issuer, holder, exp=NOW + 86_400)
    answer = holder.answer_challenge(cbor2.dumps({1: challenge}), cred, iat=NOW)
    nfc = decide_nfc(answer, challenge, clock=untrusted, trust=trust, lists=lists)
    assert nfc.granted  # NFC freshness is the challenge; no nbf, no status list needed
    with_status = holder.answer_challenge(
        cbor2.dumps({1: challenge}), credential(issuer, holder, exp=NOW + 86_400, status=(URI, 1)), iat=NOW
    )
    assert decide_nfc(with_status, challenge, clock=untrusted, trust=trust, lists=lists).reason == "clock_untrusted"
    with_nbf = holder.answer_challenge(
        cbor2.dumps({1: challenge}), credential(issuer, holder, exp=NOW + 86_400, nbf=NOW - 10), iat=NOW
    )
    assert decide_nfc(with_nbf, challenge, clock=untrusted, trust=trust, lists=lists).reason == "clock_untrusted"


# --- policy and cache ---------------------------------------------------------------------


def test_groups_policy(issuer, holder, trust) -> None:
    text = qr(holder, credential(issuer, holder, groups=["staff"]))
    assert decide(text, trust, policy=Policy(groups=frozenset({"staff", "it"}))).granted
    assert decide(text, trust, policy=Policy(groups=frozenset({"it"}))).reason == "not_authorized"


def test_credential_cache_gives_the_same_answers(issuer, holder, trust) -> None:
    cache = CredentialCache()
    cred = credential(issuer, holder)
    first = decide(qr(holder, cred), trust, cache=cache)
    second = decide(qr(holder, cred), trust, cache=cache)
    assert first.granted and second.granted and cache.hits == 1
    forged = Holder.generate("ES256").present_qr(cred, iat=NOW)
    assert decide(forged, trust, cache=cache).reason == "bad_holder_signature"
    # A new trust store (keys rotated away) empties the cache.
    assert decide(qr(holder, cred), TrustStore(), cache=cache).reason == "unknown_issuer"


def test_credential_cache_keeps_no_oversized_credential(issuer, holder, trust) -> None:
    cache = CredentialCache()
    big = credential(issuer, holder, name="x" * 3000)  # decided, but too big to keep
    assert len(big) > cache.max_credential_bytes
    assert all(decide(qr(holder, big), trust, cache=cache).granted for _ in range(2))
    assert cache.hits == 0 and cache.misses == 2


def test_credential_cache_drops_the_least_recently_used(issuer, holder, trust) -> None:
    cache = CredentialCache(max_entries=2)
    first, second, third = (credential(issuer, holder, sub=f"E{i}") for i in range(3))
    for cred in (first, second, first, third):  # first is used again, so second goes
        assert decide(qr(holder, cred), trust, cache=cache).granted
    hits = cache.hits
    assert decide(qr(holder, first), trust, cache=cache).granted and cache.hits == hits + 1
    assert decide(qr(holder, second), trust, cache=cache).granted and cache.hits == hits + 1


def test_decision_json_never_holds_the_credential_or_nonce(issuer, holder, trust) -> None:
    nonce = b"N" * 16
    cred = credential(issuer, holder)
    decision = decide(qr(holder, cred, nonce=nonce), trust)
    text = str(decision.to_json())
    assert nonce.hex() not in text and cred.hex() not in text
    assert decision.credential_hash and len(decision.credential_hash) == 16


def test_decide_cose_is_the_step5_entry(issuer, holder, trust) -> None:
    cose = holder.present(credential(issuer, holder), iat=NOW)
    assert decide_cose(cose, clock=Clock(NOW), trust=trust, lists=StatusLists()).granted
    policy = replace(Policy(), window_s=1)
    late = holder.present(credential(issuer, holder), iat=NOW - 2)
    assert decide_cose(late, clock=Clock(NOW), trust=trust, lists=StatusLists(), policy=policy).reason == (
        "presentation_stale"
    )
