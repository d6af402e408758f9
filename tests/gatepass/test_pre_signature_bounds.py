"""CPU amplification before any signature is bounded (issue 8, item 6).

An unsigned QR code of a few hundred characters used to inflate into 21,000 one-entry maps
and cost ~60 ms a decision (cbor2's Python object hook per map, then the whole input again
in the pure-Python decoder when cbor2 took ``true`` for a duplicate of ``1``). Each decode a
decision does before its signatures are checked now has a small item budget (cose.py,
claims.py), and cbor.py gives cbor2 -- which cannot count -- only inputs no longer than the
budget.

No timed asserts here (timing is for benchmarks and the fuzz harness, which report the
figures): the work is counted instead. The Python calls a decision makes, and the bytes
cbor2's decoder is handed, are both fixed by the budgets whatever the input; before the
budgets the issue's input made ~380,000 Python calls and handed cbor2 63,000 bytes.
"""

from __future__ import annotations

import sys
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import cbor2
import pytest

from reader.gatepass import cbor
from reader.gatepass.authority import Holder, Issuer, issue_credential
from reader.gatepass.claims import MAX_CLAIMS_ITEMS
from reader.gatepass.cose import MAX_ENVELOPE_ITEMS, MAX_HEADER_ITEMS, sig_structure
from reader.gatepass.decide import Clock, CredentialCache, Policy, decide_nfc, decide_text
from reader.gatepass.envelope import base45_encode
from reader.gatepass.statuslist import StatusLists
from reader.gatepass.trust import TrustStore

NOW = 1_800_000_000
# Every unit of budget costs the budgeted decoder at most a few Python calls (an item, a
# map entry, a spend); a decision decodes at most two envelopes, two protected headers, a
# presentation payload and a credential's claims, each within its budget. The valid
# decisions below make ~150 calls.
BUDGET_UNITS = 2 * (MAX_ENVELOPE_ITEMS + MAX_HEADER_ITEMS + MAX_CLAIMS_ITEMS)
CALL_CEILING = 4 * BUDGET_UNITS


def text_of(raw: bytes) -> str:
    """The QR text of ``raw``: compressed, as an attacker would pack a repetitive input."""
    return "GP1:" + base45_encode(zlib.compress(raw, 9))


def bstr(data: bytes) -> bytes:
    return cbor2.dumps(data)


def array(items: bytes, count: int) -> bytes:
    return b"\x9a" + count.to_bytes(4, "big") + items


def sign1(protected: bytes = b"\x40", unprotected: bytes = b"\xa0", payload: bytes = b"\x40") -> bytes:
    return b"\x84" + protected + unprotected + payload + b"\x40"


FALSE_MAPS = array(b"\xa1\xf4\x00" * 20_999 + b"\xa2\xf5\x00\x01\x00", 21_000)  # the issue's input


def hostile_inputs(issuer: Issuer) -> Iterator[tuple[str, bytes]]:
    """Thousands of small items wherever a decision decodes before its signatures."""
    yield "the issue's 21,000 {false: 0} maps", FALSE_MAPS
    yield "in the unprotected header", sign1(unprotected=b"\xa1\x20" + FALSE_MAPS)
    yield "in the protected header", sign1(protected=bstr(b"\xa1\x20" + FALSE_MAPS))
    yield "as the payload", sign1(payload=bstr(FALSE_MAPS))
    yield "in a static pass's claims", sign1(payload=bstr(b"\xa2\x01\x61a\x20" + FALSE_MAPS))
    yield "indefinite map of empty maps", b"\x9f" + b"\xa0" * 60_000 + b"\xa2\xf5\x00\x01\x00\xff"
    yield "empty arrays", array(b"\x80" * 60_000, 60_000)
    yield "tags", array(b"\xc6\x00" * 30_000, 30_000)
    yield "byte string chunks", b"\x5f" + b"\x40" * 60_000 + b"\xff"
    yield "text string chunks", b"\x7f" + b"\x60" * 60_000 + b"\xff"
    # Within the budgets: a real credential and presentation, each carrying all the junk its
    # budget lets through, in an unknown claim and an unknown presentation key, with the
    # true/1 pair at the end of the claims so that cbor2 gives up last.
    holder = Holder.generate("EdDSA")
    claims = {1: "i", 2: "E1", 4: NOW + 3600, 6: NOW - 60, 7: b"c" * 16, 8: {1: holder.cose_key()}}
    head = cbor2.dumps(claims)
    junk = array(b"\xa1\xa0\x00" * 120, 120)  # {{}: 0}: an odd key in every map
    payload = bytes((head[0] + 2,)) + head[1:] + b"\x61x" + junk + b"\xf5\x00"
    protected = cbor2.dumps({1: issuer.alg, 4: issuer.kid})
    credential = cbor2.dumps([protected, {}, payload, b"s" * 64])
    outer = {1: credential, 2: NOW, 3: b"n" * 16, "y": [{(): 0}] * 160}
    yield "junk within every budget", cbor2.dumps([cbor2.dumps({1: -8}), {"u": [[]] * 50}, cbor2.dumps(outer), b"s"])


@contextmanager
def counting() -> Iterator[dict[str, Any]]:
    """Counts Python calls, and records the length of every input cbor2's decoder gets."""
    seen: dict[str, Any] = {"calls": 0, "cbor2_bytes": []}
    real_decoder = cbor._decoder

    class Spy:
        def __init__(self, decoder: Any) -> None:
            object.__setattr__(self, "decoder", decoder)

        def __setattr__(self, name: str, value: Any) -> None:
            if name == "fp":
                seen["cbor2_bytes"].append(len(value.getbuffer()))
            setattr(self.decoder, name, value)

        def decode(self) -> Any:
            return self.decoder.decode()

    def profile(_frame: Any, event: str, _arg: Any) -> None:
        if event in ("call", "c_call"):
            seen["calls"] += 1

    cbor._decoder = lambda max_depth: Spy(real_decoder(max_depth))
    sys.setprofile(profile)
    try:
        yield seen
    finally:
        sys.setprofile(None)
        cbor._decoder = real_decoder


