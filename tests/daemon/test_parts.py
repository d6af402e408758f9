"""The daemon's parts alone: building sources from [[readers]] (every driver key checked
against the driver), the supervision that restarts a stalled source while the others keep
reading, sd_notify, and the control socket."""

from __future__ import annotations

import os
import queue
import socket
import stat
import threading
import time
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from drivers.base import SourceBase
from reader.daemon.control import ControlError, ControlServer, request
from reader.daemon.notify import Notifier, watchdog_interval_s
from reader.daemon.sources import SourceSet, build_source
from reader.errors import ConfigError
from reader.gate.config import ReaderConfig, parse_config
from tests.support.waiting import wait_until

BASE = '[gate]\nid = "g"\n[cache]\npath = "/tmp/x.db"\n'


def _reader(text: str) -> ReaderConfig:
    return parse_config(BASE + "[[readers]]\n" + text).readers[0]


@pytest.mark.parametrize(("text", "message"), [
    ('name = "n"\ndriver = "nfc"\ndevice = "usb"\ncolour = "red"\n', "readers[0].colour: unknown key (a nfc reader"),
    ('name = "n"\ndriver = "nfc"\ndevice = "usb"\ngate_id = "x"\n', "readers[0].gate_id: unknown key"),
    ('name = "n"\ndriver = "nfc"\ndevice = "pci:1"\n', "readers[0].device: 'pci:1' is not an nfcpy reader path"),
    ('name = "s"\ndriver = "scanner"\ndevice = "/dev/x"\nparity = "Q"\n', "readers[0].parity: 'Q' is not one of"),
    ('name = "c"\ndriver = "camera"\ndevice = 0\nroi = [1, 2]\n', "readers[0].roi: expected (x, y, width, height)"),
    ('name = "c"\ndriver = "camera"\ndevice = 0\nfps = "x"\n', "readers[0].fps: must be a number (like 15.0), not 'x'"),
    ('name = "c"\ndriver = "camera"\ndevice = 0\nloop = 1\n', "readers[0].loop: must be true or false"),
    ('name = "w"\ndriver = "wiegand"\ndevice = [20, 20]\n', "readers[0].device: GPIO 20 is already d0"),
    ('name = "w"\ndriver = "wiegand"\ndevice = [20, 21]\nformats = ["H1"]\n', "readers[0].formats: unknown format"),
])
def test_every_driver_key_is_checked_with_its_reader_path(text: str, message: str) -> None:
    factory = MockFactory()
    try:
        with pytest.raises(ConfigError) as info:
            build_source(_reader(text), lambda p: None, gate_id="g", pin_factory=factory)
        assert message in str(info.value)
    finally:
        factory.close()


def test_driver_keys_reach_the_driver() -> None:
    source = build_source(_reader('name = "s"\ndriver = "scanner"\ndevice = "loop://"\nmax_line = 99\n'),
                          lambda p: None, gate_id="g", pin_factory=None)
    assert (source.port, source.max_line, source.name) == ("loop://", 99, "s")


class _Fake(SourceBase):
    """A source whose loop can be made to hang (a driver call that never returns)."""

    def __init__(self, name: str, sink: object, hang: threading.Event) -> None:
        super().__init__(name, sink)  # type: ignore[arg-type]
        self.hang = hang

    def _open_device(self) -> None:
        pass

    def _read_once(self) -> None:
        if self.hang.is_set():
            time.sleep(3)  # stuck, not checking the stop flag
        self._stop.wait(0.01)


def test_a_stalled_source_is_restarted_while_the_others_keep_reading() -> None:
    readers = tuple(_reader(f'name = "{n}"\ndriver = "scanner"\ndevice = "loop://"\n') for n in ("a", "b"))
    hangs = {"a": threading.Event(), "b": threading.Event()}
    built: list[_Fake] = []

    def build(reader: ReaderConfig) -> _Fake:
        built.append(_Fake(reader.name, queue.Queue(), hangs[reader.name]))
        return built[-1]

    sources = SourceSet(readers, build, stall_s=0.3)
    sources.start()
    try:
        first_a = sources.source("a")
        hangs["a"].set()
        wait_until(lambda: sources.source("a") is not first_a, 3.0)
        hangs["a"].clear()  # the new instance is not stuck
        assert sources.health()["a"]["restarts"] == 1 and sources.health()["b"]["restarts"] == 0
        assert sources.source("b").running
        wait_until(lambda: sources.healthy(time.monotonic()), 2.0)
        # One that stays stuck through its restarts makes the set unhealthy: the watchdog stops.
        hangs["b"].set()
        wait_until(lambda: not sources.healthy(time.monotonic()), 4.0)
    finally:
        hangs["a"].clear()
        hangs["b"].clear()
        sources.close()


