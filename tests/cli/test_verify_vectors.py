"""Every worked vector of GatePass v1 through ``gate-reader verify --jsonl``, in one process,
exactly as a technician or another implementation would call it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support import VECTORS

CASES = json.loads((VECTORS / "cases.json").read_text())["cases"]
CHECK_NAMES = {"format", "issuer_signature", "claims", "validity", "holder_signature", "freshness", "status"}


def _request(case: dict) -> dict:
    request = {key: case[key] for key in ("payload", "at", "trust", "status", "allow_static") if key in case}
    if case.get("nfc"):
        request["nfc"] = case["nfc"]
    return request


@pytest.fixture(scope="module")
def answers() -> list[dict]:
    lines = "".join(json.dumps(_request(case)) + "\n" for case in CASES)
    done = subprocess.run(
        [sys.executable, "-m", "reader", "verify", "--jsonl"],
        input=lines, capture_output=True, text=True, cwd=VECTORS, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    assert len(out) == len(CASES), "one answer line per request line"
    return [json.loads(line) for line in out]


@pytest.mark.parametrize("index", range(len(CASES)), ids=[case["name"] for case in CASES])
def test_vector(answers: list[dict], index: int) -> None:
    case, answer = CASES[index], answers[index]
    assert "error" not in answer, answer
    assert (answer["decision"], answer["reason"]) == (case["expect"]["decision"], case["expect"]["reason"])
    assert set(answer["checks"]) == CHECK_NAMES
    assert set(answer["checks"].values()) <= {"ok", "fail", "skipped"}
    for key in ("subject", "issuer", "kid", "assurance"):
        assert key in answer
    if answer["decision"] == "grant":
        assert answer["subject"] and answer["issuer"] and answer["kid"]
        assert answer["assurance"] in ("high", "static")
        assert set(answer["checks"].values()) <= {"ok", "skipped"}
    else:
        assert answer["detail"]


def test_format_failure_skips_every_other_check(answers: list[dict]) -> None:
    for case, answer in zip(CASES, answers, strict=True):
        if answer["checks"]["format"] == "fail":
            assert answer["reason"] in ("malformed", "too_large"), case["name"]
            assert {v for k, v in answer["checks"].items() if k != "format"} == {"skipped"}


def test_expired_reports_good_signature_and_bad_validity(answers: list[dict]) -> None:
    answer = answers[[case["name"] for case in CASES].index("expired")]
    assert answer["checks"]["issuer_signature"] == "ok"
    assert answer["checks"]["validity"] == "fail"


def test_credentials_without_status_claim_skip_the_status_check(answers: list[dict]) -> None:
    answer = answers[[case["name"] for case in CASES].index("es256-issuer-ec-holder")]
    assert answer["checks"]["status"] in ("ok", "skipped")
