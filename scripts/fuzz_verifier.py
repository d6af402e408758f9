#!/usr/bin/env python3
"""Fuzz the GatePass verifier for longer than the test suite can.

The property tests (tests/gatepass/test_*_properties.py) run a few hundred examples per
run; this harness is for a technician or a CI job with minutes or hours to spend. It feeds
every input to the three ways bytes reach a gate:

- as a QR text, ``"GP1:" + base45(input)`` and ``"GP1:" + base45(zlib(input))``;
- as a scanner text, the input read as Latin-1;
- as an NFC answer to a fixed challenge (the one of the nfc-ok vector).

A crash is any exception out of ``decide_text``/``decide_nfc`` (they must never raise),
a decision that breaks spec section 7's shape, or a grant whose signed bytes are not those
of a vector that is granted as it is. The input is then printed as hex on stderr, written
to ``crash-<sha256 prefix>.bin`` in the current directory, and the exit status is 1.

Slow inputs are findings too: a decision's work before its signatures are known good must
stay bounded (issue 8: at most ten times a valid first-seen decision). Every decision is
timed; the ``--keep-slowest`` slowest inputs are kept, timed again at the end (median of
several runs, so one preempted run does not count) and reported with their route, reason
and ratio to a valid first-seen decision timed in the same process; ``--slow-dir`` saves
them as ``slow-<sha256 prefix>.bin`` for ``--replay``.

Engines: atheris (coverage-guided libFuzzer) when it can be imported, otherwise a seeded
mutation loop over the COSE bytes of tests/data/gatepass-v1/cases.json and of a few hostile
shapes (many small maps, empty arrays, string chunks: the inputs that made decisions slow).
Both stop after ``--seconds`` and print one JSON line:
``{"executions": n, "seconds": s, "crashes": 0, "engine": "atheris"|"mutation",
"valid_first_seen_us": v, "slowest": [{"sha256": h, "bytes": n, "route": r, "reason": r,
"decision_us": t, "ratio": t / v}, ...]}``.
"""

# Over ~400 lines on purpose: a standalone script (both engines, seeds, the slow-input report and replay), run
# by hand for long fuzzing, never imported by the project.

from __future__ import annotations

import argparse
import hashlib
import heapq
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import traceback
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data" / "gatepass-v1"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # run as a plain script from a checkout, installed or not

DEFAULT_CHALLENGE = bytes(16)
FORMAT_REASONS = ("malformed", "too_large")
ROUTES = ("qr", "qr-zlib", "scanner", "nfc")
DEFAULT_KEEP_SLOWEST = 5
RETIME_RUNS = 7  # the kept inputs are timed again this many times; the median is reported
MAX_INPUT_BYTES = 70_000  # past the 64 KiB a QR code may inflate to, so too_large stays reachable
# Byte values that steer a CBOR decoder into its less travelled states: width markers,
# indefinite lengths, break, simple values, floats, bignum and COSE tags.
INTERESTING_BYTES = bytes.fromhex(
    "00 17 18 19 1a 1b 1c 1f 20 3b 40 58 5b 5f 60 78 7b 7f 80 98 9b 9f a0 b8 bb bf"
    " c2 c3 d2 d8 db f4 f5 f6 f7 f8 f9 fa fb fc ff"
)


class InvariantBroken(AssertionError):
    """A decision came back but is wrong in shape or grants what it must not."""


@dataclass
class Verifier:
    """The trust store, status lists, clock and vectors every execution decides with."""

    decide_text: Callable[..., Any]
    decide_nfc: Callable[..., Any]
    parse_sign1: Callable[[bytes], Any]
    open_text: Callable[[str], bytes]
    base45_encode: Callable[[bytes], str]
    reasons: tuple[str, ...]
    checks: tuple[str, ...]
    kwargs: dict[str, Any]
    challenge: bytes
    seeds: list[bytes]
    granted_signed: set[tuple[bytes, bytes, bytes]]
    granted_texts: list[str]  # QR texts of the vectors granted as they are: the timing reference


