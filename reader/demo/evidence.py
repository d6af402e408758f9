"""What the daemon did during one step of the demo, read back from the daemon itself: the
journal records it appended (decisions and door events), its decision log line, and the
mock relay's recorded history through the control socket. The scenario states what it
expects; :class:`Witness` waits for it and says what it saw, or why it is not what was
expected (:class:`StepFailed`).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

from offline_cache.journal import JournalRecord
from reader.demo.process import DECISION_LINE, DaemonProcess, relay_changes
from reader.errors import StepFailed
from reader.gate.diagnostics.result import wait_until


@dataclass(frozen=True)
class Expect:
    """What a step must produce. ``reader``/``decision``/``reason``: one decision record of
    that reader; ``released``: whether the relay released (and relocked) during the step;
    ``door``: door journal events that must all appear, in this order."""

    reader: str | None = None
    decision: str | None = None
    reason: str | None = None
    released: bool | None = None
    door: tuple[str, ...] = ()


OUTPUTS = ("relay", "green_led", "red_led", "buzzer")


@dataclass
class Mark:
    """Where the journal, the daemon's log and each output pin's history stood when a step
    began (``pins``: the number of entries in each output's recorded history)."""

    seq: int
    log_index: int
    pins: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTPUTS, 1))


@dataclass
class Seen:
    decision: JournalRecord | None = None
    log_line: str | None = None
    latency_ms: float | None = None
    door: list[JournalRecord] = field(default_factory=list)
    released_s: float | None = None  # how long the relay was released, when it was
    pulses: dict[str, int] = field(default_factory=dict)  # green_led, red_led, buzzer: times switched on


def _pulses(history: list[tuple[float, bool]]) -> int:
    return sum(1 for before, after in itertools.pairwise(history) if after[1] and not before[1])


class Witness:
    """Reads the daemon's evidence for a step against its :class:`Expect`."""

    def __init__(self, daemon: DaemonProcess, release_s: float) -> None:
        self.daemon = daemon
        self.release_s = release_s

    def mark(self) -> Mark:
        records = self.daemon.records()
        return Mark(records[-1].seq if records else 0, len(self.daemon.lines),
                    {name: len(self.daemon.pin(name)["history"]) for name in OUTPUTS})

    def active(self, name: str) -> bool:
        """Whether the output is on (the relay: released) now."""
        pin = self.daemon.pin(name)
        return bool(pin["state"]) == bool(pin["active_high"])

    def changes(self, mark: Mark, name: str) -> list[tuple[float, bool]]:
        """The output's history from the state it had at ``mark`` on: (time, active)."""
        return relay_changes(self.daemon.pin(name))[max(0, mark.pins[name] - 1):]

    def door_events(self, mark: Mark) -> list[JournalRecord]:
        return [r for r in self.daemon.records(mark.seq) if r.kind == "door"]

    def wait_door_event(self, mark: Mark, event: str, timeout: float) -> JournalRecord:
        found: list[JournalRecord] = []

        def seen() -> bool:
            found[:] = [r for r in self.door_events(mark) if r.reason == event]
            return bool(found)

        if not wait_until(seen, timeout):
            got = ", ".join(r.reason or "?" for r in self.door_events(mark)) or "none"
            raise StepFailed(f"no '{event}' door event within {timeout:g} s (door events: {got})")
        return found[0]

    def wait_log(self, mark: Mark, text: str, timeout: float) -> str:
        found: list[str] = []

        def seen() -> bool:
            found[:] = [line.text for line in self.daemon.log_since(mark.log_index) if text in line.text]
            return bool(found)

        if not wait_until(seen, timeout):
            raise StepFailed(f"the daemon did not log '{text}' within {timeout:g} s")
        return found[0]

    def check(self, mark: Mark, expect: Expect, timeout: float = 15.0) -> Seen:
        seen = Seen()
        if expect.reader is not None:
            self._decision(mark, expect, seen, timeout)
        for event in expect.door:
            self.wait_door_event(mark, event, timeout)
        seen.door = self.door_events(mark)
        order = [r.reason for r in seen.door if r.reason in expect.door]
        if expect.door and not _in_order(order, expect.door):
            raise StepFailed(f"door events {order} are not in the expected order {list(expect.door)}")
        if expect.released is not None:
            self._relay(mark, expect.released, seen)
        # The indicators' pattern (grant, deny, alarm) ends by itself within 3 s: let it, so
        # the whole pattern is counted and the next step starts from dark indicators. A
        # pattern's dark steps last 0.25 s at most: dark for 0.6 s is the end of it.
        self._wait_dark(0.6, 5.0)
        seen.door = self.door_events(mark)
        seen.pulses = {name: _pulses(self.changes(mark, name)) for name in OUTPUTS[1:]}
        return seen

    def _wait_dark(self, quiet_s: float, timeout: float) -> None:
        deadline, dark_since = time.monotonic() + timeout, time.monotonic()
        while time.monotonic() < deadline:
            if any(self.active(name) for name in OUTPUTS[1:]):
                dark_since = time.monotonic()
            elif time.monotonic() - dark_since >= quiet_s:
                return
            time.sleep(0.05)

    def _decision(self, mark: Mark, expect: Expect, seen: Seen, timeout: float) -> None:
        records: list[JournalRecord] = []

        def decided() -> bool:
            records[:] = [r for r in self.daemon.records(mark.seq) if r.kind == "decision"]
            return bool(records)

        if not wait_until(decided, timeout):
            raise StepFailed(f"no decision within {timeout:g} s (expected {expect.decision} from {expect.reader})")
        record = records[0]
        seen.decision = record
        for line in self.daemon.log_since(mark.log_index):
            match = DECISION_LINE.search(line.text)
            if match and match["reader"] == record.reader:
                seen.log_line = line.text[match.start():]
                seen.latency_ms = float(match["latency"])
                break
        got = (record.reader, record.decision, record.reason)
        want = (expect.reader, expect.decision, expect.reason)
        if len(records) > 1:
            raise StepFailed(f"{len(records)} decisions where one was expected: "
                             f"{[(r.reader, r.decision, r.reason) for r in records]}")
        if any(w is not None and g != w for g, w in zip(got, want, strict=True)):
            raise StepFailed(f"the daemon decided {got}, expected {want} (detail: {record.detail})")

    def _relay(self, mark: Mark, released: bool, seen: Seen) -> None:
        def history() -> list[tuple[float, bool]]:
            return self.changes(mark, "relay")

        if not released:
            time.sleep(0.3)  # a release would follow the decision within milliseconds
            if any(state for _t, state in history()[1:]):
                raise StepFailed("the relay released; the door should have stayed secured")
            return
        if not wait_until(lambda: any(state for _t, state in history()[1:]), 5.0):
            raise StepFailed("the relay never released")
        if not wait_until(lambda: not history()[-1][1], self.release_s + 5.0):
            raise StepFailed(f"the relay is still released {self.release_s + 5:g} s later")
        changes = history()
        start = next(t for t, state in changes[1:] if state)
        end = next(t for t, state in changes if not state and t > start)
        seen.released_s = end - start
        self.wait_door_event(mark, "relocked", 2.0)  # the journal's record of it follows the pin


def _in_order(seen: list[str | None], expected: tuple[str, ...]) -> bool:
    """Whether ``expected`` is a subsequence of ``seen``."""
    it = iter(seen)
    return all(any(event == got for got in it) for event in expected)
