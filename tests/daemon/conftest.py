"""The ``sim`` fixture (a simulated gate run as ``gate-reader run`` in a child process, see
tests/support/simgate.py), and a gate for the pipeline's unit tests: a cache, an issuer the
gate trusts, mock pins, a door machine and the decision worker on a fake clock, driven step
by step (no thread unless a test starts it)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from drivers.base import Presentation
from drivers.door import DoorIO
from offline_cache.journal import Journal
from offline_cache.store import PolicyWithdrawn, Store, SyncUpdate
from reader.daemon.pipeline import Pipeline
from reader.demo.site import ScannerPty as Scanner
from reader.demo.site import free_udp_port
from reader.gate.config import Config, parse_config
from reader.gate.door_machine import DoorMachine
from reader.gate.state import load_state
from reader.gatepass.authority import Holder, Issuer, build_status_list, issue_credential
from tests.support.centre import Centre, ok
from tests.support.simgate import SimGate, gate_text

URI = "https://status.example.gov/lists/main"
# Sunday 2026-11-29 03:00 UTC: outside any office hours
SUNDAY_3AM = 1_795_921_200.0


class FakeTime:
    """The injectable clock, moved by the test."""

    def __init__(self, wall: float, mono: float = 1000.0) -> None:
        self.wall, self.mono = wall, mono

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def move(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


READERS = '''
[[readers]]
name = "cam-a"
driver = "camera"
device = 0
[[readers]]
name = "cam-b"
driver = "camera"
device = 1
'''


@dataclass
class Gate:
    root: Path
    issuer: Issuer
    holder: Holder
    config: Config
    store: Store
    factory: MockFactory
    door: DoorIO
    machine: DoorMachine
    clock: FakeTime
    pipeline: Pipeline
    pings: list[float] = field(default_factory=list)
    list_iat: int | None = None

    def credential(self, idx: int = 1, groups: list[str] | None = None) -> bytes:
        now = int(self.clock.wall)
        return issue_credential(self.issuer, sub=f"E{idx}", iat=now - 60, exp=now + 86_400, holder=self.holder,
                                status=(URI, idx), groups=groups)

    def qr(self, credential: bytes) -> str:
        return self.holder.present_qr(credential, iat=int(self.clock.wall))

    def show(self, reader: str, payload: str, kind: str = "qr"):
        return self.pipeline.handle_presentation(Presentation(reader, kind, payload, time.monotonic()))  # type: ignore[arg-type]

    def publish(self, revoked: tuple[int, ...] = (), policy: bytes | PolicyWithdrawn | None = None) -> None:
        """What a sync stores (as the sync process would: through its own connection):
        the list with a newer iat each time, and the centre's policy when given (or its
        withdrawal)."""
        self.list_iat = int(self.clock.wall - 30) if self.list_iat is None else self.list_iat + 1
        token = build_status_list(self.issuer, uri=URI, size=64, values={i: 1 for i in revoked}, iat=self.list_iat)
        with Store.open(self.store.path) as other:
            other.apply_sync(SyncUpdate(
                trust_pem=self.issuer.certificate_pem, status=[(URI, self.list_iat, None, token)], legacy=None,
                tuf_versions={}, time_floor=None, at=self.clock.wall,
                policy=policy if not isinstance(policy, bytes) else ("policy/hq.toml", policy)))

    @property
    def relay(self):
        return self.factory.pin(self.config.door.settings.relay.pin)  # type: ignore[union-attr]

    def records(self, kind: str | None = None) -> list:
        return [r for r, _ok in Journal(self.store).records() if kind is None or r.kind == kind]


def make_gate(root: Path, extra: str = "", readers: str = READERS) -> Gate:
    issuer, holder = Issuer.generate("ES256"), Holder.generate("ES256")
    root.mkdir(parents=True, exist_ok=True)
    (root / "issuer.pem").write_bytes(issuer.certificate_pem)
    text = (f'[gate]\nid = "g"\ngroup = "hq"\ntimezone = "UTC"\ntrust = "{root / "issuer.pem"}"\n'
            f'[cache]\npath = "{root / "cache.db"}"\n[door]\npin_factory = "mock"\nrelease_s = 0.5\n'
            f'[daemon]\nqueue_size = 4\nlevel_poll_s = 0.05\nhealth_interval_s = 0.2\nsource_stall_s = 0.5\n'
            + extra + readers)
    config = parse_config(text, root / "gate.toml")
    store = Store.open(root / "cache.db", create=True)
    factory = MockFactory()
    clock = FakeTime(SUNDAY_3AM)
    door = DoorIO(config.door.settings, factory)  # type: ignore[union-attr]
    machine = DoorMachine(release_s=0.5, held_open_s=30, turnstile=False, has_contact=True, now=clock.monotonic())
    gate = Gate(root, issuer, holder, config, store, factory, door, machine, clock, None)  # type: ignore[arg-type]
    gate.publish()
    gate.pipeline = Pipeline(config, store, load_state(store, config.gate.trust), door, machine, clock,
                             ping=lambda: gate.pings.append(time.monotonic()), ping_interval_s=0.05)
    gate.pipeline.apply(machine.start(clock.monotonic()))
    return gate


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Gate]:
    g = make_gate(tmp_path / "gate")
    try:
        yield g
    finally:
        g.pipeline.stop()
        g.door.close()
        g.store.close()
        g.factory.close()


@pytest.fixture
def sim(centre: Centre, tmp_path: Path) -> Iterator[tuple[Centre, SimGate, Scanner, int]]:
    """A gate synced from ``centre``, its config written, not started: (centre, gate,
    scanner, NFC udp port)."""
    ok("sync", "--config", centre.config, "--no-upload")  # type: ignore[attr-defined]
    port = free_udp_port()
    scanner = Scanner(tmp_path / "scanner")
    gate = SimGate(tmp_path, gate_text(centre, tmp_path, port))
    try:
        yield centre, gate, scanner, port
    finally:
        gate.kill()
        scanner.unplug()