def hostile_seeds(vector: bytes) -> list[bytes]:
    """Shapes that once made a decision cost 100 times a valid one (issue 8): thousands of
    small items where a presentation has a few -- in the whole input, the unprotected
    header, the protected header, the payload or, inside a vector presentation, an unknown
    claim of the credential -- with a ``true`` key that cbor2 takes for a duplicate of ``1``
    at the end. They compress well, so the qr-zlib route carries them in a few hundred
    characters; mutations of them search for other slow shapes."""
    import cbor2

    def array(items: bytes, count: int) -> bytes:
        return b"\x9a" + count.to_bytes(4, "big") + items

    false_maps = b"\xa1\xf4\x00" * 20_999  # {false: 0}
    odd = array(false_maps + b"\xa2\xf5\x00\x01\x00", 21_000)  # ... {true: 0, 1: 0}
    seeds = [
        odd,
        b"\x84\x40" + b"\xa1\x20" + odd + b"\x40\x40",  # in the unprotected header
        b"\x84" + cbor2.dumps(b"\xa1\x20" + odd) + b"\xa0\x40\x40",  # in the protected header
        b"\x84\x40\xa0" + cbor2.dumps(b"\xa2\x01\x61a\x20" + odd) + b"\x40",  # a static pass's claims
        array(b"\x80" * 60_000, 60_000),  # empty arrays
        b"\x5f" + b"\x40" * 60_000 + b"\xff",  # empty chunks of an indefinite byte string
    ]
    # An unknown claim of many {{}: 0} maps in the first vector's credential (true/1 at the
    # end), and an unknown presentation key of many {[]: 0}: the slowest shape within budgets.
    presentation = cbor2.loads(vector)
    outer = presentation.value if isinstance(presentation, cbor2.CBORTag) else presentation
    payload = cbor2.loads(outer[2])
    credential = cbor2.loads(payload[1])
    inner = credential.value if isinstance(credential, cbor2.CBORTag) else credential
    claims = cbor2.dumps(cbor2.loads(inner[2]))
    claims = bytes((claims[0] + 2,)) + claims[1:] + b"\x61x" + array(b"\xa1\xa0\x00" * 150, 150) + b"\xf5\x00"
    payload[1] = cbor2.dumps([inner[0], inner[1], claims, inner[3]])
    payload["y"] = [{(): 0}] * 150
    seeds.append(cbor2.dumps([outer[0], outer[1], cbor2.dumps(payload), outer[3]]))
    return seeds


def load_verifier() -> Verifier:
    """Import the verifier and load the vectors. Kept in a function so that atheris can
    instrument the ``reader`` modules as they are imported."""
    from reader.gatepass.cose import CoseFormatError, parse_sign1
    from reader.gatepass.decide import CHECKS, REASONS, Clock, decide_nfc, decide_text
    from reader.gatepass.envelope import EnvelopeError, base45_encode, open_text
    from reader.gatepass.statuslist import StatusLists, verify_status_token
    from reader.gatepass.trust import TrustStore

    cases = json.loads((DATA / "cases.json").read_text())["cases"]
    now = cases[0]["at"]
    trust = TrustStore.from_pem_files(sorted(DATA.glob("issuer-*.pem")))
    lists = StatusLists(
        verify_status_token((DATA / name).read_bytes(), trust, now=now) for name in ("status-1.cwt", "status-2.cwt")
    )
    kwargs = {"clock": Clock(now), "trust": trust, "lists": lists}
    challenge = DEFAULT_CHALLENGE
    seeds: list[bytes] = []
    granted_signed: set[tuple[bytes, bytes, bytes]] = set()
    granted_texts: list[str] = []
    for case in cases:
        try:
            if "nfc" in case:
                cose = bytes.fromhex(case["payload"])
                challenge = bytes.fromhex(case["nfc"]) if case["expect"]["reason"] == "granted" else challenge
            else:
                cose = open_text(case["payload"])
        except EnvelopeError:
            continue  # the vectors of bad envelopes have no COSE bytes to mutate
        seeds.append(cose)
    for cose in seeds:
        text = decide_text("GP1:" + base45_encode(cose), **kwargs)
        nfc = decide_nfc(cose, challenge, **kwargs)
        if text.granted:
            granted_texts.append("GP1:" + base45_encode(cose))
        if text.granted or nfc.granted:
            try:
                sign1 = parse_sign1(cose)
            except CoseFormatError:  # pragma: no cover - a granted vector parses
                continue
            granted_signed.add((sign1.protected_bytes, sign1.payload, sign1.signature))
    seeds += hostile_seeds(seeds[0])
    return Verifier(
        decide_text=decide_text,
        decide_nfc=decide_nfc,
        parse_sign1=parse_sign1,
        open_text=open_text,
        base45_encode=base45_encode,
        reasons=REASONS,
        checks=CHECKS,
        kwargs=kwargs,
        challenge=challenge,
        seeds=seeds,
        granted_signed=granted_signed,
        granted_texts=granted_texts,
    )


