"""The NFC source against nfcpy's own udp driver, with the card emulator on the other end.

Every test has its own UDP port. The source opens udp paths with ``drivers.nfc_udp`` (an
empty poll gives up after 10 ms, as a PN53x does; ``tests/drivers/test_nfc_udp.py``), so a
card presented while the reader is idle is seen within one poll interval.
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import cbor2
import nfc
import pytest

from drivers.base import Presentation
from drivers.errors import DriverConfigError
from drivers.nfc import FAILURE_CAUSES, NfcSource
from drivers.nfc_emulator import CardEmulator, GatePassHolder, LegacyCard
from reader.gate.deciding import Decider
from reader.gatepass.authority import Holder, Issuer, build_status_list, issue_credential
from reader.gatepass.decide import Clock, Decision
from reader.gatepass.statuslist import StatusLists, verify_status_token
from reader.gatepass.trust import TrustStore, anchors_from_pem
from tests.support import waiting

GATE = "gate-7"
URI = "https://status.example/nfc-tests"
WAIT_S = 5.0
wait_for = partial(waiting.wait_for, timeout=WAIT_S)


def free_port() -> int:
    """A UDP port nobody holds right now (the emulator binds it, the reader sends to it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Authority:
    """An issuer, a trust store and a status list; makes holder cards that answer challenges."""

    def __init__(self, issuer_alg: str = "ES256") -> None:
        self.now = int(time.time())
        self.issuer = Issuer.generate(issuer_alg)
        self.trust = TrustStore(anchors_from_pem(self.issuer.certificate_pem, "test-issuer"))
        token = build_status_list(self.issuer, uri=URI, size=1024, values={}, iat=self.now)
        self.decider = Decider(self.trust, StatusLists([verify_status_token(token, self.trust, now=self.now)]))

    def card(self, holder_alg: str = "ES256", idx: int = 1, **faults: Any) -> GatePassHolder:
        holder = Holder.generate(holder_alg)
        credential = issue_credential(self.issuer, sub=f"E{idx}", iat=self.now - 60, exp=self.now + 86_400,
                                      holder=holder, status=(URI, idx))
        return GatePassHolder(lambda data: holder.answer_challenge(data, credential, iat=time.time()), **faults)

    def decide(self, presentation: Presentation) -> Decision:
        assert isinstance(presentation.payload, bytes) and presentation.challenge is not None
        return self.decider.decide(presentation.kind, presentation.payload, Clock(time.time()),
                                   challenge=presentation.challenge)


@pytest.fixture(scope="module")
def authority() -> Authority:
    return Authority()


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def emulator(port: int) -> Iterator[CardEmulator]:
    with CardEmulator(port) as emu:
        yield emu


@contextmanager
def nfc_source(port: int, sink: Any, **kwargs: Any) -> Iterator[NfcSource]:
    source = NfcSource("nfc-test", sink, path=f"udp:127.0.0.1:{port}", gate_id=GATE, **kwargs)
    source.backoff_s = (0.05, 0.2)
    with source:
        yield source


def card_gone(source: NfcSource) -> Callable[[], bool]:
    return lambda: source.health().extra.get("card_present") is False


def assert_nothing_more(presentations: queue.Queue, seconds: float = 0.6) -> None:
    with pytest.raises(queue.Empty):
        presentations.get(timeout=seconds)


# -- GatePass holders -------------------------------------------------------------------------


@pytest.mark.parametrize(("issuer_alg", "holder_alg"), [("ES256", "ES256"), ("EdDSA", "EdDSA")])
def test_holder_tap_gives_one_granted_presentation_in_three_apdus(port, emulator, issuer_alg, holder_alg):
    authority = Authority(issuer_alg)
    presentations: queue.Queue = queue.Queue()
    emulator.present(authority.card(holder_alg))
    with nfc_source(port, presentations) as source:
        presentation = presentations.get(timeout=WAIT_S)
        assert presentation.kind == "nfc" and presentation.source == "nfc-test"
        assert len(presentation.challenge) == 16
        decision = authority.decide(presentation)
        assert decision.granted, decision.reason
        extra = source.health().extra
        assert extra["last_apdus"] == 3
        assert extra["last_exchange_ms"] < 1000
        assert_nothing_more(presentations)  # left on the reader: not read again


def test_challenge_carries_the_nonce_and_the_gate_id(port, emulator):
    seen: list[bytes] = []
    nonce = bytes(range(16))
    emulator.present(GatePassHolder(lambda data: seen.append(data) or b"\xa0"))
    presentations: queue.Queue = queue.Queue()
    with nfc_source(port, presentations, rnonce=lambda: nonce):
        presentation = presentations.get(timeout=WAIT_S)
    assert cbor2.loads(seen[0]) == {1: nonce, 2: GATE}
    assert presentation.payload == b"\xa0" and presentation.challenge == nonce


def test_chained_command_and_waiting_time_extension(port, emulator, authority):
    """A long gate id makes the CHALLENGE span two I-blocks; the card asks for WTX twice."""
    gate_id = "g" * 200
    presentations: queue.Queue = queue.Queue()
    emulator.present(authority.card(wtx=2))
    source = NfcSource("nfc-test", presentations, path=emulator.path, gate_id=gate_id)
    with source:
        presentation = presentations.get(timeout=WAIT_S)
    assert authority.decide(presentation).granted


# -- legacy cards -----------------------------------------------------------------------------


@pytest.mark.parametrize("iso_dep", [True, False], ids=["selects-6A82", "no-iso-dep"])
def test_legacy_card_gives_its_uid_in_uppercase_hex(port, emulator, iso_dep):
    presentations: queue.Queue = queue.Queue()
    emulator.present(LegacyCard(bytes.fromhex("04a1b2c3d4e5f6"), iso_dep=iso_dep))
    with nfc_source(port, presentations):
        presentation = presentations.get(timeout=WAIT_S)
        assert (presentation.kind, presentation.payload, presentation.challenge) == ("legacy", "04A1B2C3D4E5F6", None)
        assert_nothing_more(presentations, 1.2)  # held across polls


# -- one presentation per tap -------------------------------------------------------------------


def test_card_left_on_is_read_once_and_again_after_removal(port, emulator, authority):
    card = authority.card()
    presentations: queue.Queue = queue.Queue()
    emulator.present(card)
    with nfc_source(port, presentations) as source:
        first = presentations.get(timeout=WAIT_S)
        assert_nothing_more(presentations, 1.0)
        emulator.remove()
        assert wait_for(card_gone(source))
        emulator.present(card)
        second = presentations.get(timeout=WAIT_S)
        assert first.challenge != second.challenge
        assert authority.decide(second).granted
        assert source.health().reads == 2


def test_quick_taps_each_give_one_presentation(port, emulator, authority):
    """tap(): present, wait until the reader presence-checks the card, take it away."""
    card = authority.card()
    presentations: queue.Queue = queue.Queue()
    emulator.present(card)
    emulator.remove()
    with nfc_source(port, presentations) as source:
        for _ in range(3):
            assert emulator.tap(card)
        for _ in range(3):
            assert authority.decide(presentations.get(timeout=WAIT_S)).granted
        assert_nothing_more(presentations)
        assert source.health().reads == 3


def test_uid_only_card_is_read_again_after_removal(port, emulator):
    card = LegacyCard(bytes.fromhex("A1B2C3D4"), iso_dep=False)
    presentations: queue.Queue = queue.Queue()
    emulator.present(card)
    with nfc_source(port, presentations) as source:
        presentations.get(timeout=WAIT_S)
        emulator.remove()
        assert wait_for(card_gone(source))
        emulator.present(card)
        assert presentations.get(timeout=WAIT_S).payload == "A1B2C3D4"


# -- faults: a log line, no crash, the next tap works -----------------------------------------------


def _fault_then_good_tap(port: int, emulator: CardEmulator, authority: Authority, faulty: GatePassHolder,
                         caplog: pytest.LogCaptureFixture, expected: str, cause: str, **kwargs: Any) -> queue.Queue:
    """The faulty card gives one warning line and one count under ``cause`` (held while it
    lies on the reader, so counted once), then a good card is read."""
    presentations: queue.Queue = queue.Queue()
    caplog.set_level(logging.WARNING, logger="drivers.nfc")
    with nfc_source(port, presentations, **kwargs) as source:
        assert source.health().extra["failed_exchanges"] == dict.fromkeys(FAILURE_CAUSES, 0)
        emulator.present(faulty)
        assert wait_for(lambda: any(expected in r.getMessage() for r in caplog.records))
        time.sleep(0.3)  # left on the reader a while: still one failure, not one per poll
        emulator.remove()
        assert wait_for(card_gone(source))
        emulator.present(authority.card())
        good = presentations.get(timeout=WAIT_S)
        assert good.kind == "nfc" and authority.decide(good).granted
        assert source.health().up
        failed = source.health().extra["failed_exchanges"]
        assert failed == {**dict.fromkeys(FAILURE_CAUSES, 0), cause: 1}, failed
    lines = [r for r in caplog.records if r.name == "drivers.nfc" and expected in r.getMessage()]
    assert len(lines) == 1, [r.getMessage() for r in caplog.records]
    return presentations


def test_card_removed_mid_exchange(port, emulator, authority, caplog):
    presentations = _fault_then_good_tap(port, emulator, authority, authority.card(remove_after_apdus=1), caplog,
                                         "stopped answering after 2 APDUs", "card_gone")
    assert presentations.empty()


def test_holder_answering_garbage(port, emulator, authority, caplog):
    presentations = _fault_then_good_tap(port, emulator, authority, authority.card(garbage=True), caplog,
                                         "status 6F42", "bad_status")
    assert presentations.empty()


def test_card_announcing_iso_dep_without_an_ats(port, emulator, authority, caplog):
    presentations = _fault_then_good_tap(port, emulator, authority, authority.card(mute_rats=True), caplog,
                                         "did not activate", "not_activated")
    assert presentations.empty()


def test_exchange_past_its_time_bound(port, emulator, authority, caplog):
    """The bound is checked before each APDU: a nonce source slower than the bound on the
    first tap makes its CHALLENGE too late (deterministic, unlike a card slowed on the air)."""
    calls = []

    def slow_first_nonce() -> bytes:
        calls.append(1)
        if len(calls) == 1:
            time.sleep(0.7)
        return os.urandom(16)

    presentations = _fault_then_good_tap(port, emulator, authority, authority.card(), caplog,
                                         "exchange took over 0.5 s", "timeout", rnonce=slow_first_nonce,
                                         exchange_timeout_s=0.5)
    assert presentations.empty() and len(calls) == 2


def test_answer_longer_than_4096_bytes_is_passed_on_as_too_large(port, emulator, authority, caplog):
    presentations: queue.Queue = queue.Queue()
    caplog.set_level(logging.WARNING, logger="drivers.nfc")
    emulator.present(authority.card(oversize=True))
    with nfc_source(port, presentations):
        presentation = presentations.get(timeout=WAIT_S)
        assert presentation.kind == "nfc" and len(presentation.payload) == 4097
        decision = authority.decide(presentation)
        assert (decision.granted, decision.reason) == (False, "too_large")
        assert_nothing_more(presentations)
    assert sum("verifier decides too_large" in r.getMessage() for r in caplog.records) == 1


def test_card_that_stops_answering_then_a_new_card(port, authority, caplog):
    """The phone hangs mid-exchange (its answer never comes) and its emulator goes away."""
    caplog.set_level(logging.WARNING, logger="drivers.nfc")
    release = threading.Event()
    hung = GatePassHolder(lambda data: release.wait(5) and b"")
    presentations: queue.Queue = queue.Queue()
    emulator = CardEmulator(port, hung).start()
    emulator.present()
    try:
        with nfc_source(port, presentations) as source:
            assert wait_for(lambda: any("stopped answering" in r.getMessage() for r in caplog.records))
            release.set()
            emulator.stop()
            assert wait_for(card_gone(source))
            emulator = CardEmulator(port).start()
            emulator.present(authority.card())
            assert authority.decide(presentations.get(timeout=WAIT_S)).granted
    finally:
        release.set()
        emulator.stop()


class FlakyFrontend:
    """nfcpy's frontend, but the reader can be unplugged (sense raises ENODEV) and refused."""

    def __init__(self) -> None:
        self.unplugged = threading.Event()
        self.refuse_opens = 0
        self.opens = 0

    def __call__(self, path: str) -> Any:
        self.opens += 1
        if self.refuse_opens > 0:
            self.refuse_opens -= 1
            raise OSError(errno.ENODEV, os.strerror(errno.ENODEV))
        clf = nfc.ContactlessFrontend(path)
        real_sense = clf.sense

        def sense(*targets: Any, **options: Any) -> Any:
            if self.unplugged.is_set():
                self.unplugged.clear()
                raise OSError(errno.ENODEV, os.strerror(errno.ENODEV))
            return real_sense(*targets, **options)

        clf.sense = sense
        return clf


def test_reader_gone_reconnects_with_backoff_and_reports_health(port, emulator, authority):
    frontend = FlakyFrontend()
    frontend.refuse_opens = 2
    presentations: queue.Queue = queue.Queue()
    with nfc_source(port, presentations, frontend_factory=frontend) as source:
        assert wait_for(lambda: source.health().up)
        health = source.health()
        assert frontend.opens == 3 and "no NFC reader" in health.last_error and health.down_since is None
        frontend.unplugged.set()
        assert wait_for(lambda: source.health().reconnects == 1 and source.health().up)
        assert "ENODEV" in source.health().last_error
        emulator.present(authority.card())
        assert authority.decide(presentations.get(timeout=WAIT_S)).granted
    assert not source.health().up and source.health().down_since is not None


# -- lifecycle --------------------------------------------------------------------------------


def test_stop_is_prompt_and_close_is_idempotent(port, emulator, authority):
    presentations: queue.Queue = queue.Queue()
    source = NfcSource("nfc-test", presentations, path=emulator.path, gate_id=GATE)
    source.start()
    assert wait_for(lambda: source.health().up)
    time.sleep(0.3)  # mid-poll
    started = time.monotonic()
    source.stop()
    assert time.monotonic() - started < 2.0 and not source.running
    source.close()
    source.close()
    assert not source.health().up

    emulator.present(authority.card())  # stop while a card is held
    with nfc_source(port, presentations) as held:
        presentations.get(timeout=WAIT_S)
        started = time.monotonic()
        held.stop()
        assert time.monotonic() - started < 2.0


@pytest.mark.parametrize(("kwargs", "key"), [
    ({"path": "bluetooth:0"}, "path"),
    ({"path": "udp:127.0.0.1:1", "gate_id": ""}, "gate_id"),
    ({"path": "udp:127.0.0.1:1", "gate_id": "x" * 300}, "gate_id"),
    ({"path": "udp:127.0.0.1:1", "exchange_timeout_s": 0}, "exchange_timeout_s"),
    ({"path": "udp:127.0.0.1:1", "poll_interval_ms": 5}, "poll_interval_ms"),
    ({"path": "udp:127.0.0.1:1", "poll_interval_ms": 1001}, "poll_interval_ms"),
    ({"path": "udp:127.0.0.1:1", "poll_interval_ms": 20.5}, "poll_interval_ms"),
    ({"path": "udp:127.0.0.1:1", "poll_interval_ms": True}, "poll_interval_ms"),
])
def test_bad_settings_name_their_key(kwargs, key):
    kwargs = {"gate_id": GATE, **kwargs}
    with pytest.raises(DriverConfigError, match=key):
        NfcSource("nfc-test", queue.Queue(), **kwargs)


@pytest.mark.parametrize(("value", "message"), [
    (20, None),
    (5, "readers[0].poll_interval_ms: must be an integer from 10 to 1000, not 5"),
    (20.0, "readers[0].poll_interval_ms: must be an integer (like 50), not 20.0"),
])
def test_poll_interval_key_in_the_config_is_checked_with_its_key_path(value, message):
    """``poll_interval_ms`` in ``[[readers]]`` reaches the source as any driver key does, and
    a bad value is refused naming the key path (at start and by check-config alike)."""
    from reader.daemon.sources import build_source
    from reader.errors import ConfigError
    from reader.gate.config_readers import ReaderConfig

    reader = ReaderConfig(0, "lobby-nfc", "nfc", "udp:127.0.0.1:1", {"poll_interval_ms": value})
    if message is None:
        source = build_source(reader, lambda _p: None, gate_id=GATE, pin_factory=None)
        assert isinstance(source, NfcSource) and source.poll_interval_s == 0.02
        return
    with pytest.raises(ConfigError) as refused:
        build_source(reader, lambda _p: None, gate_id=GATE, pin_factory=None)
    assert str(refused.value) == message


def test_registry_finds_the_source():
    from drivers.registry import source_class

    assert source_class("nfc") is NfcSource


@pytest.mark.hardware
@pytest.mark.skipif(os.environ.get("GATE_HARDWARE") != "1",
                    reason="needs an NFC reader (GATE_HARDWARE=1; by hand: gate-reader diag nfc)")
def test_real_reader_reads_one_tap():  # pragma: no cover - run by a technician on a Pi
    """What `gate-reader diag nfc` checks, on the reader at GATE_NFC_PATH (default usb): it
    is found (chip and USB id), then one tap of a card or phone is read."""
    from reader.gate.diagnostics.nfc import probe_nfc, tap_nfc

    path = os.environ.get("GATE_NFC_PATH", "usb")
    found = probe_nfc(path)
    assert found.status == "PASS", f"{found.summary}; {found.cause}; {found.next_step}"
    print(f"{found.summary}: tap a card or phone within 20 s")
    tapped = tap_nfc(path, GATE, 20, print)
    assert tapped.status == "PASS", f"{tapped.summary}; {tapped.cause}; {tapped.next_step}"
    assert tapped.values["kind"] in ("GatePass holder", "legacy card")
