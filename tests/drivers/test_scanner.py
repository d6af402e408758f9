"""The serial scanner against a real ``serial.Serial`` on a pty: the test writes to the
master end as a scanner would, the source reads the slave by its path.

The port vanishing and coming back is simulated with a symlink the source opens by name:
closing the pty's master hangs the slave up (reads fail, the node disappears), and a new pty
cannot be given the old ``/dev/pts/N`` name, so the test repoints the symlink to a new pty,
the way udev repoints ``/dev/serial/by-id/...`` when a USB scanner is plugged back in.
"""

from __future__ import annotations

import contextlib
import os
import queue
import random
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest

from drivers.base import Presentation
from drivers.errors import DriverConfigError, DriverError
from drivers.registry import source_class
from drivers.scanner import ScannerSource
from reader.gate.deciding import Decider
from reader.gatepass.authority import Holder, Issuer, issue_credential
from reader.gatepass.decide import Clock, Decision
from reader.gatepass.trust import TrustStore, anchors_from_pem
from tests.support import waiting

wait_until = partial(waiting.wait_until, timeout=3.0)
take = partial(waiting.take, timeout=3.0)


class Pty:
    """A pty pair whose slave the source opens by path; the test holds only the master."""

    def __init__(self) -> None:
        self.master, slave = os.openpty()
        self.path = os.ttyname(slave)
        os.close(slave)  # the pair lives while the master is open

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.master, view):]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.master)


@pytest.fixture
def pty() -> Iterator[Pty]:
    pair = Pty()
    yield pair
    pair.close()


@pytest.fixture
def sources() -> Iterator[Callable[..., tuple[ScannerSource, queue.Queue]]]:
    """Makes started sources and closes every one of them after the test."""
    made: list[ScannerSource] = []

    def make(port: str, wait_up: bool = True, **options: object) -> tuple[ScannerSource, queue.Queue]:
        sink: queue.Queue = queue.Queue()
        source = ScannerSource("scanner-1", sink, port=port, **options)  # type: ignore[arg-type]
        source.backoff_s = (0.02, 0.1)
        made.append(source)
        source.start()
        if wait_up:
            # Bytes written before the source has opened (and flushed) the port are lost.
            wait_until(lambda: source.health().up)
        return source, sink

    yield make
    for source in made:
        source.close()


def assert_quiet(sink: queue.Queue, wait: float = 0.15) -> None:
    with pytest.raises(queue.Empty):
        extra = sink.get(timeout=wait)
        pytest.fail(f"unexpected presentation {extra.kind} of {len(extra.payload)} chars")


# -- GatePass material: a trust store and fresh QR texts -------------------------------------------


@pytest.fixture(scope="module")
def authority() -> tuple[Issuer, Holder, bytes, TrustStore]:
    issuer = Issuer.generate("ES256")
    holder = Holder.generate("ES256")
    now = int(time.time())
    credential = issue_credential(issuer, sub="E000042", iat=now - 60, exp=now + 86_400, holder=holder)
    return issuer, holder, credential, TrustStore(anchors_from_pem(issuer.certificate_pem, "issuer"))


@pytest.fixture
def qr_text(authority) -> Callable[[], str]:
    _, holder, credential, _ = authority
    return lambda: holder.present_qr(credential, iat=int(time.time()))


@pytest.fixture
def decide(authority) -> Callable[[str], Decision]:
    decider = Decider(authority[3])
    return lambda text: decider.decide("qr", text, Clock(time.time()))


# -- lines ------------------------------------------------------------------------------------------


def test_qr_texts_emitted_exactly_and_granted(pty, sources, qr_text, decide) -> None:
    source, sink = sources(pty.path)
    texts = [qr_text() for _ in range(3)]
    for text, end in zip(texts, (b"\r", b"\n", b"\r\n"), strict=True):
        pty.write(text.encode("ascii") + end)
    got = take(sink, 3)
    assert [p.payload for p in got] == texts
    assert all(p.kind == "qr" and p.source == "scanner-1" and p.challenge is None for p in got)
    for presentation in got:
        decision = decide(presentation.payload)
        assert decision.granted, decision.reason
    assert_quiet(sink)  # the CRLF gave no empty line
    extra = source.health().extra
    assert extra["lines"] == 3 and extra["port"] == pty.path and extra["max_latency_us"] >= 0


