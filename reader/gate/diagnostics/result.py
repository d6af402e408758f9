"""What every diagnostic returns: one PASS/FAIL line's worth of data, the measured values,
and on failure the likely cause and the next step. The checks never print: live lines (an
input changing, a raw scanner line, a Wiegand frame) go to the ``report`` callable the
caller hands in, and questions for the technician to its ``ask`` callable."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["PASS", "FAIL", "SKIP"]

#: a live line for the technician (the command prints it at once)
Report = Callable[[str], None]
#: a yes/no question for the technician; None when nobody can be asked (no terminal, --yes)
Ask = Callable[[str], bool | None]


def quiet(_line: str) -> None:
    """A report that goes nowhere (the selftest, which shows its table only)."""


def nobody(_question: str) -> bool | None:
    """Nobody to ask."""
    return None


@dataclass
class CheckResult:
    """One diagnostic's outcome. SKIP: the gate has no such part, or the check cannot run
    here (said in ``summary``); it does not fail a selftest."""

    name: str
    status: Status
    summary: str
    values: dict[str, Any] = field(default_factory=dict)
    cause: str | None = None  # FAIL: what is most likely wrong
    next_step: str | None = None  # FAIL: what to do about it
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status != "FAIL"

    def as_json(self) -> dict[str, Any]:
        return {"check": self.name, "status": self.status, "summary": self.summary, "values": self.values,
                "cause": self.cause, "next_step": self.next_step, "seconds": round(self.seconds, 3)}


def passed(name: str, summary: str, **values: Any) -> CheckResult:
    return CheckResult(name, "PASS", summary, values)


def failed(name: str, summary: str, cause: str, next_step: str, **values: Any) -> CheckResult:
    return CheckResult(name, "FAIL", summary, values, cause, next_step)


def skipped(name: str, summary: str, **values: Any) -> CheckResult:
    return CheckResult(name, "SKIP", summary, values)


def timed(check: Callable[[], CheckResult]) -> CheckResult:
    """Run ``check`` and note how long it took."""
    started = time.monotonic()
    result = check()
    result.seconds = time.monotonic() - started
    return result


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    """Whether ``condition`` came true within ``timeout`` seconds (asked once more at the end)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()
