"""reader.gate.deciding: the one way a presentation of any kind becomes a decision, for
every caller (verify, the benchmarks, the driver tests, the daemon next)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from reader.errors import ConfigError
from reader.gate.config import parse_config
from reader.gate.deciding import Decider, gate_decider
from reader.gate.state import GateState
from reader.gatepass.authority import Holder, Issuer, build_legacy_list, issue_credential
from reader.gatepass.legacy import verify_legacy_token
from reader.gatepass.statuslist import StatusLists
from reader.gatepass.trust import TrustStore, anchors_from_pem
from reader.gatepass.verdict import Clock, Policy


@pytest.fixture(scope="module")
def grounds() -> tuple[Issuer, Holder, bytes, TrustStore]:
    now = int(time.time())
    issuer, holder = Issuer.generate("ES256"), Holder.generate("EdDSA")
    credential = issue_credential(issuer, sub="E1", iat=now - 60, exp=now + 86_400, holder=holder)
    return issuer, holder, credential, TrustStore(anchors_from_pem(issuer.certificate_pem, "issuer"))


def test_every_presentation_kind_is_decided_through_one_decider(grounds) -> None:
    issuer, holder, credential, trust = grounds
    now = int(time.time())
    legacy = verify_legacy_token(build_legacy_list(issuer, cards={"04A1B2": ("E9", now + 3600)}, iat=now,
                                                   exp=now + 3600), trust)
    decider = Decider(trust, StatusLists(), legacy, Policy(allow_legacy=True))
    clock = Clock(time.time())
    qr = decider.decide("qr", holder.present_qr(credential, iat=now), clock)
    challenge = bytes(range(16))
    nfc = decider.decide("nfc", holder.present(credential, iat=now, rnonce=challenge), clock, challenge=challenge)
    card = decider.decide("legacy", "04A1B2", clock)
    assert (qr.granted, nfc.granted, card.granted) == (True, True, True)
    assert (qr.assurance, nfc.assurance, card.assurance, card.subject) == ("high", "high", "low", "E9")
    # The issuer check of a credential seen before comes from the decider's cache.
    assert decider.cache.hits >= 1
    # The per-call policy replaces the reader's for that decision only.
    assert decider.decide("legacy", "04A1B2", clock, policy=Policy()).reason == "legacy_not_allowed"
    assert decider.decide("legacy", "04A1B2", clock).granted


def test_a_presentation_of_the_wrong_shape_is_refused_not_decided(grounds) -> None:
    _issuer, holder, credential, trust = grounds
    decider = Decider(trust)
    clock = Clock(time.time())
    with pytest.raises(ValueError, match="unknown presentation kind 'barcode'"):
        decider.decide("barcode", "x", clock)
    with pytest.raises(TypeError):
        decider.decide("qr", b"GP1:", clock)
    with pytest.raises(TypeError):  # an NFC answer means nothing without the challenge it answers
        decider.decide("nfc", holder.present(credential, iat=0, rnonce=bytes(16)), clock)


@pytest.mark.parametrize("field", ["window_s", "future_skew_s", "skew_s", "max_age_s"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -1.0])
def test_a_policy_that_cannot_decide_is_refused_before_any_decision(grounds, field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=f"policy {field}"):
        Decider(grounds[3], policy=Policy(**{field: value}))


def test_the_gate_decides_with_its_cache_and_its_policy(grounds, tmp_path: Path) -> None:
    _issuer, holder, credential, trust = grounds
    config = parse_config('[gate]\nid = "g"\n[cache]\npath = "c.db"\n[policy]\nprefixes = ["GPX:"]\nwindow_s = 5\n',
                          tmp_path / "gate.toml")
    decider = gate_decider(config, GateState(trust, StatusLists(), None, None, 0, 0))
    now = int(time.time())
    assert (decider.policy.window_s, decider.prefixes) == (5, ("GPX:",))
    text = holder.present_qr(credential, iat=now)
    assert decider.decide("qr", text, Clock(now)).reason == "malformed"  # GP1: is not this gate's prefix
    assert decider.decide("qr", "GPX:" + text.removeprefix("GP1:"), Clock(now)).granted
    assert decider.decide("qr", "GPX:" + text.removeprefix("GP1:"), Clock(now + 6)).reason == "presentation_stale"


def test_decisions_carry_the_credential_groups_for_the_reader_policy(grounds) -> None:
    """The reader's own policy (groups, schedules, lockdown) needs the credential's groups:
    every decision on a credential carries them, granted or denied, and a refusal by the
    reader's policy keeps them; a legacy card carries none."""
    from reader.gate.policy import PassbackMemory, ReaderPolicy, SitePolicy, authorize

    issuer, holder, _credential, trust = grounds
    now = int(time.time())
    credential = issue_credential(issuer, sub="E2", iat=now - 60, exp=now + 86_400, holder=holder,
                                  groups=["staff", "night"])
    decider = Decider(trust)
    granted = decider.decide("qr", holder.present_qr(credential, iat=now), Clock(now))
    denied = decider.decide("qr", holder.present_qr(credential, iat=now - 3600), Clock(now))
    assert (granted.granted, granted.groups) == (True, ("staff", "night"))
    assert (denied.reason, denied.groups) == ("presentation_stale", ("staff", "night"))
    site = SitePolicy(readers={"r": ReaderPolicy(kinds=frozenset({"nfc"}))})
    refused = authorize(granted, reader_name="r", reader=site.readers["r"], kind="qr", groups=granted.groups,
                        site=site, local_time=site.local_time(now), lockdown=False,
                        passback=PassbackMemory(), now=0.0)
    assert (refused.reason, refused.groups) == ("not_authorized", ("staff", "night"))
