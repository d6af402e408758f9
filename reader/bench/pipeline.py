"""``gate-reader bench pipeline``: the daemon's own figures, from a presentation read to the
relay energised, and the figures of the daemon as a process.

The site is the demo's (``reader.demo.site``): a test centre with its TUF repository on
loopback, a gate synced from it, an NFC reader on nfcpy's udp driver with the card emulator,
a camera playing a video file, a scanner on a pty, a Wiegand reader and the door on mock pins.

In this process, where precision matters (:func:`in_process`): the real ``Daemon`` is
started from the gate's config, and its decision worker's ``handle_presentation`` is wrapped
to take, for each presentation, ``Presentation.read_at`` (``time.monotonic()`` when the
source completed the read) and the mock relay pin's own stamp of its change (the pin is
driven inside the worker's call, so the change is stamped before the call returns). Every
credential is first-seen (a new one per presentation, so the issuer signature is checked
each time); the door is released for 0.1 s and the next presentation waits until it is
secured again, so every grant moves the relay. The figure excludes the source's own read
(the NFC exchange, the camera's decode, the Wiegand frame gap): ``bench nfc``, ``bench qr``
and ``bench scanner`` measure those. Then the tap as a person feels it: the emulated phone
is put on the reader at a random moment of the reader's poll cycle (the simulated reader
polls as a PN53x does, ``drivers.nfc_udp``: every ``poll_interval_ms``, an empty poll giving
up after 10 ms), timed to the relay.

In a child process (``reader.bench.pipeline_process``): READY=1, RSS, idle CPU, the
sustained rate and the revocation latency; see there.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import queue
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.camera_sim import background, centred, code_image, scene, write_mjpg
from drivers.wiegand import FORMATS, card_text, pulse_frame
from reader.bench.stats import percentile
from reader.demo.site import (
    Centre,
    Employee,
    GatePaths,
    LoopbackServer,
    ScannerPty,
    free_udp_port,
    gate_config,
    gate_reader,
    remove_runtime,
    runtime_dir,
)
from reader.errors import CommandFailed, SiteError

RELEASE_S = 0.1  # short releases: each grant finds the door secured and moves the relay
CAMERA_FPS = 15
NFC, CAMERA, SCANNER, WIEGAND = "lobby-nfc", "lobby-camera", "lobby-scanner", "garage-wiegand"


@dataclass(frozen=True)
class Sample:
    reader: str
    read_at: float  # Presentation.read_at (time.monotonic())
    relay_at: float | None  # the relay pin's change, when the call moved it
    granted: bool
    reason: str
    done_at: float  # the worker's call returned

    @property
    def to_relay_ms(self) -> float:
        if self.relay_at is None:
            raise CommandFailed(f"{self.reader}: a grant did not move the relay ({self.reason})")
        return (self.relay_at - self.read_at) * 1000


def summary(values_ms: list[float]) -> dict[str, float | int]:
    return {"count": len(values_ms), "p50_ms": round(statistics.median(values_ms), 3),
            "p99_ms": round(percentile(values_ms, 0.99), 3), "max_ms": round(max(values_ms), 3)}


# -- the site -------------------------------------------------------------------------------------


@dataclass
class Site:
    root: Path
    centre: Centre
    server: LoopbackServer
    paths: GatePaths
    port: int
    cards: list[tuple[str, tuple[int, ...]]]  # (subject, Wiegand bits) of the enrolled badges

    def employees(self, count: int, first: int) -> list[Employee]:
        return [self.centre.employee(f"E{i}", i) for i in range(first, first + count)]

    def write_config(self, *, camera: str | None, camera_loop: bool = False, queue_size: int = 64) -> None:
        self.paths.config.write_text(gate_config(
            self.paths, self.server.url, self.centre.repo, nfc_port=self.port, camera=camera, release_s=RELEASE_S,
            held_open_s=30, legacy_schedule=None, camera_loop=camera_loop, queue_size=queue_size))


@contextlib.contextmanager
def site(cards: int, list_size: int = 65_536) -> Iterator[Site]:
    """A centre publishing a list of ``list_size`` entries and ``cards`` Wiegand badges, and
    a gate synced from it (its config written per measurement)."""
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        root = Path(tmp)
        runtime = runtime_dir()
        try:
            centre = Centre(root)
            centre.publish_initial(list_size)
            fmt = FORMATS["H10301"]
            badges = [(f"W{i}", fmt.encode([1 + i // 60_000, i % 60_000])) for i in range(cards)]
            centre.publish_legacy({card_text("H10301", *fmt.values(bits)): subject for subject, bits in badges})
            with LoopbackServer(centre.repo / "public") as server:
                paths = GatePaths(root / "gate", runtime)
                paths.root.mkdir()
                bench = Site(root, centre, server, paths, free_udp_port(), badges)
                bench.write_config(camera=None)
                gate_reader("sync", "--config", paths.config, "--no-upload")
                yield bench
        finally:
            remove_runtime(runtime)


def camera_video(path: Path, codes: list[str], *, lead_s: float, every_s: float) -> str:
    """An MJPG video: an empty gate for ``lead_s``, then each code for two frames, one every
    ``every_s`` (the frames between show the empty gate)."""
    empty = scene(background(640, 480), [])
    frames = [empty] * int(lead_s * CAMERA_FPS)
    gap = max(1, int(every_s * CAMERA_FPS) - 2)
    for text in codes:
        code = scene(background(640, 480), [centred(code_image(text, 4), 640, 480)])
        frames += [code, code] + [empty] * gap
    return write_mjpg(frames + [empty] * CAMERA_FPS, path, CAMERA_FPS)


# -- in process: read to relay ------------------------------------------------------------------------


class TimedGate:
    """The real daemon in this process, its worker's calls timed (see the module docstring)."""

    def __init__(self, config: Path) -> None:
        from reader.daemon.daemon import Daemon
        from reader.gate.config import load_config

        self.daemon = Daemon(load_config(config))
        self.daemon.start()
        assert self.daemon.pipeline is not None and self.daemon.door is not None
        self.relay = self.daemon.factory.pin(self.daemon.door.settings.relay.pin)
        self.samples: queue.Queue[Sample] = queue.Queue()
        handle = self.daemon.pipeline.handle_presentation

        def timed(presentation: Any) -> Any:
            changes = len(self.relay.states)
            decision = handle(presentation)
            moved = len(self.relay.states) > changes
            # MockPin keeps the monotonic time of its last change; read it in the worker,
            # before anything else can drive the pin.
            self.samples.put(Sample(presentation.source, presentation.read_at,
                                    self.relay._last_change if moved else None, decision.granted, decision.reason,
                                    time.monotonic()))
            return decision

        self.daemon.pipeline.handle_presentation = timed  # type: ignore[method-assign]

    def take(self, timeout: float = 15.0) -> Sample:
        try:
            sample = self.samples.get(timeout=timeout)
        except queue.Empty:
            raise CommandFailed(f"no decision within {timeout:g} s") from None
        if not sample.granted:
            raise CommandFailed(f"{sample.reader}: a first-seen credential was denied ({sample.reason})")
        return sample

    def wait_secured(self) -> None:
        deadline = time.monotonic() + 5.0
        while self.relay.state and time.monotonic() < deadline:  # fail_secure, active high: on = released
            time.sleep(0.005)
        time.sleep(0.02)

    def close(self) -> None:
        self.daemon.stop()