def check(verifier: Verifier, decision: Any, cose: Callable[[], bytes]) -> None:
    """Spec 7's shape, and no grant for bytes whose signed parts no granted vector has.
    ``cose`` gives the COSE bytes the decision was made on (only asked for on a grant)."""
    if decision.reason != "granted" and decision.reason not in verifier.reasons:
        raise InvariantBroken(f"unknown reason {decision.reason!r}")
    if decision.granted != (decision.reason == "granted"):
        raise InvariantBroken("granted flag and reason disagree")
    if tuple(decision.checks) != verifier.checks:
        raise InvariantBroken(f"checks are {tuple(decision.checks)}")
    if not set(decision.checks.values()) <= {"ok", "fail", "skipped"}:
        raise InvariantBroken(f"check values {decision.checks}")
    if decision.checks["format"] == "fail":
        if decision.reason not in FORMAT_REASONS:
            raise InvariantBroken(f"format failure with reason {decision.reason}")
        if any(value != "skipped" for name, value in decision.checks.items() if name != "format"):
            raise InvariantBroken(f"checks after a format failure: {decision.checks}")
    json.dumps(decision.to_json())
    if decision.granted:
        sign1 = verifier.parse_sign1(cose())
        if (sign1.protected_bytes, sign1.payload, sign1.signature) not in verifier.granted_signed:
            raise InvariantBroken("granted bytes that no granted vector signed")


def route_input(verifier: Verifier, data: bytes, route: str) -> str | bytes:
    """What ``route`` hands the verifier for ``data``: a text, or the NFC bytes themselves."""
    if route == "qr":
        return "GP1:" + verifier.base45_encode(data)
    if route == "qr-zlib":
        return "GP1:" + verifier.base45_encode(zlib.compress(data))
    if route == "scanner":
        return data.decode("latin-1")
    return data


def decide(verifier: Verifier, route: str, given: str | bytes) -> Any:
    if route == "nfc":
        return verifier.decide_nfc(given, verifier.challenge, **verifier.kwargs)
    return verifier.decide_text(given, **verifier.kwargs)


def execute(verifier: Verifier, data: bytes) -> tuple[int, str, str]:
    """One input, every route; raises on a crash or a broken invariant. Returns the slowest
    route's decision time in ns, its name and its reason (only the decision is timed, not
    the encoding of the input for its route)."""
    clock = time.perf_counter_ns
    slowest = (-1, "", "")
    for route in ROUTES:
        given = route_input(verifier, data, route)
        started = clock()
        decision = decide(verifier, route, given)
        spent = clock() - started
        if route == "nfc":
            check(verifier, decision, lambda: data)
        else:
            check(verifier, decision, lambda given=given: verifier.open_text(given))
        if spent > slowest[0]:
            slowest = (spent, route, decision.reason)
    return slowest


def time_route(verifier: Verifier, data: bytes, route: str, runs: int = RETIME_RUNS) -> tuple[float, str]:
    """Median decision time in us of ``data`` on ``route`` over ``runs`` runs, and the reason."""
    given = route_input(verifier, data, route)
    samples = []
    for _ in range(runs):
        started = time.perf_counter_ns()
        decision = decide(verifier, route, given)
        samples.append(time.perf_counter_ns() - started)
    return statistics.median(samples) / 1000, decision.reason


def valid_first_seen_us(verifier: Verifier, runs: int = 15) -> float:
    """The median decision time of the vectors granted as QR texts, each decided as a gate
    decides a credential it has not seen (the harness gives the verifier no cache)."""
    samples = []
    for _ in range(runs):
        for text in verifier.granted_texts:
            started = time.perf_counter_ns()
            verifier.decide_text(text, **verifier.kwargs)
            samples.append(time.perf_counter_ns() - started)
    return statistics.median(samples) / 1000