@pytest.mark.parametrize("abstract", [False, True])
def test_sd_notify_messages_reach_the_socket_systemd_names(tmp_path: Path, abstract: bool) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        name = f"@gate-reader-test-{os.getpid()}" if abstract else str(tmp_path / "notify")
        receiver.bind("\0" + name[1:] if abstract else name)
        receiver.settimeout(2)
        notifier = Notifier(name)
        assert notifier.ready("2 readers") and notifier.watchdog() and notifier.stopping()
        got = [receiver.recv(1024).decode() for _ in range(3)]
        notifier.close()
    assert got == ["READY=1\nSTATUS=2 readers", "WATCHDOG=1", "STOPPING=1"]
    assert not Notifier(None).ready()  # no NOTIFY_SOCKET: nothing, silently


def test_the_watchdog_interval_is_half_of_what_systemd_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    assert watchdog_interval_s() == 2.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))  # meant for another process
    assert watchdog_interval_s() is None


def test_the_control_socket_is_owner_and_group_only_and_answers_one_json_request(tmp_path: Path) -> None:
    asked: list[tuple[dict, int]] = []

    def handler(req: dict, uid: int) -> dict:
        asked.append((req, uid))
        if req["cmd"] == "fail":
            raise ValueError("no such thing")
        return {"echo": req["cmd"]}

    path = tmp_path / "run" / "control.sock"
    server = ControlServer(path, handler)
    server.start()
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o660
        assert request(path, {"cmd": "status"}) == {"ok": True, "echo": "status"}
        assert asked[-1] == ({"cmd": "status"}, os.getuid())
        with pytest.raises(ControlError, match="no such thing"):
            request(path, {"cmd": "fail"})
        for bad in (b"NaN\n", b"[1]\n", b"\xff\n", b"x" * 70_000):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.connect(str(path))
                sock.sendall(bad)
                sock.shutdown(socket.SHUT_WR)
                assert b'"ok": false' in sock.recv(4096)
        # A second daemon for the same gate refuses to take the socket over.
        with pytest.raises(OSError, match="another daemon answers"):
            ControlServer(path, handler).start()
    finally:
        server.close()
    assert not path.exists()
    with pytest.raises(ControlError, match="no daemon is running"):
        request(path, {"cmd": "status"})


def test_run_without_a_door_is_a_configuration_error() -> None:
    from reader.cli import main

    with pytest.raises(ConfigError, match=r"door: gate-reader run needs a \[door\] table"):
        from reader.daemon.daemon import Daemon

        Daemon(parse_config(BASE))
    assert main(["lockdown", "on", "--config", "/nonexistent/gate.toml"]) == 2


def test_a_worker_that_fails_secures_the_door_and_exits_non_zero(tmp_path: Path) -> None:
    """A bug in the decision worker: it stops (and with it the watchdog pings), the daemon
    secures the door, journals the failure and exits 1 for systemd to restart it."""
    from drivers.base import Presentation
    from offline_cache.journal import Journal
    from offline_cache.store import Store
    from reader.daemon.daemon import Daemon

    config = parse_config(f'[gate]\nid = "g"\n[cache]\npath = "{tmp_path / "c.db"}"\n[door]\npin_factory = "mock"\n'
                          f'release_s = 30\n[daemon]\nruntime_dir = "{tmp_path / "run"}"\n')
    daemon = Daemon(config)
    daemon.start()
    try:
        assert daemon.pipeline is not None and daemon.door is not None
        daemon.pipeline.request("release", by="test").wait(3.0)
        assert daemon.door.state().released

        def bug(presentation: Presentation) -> None:
            raise RuntimeError("a bug")

        daemon.pipeline.handle_presentation = bug  # type: ignore[method-assign]
        daemon.pipeline.submit_presentation(Presentation("x", "qr", "GP1:", time.monotonic()))
        assert daemon.run() == 1
        assert daemon.door.state().released is False
    finally:
        daemon.stop()
    with Store.open(tmp_path / "c.db", readonly=True) as store:
        reasons = [r.reason for r, _ok in Journal(store).records()]
    assert reasons[-1] == "daemon_crashed"