def test_terminators_and_empty_lines(pty, sources) -> None:
    _, sink = sources(pty.path)
    pty.write(b"\r\n\nA\rB\nC\r\nD\n\r\n\r\r\nE")
    assert [p.payload for p in take(sink, 4)] == ["A", "B", "C", "D"]
    assert_quiet(sink)  # "E" waits for its terminator
    pty.write(b"F\r")
    time.sleep(0.05)
    pty.write(b"\nG\r")  # a CRLF split across two reads is still one terminator
    assert [p.payload for p in take(sink, 2)] == ["EF", "G"]
    assert_quiet(sink)


def test_text_kept_exactly_as_read(pty, sources) -> None:
    _, sink = sources(pty.path)
    pty.write(b"  gp1:lower case \t\n")  # nothing trimmed, nothing case-folded
    assert take(sink, 1)[0].payload == "  gp1:lower case \t"


def test_legacy_pattern_full_match_only(pty, sources, decide) -> None:
    _, sink = sources(pty.path, legacy_pattern="[0-9]{10}")
    pty.write(b"0123456789\r\n01234567890\r\n012345678\r\nX0123456789\r\n")
    got = take(sink, 4)
    assert [(p.kind, p.payload) for p in got] == [
        ("legacy", "0123456789"), ("qr", "01234567890"), ("qr", "012345678"), ("qr", "X0123456789")]
    assert all(decide(p.payload).reason == "malformed" for p in got[1:])


def test_garbage_goes_to_the_verifier_as_qr_and_is_malformed(pty, sources, decide) -> None:
    _, sink = sources(pty.path, legacy_pattern=".{1,12}")  # even a pattern that takes anything
    pty.write(b"\xff\xfe\x00\x00\n" + "caf\u00e9".encode() + b"\n\x1b[2J\x07\x7f\n")
    got = take(sink, 3)
    # Not UTF-8: never a legacy card, and U+FFFD instead of the bytes (no lone surrogates).
    assert (got[0].kind, got[0].payload) == ("qr", "\ufffd\ufffd\x00\x00")
    # Valid UTF-8 is text as read: a legacy barcode hashed as UTF-8 (spec 2.3) round-trips.
    assert (got[1].kind, got[1].payload) == ("legacy", "caf\u00e9")
    assert (got[2].kind, got[2].payload) == ("legacy", "\x1b[2J\x07\x7f")
    assert decide(got[0].payload).reason == "malformed"


def test_noise_bytes_do_not_hurt(pty, sources, qr_text, decide) -> None:
    source, sink = sources(pty.path, legacy_pattern="[0-9]{10}")
    noise = random.Random(4).randbytes(3000) + bytes(range(256)) + b"\x00" * 64 + b"\xff" * 64
    good = qr_text()
    pty.write(noise + b"\n" + good.encode("ascii") + b"\r\n")
    got: list[Presentation] = []
    while not got or got[-1].payload != good:
        got.append(sink.get(timeout=3))
    assert decide(good).granted
    for presentation in got[:-1]:
        assert presentation.kind == "qr"
        presentation.payload.encode("utf-8")  # journal-safe: no lone surrogates
        assert decide(presentation.payload).reason == "malformed"
    health = source.health()
    assert health.up and health.reconnects == 0


