"""Legacy cards and 1D barcodes (spec 2.3 and 4): low assurance, off unless enabled."""

from __future__ import annotations

import cbor2
import pytest

from reader.gatepass.authority import Issuer, build_legacy_list
from reader.gatepass.decide import Clock, Policy
from reader.gatepass.legacy import LEGACY_LIST_TYP, card_key, decide_legacy, verify_legacy_token
from reader.gatepass.statuslist import TokenRejected
from reader.gatepass.trust import TrustStore

NOW = 1_800_000_000
ON = Policy(allow_legacy=True)


@pytest.fixture(scope="module")
def issuer() -> Issuer:
    return Issuer.generate("EdDSA")


@pytest.fixture(scope="module")
def legacy(issuer: Issuer, trust: TrustStore):
    raw = build_legacy_list(
        issuer,
        cards={"04A1B2C3D4E5F6": ("E100", NOW + 30 * 86_400), "0000123456": ("E200", NOW - 1)},
        iat=NOW - 60,
        exp=NOW + 7 * 86_400,
    )
    return verify_legacy_token(raw, trust, now=NOW)


def test_known_card_is_granted_with_low_assurance(legacy) -> None:
    decision = decide_legacy("04A1B2C3D4E5F6", legacy, clock=Clock(NOW), policy=ON)
    assert decision.granted and decision.assurance == "low" and decision.subject == "E100"


def test_policy_must_enable_legacy_cards(legacy) -> None:
    assert decide_legacy("04A1B2C3D4E5F6", legacy, clock=Clock(NOW), policy=Policy()).reason == "legacy_not_allowed"


def test_uid_match_is_exact(legacy) -> None:
    assert decide_legacy("04a1b2c3d4e5f6", legacy, clock=Clock(NOW), policy=ON).reason == "unknown_card"
    assert decide_legacy("04A1B2C3D4E5F6", None, clock=Clock(NOW), policy=ON).reason == "unknown_card"


def test_expired_card_and_stale_list(legacy) -> None:
    assert decide_legacy("0000123456", legacy, clock=Clock(NOW), policy=ON).reason == "expired"
    late = Clock(NOW + 86_400 + 60 - 1)  # list iat + max_age passed, card still valid
    assert decide_legacy("04A1B2C3D4E5F6", legacy, clock=late, policy=ON).reason == "status_stale"
    allowed = decide_legacy("04A1B2C3D4E5F6", legacy, clock=late, policy=Policy(allow_legacy=True, on_stale="allow"))
    assert allowed.granted and allowed.warnings


def test_untrusted_clock_cannot_prove_a_fresh_list(legacy) -> None:
    clock = Clock(NOW, trusted=False, floor=NOW + 10_000)
    assert decide_legacy("04A1B2C3D4E5F6", legacy, clock=clock, policy=ON).reason == "clock_untrusted"


def test_list_keys_are_truncated_sha256() -> None:
    assert len(card_key("04A1")) == 16


def test_bad_legacy_tokens_are_refused(issuer, trust) -> None:
    good_claims = {6: NOW, 4: NOW + 10, -65537: {card_key("X"): {"sub": "E", "exp": NOW + 5}}}
    with pytest.raises(TokenRejected):
        verify_legacy_token(issuer.sign(cbor2.dumps(good_claims), typ="application/statuslist+cwt"), trust)
    with pytest.raises(TokenRejected):
        bad = {**good_claims, -65537: {b"short": {"sub": "E", "exp": 1}}}
        verify_legacy_token(issuer.sign(cbor2.dumps(bad), typ=LEGACY_LIST_TYP), trust)
    with pytest.raises(TokenRejected):
        verify_legacy_token(
            issuer.sign(cbor2.dumps({**good_claims, 6: NOW + 301}), typ=LEGACY_LIST_TYP), trust, now=NOW
        )
