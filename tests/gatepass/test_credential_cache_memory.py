"""The credential cache keeps light entries (issue 10's RSS figure): no parsed COSE_Sign1 and
no OpenSSL key object per entry, with every presentation still checked in full."""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from reader.gatepass.authority import Holder, Issuer, issue_credential
from reader.gatepass.decide import Clock, CredentialCache, decide_text
from reader.gatepass.statuslist import StatusLists
from reader.gatepass.trust import TrustStore, anchors_from_pem

NOW = 1_800_000_000


@pytest.fixture(scope="module")
def issuer() -> Issuer:
    return Issuer.generate("ES256")


@pytest.fixture(scope="module")
def trust(issuer: Issuer) -> TrustStore:
    return TrustStore(anchors_from_pem(issuer.certificate_pem, "issuer"))


def credential(issuer: Issuer, holder: Holder, sub: str = "E1", **extra) -> bytes:
    return issue_credential(issuer, sub=sub, iat=NOW - 3600, exp=NOW + 3600, holder=holder, **extra)


def decide(text: str, trust: TrustStore, cache: CredentialCache):
    return decide_text(text, clock=Clock(NOW), trust=trust, lists=StatusLists(), cache=cache)


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_cached_credentials_keep_no_heavy_objects_and_still_check_the_holder(issuer, trust, alg) -> None:
    cache = CredentialCache()
    holder = Holder.generate(alg)
    cred = credential(issuer, holder)
    assert decide(holder.present_qr(cred, iat=NOW), trust, cache).granted
    (entry,) = cache._by_role[True].values()
    # What the issuer check alone read, and the key object, are not kept ...
    assert entry.sign1 is None and entry.holder_key is None
    # ... and a hit still verifies the holder's signature under the cnf key.
    for _ in range(2):
        assert decide(holder.present_qr(cred, iat=NOW), trust, cache).granted
    forged = Holder.generate(alg).present_qr(cred, iat=NOW)
    refused = decide(forged, trust, cache)
    assert refused.reason == "bad_holder_signature" and refused.detail == "the holder signature does not verify"
    assert cache.hits == 3


def test_cached_credentials_keep_why_their_cnf_key_is_unusable(issuer, trust) -> None:
    """An Ed25519 cnf key of small order (the identity) is refused at first sight and at
    every hit with the same detail: the entry keeps the problem text, not a key."""
    holder = Holder.generate("EdDSA")
    identity = b"\x01" + bytes(31)
    cred = credential(issuer, holder, extra={8: {1: {1: 1, -1: 6, -2: identity}}})
    cache = CredentialCache()
    details = set()
    for _ in range(3):
        decision = decide(holder.present_qr(cred, iat=NOW), trust, cache)
        assert decision.reason == "bad_holder_signature"
        details.add(decision.detail)
    (entry,) = cache._by_role[True].values()
    assert type(entry.holder_key) is str and len(details) == 1 and cache.hits == 2
    assert details.pop().startswith("the cnf key is ")


def test_credential_cache_entries_stay_light(issuer, trust) -> None:
    """Python-side bytes per cached entry (tracemalloc: the OpenSSL heap is not seen, and an
    entry no longer holds any of it). A full entry with its parsed COSE_Sign1 was ~1.9 KB
    here, the slim one ~1.15 KB; the bound leaves room for other interpreters."""
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
    assert len(cache._by_role[True]) == count
    assert per_entry < 1500, f"{per_entry:.0f} bytes per cached credential"
