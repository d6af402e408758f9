"""The centre's policy for a gate group, published and withdrawn with the real commands while
``gate-reader run`` runs as a child process (issue 10): the sync that no longer finds
``policy/<group>.toml`` in the signed targets drops it, and the running daemon is back on
its own config's policy within a second, without a restart."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from reader.demo.site import ScannerPty as Scanner
from reader.demo.site import free_udp_port
from tests.support.centre import Centre, ok
from tests.support.simgate import Employee, SimGate, gate_text, scanner_up
from tests.support.waiting import wait_for


def _started_under_hq_policy(centre: Centre, tmp_path: Path) -> tuple[SimGate, Scanner]:
    """A gate of group hq whose centre publishes policy/hq.toml admitting NFC only at the
    scanner (which reads QR codes: none admitted), synced, and its daemon running under it."""
    config: Path = centre.config  # type: ignore[attr-defined]
    config.write_text(config.read_text().replace("[gate]\n", '[gate]\ngroup = "hq"\n', 1))
    policy = tmp_path / "policy" / "hq.toml"
    policy.parent.mkdir()
    policy.write_bytes(b'[readers.scan]\nkinds = ["nfc"]\n')
    ok("authority", "publish", "--repo", centre.repo, "--policy", policy)
    ok("sync", "--config", config, "--no-upload")
    scanner = Scanner(tmp_path / "scanner")
    gate = SimGate(tmp_path, gate_text(centre, tmp_path, free_udp_port()))
    try:
        gate.start()
        assert wait_for(lambda: scanner_up(gate), 10.0)
        assert gate.status()["policy_origin"] == "central policy/hq.toml over local"
    except BaseException:
        gate.kill()
        scanner.unplug()
        raise
    return gate, scanner


def test_a_central_policy_withdrawn_by_the_centre_stops_applying_in_a_running_daemon(
        centre: Centre, tmp_path: Path) -> None:
    gate, scanner = _started_under_hq_policy(centre, tmp_path)
    try:
        scanner.scan(Employee(centre, 3).qr())
        assert gate.wait_decisions(1) == [("scan", "deny", "not_authorized")]
        ok("authority", "publish", "--repo", centre.repo, "--remove", "policy/hq.toml")
        done = gate.gate_reader("sync", "--config", str(gate.config), "--no-upload")
        synced = time.monotonic()
        assert done.returncode == 0, done.stderr
        assert "central policy/hq.toml withdrawn (policy/hq.toml is not in the repository's signed targets)" \
            in done.stderr, done.stderr
        # Within a second by the store's change marker (2 s here: two cores shared by a whole test run).
        assert wait_for(lambda: gate.status()["policy_origin"] == "local", 2.0, 0.02), gate.status()
        took = time.monotonic() - synced
        assert gate.status()["policy_problem"] is None
        scanner.scan(Employee(centre, 4).qr())
        assert gate.wait_decisions(2)[-1] == ("scan", "grant", "granted"), f"reloaded {took:.2f} s after the sync"
        assert gate.stop() == 0
    finally:
        gate.kill()
        scanner.unplug()


def test_a_central_policy_of_the_old_group_is_not_applied_after_sighup_and_status_says_why(
        centre: Centre, tmp_path: Path) -> None:
    """[gate] group changed in the config, SIGHUP: the held policy is another group's, so the
    daemon applies its own config's policy and ``gate-reader status`` names the problem; a
    sync for the new group (which publishes none) then drops the held one and the problem."""
    gate, scanner = _started_under_hq_policy(centre, tmp_path)
    try:
        gate.config.write_text(gate.config.read_text().replace('group = "hq"', 'group = "lobby"', 1))
        gate.send(signal.SIGHUP)
        assert wait_for(lambda: gate.status()["policy_origin"] == "local", 5.0, 0.02), gate.status()
        done = gate.gate_reader("status", "--config", str(gate.config))
        assert ("policy: the stored central policy is policy/hq.toml, but the gate's group 'lobby' uses "
                "policy/lobby.toml") in done.stdout, done.stdout + done.stderr
        scanner.scan(Employee(centre, 5).qr())
        assert gate.wait_decisions(1) == [("scan", "grant", "granted")]
        done = gate.gate_reader("sync", "--config", str(gate.config), "--no-upload")
        assert done.returncode == 0 and "central policy/hq.toml withdrawn" in done.stderr, done.stderr
        assert wait_for(lambda: gate.status()["policy_problem"] is None, 2.0, 0.02), gate.status()
        assert gate.stop() == 0
    finally:
        gate.kill()
        scanner.unplug()
