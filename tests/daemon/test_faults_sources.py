"""Faults of the credential sources and of the data they are decided with, with the real
daemon (``gate-reader run`` in a child process on simulated hardware): a device that
vanishes and comes back, a revocation synced while the daemon runs."""

from __future__ import annotations

from drivers.nfc_emulator import CardEmulator
from tests.support.centre import ok
from tests.support.simgate import Employee, scanner_up
from tests.support.waiting import wait_for, wait_until


def test_a_vanished_source_comes_back_while_the_others_keep_granting(sim) -> None:
    centre, gate, scanner, port = sim
    with CardEmulator(port) as phone_reader:
        gate.start()
        assert wait_for(lambda: scanner_up(gate), 10.0)
        for round_ in range(2):  # unplugged twice: it must come back each time
            scanner.unplug()
            wait_until(lambda: not scanner_up(gate), 10.0)
            assert gate.status()["sources"]["scan"]["last_error"]
            assert phone_reader.tap(Employee(centre, 11 + 2 * round_).phone(), timeout=10.0)
            assert gate.wait_decisions(1 + 2 * round_)[-1] == ("nfc", "grant", "granted")
            scanner.plug()  # back at the same path: the source reconnects by itself
            assert wait_for(lambda: scanner_up(gate), 15.0)
            scanner.scan(Employee(centre, 12 + 2 * round_).qr())
            assert gate.wait_decisions(2 + 2 * round_)[-1] == ("scan", "grant", "granted")
        sources = gate.status()["sources"]
        assert sources["scan"]["reconnects"] == 2 and sources["nfc"]["reconnects"] == 0
    assert gate.stop() == 0


def test_a_revocation_synced_while_the_daemon_runs_denies_the_next_presentation(sim) -> None:
    centre, gate, scanner, _port = sim
    gate.start()
    assert wait_for(lambda: scanner_up(gate), 10.0)
    employee = Employee(centre, 7)
    scanner.scan(employee.qr())
    assert gate.wait_decisions(1) == [("scan", "grant", "granted")]
    centre.revoke("--idx", 7, name="main")
    ok("sync", "--config", centre.config, "--no-upload")  # type: ignore[attr-defined]
    # No wait: the worker looks at the cache's change marker before each decision.
    scanner.scan(employee.qr())
    assert gate.wait_decisions(2)[-1] == ("scan", "deny", "revoked")
    assert "cache generation" in gate.log.read_text()
    assert gate.stop() == 0
