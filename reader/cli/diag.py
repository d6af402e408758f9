"""``gate-reader diag CHECK``: the technician's checks at the gate, each printing one clear
PASS/FAIL line, the measured values, and on failure the likely cause and the next step.
``selftest`` runs every check that needs no person, as a table. The checks are services
(``reader.gate.diagnostics``); here are the options, the questions, the printing and the
exit status: 0 pass, 1 fail, 2 usage or configuration error, 3 not checked (no such part,
or the running daemon holds it)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from reader.errors import CommandFailed
from reader.gate.diagnostics.result import CheckResult

EXIT_NOT_CHECKED = 3
CHECKS = ("relay", "leds", "buzzer", "inputs", "nfc", "camera", "scanner", "wiegand", "clock", "cache", "sync",
          "selftest")
_HELP = {
    "relay": "release the door N times (asks first, or --yes); confirmed by the door contact; journaled",
    "leds": "light the green, then the red LED",
    "buzzer": "sound the buzzer",
    "inputs": "a live view of the door contact, exit button, tamper, fire and lockdown input",
    "nfc": "find the NFC reader (chip, USB id, or what is wrong), then read one tap",
    "camera": "grab frames: fps, brightness, sharpness, decode time; a PNG with the code outlined",
    "scanner": "the serial scanner's raw lines and their timing; a wrong baud rate shows as garbage",
    "wiegand": "Wiegand frames with their bit count and parity",
    "clock": "synchronised or not, the time floor, a clock chip",
    "cache": "the lists, trust and journal in the cache (what status shows)",
    "sync": "one live sync from the centre",
    "selftest": "every check that needs no person, as a table; exit 0 only if all pass",
}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Diagnostics for a technician at the gate. Each check prints PASS or FAIL with what it measured and, on "
        "failure, the likely cause and the next step. While the daemon runs, the door checks go through its control "
        "socket and the reader checks show its view of the reader (stop it to test a reader alone). --sim runs a "
        "check against the simulators (mock pins, the NFC card emulator, a camera playing frames, a scanner on a "
        "pty); without --config it also simulates the centre and the gate. Exit status: 0 pass, 1 fail, 2 usage or "
        f"configuration error, {EXIT_NOT_CHECKED} not checked (no such part, or the daemon holds it)."
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, metavar="FILE",
                        help="the gate's configuration (default /etc/gate-reader/gate-reader.toml; with --sim, a "
                        "simulated gate)")
    common.add_argument("--sim", action="store_true", help="against the simulators, no hardware")
    common.add_argument("--json", action="store_true", help="the result as JSON (selftest: a list)")
    checks = parser.add_subparsers(dest="check", metavar="CHECK", required=True)
    for name in CHECKS:
        sub = checks.add_parser(name, parents=[common], help=_HELP[name], description=_HELP[name])
        if name == "relay":
            sub.add_argument("--times", type=int, default=3, metavar="N", help="releases (1-20; default 3)")
            sub.add_argument("--yes", action="store_true", help="do not ask before opening the door")
        if name == "inputs":
            sub.add_argument("--seconds", type=float, default=60.0, help="how long to watch (default 60)")
        if name in ("nfc", "camera", "scanner", "wiegand"):
            sub.add_argument("--reader", metavar="NAME", help=f"which {name} reader (default: the config's first)")
            sub.add_argument("--seconds", type=float, default={"camera": 10.0}.get(name, 30.0),
                             help="how long to wait for a tap, code, scan or card")
        if name == "nfc":
            sub.add_argument("--no-tap", action="store_true", help="only find the reader")
        if name == "camera":
            sub.add_argument("--png", type=Path, default=Path("gate-reader-camera.png"),
                             help="where to save the best frame (default ./gate-reader-camera.png)")
    parser.set_defaults(func=run_diag)


def _ask(question: str) -> bool | None:
    """A yes/no question at the terminal; None when there is none to ask at."""
    if not sys.stdin.isatty():
        return None
    answer = input(f"{question} [y/n] ").strip().lower()
    return answer.startswith("y")


def _say(line: str) -> None:
    print(f"  {line}", flush=True)


def run_diag(args: argparse.Namespace) -> int:
    from reader.cli.diag_run import Context

    if getattr(args, "times", 1) not in range(1, 21):
        raise CommandFailed("--times: from 1 to 20", 2)
    if getattr(args, "seconds", 1.0) < 0 or getattr(args, "seconds", 1.0) > 3600:
        raise CommandFailed("--seconds: from 0 to 3600", 2)
    context = Context(args.config, args.sim)
    try:
        if args.check == "selftest":
            from reader.cli.diag_checks import selftest

            results = selftest(context)
            _print_table(results, args.json)
            return 0 if all(r.ok for r in results) else 1
        from reader.cli.diag_checks import one

        report = (lambda _line: None) if args.json else _say
        if args.check == "relay" and not args.yes and not (args.sim and context.hardware is not None):
            answer = _ask(f"This releases the door {args.times} time(s): is it safe to open it?")
            if answer is None:
                raise CommandFailed("relay opens the door: run it at a terminal to be asked, or add --yes", 2)
            if not answer:
                print("relay: not run (answered no)")
                return EXIT_NOT_CHECKED
        result = one(context, args, report, (lambda _q: None) if args.json else _ask)
    finally:
        context.close()
    _print_one(result, args.json)
    return {"PASS": 0, "FAIL": 1, "SKIP": EXIT_NOT_CHECKED}[result.status]


def _values(values: dict[str, Any]) -> list[str]:
    return [f"    {key}: {value}" for key, value in values.items()]


def _print_one(result: CheckResult, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result.as_json(), default=str))
        return
    label = {"PASS": "PASS", "FAIL": "FAIL", "SKIP": "NOT CHECKED"}[result.status]
    print(f"{label}  {result.name}: {result.summary}")
    for line in _values(result.values):
        print(line)
    if result.status == "FAIL":
        print(f"  likely cause: {result.cause}")
        print(f"  next step: {result.next_step}")


def _print_table(results: list[CheckResult], as_json: bool) -> None:
    if as_json:
        print(json.dumps([r.as_json() for r in results], default=str))
        return
    width = max(len(r.name) for r in results)
    print(f"{'check':<{width}}  result  details")
    for r in results:
        print(f"{r.name:<{width}}  {r.status:<6}  {r.summary}")
    for r in results:
        if r.status == "FAIL":
            print(f"\n{r.name}: FAIL\n  likely cause: {r.cause}\n  next step: {r.next_step}")
    counts = {status: sum(1 for r in results if r.status == status) for status in ("PASS", "FAIL", "SKIP")}
    print(f"\nselftest: {counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} not checked"
          + ("" if counts["FAIL"] else ": all pass"))

