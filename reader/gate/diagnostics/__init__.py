"""The technician's diagnostics as services: each check returns a :class:`CheckResult`
(PASS/FAIL/SKIP, the measured values, the likely cause and the next step) and never prints;
``reader.cli.diag`` prints them. ``door`` (relay, leds, buzzer, inputs), ``nfc``, ``camera``,
``scanner``, ``wiegand``, ``state`` (config, clock, cache, sync, the daemon), ``sim`` (what
``--sim`` runs against) and ``selftest`` (every check that needs no person)."""

from reader.gate.diagnostics.result import CheckResult

__all__ = ["CheckResult"]
