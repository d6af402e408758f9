"""``gate-reader bench nfc``: from the target's activation to the presentation emitted.

The reader is the real ``NfcSource`` on nfcpy's ``udp`` driver; the phone is the card
emulator (``drivers.nfc_emulator``) on the same loopback port, answering as a GatePass holder
with the test authority's keys. Each tap is timed inside the source, from the moment
``sense`` returns the target (RATS, SELECT, CHALLENGE and GET RESPONSE follow) to the
presentation handed to the sink; the source publishes that figure and the tap's APDU count
in ``health().extra`` before it emits, so the numbers read here belong to the presentation
just received. The holder's signature is computed inside the timed window (as a phone's
would be) and, the emulator sharing this process, so is the emulator's work: the figures
are an upper bound for the gate's own share.

Between taps the card is taken away and presented again at once, so the reader's next poll
finds it (the simulated reader polls every ``poll_interval_ms`` as on hardware,
``drivers.nfc_udp``; the wait for that poll is not timed here, ``bench pipeline``'s tap as
felt is). Each presentation is then decided with ``decide_nfc`` and must be granted: a
sanity check, not timed.
"""

from __future__ import annotations

import argparse
import json
import queue
import socket
import statistics
import time
from typing import Any

from reader.bench.stats import percentile
from reader.errors import CommandFailed
from reader.gate.deciding import Decider
from reader.gatepass.authority import Holder, Issuer, build_status_list, issue_credential
from reader.gatepass.decide import Clock
from reader.gatepass.statuslist import StatusLists, verify_status_token
from reader.gatepass.trust import TrustStore, anchors_from_pem

_WARMUP = 5
_URI = "https://status.example/bench-nfc"
ALGS = ("ES256", "EdDSA")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _summary(times_ms: list[float], apdus: list[int]) -> dict[str, Any]:
    return {
        "median_ms": round(statistics.median(times_ms), 3),
        "p99_ms": round(percentile(times_ms, 0.99), 3),
        "max_ms": round(max(times_ms), 3),
        "apdus_per_tap": max(apdus),
        "apdus_mean": round(statistics.fmean(apdus), 2),
        "taps": len(times_ms),
    }


class _Bench:
    def __init__(self, gate_id: str) -> None:
        self.port = _free_port()
        self.sink: queue.Queue = queue.Queue()
        from drivers.nfc import NfcSource  # nfcpy loads only when this bench runs
        from drivers.nfc_emulator import CardEmulator

        self.emulator = CardEmulator(self.port)
        self.source = NfcSource("bench-nfc", self.sink, path=self.emulator.path, gate_id=gate_id)
        # The card goes away right after each tap: notice it soon, so the next tap is not
        # kept waiting (the timed window does not include this).
        self.source.presence_interval_s = 0.02

    def tap(self, card: Any) -> tuple[Any, float, int]:
        self.emulator.present(card)
        presentation = self.sink.get(timeout=10)
        extra = self.source.health().extra
        self.emulator.remove()
        return presentation, float(extra["last_exchange_ms"]), int(extra["last_apdus"])


def run(args: argparse.Namespace) -> int:
    from drivers.nfc_emulator import GatePassHolder

    taps = max(10, args.taps)
    bench = _Bench(args.gate_id)
    results: dict[str, dict[str, Any]] = {}
    all_ms: list[float] = []
    all_apdus: list[int] = []
    sizes: dict[str, int] = {}
    try:
        bench.emulator.start()
        bench.source.start()
        for alg in ALGS:
            now = int(time.time())
            issuer = Issuer.generate(alg)
            holder = Holder.generate(alg)
            trust = TrustStore(anchors_from_pem(issuer.certificate_pem, f"bench-{alg}"))
            token = build_status_list(issuer, uri=_URI, size=1024, values={}, iat=now)
            decider = Decider(trust, StatusLists([verify_status_token(token, trust, now=now)]))
            credential = issue_credential(issuer, sub=f"E-{alg}", iat=now - 60, exp=now + 86_400, holder=holder,
                                          status=(_URI, 5))
            card = GatePassHolder(lambda data, h=holder, c=credential: h.answer_challenge(data, c, iat=time.time()))
            times_ms: list[float] = []
            apdus: list[int] = []
            presentations = []
            for index in range(_WARMUP + taps):
                presentation, elapsed_ms, count = bench.tap(card)
                if index >= _WARMUP:
                    times_ms.append(elapsed_ms)
                    apdus.append(count)
                    presentations.append(presentation)
            # A failure is the command's one error line (reader.cli); stdout carries only figures.
            for presentation in presentations:
                if presentation.kind != "nfc":
                    raise CommandFailed(f"{alg}: a tap gave a {presentation.kind} presentation")
                decision = decider.decide("nfc", presentation.payload, Clock(time.time()),
                                          challenge=presentation.challenge)
                if not decision.granted:
                    raise CommandFailed(f"{alg}: presentation denied ({decision.reason}: {decision.detail})")
            sizes[alg] = len(presentations[0].payload)
            results[alg] = _summary(times_ms, apdus)
            all_ms += times_ms
            all_apdus += apdus
    except queue.Empty:
        health = bench.source.health()
        raise CommandFailed(f"no presentation within 10 s (source up={health.up}, last error: {health.last_error})"
                            ) from None
    finally:
        bench.source.close()
        bench.emulator.stop()

    overall = _summary(all_ms, all_apdus)
    report: dict[str, Any] = {
        "median_ms": overall["median_ms"],
        "p99_ms": overall["p99_ms"],
        "apdus_per_tap": overall["apdus_per_tap"],
        "taps": overall["taps"],
        "goal_ms": 20,
        "goal_apdus": 3,
        "per_alg": {alg: {**results[alg], "answer_bytes": sizes[alg]} for alg in ALGS},
    }
    if not args.json:
        for alg in ALGS:
            r = report["per_alg"][alg]
            print(f"{alg:6} issuer and holder: {r['taps']} taps, {r['answer_bytes']} bytes answered, "
                  f"median {r['median_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, max {r['max_ms']:.2f} ms, "
                  f"{r['apdus_per_tap']} APDUs per tap")
        print(f"all: median {report['median_ms']:.2f} ms, p99 {report['p99_ms']:.2f} ms "
              f"(goal < 20 ms, at most 3 APDUs; every presentation granted by decide_nfc)")
    print(json.dumps(report, sort_keys=True))
    return 0
