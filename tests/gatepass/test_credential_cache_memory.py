"""The credential cache keeps light entries (issue 10's RSS figure): the issuer signature's
verdict by the credential's bytes, no parsed COSE_Sign1 and no OpenSSL key object, with every
presentation still parsed and checked in full."""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from reader.gatepass.authority import Holder, Issuer, issue_credential
from reader.gatepass.decide import Clock, CredentialCache, decide_text
from reader.gatepass.statuslist import StatusLists
from reader.gatepass.trust import TrustStore

NOW = 1_800_000_000


def credential(issuer: Issuer, holder: Holder, sub: str = "E1", **claims) -> bytes:
    return issue_credential(issuer, sub=sub, iat=NOW - 3600, exp=NOW + 3600, holder=holder, **claims)


def decide(text: str, trust: TrustStore, cache: CredentialCache, now: float = NOW):
    return decide_text(text, clock=Clock(now), trust=trust, lists=StatusLists(), cache=cache)


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_cached_credentials_keep_no_heavy_objects_and_still_check_the_holder(issuer, trust, alg) -> None:
    cache = CredentialCache()
    holder = Holder.generate(alg)
    cred = credential(issuer, holder)
    assert decide(holder.present_qr(cred, iat=NOW), trust, cache).granted
    # The entry is the issuer check's verdict (kid, no failure), nothing parsed.
    assert cache._verdicts == {cred: (issuer.kid, None, None)}
    for _ in range(2):
        assert decide(holder.present_qr(cred, iat=NOW), trust, cache).granted
    # A hit still verifies the holder's signature under the cnf key, and the validity.
    forged = decide(Holder.generate(alg).present_qr(cred, iat=NOW), trust, cache)
    assert forged.reason == "bad_holder_signature" and forged.detail == "the holder signature does not verify"
    late = NOW + 7200
    assert decide(holder.present_qr(cred, iat=late), trust, cache, now=late).reason == "expired"
    assert cache.hits == 4 and len(cache) == 1


def test_cached_credentials_say_why_their_cnf_key_is_unusable_at_every_hit(issuer, trust) -> None:
    """An Ed25519 cnf key of small order (the identity) is refused at first sight and at
    every hit with the same detail: the hit parses the credential again."""
    holder = Holder.generate("EdDSA")
    identity = b"\x01" + bytes(31)
    cred = credential(issuer, holder, extra={8: {1: {1: 1, -1: 6, -2: identity}}})
    cache = CredentialCache()
    details = set()
    for _ in range(3):
        decision = decide(holder.present_qr(cred, iat=NOW), trust, cache)
        assert decision.reason == "bad_holder_signature"
        details.add(decision.detail)
    assert cache.hits == 2 and len(details) == 1
    assert details.pop().startswith("the cnf key is ")


def test_cached_issuer_refusals_are_kept_with_their_reason(issuer, trust) -> None:
    """A credential whose issuer signature fails is remembered as failing: a hit gives the
    same refusal without verifying again."""
    holder = Holder.generate("ES256")
    cred = bytearray(credential(issuer, holder))
    cred[-1] ^= 1  # the last byte of the issuer's signature
    cache = CredentialCache()
    reasons = [decide(holder.present_qr(bytes(cred), iat=NOW), trust, cache).reason for _ in range(2)]
    assert reasons == ["bad_issuer_signature"] * 2 and cache.hits == 1


def test_credential_cache_entries_stay_light(issuer, trust) -> None:
    """Python-side bytes per cached entry (tracemalloc; the OpenSSL heap is not seen, and no
    entry holds any of it). An entry that kept the parsed credential was ~1.9 KB here (plus
    ~2.1 KB of OpenSSL heap for its key), a verdict with its key bytes is ~0.4 KB."""
    count = 200
    holders = [Holder.generate("ES256") for _ in range(count)]
    texts = [h.present_qr(credential(issuer, h, sub=f"E{i:06d}"), iat=NOW) for i, h in enumerate(holders)]
    cache = CredentialCache()
    assert decide(texts[0], trust, cache).granted  # imports and first-call caches out of the way
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for text in texts[1:]:
            assert decide(text, trust, cache).granted
        gc.collect()
        per_entry = (tracemalloc.get_traced_memory()[0] - before) / (count - 1)
    finally:
        tracemalloc.stop()
    assert len(cache) == count
    assert per_entry < 900, f"{per_entry:.0f} bytes per cached credential"