class Slowest:
    """The ``keep`` slowest distinct inputs seen so far, by their slowest route.

    One run's time is not trusted: on a shared machine a valid decision is now and then
    preempted for two or three times its length. An input whose one run would enter the
    list is timed again (median of a few runs) and enters by that time."""

    def __init__(self, keep: int, verifier: Verifier) -> None:
        self.keep = keep
        self.verifier = verifier
        self._heap: list[tuple[float, bytes, bytes, str]] = []  # (median us, sha256, input, route)
        self._held: set[bytes] = set()

    def offer(self, spent_ns: int, data: bytes, route: str) -> None:
        full = len(self._heap) >= self.keep
        if self.keep <= 0 or (full and spent_ns / 1000 <= self._heap[0][0]):
            return  # the common case: not among the slowest, and nothing else to do
        digest = hashlib.sha256(data).digest()
        if digest in self._held:
            return
        median_us, _reason = time_route(self.verifier, data, route, runs=5)
        if full and median_us <= self._heap[0][0]:
            return
        self._held.add(digest)
        if not full:
            heapq.heappush(self._heap, (median_us, digest, data, route))
        else:
            dropped = heapq.heappushpop(self._heap, (median_us, digest, data, route))
            self._held.discard(dropped[1])

    def report(self, verifier: Verifier, reference_us: float, save_dir: Path | None) -> list[dict[str, Any]]:
        """The kept inputs, timed again on their slowest route, slowest first."""
        entries = []
        for _us, digest, data, route in self._heap:
            decision_us, reason = time_route(verifier, data, route)
            # The ratio of the figures shown (both rounded to 0.1 us), so that a reader, or a
            # test, dividing them gets the ratio printed.
            decision_us = round(decision_us, 1)
            entry: dict[str, Any] = {
                "sha256": digest.hex()[:16],
                "bytes": len(data),
                "route": route,
                "reason": reason,
                "decision_us": decision_us,
                "ratio": round(decision_us / reference_us, 2) if reference_us else None,
            }
            if save_dir is not None:
                save_dir.mkdir(parents=True, exist_ok=True)
                name = save_dir / f"slow-{digest.hex()[:16]}.bin"
                name.write_bytes(data)
                entry["file"] = str(name)
            entries.append(entry)
        entries.sort(key=lambda entry: entry["decision_us"], reverse=True)
        return entries


def mutate(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    """A few random edits, byte- and CBOR-minded, of ``data`` (splices come from ``pool``).
    One of them repeats a few bytes hundreds or thousands of times: many small items that
    compress well are what slow inputs are made of."""
    out = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4, 8))):
        op = rng.randrange(10)
        at = rng.randrange(len(out) + 1)
        if op == 0 and out:
            out[at % len(out)] ^= 1 << rng.randrange(8)
        elif op == 1 and out:
            out[at % len(out)] = rng.randrange(256)
        elif op == 2 and out:
            out[at % len(out)] = rng.choice(INTERESTING_BYTES)
        elif op == 3:
            out[at:at] = rng.randbytes(rng.randint(1, 8))
        elif op == 4:
            del out[at : at + rng.randint(1, 32)]
        elif op == 5:
            out[at:at] = out[at : at + rng.randint(1, 64)]
        elif op == 6:
            other = rng.choice(pool)
            start = rng.randrange(len(other) + 1)
            out[at : at + rng.randint(0, 16)] = other[start : start + rng.randint(1, 64)]
        elif op == 7:
            del out[at:]
        elif op == 8:
            piece = bytes(out[at : at + rng.randint(1, 6)]) or bytes([rng.choice(INTERESTING_BYTES)])
            out[at:at] = piece * rng.choice((16, 256, 4096))
        else:
            out[at:at] = bytes([rng.choice(INTERESTING_BYTES)]) + rng.randbytes(rng.choice((0, 1, 2, 4, 8)))
    return bytes(out[:MAX_INPUT_BYTES])


