"""``gate-reader bench pipeline``, the figures of the daemon as a process (``gate-reader run``
in a child process on the simulated site of :mod:`reader.bench.pipeline`):

- **READY, RSS, idle CPU.** Time from the fork to READY=1 on our notify socket, with the
  camera source configured (OpenCV loaded). Idle: the NFC reader polling (the udp simulator
  polls as a PN53x does, every ``poll_interval_ms``, an empty poll giving up after 10 ms; a
  real reader's poll also costs its USB or UART round trips) and the camera playing an empty
  gate at 15 fps in a loop; the child's CPU time from
  ``/proc/PID/stat`` over the wall time, in percent of one core. RSS (``VmRSS``) after the
  start, after each quarter of the decisions (first-seen credentials shown to the
  scanner, paced so the queue never fills), and the peak (``VmHWM``): the credential cache
  holds 4,096 entries, so growth stops once it is full. Each split into anonymous and
  file-backed pages (:func:`memory_mb` says why the file part varies), with the threads and
  the largest libraries' pages at the end.
- **Sustained rate.** Presentations from every source at once for ``--sustained-s``
  seconds (scanner, NFC taps as fast as the emulator taps, Wiegand frames, camera codes),
  each a first-seen credential; then: every presentation the sources read was decided (none
  dropped), per reader in the order sent, and journaled. Latency per decision from the
  daemon's own log line (``latency_ms``: read to the decision applied to the door).
- **Revocation to refusal.** A sync timer (``gate-reader sync`` every ``--sync-interval-s``
  seconds, random phase) runs beside the daemon; a credential is revoked at a random moment
  with ``gate-reader authority revoke`` and shown after every sync until refused. Each trial
  is split into publish, waiting for the timer, the sync and the daemon applying it; the
  figures for a 30 s timer put the measured parts around a uniform wait in [0, 30) s.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from drivers.camera_sim import background, scene, write_mjpg
from reader.bench.pipeline import CAMERA, CAMERA_FPS, NFC, SCANNER, WIEGAND, Site, camera_video, summary
from reader.bench.stats import percentile
from reader.daemon.memory import library_mb, memory_mb
from reader.demo.process import DECISION_LINE, DaemonProcess
from reader.demo.site import ScannerPty, gate_reader
from reader.errors import CommandFailed

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def child_figures(bench: Site, args: argparse.Namespace, say: Callable[[str], None]) -> dict[str, Any]:
    report = ready_rss_idle(bench, args.decisions, args.idle_s, say)
    report["sustained"] = sustained(bench, args.sustained_s, args.rate, say)
    report["revocation"] = revocation(bench, args.revocation_trials, args.sync_interval_s, say)
    return report


# -- READY, RSS, idle CPU --------------------------------------------------------------------------


def without_camera(bench: Site) -> dict[str, float]:
    """The same gate without its camera source (OpenCV not loaded): READY and RSS."""
    bench.write_config(camera=None)
    scanner = ScannerPty(bench.paths.scanner)
    daemon = DaemonProcess(bench.paths, bench.root / "daemon-nocamera.log")
    try:
        ready_s = daemon.start()
        time.sleep(2.0)
        memory = memory_mb(daemon.pid)
        daemon.stop()
    finally:
        daemon.kill()
        scanner.unplug()
    return {"ready_s": round(ready_s, 3), "rss_mb": memory["VmRSS"], "anonymous_mb": memory["Anonymous"],
            "file_mb": memory["RssFile"], "threads": memory["Threads"]}


def ready_rss_idle(bench: Site, decisions: int, idle_s: float, say: Callable[[str], None]) -> dict[str, Any]:
    lean = without_camera(bench)
    say(f"without the camera: READY after {lean['ready_s']} s, RSS {lean['rss_mb']} MB")
    empty = scene(background(640, 480), [])
    camera = write_mjpg([empty] * CAMERA_FPS * 2, bench.root / "empty.avi", CAMERA_FPS)
    bench.write_config(camera=camera, camera_loop=True)
    scanner = ScannerPty(bench.paths.scanner)
    people = bench.employees(decisions, 20_000)
    daemon = DaemonProcess(bench.paths, bench.root / "daemon-rss.log")
    try:
        ready_s = daemon.start()
        time.sleep(2.0)  # the sources settled
        start = memory_mb(daemon.pid)
        rss: dict[str, Any] = {"after_start": start["VmRSS"], "anonymous_after_start": start["Anonymous"],
               "file_after_start": start["RssFile"]}
        wall, cpu = time.monotonic(), cpu_seconds(daemon.pid)
        time.sleep(idle_s)
        idle = 100 * (cpu_seconds(daemon.pid) - cpu) / (time.monotonic() - wall)
        camera_health = daemon.status()["sources"][CAMERA]["extra"]
        say(f"idle: {idle:.1f} % of a core over {idle_s:g} s (camera frames {camera_health['frames']}, "
            f"decoded {camera_health['decoded_frames']})")
        sent = 0
        for batch in range(0, decisions, 32):
            for person in people[batch:batch + 32]:
                scanner.scan(person.qr())
                sent += 1
            deadline = time.monotonic() + 30
            while sum(daemon.status()["decisions"][k] for k in ("grant", "deny")) < sent:
                if time.monotonic() > deadline:
                    raise CommandFailed(f"the daemon decided fewer than {sent} presentations in 30 s")
                time.sleep(0.01)
            for quarter in (1, 2, 3):  # growth must stop once the credential cache (4,096) is full
                if sent == decisions * quarter // 4 // 32 * 32:
                    rss[f"after_{sent}"] = memory_mb(daemon.pid)["VmRSS"]
        counts = daemon.status()["decisions"]
        memory = memory_mb(daemon.pid)
        rss.update(after_all=memory["VmRSS"], peak=memory["VmHWM"], anonymous_after_all=memory["Anonymous"],
                   file_after_all=memory["RssFile"], pss_after_all=memory["Pss"], threads=memory["Threads"],
                   libraries_after_all=library_mb(daemon.pid))
        if counts["grant"] != decisions or counts["dropped"]:
            raise CommandFailed(f"{decisions} first-seen codes gave {counts}")
        say(f"rss: {rss} after {decisions} decisions")
        if daemon.stop() != 0:
            raise CommandFailed("the daemon did not stop cleanly")
    finally:
        daemon.kill()
        scanner.unplug()
    return {"ready_s": round(ready_s, 3), "idle_cpu_percent": round(idle, 2), "idle_s": idle_s,
            "rss_mb": rss, "rss_decisions": decisions, "without_camera": lean}


# -- sustained rate -----------------------------------------------------------------------------------


def sustained(bench: Site, seconds: float, rate: float, say: Callable[[str], None]) -> dict[str, Any]:
    """All four sources at once for ``seconds``: scanner lines fill up to ``rate`` per second."""
    from drivers.nfc_emulator import CardEmulator, GatePassHolder

    per_s = {CAMERA: 2.0, WIEGAND: 3.0, NFC: 5.0}  # the scanner makes up the rest
    starts_at = time.time() + 4.0
    people = bench.employees(int(seconds * per_s[CAMERA]) + 1, 30_000)
    codes = [p.holder.present_qr(p.credential, iat=int(starts_at + i / per_s[CAMERA])) for i, p in enumerate(people)]
    camera = camera_video(bench.root / "sustained.avi", codes, lead_s=1.0, every_s=1 / per_s[CAMERA])
    bench.write_config(camera=camera, queue_size=256)
    scanner = ScannerPty(bench.paths.scanner)
    emulator = CardEmulator(bench.port).start()
    daemon = DaemonProcess(bench.paths, bench.root / "daemon-sustained.log")
    sent: dict[str, list[str]] = {CAMERA: [p.sub for p in people], SCANNER: [], NFC: [], WIEGAND: []}
    stop = threading.Event()
    scanner_people = iter(bench.employees(int(seconds * rate) + 10, 40_000))
    nfc_people = iter(bench.employees(int(seconds * 10) + 10, 50_000))
    cards = iter(bench.cards)

    def paced(every_s: float, act: Callable[[], None]) -> None:
        due = time.monotonic()
        while not stop.is_set():
            act()
            due += every_s
            stop.wait(max(0.0, due - time.monotonic()))

    def fill() -> None:
        """The scanner tops the presentations of every source up to ``rate`` per second."""
        while not stop.wait(0.01):
            now = time.monotonic()
            shown = per_s[CAMERA] * max(0.0, now - camera_from)
            for _ in range(int(rate * (now - started) - shown - sum(len(v) for k, v in sent.items() if k != CAMERA))):
                person = next(scanner_people)
                scanner.scan(person.qr())
                sent[SCANNER].append(person.sub)

    def tap() -> None:
        person = next(nfc_people)
        if emulator.tap(GatePassHolder(person.answer), timeout=5.0):
            sent[NFC].append(person.sub)

    frames: list[tuple[float, float]] = []  # when each simulated frame was on the wires

    def swipe() -> None:
        subject, bits = next(cards)
        answer = daemon.ctl({"cmd": "sim", "action": "wiegand", "reader": WIEGAND, "bits": list(bits),
                             "interval_s": 0.0005})
        frames.append((answer["pulses"][0][0], answer["pulses"][-1][1]))
        sent[WIEGAND].append(subject)

    try:
        before = daemon.records()
        since = before[-1].seq if before else 0  # the cache holds the earlier measurements' records
        daemon.start()
        camera_from = time.monotonic() + 1.0  # the video's first code, about
        deadline = time.monotonic() + 10
        while not all(source["up"] for source in daemon.status()["sources"].values()):  # none misses the start
            if time.monotonic() > deadline:
                raise CommandFailed(f"not every source came up: {daemon.status()['sources']}")
            time.sleep(0.05)
        started = time.monotonic()
        threads = [threading.Thread(target=fill, daemon=True)]
        threads += [threading.Thread(target=paced, args=args, daemon=True)
                    for args in ((1 / per_s[NFC], tap), (1 / per_s[WIEGAND], swipe))]
        for thread in threads:
            thread.start()
        time.sleep(seconds)
        stop.set()
        for thread in threads:
            thread.join(10)
        elapsed = time.monotonic() - started
        time.sleep(2.0)  # the camera's last codes, the queue drained
        status = daemon.status()
        reads = {name: source["reads"] for name, source in status["sources"].items()}
        records = [r for r in daemon.records(since) if r.kind == "decision"]
        lines = [(line.at, DECISION_LINE.search(line.text)) for line in daemon.lines]
        if daemon.stop() != 0:
            raise CommandFailed("the daemon did not stop cleanly")
    finally:
        stop.set()
        daemon.kill()
        emulator.stop()
        scanner.unplug()
    decided = {name: [r.subject for r in records if r.reader == name] for name in sent}
    read = {name: set(decided[name]) for name in sent}
    # The Wiegand simulator busy-waits for its pulses in the daemon's own process (the control
    # socket's thread), holding the GIL for each 13 ms frame: a decision overlapping a frame
    # waits for it. A real reader's edges come from the kernel. Both figures are reported.
    timed = [(name, float(m["latency"]), at) for at, m in lines if m and (name := m["reader"]) in sent]
    clear = [ms for _n, ms, at in timed
             if not any(start <= at and at - ms / 1000 - 0.002 <= end for start, end in frames)]
    result = {
        "seconds": round(elapsed, 1), "presentations": len(records), "rate_per_s": round(len(records) / elapsed, 1),
        "per_source": {name: len(decided[name]) for name in sent},
        # read by a source but never decided (queue drops included): must be 0
        "lost": sum(reads[name] for name in sent) - len(records) + status["decisions"]["dropped"],
        # shown to a source but not read (the camera missing a code): the source's business
        "not_read": {name: len([s for s in sent[name] if s not in read[name]]) for name in sent},
        "reordered": sorted(name for name in sent if decided[name] != [s for s in sent[name] if s in read[name]]),
        "denied": sum(1 for r in records if r.decision != "grant"),
        "journal_complete": len(records) == sum(reads[name] for name in sent),
        "latency": {**summary([ms for _n, ms, _at in timed]),
                    "per_source": {n: summary([ms for name, ms, _at in timed if name == n]) for n in sent
                                   if any(name == n for name, _ms, _at in timed)}},
        "latency_outside_wiegand_frames": summary(clear),
    }
    say(f"sustained: {result['presentations']} presentations in {result['seconds']} s, lost {result['lost']}, "
        f"readers not in the order sent {result['reordered'] or 'none'}, p99 {result['latency']['p99_ms']} ms "
        f"({result['latency_outside_wiegand_frames']['p99_ms']} ms outside the simulated Wiegand frames)")
    return result


# -- revocation to refusal ---------------------------------------------------------------------------------


def revocation(bench: Site, trials: int, interval_s: float, say: Callable[[str], None]) -> dict[str, Any]:
    bench.write_config(camera=None)
    scanner = ScannerPty(bench.paths.scanner)
    daemon = DaemonProcess(bench.paths, bench.root / "daemon-revocation.log")
    syncs: list[tuple[float, float]] = []  # (start, end) of each timer sync
    synced = threading.Condition()
    stop = threading.Event()
    rng = random.Random(5)

    def timer() -> None:
        due = time.monotonic() + rng.uniform(0, interval_s)  # the timer's phase
        while not stop.wait(max(0.0, due - time.monotonic())):
            started = time.monotonic()
            gate_reader("sync", "--config", bench.paths.config, "--no-upload")
            with synced:
                syncs.append((started, time.monotonic()))
                synced.notify_all()
            due += interval_s

    def decision_after(index: int) -> tuple[float, str]:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for line in daemon.log_since(index):
                match = DECISION_LINE.search(line.text)
                if match and match["reader"] == SCANNER:
                    return line.at, match["reason"]
            time.sleep(0.002)
        raise CommandFailed("the scanner's presentation was not decided within 10 s")

    parts: dict[str, list[float]] = {"publish": [], "wait": [], "sync": [], "apply": [], "total": []}
    thread = threading.Thread(target=timer, daemon=True)
    try:
        daemon.start()
        thread.start()
        for person in bench.employees(trials, 60_000):
            time.sleep(rng.uniform(0, interval_s))  # any moment of the timer's cycle
            revoked_at = time.monotonic()
            published_at = revoked_at + bench.centre.revoke(person.idx)
            while True:
                with synced:
                    seen = len(syncs)
                    synced.wait_for(lambda n=seen: len(syncs) > n, timeout=interval_s * 3)  # type: ignore[misc]
                    start, end = syncs[-1]
                index = len(daemon.lines)
                scanner.scan(person.qr())
                refused_at, reason = decision_after(index)
                if reason == "revoked":
                    break
            parts["publish"].append(published_at - revoked_at)
            parts["wait"].append(max(0.0, start - published_at))
            parts["sync"].append(end - start)
            parts["apply"].append(refused_at - end)
            parts["total"].append(refused_at - revoked_at)
        stop.set()
        thread.join(60)
        daemon.stop()
    finally:
        stop.set()
        daemon.kill()
        scanner.unplug()
    fixed = [parts["publish"][i] + parts["sync"][i] + parts["apply"][i] for i in range(trials)]
    draws = random.Random(9)
    modelled = sorted(draws.choice(fixed) + draws.uniform(0, 30.0) for _ in range(20_000))
    result = {
        "interval_s": interval_s, "trials": trials,
        "measured_s": {name: {"median": round(statistics.median(v), 3), "max": round(max(v), 3)}
                       for name, v in parts.items()},
        "at_30s": {"median_s": round(statistics.median(modelled), 2), "p99_s": round(percentile(modelled, 0.99), 2),
                   "worst_s": round(30.0 + max(fixed), 2)},
    }
    say(f"revocation: measured with a {interval_s:g} s timer over {trials} trials, total median "
        f"{result['measured_s']['total']['median']} s; with the 30 s timer: median {result['at_30s']['median_s']} s, "
        f"worst {result['at_30s']['worst_s']} s")
    return result
