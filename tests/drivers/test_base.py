"""The source base class: its thread, reconnects with bounded backoff, health, stop and close."""

from __future__ import annotations

import queue
import threading
import time

import pytest

from drivers.base import Presentation, SourceBase
from drivers.errors import DeviceUnavailable, DriverConfigError
from drivers.registry import SOURCES, source_class
from tests.support.waiting import drain, wait_for


class FlakySource(SourceBase):
    """Fails to open ``fail_opens`` times, then reads ``lines`` once each, then loses the
    device once, then reads again."""

    backoff_s = (0.01, 0.04)

    def __init__(self, sink, fail_opens: int, lines: list[str]) -> None:
        super().__init__("flaky", sink)
        self.fail_opens = fail_opens
        self.lines = list(lines)
        self.opens = 0
        self.closes = 0
        self.lost = False

    def _open_device(self) -> None:
        self.opens += 1
        if self.opens <= self.fail_opens:
            raise DeviceUnavailable("not plugged in")

    def _read_once(self) -> None:
        if self.lines:
            self._emit("qr", self.lines.pop(0))
            if not self.lines and not self.lost:
                self.lost = True
                self.lines = ["after-reconnect"]
                raise OSError("unplugged")
        else:
            time.sleep(0.005)

    def _close_device(self) -> None:
        self.closes += 1


def test_reconnects_with_backoff_and_reports_health() -> None:
    sink: queue.Queue = queue.Queue()
    source = FlakySource(sink, fail_opens=3, lines=["a", "b"])
    assert not source.health().up and source.health().down_since is not None
    with source:
        got = drain(sink, 3, timeout=3.0)
        assert [p.payload for p in got] == ["a", "b", "after-reconnect"]
        assert all(p.source == "flaky" and p.kind == "qr" for p in got)
        health = source.health()
        assert health.up and health.reads == 3 and health.reconnects == 1
        assert "unplugged" in (health.last_error or "")
    assert source.opens == 5 and source.closes == 2
    assert not source.health().up


def test_callback_sink_and_prompt_stop() -> None:
    seen: list[Presentation] = []
    done = threading.Event()

    def sink(presentation: Presentation) -> None:
        seen.append(presentation)
        done.set()

    source = FlakySource(sink, fail_opens=0, lines=["x"])
    source.start()
    assert done.wait(2)
    started = time.monotonic()
    source.stop()
    assert time.monotonic() - started < 1
    assert not source.running
    source.close()
    source.close()  # idempotent
    assert seen[0].payload == "x" and seen[0].read_at <= time.monotonic()


def test_registry_imports_lazily_and_names_the_key() -> None:
    assert set(SOURCES) == {"nfc", "camera", "scanner", "wiegand"}
    with pytest.raises(DriverConfigError, match=r"readers\[1\]\.driver: unknown driver 'laser'"):
        source_class("laser", "readers[1].driver")


def test_a_failing_consumer_does_not_drop_the_device(caplog) -> None:
    calls: list[str] = []

    def sink(presentation: Presentation) -> None:
        calls.append(str(presentation.payload))
        raise RuntimeError("pipeline bug")

    source = FlakySource(sink, fail_opens=0, lines=["one", "two"])
    with source:
        wait_for(lambda: len(calls) >= 3, timeout=2)
        health = source.health()
    assert calls[:2] == ["one", "two"]
    assert health.reconnects == 1  # only the planned unplug, not the consumer's errors
    assert "the consumer failed" in caplog.text
    assert source.health().reconnects == 1  # stopping on purpose is not a reconnect
