"""``gate-reader diag selftest``: every check that needs no person, one after the other,
as a table; the command exits 0 only when none failed. Which checks a gate gets is the
caller's choice (the command line knows whether the daemon runs and which readers the config
has); here they are run so that one that breaks still leaves a row in the table."""

from __future__ import annotations

import logging
from collections.abc import Callable

from reader.gate.diagnostics.result import CheckResult, failed, timed

log = logging.getLogger(__name__)

Check = tuple[str, Callable[[], CheckResult]]


def run_checks(checks: list[Check]) -> list[CheckResult]:
    """Each check's result, in order. A check that raises (a bug, or a state of the gate no
    check foresaw) is a FAIL row saying so, and the next one runs."""
    results = []
    for name, check in checks:
        try:
            results.append(timed(check))
        except Exception as exc:  # the table must still be printed: this row carries the error
            log.debug("selftest: %s raised", name, exc_info=True)
            results.append(failed(name, f"the check itself failed: {type(exc).__name__}: {exc}",
                                  "an unexpected state of the gate (or a bug in the check)",
                                  f"run `gate-reader -vv diag {name}` alone and keep its output"))
    return results


def all_passed(results: list[CheckResult]) -> bool:
    return all(result.ok for result in results)
