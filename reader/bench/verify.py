"""``gate-reader bench verify``: timing figures printed as numbers, never asserted in tests.

It times whole decisions (QR text in, decision out) for first-seen
credentials against a floor: the two raw signature verifications the decision cannot
avoid (issuer and holder, public key objects already built), timed interleaved with the
decisions in the same run so that both see the same machine state.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from reader.bench.stats import percentile
from reader.gate.deciding import Decider
from reader.gatepass.authority import Holder, Issuer, build_status_list, issue_credential
from reader.gatepass.cose import parse_sign1
from reader.gatepass.decide import Clock, Policy
from reader.gatepass.envelope import open_text
from reader.gatepass.statuslist import StatusLists, verify_status_token
from reader.gatepass.trust import TrustStore, anchors_from_pem

_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())


def _raw_verifier(text: str, issuer_key: Any, holder_key: Any) -> Callable[[], None]:
    """The floor for one presentation: both ES256 checks with prepared keys and messages."""
    outer = parse_sign1(open_text(text))
    from reader.gatepass.cbor import loads

    inner = parse_sign1(loads(outer.payload)[1])
    messages = []
    for sign1, key in ((inner, issuer_key), (outer, holder_key)):
        r, s = sign1.signature[:32], sign1.signature[32:]
        der = encode_dss_signature(int.from_bytes(r, "big"), int.from_bytes(s, "big"))
        messages.append((key, der, sign1.to_be_signed()))

    def run() -> None:
        for key, der, message in messages:
            key.verify(der, message, _ECDSA_SHA256)

    return run


def _measure(texts: list[str], floors: list[Callable[[], None]], decide: Callable[[str], Any]) -> dict[str, float]:
    decision_ns: list[int] = []
    floor_ns: list[int] = []
    clock = time.perf_counter_ns
    # As the daemon does after start-up: long-lived objects (here the prepared codes and
    # keys) move out of the collector's sight, so collections triggered by a decision's
    # short-lived objects do not walk them.
    gc.collect()
    gc.freeze()
    started = clock()
    for index, (text, floor) in enumerate(zip(texts, floors, strict=True)):
        # Alternate which of the pair runs first, so neither always finds the caches warmed
        # by the other (the floor re-verifies the very messages the decision just checked).
        if index % 2:
            t0 = clock()
            floor()
            t1 = clock()
            decision = decide(text)
            t2 = clock()
            floor_ns.append(t1 - t0)
            decision_ns.append(t2 - t1)
        else:
            t0 = clock()
            decision = decide(text)
            t1 = clock()
            floor()
            t2 = clock()
            decision_ns.append(t1 - t0)
            floor_ns.append(t2 - t1)
        if not decision.granted:
            raise RuntimeError(f"benchmark credential denied: {decision.reason}")
    elapsed = clock() - started
    p50 = statistics.median(decision_ns) / 1000
    floor_us = statistics.median(floor_ns) / 1000
    return {
        "decisions_per_s": round(len(texts) / (sum(decision_ns) / 1e9), 1),
        "p50_us": round(p50, 1),
        "p99_us": round(percentile(decision_ns, 0.99) / 1000, 1),
        "floor_us": round(floor_us, 1),
        "ratio": round(p50 / floor_us, 3),
        "wall_s": round(elapsed / 1e9, 3),
    }


def run(args: argparse.Namespace) -> int:
    count = max(10, args.count)
    now = int(time.time())
    issuer = Issuer.generate("ES256")
    trust = TrustStore(anchors_from_pem(issuer.certificate_pem, "bench-issuer"))
    uri = "https://status.example/bench"
    lists = StatusLists([verify_status_token(
        build_status_list(issuer, uri=uri, size=100_000, values={7: 1}, iat=now), trust, now=now)])
    policy = Policy()
    issuer_public = issuer.private_key.public_key()

    # First seen: a new credential (new holder) for every decision.
    texts, floors = [], []
    for i in range(count):
        holder = Holder.generate("ES256")
        credential = issue_credential(issuer, sub=f"E{i:06d}", iat=now - 60, exp=now + 86_400, holder=holder,
                                      status=(uri, 10_000 + i))
        text = holder.present_qr(credential, iat=now)
        texts.append(text)
        floors.append(_raw_verifier(text, issuer_public, holder.private_key.public_key()))
    decider = Decider(trust, lists, policy=policy)

    def decide(text: str) -> Any:
        return decider.decide("qr", text, Clock(time.time()))

    first_seen = _measure(texts, floors, decide)

    # Seen before: one credential, a fresh presentation (new nonce) each time.
    holder = Holder.generate("ES256")
    credential = issue_credential(issuer, sub="E-repeat", iat=now - 60, exp=now + 86_400, holder=holder,
                                  status=(uri, 5))
    repeat_texts = [holder.present_qr(credential, iat=now) for _ in range(count)]
    repeat_floors = [_raw_verifier(t, issuer_public, holder.private_key.public_key()) for t in repeat_texts]
    decide(repeat_texts[0])  # warm the cache: "seen before"
    seen_before = _measure(repeat_texts, repeat_floors, decide)

    result = {"benchmark": "verify", "count": count, **first_seen, "seen_before": seen_before}
    if not args.json:
        print(f"first-seen ES256/ES256 QR decisions: p50 {first_seen['p50_us']} us, p99 {first_seen['p99_us']} us, "
              f"floor {first_seen['floor_us']} us, ratio {first_seen['ratio']}")
        print(f"seen-before credential: p50 {seen_before['p50_us']} us, ratio to the two-verify floor "
              f"{seen_before['ratio']} (one verify is skipped by the cache)")
    print(json.dumps(result))
    return 0
