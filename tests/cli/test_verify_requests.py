"""``gate-reader verify``: numbers and request lines from outside never reach the clock or the
policy unchecked (issue 8, item 9). Every bad time, duration or request line is an error
(an ``{"error": ...}`` line, or exit 2 on the command line), never a decision, and the next
request line is still answered."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reader.cli import EXIT_STDOUT_CLOSED, main
from reader.cli.verify import Checker
from reader.cli.verify_requests import MAX_JSONL_DEPTH, MAX_JSONL_LINE_BYTES
from reader.errors import ConfigError
from reader.gate.deciding import checked_policy
from reader.gate.timeparse import MAX_TIME, check_duration, check_time, parse_clock, parse_time
from reader.gatepass.decide import Policy
from tests.support import VECTORS

CASES = {case["name"]: case for case in json.loads((VECTORS / "cases.json").read_text())["cases"]}
AT = 1798761600
TRUST = [str(VECTORS / f"issuer-{letter}.pem") for letter in "ABCDEF"]
EXPIRED = CASES["expired"]["payload"]  # expired at AT; its QR code is old too
STALE_QR = CASES["presentation-stale"]["payload"]


def request(payload: str = EXPIRED, **fields: object) -> str:
    return json.dumps({"payload": payload, "trust": TRUST, "at": AT, **fields})


def with_raw_at(raw: str, payload: str = EXPIRED) -> str:
    """A request line whose "at" is written as given (NaN, a 401-digit number...)."""
    return f'{{"payload": {json.dumps(payload)}, "trust": {json.dumps(TRUST)}, "at": {raw}}}'


def jsonl(lines: list[str | bytes]) -> tuple[int, list[dict], str]:
    """The real command in a child process (stdin is a pipe, read as bytes): exit status,
    the answers in order, stderr."""
    data = b"".join((line if isinstance(line, bytes) else line.encode()) + b"\n" for line in lines)
    done = subprocess.run([sys.executable, "-m", "reader", "verify", "--jsonl"], input=data, capture_output=True,
                          timeout=120, check=False)
    return done.returncode, [json.loads(line) for line in done.stdout.decode().splitlines()], done.stderr.decode()


def run_verify(args: list[str], monkeypatch, capsys, stdin: str = "") -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    try:
        code = main(["verify", *args])
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


# -- the clock of a request line -------------------------------------------------------------

BAD_AT = [
    "NaN", "Infinity", "-Infinity",  # Python's json reads these by default
    "1e999",  # a float literal that overflows to infinity
    "1" + "0" * 400,  # 401 digits: float() of it raises OverflowError
    "-1", str(MAX_TIME + 1), "1e300",
    '"9999-12-31T23:59:59-23:59"',  # a valid ISO text past year 9999 in UTC
    '"0001-01-01T00:00:00+01:00"',  # before year 1 in UTC
    '"nan"', '"1e5"', "true", "[1]",
]


def test_non_finite_or_out_of_range_clocks_are_error_lines_never_decisions() -> None:
    good = request()
    lines: list[str | bytes] = []
    for raw in BAD_AT:
        lines += [with_raw_at(raw), good]
    code, answers, err = jsonl(lines)
    assert code == 0 and err == ""
    assert len(answers) == len(lines)
    for index, raw in enumerate(BAD_AT):
        bad, after = answers[2 * index], answers[2 * index + 1]
        assert set(bad) == {"error"}, (raw, bad)
        assert (after["decision"], after["reason"]) == ("deny", "expired"), raw  # the next line is answered


def test_nan_clock_no_longer_grants_an_expired_credential_with_an_old_code() -> None:
    # Before: every comparison with NaN was false, so expiry and QR freshness both passed.
    code, answers, _ = jsonl([with_raw_at("NaN"), with_raw_at("NaN", STALE_QR)])
    assert code == 0 and all(set(answer) == {"error"} for answer in answers)
    assert "NaN" in answers[0]["error"]


# -- the request line itself -----------------------------------------------------------------

def test_deeply_nested_or_oversized_request_lines_are_refused_and_the_next_answered() -> None:
    lines: list[str | bytes] = [
        "[" * 100_000 + "]" * 100_000,  # json would raise RecursionError
        '{"payload": "GP1:x", "x": ' + "[" * (MAX_JSONL_DEPTH + 1) + "]" * (MAX_JSONL_DEPTH + 1) + "}",
        '{"payload": "' + "x" * (MAX_JSONL_LINE_BYTES + 10) + '"}',  # read in bounded pieces, then dropped
        b'{"payload": "GP1:\xff"}',  # not UTF-8: spoils only its own line
        request(payload="GP1:" + "[" * 100 + '{\\"[' * 10),  # brackets inside a string are data, not nesting
        request(),
    ]
    code, answers, err = jsonl(lines)
    assert code == 0 and err == "" and len(answers) == len(lines)
    assert "deeper than" in answers[0]["error"] and "deeper than" in answers[1]["error"]
    assert "longer than" in answers[2]["error"]
    assert "UTF-8" in answers[3]["error"]
    assert answers[4]["reason"] == "malformed"
    assert answers[5]["reason"] == "expired"


def test_unexpected_failure_on_one_line_is_an_error_line_and_the_next_is_answered(monkeypatch, capsys,
                                                                                  caplog) -> None:
    real_check = Checker.check

    def check(self: Checker, req) -> dict:  # a defect that shows on one payload only
        if req.payload == "GP1:boom":
            raise ZeroDivisionError("a bug")
        return real_check(self, req)

    monkeypatch.setattr(Checker, "check", check)
    code, out, _ = run_verify(["--jsonl"], monkeypatch, capsys,
                              stdin=request(payload="GP1:boom") + "\n" + request() + "\n")
    answers = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(answers) == 2
    assert answers[0] == {"error": "internal error (ZeroDivisionError); logged with its traceback"}
    assert answers[1]["reason"] == "expired"
    [record] = [r for r in caplog.records if r.exc_info]  # logged once, with the traceback
    assert record.levelname == "ERROR" and "request line 1" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is ZeroDivisionError


def test_closed_stdout_ends_quietly() -> None:
    lines = b"".join(request().encode() + b"\n" for _ in range(2000))
    with subprocess.Popen([sys.executable, "-m", "reader", "verify", "--jsonl"], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as child:
        assert child.stdout is not None and child.stderr is not None and child.stdin is not None
        child.stdin.write(request().encode() + b"\n")
        child.stdin.flush()
        first = child.stdout.readline()  # one answer read, then the reader goes away (| head -1)
        child.stdout.close()
        try:
            child.stdin.write(lines)
            child.stdin.close()
        except BrokenPipeError:
            pass  # it may have ended before taking every line: that is the point
        err = child.stderr.read()
        code = child.wait(timeout=120)
    assert json.loads(first)["reason"] == "expired"
    assert (code, err) == (EXIT_STDOUT_CLOSED, b"")


# -- the command line ------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "message"), [
    (["--at", "1" + "0" * 400], "401 characters"),
    (["--at", str(MAX_TIME + 1)], "out of range"),
    (["--at", "1969-12-31T23:59:59Z"], "out of range"),
    (["--at", "0001-01-01T00:00:00+01:00"], "out of range"),
    (["--at", "9" * 30 + ".5"], "out of range"),
])
def test_command_line_clock_outside_range_is_one_error_line(monkeypatch, capsys, args, message) -> None:
    code, out, err = run_verify([*args, "--trust", TRUST[0], EXPIRED], monkeypatch, capsys)
    assert code == 2 and out == ""
    assert message in err and err.startswith("gate-reader verify: error: ") and len(err.splitlines()) == 1


@pytest.mark.parametrize("option", ["--window", "--future-skew", "--skew", "--max-age"])
@pytest.mark.parametrize("value", ["inf", "nan", "-inf", "1e999", "-1", "x", str(MAX_TIME + 1)])
def test_non_finite_or_negative_durations_are_usage_errors(monkeypatch, capsys, option, value) -> None:
    code, out, err = run_verify(["--at", str(AT), f"{option}={value}", EXPIRED], monkeypatch, capsys)
    assert code == 2 and out == ""
    assert f"argument {option}" in err and repr(value) in err


def test_durations_in_range_still_decide(monkeypatch, capsys) -> None:
    # The stale QR code is 31 s old at AT (window 30 s): a 60 s window makes it fresh.
    args = ["--at", str(AT), *[x for path in TRUST for x in ("--trust", path)], "--json"]
    code, out, _ = run_verify([*args, STALE_QR], monkeypatch, capsys)
    assert (code, json.loads(out)["reason"]) == (1, "presentation_stale")
    code, out, _ = run_verify([*args, "--window", "3600", "--future-skew", "0", STALE_QR], monkeypatch, capsys)
    assert (code, json.loads(out)["reason"]) == (0, "granted")


def test_duration_options_with_config_are_refused_not_ignored(monkeypatch, capsys, tmp_path) -> None:
    # [policy] decides with --config; a --window that would be silently ignored is refused.
    code, out, err = run_verify(["--config", str(tmp_path / "gate.toml"), "--window", "60", "GP1:x"],
                                monkeypatch, capsys)
    assert code == 2 and out == "" and "drop --window" in err


@pytest.mark.parametrize("field", ["window_s", "future_skew_s", "skew_s", "max_age_s"])
@pytest.mark.parametrize("value", [math.inf, math.nan, -1.0])
def test_policy_with_non_finite_durations_is_refused_whatever_made_it(field, value) -> None:
    # The gate every policy passes in verify, including one read from a config's [policy].
    with pytest.raises(ConfigError, match=f"\\[policy\\] {field}"):
        checked_policy(Policy(**{field: value}), "[policy]")
    with pytest.raises(ConfigError, match=field):
        Checker(Policy(**{field: value}))


# -- the parsers, for every input ------------------------------------------------------------



@given(st.one_of(st.floats(), st.integers(min_value=-(10**500), max_value=10**500), st.booleans()))
def test_any_number_is_a_checked_time_or_a_value_error(value) -> None:
    for check, limit in ((check_time, MAX_TIME), (check_duration, MAX_TIME)):
        try:
            checked = check(value)
        except ValueError:
            continue
        assert math.isfinite(checked) and 0 <= checked <= limit and not isinstance(value, bool)


@given(st.one_of(st.text(max_size=80), st.from_regex(r"\A[0-9]{1,70}(\.[0-9]{1,20})?\Z")))
def test_any_text_is_a_checked_clock_or_a_value_error(text) -> None:
    try:
        value = parse_clock(text)
    except ValueError:
        return
    assert math.isfinite(value) and 0 <= value <= MAX_TIME
    assert value == float(parse_time(text))
