"""Faults of the credential sources and of the data they are decided with, with the real
daemon (``gate-reader run`` in a child process on simulated hardware): a device that
vanishes and comes back, a revocation synced while the daemon runs."""

from __future__ import annotations

import time

from drivers.nfc_emulator import CardEmulator
from tests.support.centre import ok
from tests.support.simgate import Employee, scanner_up
from tests.support.waiting import wait_for, wait_until


def test_a_source_that_vanishes_shows_down_while_the_others_keep_granting(sim) -> None:
    centre, gate, scanner, port = sim
    with CardEmulator(port) as phone_reader:
        gate.start()
        assert wait_for(lambda: scanner_up(gate), 10.0)
        scanner.unplug()
        wait_until(lambda: not scanner_up(gate), 10.0)
        assert gate.status()["sources"]["scan"]["last_error"]
        assert phone_reader.tap(Employee(centre, 11).phone(), timeout=10.0)
        assert gate.wait_decisions(1) == [("nfc", "grant", "granted")]
        scanner.plug()  # back at the same path: the source reconnects by itself
        assert wait_for(lambda: scanner_up(gate), 15.0)
        scanner.scan(Employee(centre, 12).qr())
        assert gate.wait_decisions(2)[-1] == ("scan", "grant", "granted")
    assert gate.stop() == 0


def test_a_revocation_synced_while_the_daemon_runs_denies_the_next_presentation(sim) -> None:
    centre, gate, scanner, _port = sim
    gate.start()
    assert wait_for(lambda: scanner_up(gate), 10.0)
    employee = Employee(centre, 7)
    scanner.scan(employee.qr())
    gate.wait_decisions(1)
    centre.revoke("--idx", 7, name="main")
    ok("sync", "--config", centre.config, "--no-upload")  # type: ignore[attr-defined]
    time.sleep(0.3)  # the worker polls the change marker on every turn (<= 0.05 s)
    scanner.scan(employee.qr())
    assert gate.wait_decisions(2)[-1] == ("scan", "deny", "revoked")
