"""``gate-reader verify``: the technician's "why was this denied?" tool, and the contract
other checks (tests, vectors, a pilot site) use to ask the verifier one question at a time.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import replace
from typing import Any, TextIO

from reader.cli.verify_requests import Request, challenge, read_request_lines, request_from_json
from reader.errors import ConfigError
from reader.gate.clock import gate_clock
from reader.gate.config import Config
from reader.gate.deciding import Decider, checked_policy, gate_decider, with_static
from reader.gate.state import read_gate_state
from reader.gate.timeparse import parse_clock, parse_duration
from reader.gatepass.envelope import DEFAULT_PREFIXES
from reader.gatepass.files import read_limited
from reader.gatepass.statuslist import StatusList, StatusLists, TokenRejected, verify_status_token
from reader.gatepass.trust import TrustStore
from reader.gatepass.verdict import Clock, Decision, Policy

log = logging.getLogger(__name__)

_DEFAULTS = Policy()
MAX_STATUS_FILE_BYTES = 32 << 20
#: The policy's durations and the option that sets each.
_DURATIONS = (("window_s", "--window"), ("future_skew_s", "--future-skew"), ("skew_s", "--skew"),
              ("max_age_s", "--max-age"))

_DESCRIPTION = """\
Decide grant or deny for one credential, offline, exactly as a gate would (GatePass v1),
and say why. PAYLOAD is the text a camera or scanner read (for example GP1:NCF...), taken
exactly as given; '-' reads it from standard input (one trailing line end is removed).
With --nfc, PAYLOAD is the hex of the bytes an NFC holder answered to that challenge.
"""

_EPILOG = """\
exit status: 0 grant, 1 deny, 2 usage or configuration error (with --jsonl: 0 once every
line is answered); 141 when standard output was closed early (| head).

Times (--at, "at") are epoch seconds or ISO 8601 from 1970 to 9999-12-31T23:59:59Z, and
durations (--window, --future-skew, --skew, --max-age) finite seconds >= 0; anything else
(NaN, infinity, a 400-digit number) is refused, never decided on.

--jsonl reads one JSON object per line from standard input with the keys "payload"
(required), "at", "trust", "status", "prefix" (a list), "allow_static" and "nfc"; unknown
keys are ignored, paths are relative to the working directory. Each line is an
independent one-shot check (no replay memory) and gets exactly one JSON line back, in
order; a line that is not a valid request (not JSON, NaN or Infinity, nested deeper than
8 levels, longer than 1 MiB, not UTF-8, a time out of range) gets {"error": "..."}.

A result holds decision (grant/deny), reason (spec section 7), subject, issuer, kid (hex),
assurance (high, static, low), credential_hash (short hash of the credential id), detail,
warnings, checks (format, issuer_signature, claims, validity, holder_signature, freshness,
status: ok, fail or skipped) and status_lists (each list file, and why it was ignored).

examples:
  gate-reader verify --trust issuer.pem --status list.cwt 'GP1:NCF...'
  gate-reader verify --trust issuer.pem --at 2027-01-01T08:00:00Z --json - < code.txt
  gate-reader verify --trust issuer.pem --nfc 00112233445566778899aabbccddeeff A28458...