class Run:
    """Counts executions, keeps the slowest inputs, and turns the first crash into a report
    and exit status 1."""

    def __init__(self, engine: str, args: argparse.Namespace, verifier: Verifier) -> None:
        self.engine = engine
        self.seconds = args.seconds
        self.verifier = verifier
        self.slowest = Slowest(args.keep_slowest, verifier)
        self.slow_dir: Path | None = args.slow_dir
        self.started = time.monotonic()
        self.executions = 0

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def execute(self, data: bytes) -> None:
        """One input through every route (see :func:`execute`); raises on a crash."""
        spent_ns, route, _reason = execute(self.verifier, data)
        self.slowest.offer(spent_ns, data, route)
        self.executions += 1

    def summary(self, crashes: int) -> None:
        seconds = round(self.elapsed(), 3)  # the fuzzing time, not the timing below
        reference = round(valid_first_seen_us(self.verifier), 1)  # as shown: the ratios divide by it
        line = {
            "executions": self.executions,
            "seconds": seconds,
            "crashes": crashes,
            "engine": self.engine,
            "valid_first_seen_us": reference,
            "slowest": self.slowest.report(self.verifier, reference, self.slow_dir),
        }
        for entry in line["slowest"]:
            where = entry.get("file", entry["sha256"])
            print(
                f"slow: {entry['decision_us']:9.1f} us x{entry['ratio']:<6} {entry['route']:8}"
                f" {entry['bytes']:6} bytes {entry['reason']:20} {where}",
                file=sys.stderr,
            )
        print(json.dumps(line), flush=True)

    def crash(self, data: bytes, exc: BaseException) -> str:
        """Report a crashing input; returns the crash file's name."""
        name = f"crash-{hashlib.sha256(data).hexdigest()[:16]}.bin"
        Path(name).write_bytes(data)
        print(f"CRASH after {self.executions} executions: {type(exc).__name__}: {exc}", file=sys.stderr)
        print("".join(traceback.format_exception(exc)), file=sys.stderr, end="")
        print(f"input ({len(data)} bytes, saved to {name}):\n{data.hex()}", file=sys.stderr, flush=True)
        return name


def corpus_inputs(corpus: Path | None) -> list[bytes]:
    if corpus is None or not corpus.is_dir():
        return []
    return [p.read_bytes() for p in sorted(corpus.iterdir()) if p.is_file()]


def run_mutation(args: argparse.Namespace) -> int:
    verifier = load_verifier()
    run = Run("mutation", args, verifier)
    rng = random.Random(args.seed)
    pool = verifier.seeds + corpus_inputs(args.corpus)
    while run.elapsed() < args.seconds:
        choice = rng.randrange(16)
        if choice == 0:
            data = rng.randbytes(rng.randrange(600))  # now and then, no structure at all
        elif choice == 1:
            data = rng.choice(pool)  # and the seeds themselves, which must still decide as before
        else:
            data = mutate(rng, rng.choice(pool), pool)
        try:
            run.execute(data)
        except Exception as exc:
            run.crash(data, exc)
            run.summary(crashes=1)
            return 1
    run.summary(crashes=0)
    return 0


def run_atheris(args: argparse.Namespace) -> int:  # pragma: no cover - needs atheris
    import atheris

    with atheris.instrument_imports(include=["reader"]):
        verifier = load_verifier()
    run = Run("atheris", args, verifier)  # timings include atheris's instrumentation, the reference too
    workdir: str | None = None
    corpus = args.corpus
    if corpus is None:  # libFuzzer starts from a corpus directory: give it the vectors
        workdir = tempfile.mkdtemp(prefix="gate-fuzz-")
        corpus = Path(workdir)
    corpus.mkdir(parents=True, exist_ok=True)
    for seed in verifier.seeds:
        (corpus / f"seed-{hashlib.sha256(seed).hexdigest()[:16]}").write_bytes(seed)

    def finish(status: int, crashes: int) -> None:
        run.summary(crashes)
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
        sys.stderr.flush()
        os._exit(status)  # libFuzzer owns the process: leave it without unwinding through it

    def target(data: bytes) -> None:
        if run.elapsed() >= args.seconds:
            finish(0, 0)
        try:
            run.execute(data)
        except Exception as exc:
            run.crash(data, exc)
            finish(1, 1)

    libfuzzer_args = [
        sys.argv[0],
        f"-seed={args.seed}",
        f"-max_total_time={int(args.seconds) + 60}",  # a backstop: the target stops on time itself
        "-max_len=4200",
        "-artifact_prefix=./",
        str(corpus),
    ]
    atheris.Setup(libfuzzer_args, target)
    atheris.Fuzz()
    run.summary(0)  # only reached if libFuzzer returns (its backstop)
    return 0


