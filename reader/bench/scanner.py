"""``gate-reader bench scanner``: line received to presentation emitted, for the serial scanner.

The scanner is simulated the way the tests do it: a pty pair whose slave the real
``ScannerSource`` opens as ``/dev/pts/N`` (a real ``serial.Serial``), and whose master this
command writes real GatePass QR texts to, one line at a time, waiting for each presentation
before sending the next (a person shows one code at a time). The clock starts just before
the line's terminator is written, because that byte is what completes the line; the source
stamps ``read_at`` when it emits. Bytes written before the source has opened the port are
flushed by pyserial, so writing starts only once the source reports itself up.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import statistics
import time

from reader.bench.stats import percentile
from reader.errors import CommandFailed
from reader.gate.deciding import Decider
from reader.gatepass.authority import Holder, Issuer, issue_credential
from reader.gatepass.decide import Clock
from reader.gatepass.trust import TrustStore, anchors_from_pem

_WARMUP = 20


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def run(args: argparse.Namespace) -> int:
    from drivers.scanner import ScannerSource  # pyserial loads only when this bench runs

    count = max(10, args.count)
    now = int(time.time())
    issuer = Issuer.generate("ES256")
    holder = Holder.generate("ES256")
    credential = issue_credential(issuer, sub="E-bench", iat=now - 60, exp=now + 86_400, holder=holder)
    texts = [holder.present_qr(credential, iat=now) for _ in range(_WARMUP + count)]

    master, slave = os.openpty()
    path = os.ttyname(slave)
    os.close(slave)  # the source opens it by name, as it would a scanner's device node
    sink: queue.Queue = queue.Queue()
    source = ScannerSource("bench-scanner", sink, port=path)
    try:
        source.start()
        deadline = time.monotonic() + 5
        while not source.health().up:
            if time.monotonic() > deadline:
                raise CommandFailed(f"the source did not open {path}: {source.health().last_error}")
            time.sleep(0.01)
        latencies: list[float] = []
        emitted: list[str] = []
        for index, text in enumerate(texts):
            _write(master, text.encode("ascii"))
            started = time.monotonic()
            _write(master, b"\r\n")
            presentation = sink.get(timeout=5)
            if presentation.payload != text or presentation.kind != "qr":
                raise CommandFailed(f"line {index} came back as {presentation.kind} of "
                                    f"{len(presentation.payload)} chars, not the text written")
            if index >= _WARMUP:
                latencies.append((presentation.read_at - started) * 1000)
                emitted.append(presentation.payload)
        extra = source.health().extra
    finally:
        source.close()
        os.close(master)

    # The texts are real presentations: the first and last emitted are granted.
    decider = Decider(TrustStore(anchors_from_pem(issuer.certificate_pem, "bench-issuer")))
    for text in (emitted[0], emitted[-1]):
        decision = decider.decide("qr", text, Clock(time.time()))
        if not decision.granted:
            raise CommandFailed(f"an emitted presentation was denied: {decision.reason}")

    result = {
        "benchmark": "scanner",
        "count": len(latencies),
        "line_chars": len(texts[0]),
        "median_ms": round(statistics.median(latencies), 4),
        "p99_ms": round(percentile(latencies, 0.99), 4),
        "max_ms": round(max(latencies), 4),
        # Inside the source: from the read that completed a line to its presentation emitted.
        "source_max_latency_us": extra.get("max_latency_us"),
    }
    if not args.json:
        print(f"serial scanner on a pty ({path}), {result['count']} QR lines of {result['line_chars']} chars: "
              f"terminator written -> presentation emitted median {result['median_ms']} ms, "
              f"p99 {result['p99_ms']} ms, max {result['max_ms']} ms (goal: median under 1 ms)")
    print(json.dumps(result))
    return 0