"""


def configure(parser: argparse.ArgumentParser) -> None:
    """Fill in ``gate-reader verify`` (its line in the command list is in reader.cli)."""
    parser.description = _DESCRIPTION
    parser.epilog = _EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("payload", nargs="?", metavar="PAYLOAD | -", help="the text read, or '-' for stdin")
    parser.add_argument("--config", metavar="FILE",
                        help="decide as the configured gate does: trust anchors, status lists, time floor and "
                        "policy from its offline cache and [policy] (instead of --trust/--status); without --at "
                        "the clock may be untrusted, as at the gate")
    parser.add_argument("--trust", action="append", default=[], metavar="PEM",
                        help="issuer certificates or PUBLIC KEY files to trust (repeatable; bundles allowed)")
    parser.add_argument("--status", action="append", default=[], metavar="FILE",
                        help="status list token files (CWT); per uri the newest iat is used (repeatable)")
    parser.add_argument("--at", metavar="TIME",
                        help="the clock: epoch seconds or ISO 8601 with Z or an offset (default: now); "
                        "an explicit clock is trusted")
    parser.add_argument("--prefix", action="append", metavar="P",
                        help="accepted QR prefix, exact and case-sensitive (repeatable; default GP1:)")
    parser.add_argument("--allow-static", action="store_true",
                        help="accept static passes (an issuer credential shown without a holder signature)")
    parser.add_argument("--nfc", metavar="RNONCE_HEX",
                        help="NFC check: the 16-byte challenge the gate sent, as hex; PAYLOAD is then hex")
    # A duration is checked as argparse reads it: NaN or infinity would turn every
    # comparison of the policy into "fresh" or "stale" whatever the times.
    parser.add_argument("--window", type=_duration("--window"), metavar="S",
                        help=f"QR freshness window in seconds (default {_DEFAULTS.window_s:g})")
    parser.add_argument("--future-skew", type=_duration("--future-skew"), metavar="S",
                        help="how far ahead a QR presentation's iat may be, seconds "
                        f"(default {_DEFAULTS.future_skew_s:g})")
    parser.add_argument("--skew", type=_duration("--skew"), metavar="S",
                        help="clock skew allowed for a credential's or list's iat, seconds "
                        f"(default {_DEFAULTS.skew_s:g})")
    parser.add_argument("--max-age", type=_duration("--max-age"), metavar="S",
                        help=f"a status list older than this is stale, seconds (default {_DEFAULTS.max_age_s:g})")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print the result as one JSON object")
    output.add_argument("--jsonl", action="store_true", help="answer JSON requests from stdin, one per line")
    parser.set_defaults(func=run)


def _duration(option: str) -> Any:
    """An argparse ``type`` for a duration option: a usage error (exit 2) names the option."""

    def parse(text: str) -> float:
        try:
            return parse_duration(text, "value")
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


class Checker:
    """Answers requests from the trust and status files each names; trust stores and list
    files are read once per process, and each trust store keeps its :class:`Decider` (so
    its credential cache) across requests."""

    def __init__(self, policy_base: Policy) -> None:
        self.policy_base = checked_policy(policy_base)
        self._deciders: dict[tuple[str, ...], Decider] = {}
        self._files: dict[str, bytes] = {}

    def decider(self, paths: tuple[str, ...]) -> Decider:
        decider = self._deciders.get(paths)
        if decider is None:
            decider = self._deciders[paths] = Decider(TrustStore.from_pem_files(paths), policy=self.policy_base)
        return decider

    def _read_list(self, path: str) -> bytes:
        raw = self._files.get(path)
        if raw is None:
            raw = self._files[path] = read_limited(path, MAX_STATUS_FILE_BYTES, f"status file {path}", ConfigError)
        return raw

    def status_lists(
        self, paths: tuple[str, ...], trust: TrustStore, now: float, skew_s: float
    ) -> tuple[StatusLists, list[dict[str, Any]]]:
        lists = StatusLists()
        report: list[dict[str, Any]] = []
        for path in paths:
            raw = self._read_list(path)
            try:
                status_list: StatusList = verify_status_token(raw, trust, now=now, skew_s=skew_s)
            except TokenRejected as exc:
                report.append({"file": path, "uri": None, "iat": None, "used": False, "ignored": str(exc)})
                continue
            kept = lists.offer(status_list)
            report.append({
                "file": path, "uri": status_list.uri, "iat": status_list.iat, "used": kept,
                "ignored": None if kept else "a list with the same or a newer iat is held for this uri",
            })
        # A list kept first may have been replaced by a newer one for the same uri.
        for entry in report:
            if entry["used"] and lists.get(entry["uri"]).iat != entry["iat"]:  # type: ignore[union-attr]
                entry["used"] = False
                entry["ignored"] = "a newer list for this uri was given"
        return lists, report

    def check(self, request: Request) -> dict[str, Any]:
        now = time.time() if request.at is None else request.at
        decider = self.decider(request.trust)
        # The lists are the request's own: the decider's trust (and credential cache) is kept.
        decider.lists, report = self.status_lists(request.status, decider.trust, now, self.policy_base.skew_s)
        decision = _decide(decider, request, Clock(now), request.prefixes)
        result = decision.to_json()
        result["status_lists"] = report
        return result


class StoreChecker(Checker):
    """Answers requests from a gate's offline cache, as the gate would (one-shot: no replay
    memory). The cache is read once per process."""

    def __init__(self, policy_base: Policy, config: Config) -> None:
        super().__init__(policy_base)
        self.config = config
        self.state = read_gate_state(config)  # read-only: a one-shot check never changes the cache
        self.gate = gate_decider(config, self.state)

    def check(self, request: Request) -> dict[str, Any]:
        if request.trust or request.status:
            raise ConfigError("with --config the trust anchors and lists come from the cache, not trust/status")
        if request.at is not None:
            clock = Clock(request.at)  # an explicit clock given to a one-shot check is trusted
        else:
            clock = gate_clock(time.time(), self.state.time_floor, self.gate.policy.skew_s)
        prefixes = request.prefixes if request.prefixes != DEFAULT_PREFIXES else self.gate.prefixes
        decision = _decide(self.gate, request, clock, prefixes)
        result = decision.to_json()
        result["status_lists"] = [
            {"file": str(self.config.cache.path), "uri": status_list.uri, "iat": status_list.iat, "used": True,
             "ignored": None}
            for status_list in self.state.lists
        ]
        result["clock_trusted"] = clock.trusted
        return result


def _decide(decider: Decider, request: Request, clock: Clock, prefixes: tuple[str, ...]) -> Decision:
    """A request as a presentation for the decider: NFC answers come as hex, text as read."""
    policy = with_static(decider.policy, request.allow_static)
    if request.nfc is None:
        return decider.decide("qr", request.payload, clock, policy=policy, prefixes=prefixes)
    try:
        response = bytes.fromhex(request.payload)
    except ValueError:
        raise ConfigError("with --nfc the payload must be hex") from None
    return decider.decide("nfc", response, clock, challenge=request.nfc, policy=policy)


def _read_payload(argument: str | None, stdin: TextIO) -> str:
    if argument is None:
        raise ConfigError("a PAYLOAD (or '-' for standard input) is required")
    if argument != "-":
        return argument
    text = stdin.read(8 * 4096 + 3)
    # Only the line terminator is ours to strip; the verifier takes the rest as given.
    if text.endswith("\r\n"):
        return text[:-2]
    if text.endswith("\n") or text.endswith("\r"):
        return text[:-1]
    return text


def _print_human(result: dict[str, Any], out: TextIO) -> None:
    print(f"{result['decision']}: {result['reason']}" + (f" ({result['detail']})" if result["detail"] else ""),
          file=out)
    for key in ("subject", "issuer", "kid", "assurance", "credential_hash"):
        if result[key] is not None:
            print(f"  {key}: {result[key]}", file=out)
    for warning in result["warnings"]:
        print(f"  warning: {warning}", file=out)
    print("  checks: " + ", ".join(f"{name}={value}" for name, value in result["checks"].items()), file=out)
    for entry in result["status_lists"]:
        state = "used" if entry["used"] else f"ignored: {entry['ignored']}"
        print(f"  status list {entry['file']}: {state}", file=out)


def _answer(checker: Checker, line: str | ConfigError, number: int) -> str:
    """The one JSON line that answers a request line, whatever went wrong with it."""
    if isinstance(line, ConfigError):
        return json.dumps({"error": str(line)})
    try:
        return json.dumps(checker.check(request_from_json(line)), allow_nan=False)
    except (ConfigError, ValueError) as exc:
        return json.dumps({"error": str(exc)})
    except Exception as exc:
        # A defect of ours must not cost the lines after it their answers; the traceback
        # goes to the log once, the line gets an error naming it.
        log.exception("verify --jsonl: request line %d: unexpected %s", number, type(exc).__name__)
        return json.dumps({"error": f"internal error ({type(exc).__name__}); logged with its traceback"})


def _run_jsonl(checker: Checker, stdin: TextIO, out: TextIO) -> int:
    for number, line in enumerate(read_request_lines(stdin), 1):
        # A closed stdout (| head) raises BrokenPipeError here; the entry point ends quietly.
        out.write(_answer(checker, line, number) + "\n")
        out.flush()
    return 0


def _policy_from(args: argparse.Namespace) -> tuple[Policy, list[str]]:
    """The spec defaults with the durations given on the command line, and those options."""
    given = {name: getattr(args, name.removesuffix("_s")) for name, _ in _DURATIONS}
    options = [option for name, option in _DURATIONS if given[name] is not None]
    return replace(_DEFAULTS, **{name: value for name, value in given.items() if value is not None}), options


def run(args: argparse.Namespace, stdin: TextIO | None = None, out: TextIO | None = None) -> int:
    """Exit status 0 grant, 1 deny; a ConfigError or ValueError raised here is the command's
    one error line and exit 2 (reader.cli)."""
    stdin = stdin or sys.stdin
    out = out or sys.stdout
    base, duration_options = _policy_from(args)
    if args.config is not None:
        if args.trust or args.status:
            raise ConfigError("--config takes the trust anchors and lists from the cache: drop --trust/--status")
        if duration_options:
            raise ConfigError(f"--config takes the windows and skews from its [policy]: drop "
                              f"{'/'.join(duration_options)}")
        from reader.gate.config import load_config  # a cache error is a configuration error (reader.cli)

        checker: Checker = StoreChecker(base, load_config(args.config))
    else:
        checker = Checker(base)
    if args.jsonl:
        if args.payload is not None:
            raise ConfigError("--jsonl takes its requests from stdin, not PAYLOAD")
        return _run_jsonl(checker, stdin, out)
    request = Request(
        payload=_read_payload(args.payload, stdin),
        at=parse_clock(args.at) if args.at is not None else None,
        trust=tuple(args.trust),
        status=tuple(args.status),
        prefixes=tuple(args.prefix) if args.prefix else DEFAULT_PREFIXES,
        allow_static=args.allow_static,
        nfc=challenge(args.nfc) if args.nfc is not None else None,
    )
    result = checker.check(request)
    if args.json:
        out.write(json.dumps(result, allow_nan=False) + "\n")
    else:
        _print_human(result, out)
    return 0 if result["decision"] == "grant" else 1