def replay(path: Path) -> int:
    """Run one saved input (a crash, slow or corpus file) through every route, and print
    each route's decision time next to a valid first-seen decision's."""
    verifier = load_verifier()
    data = path.read_bytes()
    try:
        execute(verifier, data)
    except Exception:
        traceback.print_exc()
        return 1
    reference = valid_first_seen_us(verifier)
    print(f"{path}: no crash; a valid first-seen decision takes {reference:.1f} us")
    for route in ROUTES:
        decision_us, reason = time_route(verifier, data, route)
        print(f"  {route:8} {decision_us:9.1f} us  x{decision_us / reference:.2f}  {reason}")
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="fuzz_verifier.py",
        description=(
            "Fuzz the GatePass verifier (decide_text and decide_nfc) with the vectors of "
            "tests/data/gatepass-v1 as seeds. Every input goes in as a QR text (GP1: + base45, "
            "plain and zlib-compressed), as Latin-1 scanner text and as an NFC answer. A crash "
            "(an exception, a decision of the wrong shape, or a grant of bytes no granted vector "
            "signed) prints the input as hex on stderr, saves it as crash-<hash>.bin in the "
            "current directory and exits 1. Every decision is timed, and the slowest inputs are "
            "kept and reported (time, ratio to a valid first-seen decision, route, reason)."
        ),
        epilog=(
            'On success the last line on stdout is JSON: {"executions": n, "seconds": s, "crashes": 0, '
            '"engine": "atheris"|"mutation", "valid_first_seen_us": v, "slowest": [{"sha256", "bytes", '
            '"route", "reason", "decision_us", "ratio"[, "file"]}, ...]}; on a crash it has "crashes": 1. '
            "The slowest inputs are also listed on stderr. An execution is one input through all four "
            "routes. Exit status: 0 no crash, 1 crash, 2 bad arguments."
        ),
    )
    parser.add_argument(
        "--seconds", type=float, default=60.0, metavar="N", help="how long to fuzz, in seconds (default: 60)"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="S",
        help="random seed; the mutation engine repeats the same inputs for the same seed (default: 0)",
    )
    parser.add_argument(
        "--corpus",
        type=Path,
        metavar="DIR",
        help="directory of extra seed inputs, one raw input per file; atheris also adds the inputs "
        "that reach new code to it (default: the vectors only, kept in a temporary directory)",
    )
    parser.add_argument(
        "--engine",
        choices=("auto", "atheris", "mutation"),
        default="auto",
        help="auto: atheris if it can be imported, otherwise the built-in mutation loop (default: auto)",
    )
    parser.add_argument(
        "--keep-slowest",
        type=int,
        default=DEFAULT_KEEP_SLOWEST,
        metavar="N",
        help=f"how many of the slowest inputs to keep, time again and report (default: {DEFAULT_KEEP_SLOWEST})",
    )
    parser.add_argument(
        "--slow-dir",
        type=Path,
        metavar="DIR",
        help="save the slowest inputs there as slow-<hash>.bin, for --replay (default: not saved)",
    )
    parser.add_argument(
        "--replay",
        type=Path,
        metavar="FILE",
        help="run one saved input (such as a crash-*.bin or slow-*.bin) through every route, print any "
        "traceback, or each route's decision time, and exit",
    )
    args = parser.parse_args(argv)
    if args.seconds < 0:
        parser.error("--seconds must not be negative")
    if args.keep_slowest < 0:
        parser.error("--keep-slowest must not be negative")
    if args.slow_dir is not None and args.slow_dir.exists() and not args.slow_dir.is_dir():
        parser.error(f"--slow-dir {args.slow_dir} is not a directory")
    if args.corpus is not None and args.corpus.exists() and not args.corpus.is_dir():
        parser.error(f"--corpus {args.corpus} is not a directory")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.replay is not None:
        return replay(args.replay)
    engine = args.engine
    if engine == "auto":
        try:
            import atheris  # noqa: F401
        except ImportError:
            engine = "mutation"
        else:
            engine = "atheris"
    if engine == "atheris":
        try:
            return run_atheris(args)
        except ImportError as exc:
            print(f"fuzz_verifier.py: --engine atheris needs atheris ({exc}); try --engine mutation", file=sys.stderr)
            return 2
    return run_mutation(args)


if __name__ == "__main__":
    sys.exit(main())