def test_oversized_line_once_then_resync_with_bounded_memory(pty, sources, qr_text, decide) -> None:
    source, sink = sources(pty.path)
    good = qr_text()
    block = b"A" * 4096  # one object written over and over: the writer holds no 100 KB line
    total = 100 * 1024

    def scanner() -> None:
        pty.write(b"GP1:")
        for _ in range(total // len(block)):
            pty.write(block)
        pty.write(b"\r\n" + good.encode("ascii") + b"\r\n")

    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        writer = threading.Thread(target=scanner)
        started = time.monotonic()
        writer.start()
        first, second = take(sink, 2, timeout=5)
        writer.join(5)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert not writer.is_alive()  # the port was drained, not stalled
    assert time.monotonic() - started < 3
    assert first.kind == "qr" and len(first.payload) == source.max_line + 1 == 4097
    assert first.payload.startswith("GP1:AAA")
    assert decide(first.payload).reason == "too_large"
    assert second.payload == good and decide(second.payload).granted
    assert_quiet(sink)
    # The line was 100 KB; the source holds at most max_line + 1 bytes of it plus a read.
    assert peak - before < 48 * 1024, f"peak {peak - before} bytes while reading a 100 KB line"
    assert source.health().extra["oversized"] == 1


def test_oversized_line_ending_in_the_same_read(pty, sources) -> None:
    _, sink = sources(pty.path, max_line=16)
    pty.write(b"GP1:" + b"B" * 20 + b"\nshort\n")
    first, second = take(sink, 2)
    assert first.payload == "GP1:" + "B" * 13  # max_line + 1 characters, then nothing of the rest
    assert second.payload == "short"
    pty.write(b"C" * 16 + b"\n")  # exactly at the bound is not oversized
    assert take(sink, 1)[0].payload == "C" * 16


def test_port_disappears_and_returns(tmp_path: Path, sources) -> None:
    first = Pty()
    link = tmp_path / "scanner"
    link.symlink_to(first.path)
    try:
        source, sink = sources(str(link))
        first.write(b"before\r")
        assert take(sink, 1)[0].payload == "before"
        first.write(b"half a li")  # a partial line does not survive the reconnect
        time.sleep(0.05)
        first.close()  # unplugged: the slave hangs up and its node goes away
        wait_until(lambda: not source.health().up)
        down = source.health()
        assert down.down_since is not None and down.reconnects == 1 and down.last_error

        second = Pty()
        try:
            replacement = tmp_path / "scanner.new"
            replacement.symlink_to(second.path)
            replacement.replace(link)  # plugged back in, under the same name
            wait_until(lambda: source.health().up)
            second.write(b"after\n")
            assert take(sink, 1)[0].payload == "after"
            health = source.health()
            assert health.up and health.down_since is None and health.reconnects == 1
        finally:
            second.close()
    finally:
        first.close()


def test_missing_port_keeps_retrying_and_stops_promptly(tmp_path: Path, sources) -> None:
    source, _ = sources(str(tmp_path / "no-such-tty"), wait_up=False)
    wait_until(lambda: source.health().last_error is not None)
    assert not source.health().up and "no-such-tty" in (source.health().last_error or "")
    started = time.monotonic()
    source.close()
    assert time.monotonic() - started < 1


def test_bad_url_found_at_open_shows_in_health(sources) -> None:
    # pyserial parses URL options only when it opens: the reconnect loop reports it.
    source, _ = sources("loop://?logging=nonsense", wait_up=False)
    wait_until(lambda: source.health().last_error is not None)
    assert "port: 'loop://?logging=nonsense' is not a port pyserial can open" in (source.health().last_error or "")
    other, _ = sources("rfc2217://no-port-given", wait_up=False)  # wrapped by pyserial itself
    wait_until(lambda: other.health().last_error is not None)
    assert "rfc2217://no-port-given" in (other.health().last_error or "") and not other.health().up


def test_stop_is_prompt_and_close_idempotent(pty, sources) -> None:
    source, _ = sources(pty.path, read_timeout_s=0.1)
    started = time.monotonic()
    source.stop()
    assert time.monotonic() - started < 1 and not source.running
    source.close()
    source.close()
    assert not source.health().up
    with pytest.raises(DriverError):
        source.start()


def test_loop_url(sources) -> None:
    source, sink = sources("loop://", legacy_pattern="[0-9]{4}")
    # loop:// echoes what the port's holder writes, so the test borrows the source's port.
    source._serial.write(b"1234\r\nGP1:X\n")
    assert [(p.kind, p.payload) for p in take(sink, 2)] == [("legacy", "1234"), ("qr", "GP1:X")]


def test_context_manager_and_registry(pty) -> None:
    assert source_class("scanner") is ScannerSource
    sink: queue.Queue = queue.Queue()
    with ScannerSource("s", sink, port=pty.path, baudrate=115200, parity="E", stopbits=2, bytesize=7) as source:
        wait_until(lambda: source.health().up)
        pty.write(b"ok\n")
        assert sink.get(timeout=3).payload == "ok"
    assert not source.running


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"port": "nosuch://x"}, "port"),
        ({"port": ""}, "port"),
        ({"port": "loop://", "parity": "X"}, "parity"),
        ({"port": "loop://", "bytesize": 9}, "bytesize"),
        ({"port": "loop://", "stopbits": 3}, "stopbits"),
        ({"port": "loop://", "baudrate": 0}, "baudrate"),
        ({"port": "loop://", "legacy_pattern": "[0-9"}, "legacy_pattern"),
        ({"port": "loop://", "max_line": 0}, "max_line"),
        ({"port": "loop://", "read_timeout_s": 0}, "read_timeout_s"),
    ],
)
def test_bad_settings_are_config_errors(options: dict, key: str) -> None:
    with pytest.raises(DriverConfigError, match=f"^{key}: "):
        ScannerSource("s", queue.Queue(), **options)
