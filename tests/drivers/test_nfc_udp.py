"""The simulated reader's poll cadence (``drivers.nfc_udp``): nfcpy's udp driver whose poll
gives up on an empty field as a PN53x does, and the card emulator meeting it reliably."""

from __future__ import annotations

import itertools
import queue
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import nfc
import nfc.clf
import nfc.clf.udp
import pytest

from drivers.nfc import NfcSource
from drivers.nfc_emulator import CardEmulator, LegacyCard
from drivers.nfc_udp import SENS_WAIT_S, PolledUdpDevice, open_frontend, udp_address
from tests.drivers.test_nfc import GATE, WAIT_S, Authority, free_port, nfc_source, wait_for


def _sense(clf: Any) -> Any:
    return clf.sense(nfc.clf.RemoteTarget("106A"), iterations=1)


@pytest.fixture
def frontend() -> Iterator[Any]:
    clf = open_frontend(f"udp:127.0.0.1:{free_port()}")  # nobody listens there
    yield clf
    clf.close()


def test_empty_udp_polls_give_up_within_a_pn53x_poll_time(frontend):
    assert isinstance(frontend.device, nfc.clf.udp.Device)  # still nfcpy's udp driver
    took = []
    for _ in range(20):
        started = time.perf_counter()
        assert _sense(frontend) is None
        took.append(time.perf_counter() - started)
    # nfcpy's own udp driver takes 1.0 s here; the polled one its SENS_RES wait.
    assert statistics.median(took) >= SENS_WAIT_S * 0.9
    assert statistics.median(took) < SENS_WAIT_S + 0.04, took
    started = time.perf_counter()  # Type B's SENSB_REQ gets the same wait
    assert frontend.sense(nfc.clf.RemoteTarget("106B"), iterations=1) is None
    assert time.perf_counter() - started < SENS_WAIT_S + 0.1


def test_udp_paths_get_the_polled_device_and_others_go_to_nfcpy():
    assert udp_address("udp:127.0.0.1:4000") == ("127.0.0.1", 4000)
    assert udp_address("udp") == ("localhost", 54321)  # nfcpy's defaults
    with pytest.raises(ValueError):
        udp_address("usb:054c:06c3")
    clf = open_frontend("udp::4001")
    try:
        assert type(clf.device) is PolledUdpDevice and clf.device.path == "udp:localhost:4001"
    finally:
        clf.close()
    with pytest.raises(OSError):  # no such reader (or no libusb): nfcpy's own error, no fallback
        open_frontend("usb:ffff:ffff")
    with pytest.raises(ValueError, match="sens_wait_s"):
        PolledUdpDevice("127.0.0.1", 4002, sens_wait_s=2.0)


class LateCard:
    """Answers every SENS_REQ, but ``delay_s`` late; answers anticollision at once and counts
    it: a reader that took a stale SENS_RES for its own would go on to SDD_REQ."""

    def __init__(self, port: int, delay_s: float) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.sock.settimeout(0.05)
        self.delay_s = delay_s
        self.requests = 0
        self.anticollision = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(1024)
            except TimeoutError:
                continue
            if data == b"106A 26":
                self.requests += 1
                threading.Timer(self.delay_s, self.sock.sendto, (b"106A 0400", addr)).start()
            elif data.startswith(b"106A 93"):
                self.anticollision += 1
                self.sock.sendto(b"106A 08a1b2c3d0", addr)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1)
        self.sock.close()


def test_late_sens_res_does_not_leak_into_the_next_poll(frontend):
    port = free_port()
    card = LateCard(port, delay_s=SENS_WAIT_S * 2)
    clf = open_frontend(f"udp:127.0.0.1:{port}")
    try:
        for _ in range(30):
            assert _sense(clf) is None
            time.sleep(SENS_WAIT_S * 3)  # the late answer arrives between polls
        assert card.requests == 30
        assert card.anticollision == 0  # no poll took the previous poll's answer for its own
    finally:
        clf.close()
        card.close()


def test_poll_interval_sets_the_cadence_of_empty_polls():
    polls: list[float] = []

    def counting(path: str) -> Any:
        clf = open_frontend(path)
        sense = clf.sense

        def counted(*targets: Any, **options: Any) -> Any:
            polls.append(time.monotonic())
            return sense(*targets, **options)

        clf.sense = counted
        return clf

    for interval_ms in (20, 100):
        polls.clear()
        source = NfcSource("nfc-test", queue.Queue(), path=f"udp:127.0.0.1:{free_port()}", gate_id=GATE,
                           poll_interval_ms=interval_ms, frontend_factory=counting)
        with source:
            time.sleep(1.0)
        gaps = [b - a for a, b in itertools.pairwise(polls)]
        assert len(gaps) >= 3
        # start to start: the interval, not the interval plus the 10 ms poll
        assert interval_ms / 1000 * 0.9 <= statistics.median(gaps) < interval_ms / 1000 + 0.015, gaps


def _busy_processes(count: int) -> list[subprocess.Popen[bytes]]:
    """Processes that keep the CPUs busy, as the rest of a loaded machine would. Not threads of
    this process: two GIL-bound spinners here would hold back the card emulator itself past
    nfcpy's 30 ms RATS wait, a fault of the simulation (a real card answers in hardware)."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


@pytest.mark.parametrize("busy_processes", [0, 2], ids=["idle", "cpu-load"])
def test_card_meets_a_fast_polling_reader_at_any_phase(busy_processes: int) -> None:
    """Taps at random moments of a 20 ms poll cycle each give one presentation: the card
    listens for good (``_LISTEN_S``), so it never falls into step with the reader; under CPU
    load its SENS_RES may come after the reader's wait, and then the next poll meets it."""
    authority = Authority()
    port = free_port()
    presentations: queue.Queue = queue.Queue()
    rng = random.Random(7)
    taps = 15
    with CardEmulator(port) as emulator, nfc_source(port, presentations, poll_interval_ms=20) as source:
        busy = _busy_processes(busy_processes)
        try:
            for _ in range(taps):
                time.sleep(rng.uniform(0, 0.04))
                assert emulator.tap(authority.card(), timeout=WAIT_S)
                presentation = presentations.get(timeout=WAIT_S)
                assert authority.decide(presentation).granted
                assert wait_for(lambda: source.health().extra.get("card_present") is False)
            emulator.tap(LegacyCard(bytes.fromhex("04a1b2c3d4e5f6")), timeout=WAIT_S)
            assert presentations.get(timeout=WAIT_S).payload == "04A1B2C3D4E5F6"
        finally:
            for process in busy:
                process.kill()
                process.wait()
        assert presentations.empty() and source.health().reads == taps + 1
        assert source.health().reconnects == 0