def decide(text: str, trust: TrustStore, **kw: Any) -> Any:
    return decide_text(text, clock=Clock(NOW), trust=trust, lists=StatusLists(), cache=CredentialCache(), **kw)


def test_the_issues_input_is_a_short_code() -> None:
    assert len(text_of(FALSE_MAPS)) < 300


@pytest.mark.parametrize("route", ["qr", "nfc", "static-allowed"])
def test_pre_signature_work_is_bounded_whatever_the_input(
    issuer: Issuer, trust: TrustStore, route: str
) -> None:
    for name, raw in hostile_inputs(issuer):
        if route == "nfc" and len(raw) > 4096:
            continue  # refused as too_large before any decoding
        text = text_of(raw)  # encoded outside the count: only the decision is counted
        with counting() as seen:
            if route == "nfc":
                decision = decide_nfc(raw, bytes(16), clock=Clock(NOW), trust=trust, lists=StatusLists())
            else:
                decision = decide(text, trust, policy=Policy(allow_static=route == "static-allowed"))
        assert not decision.granted, name
        assert seen["calls"] <= CALL_CEILING, (name, seen["calls"])
        assert max(seen["cbor2_bytes"], default=0) <= MAX_CLAIMS_ITEMS, (name, seen["cbor2_bytes"])


def test_valid_decisions_stay_cheap(issuer: Issuer, trust: TrustStore) -> None:
    """The budgets leave valid credentials on cbor2 and cost them nothing: the counts of a
    granted first-seen decision are a small fraction of the ceiling."""
    holder = Holder.generate("ES256")
    credential = issue_credential(issuer, sub="E1", iat=NOW - 60, exp=NOW + 3600, holder=holder,
                                  status=None, groups=[f"group-{i}" for i in range(20)], name="A Name", org="ORG")
    text = holder.present_qr(credential, iat=NOW)
    with counting() as seen:
        assert decide(text, trust).granted
    assert seen["calls"] < CALL_CEILING / 10
    assert seen["cbor2_bytes"] and max(seen["cbor2_bytes"]) <= MAX_CLAIMS_ITEMS


def _credential_with_groups(issuer: Issuer, holder: Holder, groups: int) -> bytes:
    return issue_credential(issuer, sub="E1", iat=NOW - 60, exp=NOW + 3600, holder=holder,
                            groups=[f"g{i}" for i in range(groups)])


def test_claims_within_the_budget_are_read_and_beyond_it_are_malformed(issuer: Issuer, trust: TrustStore) -> None:
    """The claims budget is a limit of the format (docs/formats.md): a credential of up to
    MAX_CLAIMS_ITEMS items is read whatever its length in bytes, a larger one is malformed
    with its issuer signature still checked and reported, as for any claims problem."""
    holder = Holder.generate("ES256")
    base_items = 1 + 2 * 6 + 1 + 1 + 2 * 4 + 2  # map, five claims, cnf (key, two maps, four pairs), "grp" + array
    fits = MAX_CLAIMS_ITEMS - base_items
    decision = decide(holder.present_qr(_credential_with_groups(issuer, holder, fits), iat=NOW), trust)
    assert decision.granted, decision.detail
    decision = decide(holder.present_qr(_credential_with_groups(issuer, holder, fits + 1), iat=NOW), trust)
    assert decision.reason == "malformed"
    assert decision.checks["format"] == "ok" and decision.checks["claims"] == "fail"
    assert decision.checks["issuer_signature"] == "ok"
    assert "too many CBOR items" in decision.detail


def test_static_pass_claims_are_decoded_once(issuer: Issuer, trust: TrustStore, monkeypatch) -> None:
    """The payload of a static pass is its claims: decoded once, with the claims budget."""
    static = issue_credential(issuer, sub="E1", iat=NOW - 60, exp=NOW + 3600, groups=["a"] * 30)
    payload = cbor2.loads(static).value[2]
    decoded: list[tuple[bytes, int]] = []
    real: Callable[..., Any] = cbor.loads

    def spy(data: bytes, **kw: Any) -> Any:
        decoded.append((data, kw.get("max_items", cbor.MAX_ITEMS)))
        return real(data, **kw)

    import reader.gatepass.decide as decide_module

    monkeypatch.setattr(decide_module, "loads", spy)
    assert decide("GP1:" + base45_encode(static), trust, policy=Policy(allow_static=True)).granted
    assert decoded == [(payload, MAX_CLAIMS_ITEMS)]


def test_a_presentation_signature_is_not_what_bounds_the_work(issuer: Issuer, trust: TrustStore) -> None:
    """The budgets hold for signed input too: a well-signed presentation of a credential
    stuffed to its claims budget costs no more than the ceiling."""
    holder = Holder.generate("EdDSA")
    credential = _credential_with_groups(issuer, holder, 400)
    payload = cbor2.dumps({1: credential, 2: NOW, 3: b"n" * 16})
    protected = cbor2.dumps({1: -8})
    signature = holder.private_key.sign(sig_structure(protected, payload))
    text = text_of(cbor2.dumps([protected, {}, payload, signature]))
    with counting() as seen:
        assert decide(text, trust).granted
    assert seen["calls"] <= CALL_CEILING
