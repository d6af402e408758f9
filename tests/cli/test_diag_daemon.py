"""gate-reader diag while the daemon runs: the door checks go through its control socket (it
holds the pins), the reader checks say the daemon holds the reader and how to stop it; and the
selftest of a gate whose sync server is down says what is missing and how to fix it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from offline_cache.journal import Journal
from offline_cache.store import Store
from reader.daemon.daemon import Daemon
from reader.gate.config import load_config
from reader.gate.diagnostics.sim import free_udp_port
from tests.support import closed_tcp_port
from tests.support.centre import run


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Path]:
    config = tmp_path / "gate.toml"
    config.write_text(f'[gate]\nid = "g"\n[cache]\npath = "{tmp_path / "c.db"}"\n[door]\npin_factory = "mock"\n'
                      f'release_s = 0.3\n[daemon]\nruntime_dir = "{tmp_path / "run"}"\nlevel_poll_s = 0.05\n'
                      f'[[readers]]\nname = "lobby-nfc"\ndriver = "nfc"\ndevice = "udp:127.0.0.1:{free_udp_port()}"\n'
                      f'[[readers]]\nname = "lobby-cam"\ndriver = "camera"\n'
                      f'device = "{tmp_path / "none" / "%05d.png"}"\n')
    running = Daemon(load_config(config))
    running.start()
    try:
        yield config
    finally:
        running.stop()


def _first(out: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(("PASS", "FAIL", "NOT CHECKED")))


def test_door_checks_go_through_the_running_daemon(daemon: Path, tmp_path: Path) -> None:
    code, out, err = run("diag", "relay", "--sim", "--config", daemon, "--yes", "--times", "2")
    assert code == 0, out + err
    assert _first(out) == "PASS  relay: 2x released, the door opened each time and secured again by itself"
    assert "via: the running daemon" in out
    code, out, err = run("diag", "inputs", "--sim", "--config", daemon, "--seconds", "1")
    changes = "changes: {'door_contact': 2, 'exit_button': 2, 'tamper': 2, 'fire': 2, 'lockdown': 2}"
    assert code == 0 and changes in out, out + err
    code, out, err = run("diag", "leds", "--sim", "--config", daemon)
    assert code == 0 and _first(out) == "PASS  leds: green_led went on and off, red_led went on and off", out + err
    with Store.open(tmp_path / "c.db", readonly=True) as store:
        diagnostic = [r for r, _ok in Journal(store).records() if r.reason == "door_diagnostic"]
    assert len(diagnostic) == 2 and all(r.detail and r.detail.startswith("release requested by uid ")
                                        for r in diagnostic)


def test_reader_checks_say_the_daemon_holds_the_reader_and_how_to_stop_it(daemon: Path) -> None:
    code, out, _err = run("diag", "nfc", "--config", daemon)
    assert code == 3
    assert _first(out) == ("NOT CHECKED  nfc: the running daemon holds lobby-nfc (up there); to test it alone: sudo "
                           "systemctl stop gate-reader, run this again, then sudo systemctl start gate-reader")
    code, out, _err = run("diag", "camera", "--config", daemon)
    assert code == 3 and "holds lobby-cam (DOWN there)" in _first(out)


def test_the_relay_asks_first_and_without_a_terminal_needs_yes(daemon: Path) -> None:
    code, out, err = run("diag", "relay", "--config", daemon)
    assert code == 2 and out == "" and "add --yes" in err


def test_the_selftest_shows_the_daemon_and_its_readers_as_it_sees_them(daemon: Path) -> None:
    code, out, _err = run("diag", "selftest", "--config", daemon)
    rows = {line.split("  ")[0].strip(): line for line in out.splitlines()}
    assert code == 1  # the camera's file is not there: it is down
    assert "PASS" in rows["daemon"] and "door secured" in rows["daemon"] and "1/2 readers up" in rows["daemon"]
    assert "PASS" in rows["nfc lobby-nfc"] and "up in the running daemon" in rows["nfc lobby-nfc"]
    assert "FAIL" in rows["camera lobby-cam"] and "down since" in rows["camera lobby-cam"]
    assert "PASS" in rows["inputs"]
    assert "next step: sudo systemctl stop gate-reader; gate-reader diag camera shows why" in out


def test_the_sync_server_down_at_install_the_selftest_says_what_is_missing_and_how_to_fix_it(tmp_path: Path) -> None:
    from tests.support.centre import Centre

    centre = Centre(tmp_path / "centre")  # a real root.json; its server is not started: down
    config = tmp_path / "gate.toml"
    config.write_text(f'[gate]\nid = "g"\n[cache]\npath = "{tmp_path / "state" / "c.db"}"\n[sync]\n'
                      f'metadata_url = "http://127.0.0.1:{closed_tcp_port()}/metadata/"\n'
                      'targets_url = "http://127.0.0.1:9/targets/"\n'
                      f'root = "{centre.repo / "public" / "metadata" / "root.json"}"\ntimeout_s = 1\n'
                      'total_timeout_s = 2\n')
    code, out, _err = run("diag", "selftest", "--config", config)
    assert code == 1
    rows = {line.split("  ")[0].strip(): line for line in out.splitlines()}
    assert "PASS" in rows["config"]
    assert "FAIL" in rows["sync"] and "server unreachable" in rows["sync"]
    assert "sync: FAIL\n  likely cause: the centre's server does not answer: no network, a firewall, or the server " \
           "is down\n  next step: check the network and [sync] metadata_url (curl -I THE-URL), then run it again" in out
    assert "FAIL" in rows["cache"] and "no issuer certificates" in rows["cache"]
    assert "next step: sudo systemctl start gate-reader-sync (or `gate-reader diag sync`)" in out