def in_process(bench: Site, count: int, taps: int, say: Callable[[str], None]) -> dict[str, Any]:
    """Read to relay per source (first-seen credentials), and the tap as felt."""
    from drivers.nfc_emulator import CardEmulator, GatePassHolder

    codes_at = time.time() + 3.0  # when the camera's codes are about to be shown (iat within the window)
    video_people = bench.employees(count, 1)
    codes = [p.holder.present_qr(p.credential, iat=int(codes_at + 0.4 * i)) for i, p in enumerate(video_people)]
    camera = camera_video(bench.root / "codes.avi", codes, lead_s=1.0, every_s=0.4)
    bench.write_config(camera=camera)
    scanner = ScannerPty(bench.paths.scanner)
    emulator = CardEmulator(bench.port).start()
    gate = TimedGate(bench.paths.config)
    results: dict[str, list[Sample]] = {}
    try:
        results[CAMERA] = [gate.take() for _ in codes]  # the video plays from the start
        say(f"camera: {len(codes)} codes decided")
        gate.wait_secured()
        results[SCANNER] = []
        for person in bench.employees(count, 1 + count):
            scanner.scan(person.qr())
            results[SCANNER].append(gate.take())
            gate.wait_secured()
        say(f"scanner: {count} codes decided")
        d0, d1 = (gate.daemon.factory.pin(p) for p in gate.daemon.sources.source(WIEGAND).pins)  # type: ignore[union-attr]
        results[WIEGAND] = []
        resent = 0
        for _subject, bits in bench.cards[:count]:
            # The sender busy-waits for each pulse in this process, beside the daemon's threads:
            # a thread switch can stretch a pulse past the reader's 1 ms bound, and the reader
            # rightly drops that frame as noise. The pins' stamps show it: send it again.
            while any(rise - fall > 1e-3 for fall, rise in pulse_frame(d0, d1, bits)):  # max_pulse_s
                resent += 1
                time.sleep(0.05)
            results[WIEGAND].append(gate.take())
            gate.wait_secured()
        say(f"wiegand: {count} frames decided ({resent} sent again: a pulse stretched by a thread switch)")
        results[NFC] = []
        for person in bench.employees(count, 1 + 2 * count):
            emulator.present(GatePassHolder(person.answer))
            results[NFC].append(gate.take())
            emulator.remove()
            gate.wait_secured()
        say(f"nfc: {count} taps decided")
        felt = tap_as_felt(gate, emulator, bench.employees(taps, 1 + 3 * count), GatePassHolder)
        say(f"nfc: {taps} taps at a random moment of the poll cycle")
    finally:
        gate.close()
        emulator.stop()
        scanner.unplug()
    per_source = {reader: summary([s.to_relay_ms for s in samples]) for reader, samples in results.items()}
    everything = [s.to_relay_ms for samples in results.values() for s in samples]
    return {"read_to_relay": {**summary(everything), "per_source": per_source}, "tap": felt}


