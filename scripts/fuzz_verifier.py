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

Engines: atheris (coverage-guided libFuzzer) when it can be imported, otherwise a seeded
mutation loop over the COSE bytes of tests/data/gatepass-v1/cases.json. Both stop after
``--seconds`` and print one JSON line:
``{"executions": n, "seconds": s, "crashes": 0, "engine": "atheris"|"mutation"}``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
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
        if text.granted or nfc.granted:
            try:
                sign1 = parse_sign1(cose)
            except CoseFormatError:  # pragma: no cover - a granted vector parses
                continue
            granted_signed.add((sign1.protected_bytes, sign1.payload, sign1.signature))
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


def execute(verifier: Verifier, data: bytes) -> None:
    """One input, every route; raises on a crash or a broken invariant."""
    b45 = verifier.base45_encode
    plain = "GP1:" + b45(data)
    packed = "GP1:" + b45(zlib.compress(data))
    latin = data.decode("latin-1")
    for text in (plain, packed, latin):
        decision = verifier.decide_text(text, **verifier.kwargs)
        check(verifier, decision, lambda text=text: verifier.open_text(text))
    decision = verifier.decide_nfc(data, verifier.challenge, **verifier.kwargs)
    check(verifier, decision, lambda: data)


def mutate(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    """A few random edits, byte- and CBOR-minded, of ``data`` (splices come from ``pool``)."""
    out = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4, 8))):
        op = rng.randrange(9)
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
        else:
            out[at:at] = bytes([rng.choice(INTERESTING_BYTES)]) + rng.randbytes(rng.choice((0, 1, 2, 4, 8)))
    return bytes(out)


class Run:
    """Counts executions and turns the first crash into a report and exit status 1."""

    def __init__(self, engine: str, seconds: float) -> None:
        self.engine = engine
        self.seconds = seconds
        self.started = time.monotonic()
        self.executions = 0

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def summary(self, crashes: int) -> None:
        line = {
            "executions": self.executions,
            "seconds": round(self.elapsed(), 3),
            "crashes": crashes,
            "engine": self.engine,
        }
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
    run = Run("mutation", args.seconds)
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
            execute(verifier, data)
        except Exception as exc:
            run.crash(data, exc)
            run.summary(crashes=1)
            return 1
        run.executions += 1
    run.summary(crashes=0)
    return 0


def run_atheris(args: argparse.Namespace) -> int:  # pragma: no cover - needs atheris
    import atheris

    with atheris.instrument_imports(include=["reader"]):
        verifier = load_verifier()
    run = Run("atheris", args.seconds)
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
            execute(verifier, data)
        except Exception as exc:
            run.crash(data, exc)
            finish(1, 1)
        run.executions += 1

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
    """Run one saved input (a crash file or a corpus entry) through every route."""
    verifier = load_verifier()
    data = path.read_bytes()
    try:
        execute(verifier, data)
    except Exception:
        traceback.print_exc()
        return 1
    print(f"{path}: no crash")
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
            "current directory and exits 1."
        ),
        epilog=(
            'On success the last line on stdout is JSON: {"executions": n, "seconds": s, "crashes": 0, '
            '"engine": "atheris"|"mutation"}; on a crash it has "crashes": 1. An execution is one '
            "input through all four routes. Exit status: 0 no crash, 1 crash, 2 bad arguments."
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
        "--replay",
        type=Path,
        metavar="FILE",
        help="run one saved input (such as a crash-*.bin) through every route, print any traceback and exit",
    )
    args = parser.parse_args(argv)
    if args.seconds < 0:
        parser.error("--seconds must not be negative")
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
