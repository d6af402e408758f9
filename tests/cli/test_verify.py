"""``gate-reader verify``: exit codes, input handling and the JSON contract."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from reader.cli import build_parser
from tests.support import VECTORS
from tests.support.centre import run as run_command

CASES = {case["name"]: case for case in json.loads((VECTORS / "cases.json").read_text())["cases"]}
AT = "1798761600"
TRUST = [str(VECTORS / f"issuer-{letter}.pem") for letter in "ABCDEF"]
STATUS = [str(VECTORS / "status-1.cwt"), str(VECTORS / "status-2.cwt")]


def run(args: list[str], monkeypatch, capsys, stdin: str = "") -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    return run_command("verify", *args)


def base_args() -> list[str]:
    args = ["--at", AT]
    for path in TRUST:
        args += ["--trust", path]
    for path in STATUS:
        args += ["--status", path]
    return args


def test_grant_exits_0_and_deny_exits_1(monkeypatch, capsys) -> None:
    code, out, _ = run([*base_args(), CASES["es256-issuer-ec-holder"]["payload"]], monkeypatch, capsys)
    assert code == 0 and out.startswith("grant: granted")
    code, out, _ = run([*base_args(), CASES["revoked"]["payload"]], monkeypatch, capsys)
    assert code == 1 and out.startswith("deny: revoked")


def test_json_output_has_the_contract_keys(monkeypatch, capsys) -> None:
    code, out, _ = run([*base_args(), "--json", CASES["expired"]["payload"]], monkeypatch, capsys)
    result = json.loads(out)
    assert code == 1
    assert {"decision", "reason", "subject", "issuer", "kid", "assurance", "checks"} <= set(result)
    assert result["checks"]["issuer_signature"] == "ok" and result["checks"]["validity"] == "fail"
    assert all(entry["used"] for entry in result["status_lists"])


def test_stdin_payload_loses_only_its_line_end(monkeypatch, capsys) -> None:
    payload = CASES["es256-issuer-ec-holder"]["payload"]
    assert run([*base_args(), "-"], monkeypatch, capsys, stdin=payload + "\r\n")[0] == 0
    assert run([*base_args(), "-"], monkeypatch, capsys, stdin=payload + " \n")[0] == 1  # the space is data


def test_iso_times_with_zone(monkeypatch, capsys) -> None:
    args = [a if a != AT else "2027-01-01T09:00:00+09:00" for a in base_args()]
    assert run([*args, CASES["es256-issuer-ec-holder"]["payload"]], monkeypatch, capsys)[0] == 0
    args = [a if a != AT else "2027-01-01T00:00:00.000Z" for a in base_args()]
    assert run([*args, CASES["es256-issuer-ec-holder"]["payload"]], monkeypatch, capsys)[0] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--at", "2027-01-01T00:00:00", "GP1:x"], "no zone"),
        (["--at", "yesterday", "GP1:x"], "neither epoch"),
        (["--trust", "/nonexistent/issuer.pem", "GP1:x"], "/nonexistent/issuer.pem"),
        (["--status", "/nonexistent/list.cwt", "GP1:x"], "/nonexistent/list.cwt"),
        (["--nfc", "zz", "00"], "not hex"),
        (["--nfc", "00" * 15, "00"], "16 bytes"),
        (["--nfc", "00" * 16, "not-hex"], "hex"),
        ([], "PAYLOAD"),
        (["--trust", str(VECTORS / "status-1.cwt"), "GP1:x"], "no PEM"),
    ],
)
def test_usage_and_config_errors_exit_2_with_one_line(monkeypatch, capsys, args, message) -> None:
    code, out, err = run(args, monkeypatch, capsys)
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1


def test_private_key_in_a_trust_file_is_refused(tmp_path, monkeypatch, capsys) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path = tmp_path / "oops.pem"
    path.write_bytes(key)
    code, _, err = run(["--trust", str(path), "GP1:x"], monkeypatch, capsys)
    assert code == 2 and "private key" in err


def test_nfc_vectors(monkeypatch, capsys) -> None:
    case = CASES["nfc-ok"]
    assert run([*base_args(), "--nfc", case["nfc"], case["payload"]], monkeypatch, capsys)[0] == 0
    case = CASES["nfc-challenge-mismatch"]
    code, out, _ = run([*base_args(), "--nfc", case["nfc"], case["payload"]], monkeypatch, capsys)
    assert code == 1 and "challenge_mismatch" in out


def test_ignored_and_superseded_lists_are_reported(monkeypatch, capsys) -> None:
    files = ["status-1-old.cwt", "status-1.cwt", "status-untrusted.cwt", "status-badtyp.cwt", "status-kidunprot.cwt"]
    args = ["--at", AT, "--json", *[x for path in TRUST for x in ("--trust", path)]]
    args += [x for name in files for x in ("--status", str(VECTORS / name))]
    _, out, _ = run([*args, CASES["with-status-valid"]["payload"]], monkeypatch, capsys)
    report = {Path(entry["file"]).name: entry for entry in json.loads(out)["status_lists"]}
    assert report["status-1.cwt"]["used"] and not report["status-1-old.cwt"]["used"]
    assert "newer" in report["status-1-old.cwt"]["ignored"]
    assert "not trusted" in report["status-untrusted.cwt"]["ignored"]
    assert "typ" in report["status-badtyp.cwt"]["ignored"]
    # Spec 3 as amended 2026-11-30: a list's kid may be unprotected, so this list is read.
    assert report["status-kidunprot.cwt"]["used"] and report["status-kidunprot.cwt"]["ignored"] is None


def test_jsonl_answers_every_line_in_order(monkeypatch, capsys) -> None:
    good = {"payload": CASES["es256-issuer-ec-holder"]["payload"], "at": int(AT), "trust": TRUST,
            "status": STATUS, "extra_key": "ignored"}
    lines = [
        json.dumps(good),
        "not json",
        json.dumps([1, 2]),
        json.dumps({"at": 1}),
        json.dumps({**good, "nfc": "abc"}),
        json.dumps({**good, "trust": ["/nonexistent.pem"]}),
        json.dumps({**good, "at": "2027-01-01T00:00:00Z", "prefix": ["XX:"]}),
        "",
        json.dumps({**good, "allow_static": "yes"}),
        json.dumps(good),
    ]
    code, out, _ = run(["--jsonl"], monkeypatch, capsys, stdin="\n".join(lines) + "\n")
    answers = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(answers) == len(lines)
    assert answers[0]["decision"] == "grant" and answers[-1]["decision"] == "grant"  # no replay memory
    for index in (1, 2, 3, 4, 5, 7, 8):
        assert set(answers[index]) == {"error"}, (index, answers[index])
    assert answers[6]["reason"] == "malformed"


def _walk(parser: argparse.ArgumentParser, path: str):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, f"{path} {name}")


def test_every_help_text_is_complete() -> None:
    """Every command and subcommand has a description, and every option says what it does."""
    for path, parser in _walk(build_parser(), "gate-reader"):
        assert parser.description, f"{path} has no description"
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            assert action.help, f"{path}: {action.option_strings or action.dest} has no help text"
        assert parser.format_help()


def test_module_entry_point_runs() -> None:
    done = subprocess.run([sys.executable, "-m", "reader", "verify", "--help"], capture_output=True, text=True,
                          check=False, timeout=60)
    assert done.returncode == 0 and "--jsonl" in done.stdout