def tap_as_felt(gate: TimedGate, emulator: Any, people: list[Employee], holder: Any) -> dict[str, Any]:
    """The phone put on the reader at a random moment of its poll cycle; from then to the
    relay, split into the wait for the reader's next poll (with the card emulator's own
    start), the exchange (from the target found to the presentation), and read to relay.

    The cycle is the source's poll interval (start to start: an empty poll on the simulator
    takes 10 ms of it), so a pause drawn uniformly from one interval after the previous tap
    puts the phone at any phase of it."""
    source = gate.daemon.sources.source(NFC)  # type: ignore[union-attr]
    cycle_s = float(source.poll_interval_s)  # type: ignore[attr-defined]
    rng = random.Random(1)
    total, poll, exchange, decide = [], [], [], []
    for person in people:
        time.sleep(rng.uniform(0.0, cycle_s))
        entered = time.monotonic()
        emulator.present(holder(person.answer))
        sample = gate.take()
        exchange_ms = float(source.health().extra["last_exchange_ms"])
        emulator.remove()
        total.append((sample.relay_at - entered) * 1000 if sample.relay_at else float("nan"))
        exchange.append(exchange_ms)
        poll.append((sample.read_at - entered) * 1000 - exchange_ms)
        decide.append(sample.to_relay_ms)
        gate.wait_secured()
    return {"field_to_relay": summary(total), "poll_wait": summary(poll), "exchange": summary(exchange),
            "read_to_relay": summary(decide), "poll_interval_ms": round(cycle_s * 1000)}


# -- the command ------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    from reader.bench.pipeline_process import child_figures

    def say(text: str) -> None:
        if not args.json:
            print(text, flush=True)

    cards = max(args.count, int(args.sustained_s * 4) + 10)
    try:
        with site(cards) as bench:
            report = in_process(bench, args.count, args.taps, say)
            report.update(child_figures(bench, args, say))
    except SiteError as exc:  # the command's one error line, exit 1
        raise CommandFailed(str(exc)) from None
    read = report["read_to_relay"]
    report = {"p50_ms": read["p50_ms"], "p99_ms": read["p99_ms"], **report}
    if not args.json:
        print_human(report)
    print(json.dumps(report, sort_keys=True))
    return 0


def print_human(r: dict[str, Any]) -> None:
    read = r["read_to_relay"]
    print(f"read to relay, first-seen credentials: p50 {read['p50_ms']} ms, p99 {read['p99_ms']} ms "
          f"(goal p99 < 5 ms), {read['count']} presentations")
    for reader, s in read["per_source"].items():
        print(f"  {reader:15} p50 {s['p50_ms']:7.3f} ms  p99 {s['p99_ms']:7.3f} ms  max {s['max_ms']:7.3f} ms  "
              f"n={s['count']}")
    tap = r["tap"]
    print(f"tap as felt (udp simulator, a poll every {tap['poll_interval_ms']} ms, random phase): field to relay "
          f"p50 {tap['field_to_relay']['p50_ms']} ms, p99 {tap['field_to_relay']['p99_ms']} ms; of which waiting "
          f"for the poll p50 {tap['poll_wait']['p50_ms']} ms, exchange p50 {tap['exchange']['p50_ms']} ms, "
          f"read to relay p50 {tap['read_to_relay']['p50_ms']} ms")
    for key in ("ready_s", "rss_mb", "idle_cpu_percent", "sustained", "revocation"):
        if key in r:
            print(f"{key}: {json.dumps(r[key], sort_keys=True)}")
