"""The demo's scenario: a day at one gate, played against the real daemon and narrated as it
happens. Each step says what happens in the world, does it through the simulated hardware or
the centre's commands, then shows what the DAEMON decided and what the door did, read back
from the daemon (:mod:`reader.demo.evidence`), and checks it against what the step expects.
The first step that does not get what it expects ends the demo with exit status 1, naming
the step; so the demo is also an end-to-end test (``tests/daemon/test_demo.py``).

Night and day for the legacy badge: the daemon runs on the real clock. The demo sets the
site's time zone (``[gate] timezone``) to one where it is now 23:xx, so the ``night``
schedule (19:00-07:00) admits the badge; for "day" it moves the gate to a zone where it is
now 12:xx and reloads the policy with SIGHUP, as a site would after changing a schedule.
The narrative says so.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from drivers.camera_sim import background, centred, code_image, scene, write_mjpg
from drivers.nfc_emulator import CardEmulator, GatePassHolder
from reader.demo.evidence import Expect, Mark, Seen, Witness
from reader.demo.process import DaemonProcess
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
from reader.errors import SiteError, StepFailed
from reader.gate.diagnostics.result import wait_until

BADGE = ("H10301", (90, 324))  # a 26-bit badge: facility 90, card 324
BADGE_TEXT = "W26:090:00324"  # its canonical text (drivers.wiegand), what the legacy list holds
CAMERA_FPS = 15
MARKER = ".gate-reader-demo"  # in the output folder: the demo made it (and may empty it next time)


def zone_where_it_is(hour: int, now: datetime | None = None) -> tuple[str, str]:
    """An ``Etc/GMT±N`` zone where the local hour is ``hour`` now, and the local time there."""
    now = now or datetime.now(UTC)
    offset = (hour - now.hour) % 24
    if offset > 14:
        offset -= 24  # Etc/ zones run from UTC-12 to UTC+14
    name = "Etc/GMT" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"  # POSIX signs
    return name, (now + timedelta(hours=offset)).strftime("%H:%M")


class Demo:
    """One run of the demo in ``out``; :meth:`run` returns the exit status."""

    def __init__(self, out: Path, *, fast: bool = False, stream: TextIO | None = None) -> None:
        self.out = out
        self.fast = fast
        self.stream = stream or sys.stdout
        self.release_s = 1.0 if fast else 1.5
        self.held_open_s = 1.0 if fast else 2.0
        self.pause_s = 0.0 if fast else 0.5  # a moment to read each step
        self.qr_at_s = 2.5  # when Bob's code appears in the camera's video
        self.t0 = time.monotonic()
        self.step_no = 0

    # -- narration ------------------------------------------------------------------------------

    def say(self, text: str = "", indent: int = 0) -> None:
        stamp = f"[{time.monotonic() - self.t0:5.1f} s] " if indent == 0 and text else " " * 10
        self.stream.write(stamp + " " * indent + text + "\n")
        self.stream.flush()

    def title(self, text: str) -> None:
        self.step_no += 1
        if self.pause_s:
            time.sleep(self.pause_s)
        self.say()
        self.say(f"{self.step_no}. {text}")

    def show(self, seen: Seen) -> None:
        record = seen.decision
        if record is not None:
            if seen.log_line:
                self.say(f"daemon log> {seen.log_line}", 2)
            who = f"{record.subject}" if record.subject else "no subject"
            detail = f": {record.detail}" if record.detail else ""
            self.say(f"decision:   {(record.decision or '?').upper()} ({record.reason}{detail}) for {who} at "
                     f"{record.reader}, journal #{record.seq}", 2)
        for event in seen.door:
            self.say(f"door event: {event.reason} ({event.detail}), journal #{event.seq}", 2)
        if seen.released_s is not None:
            self.say(f"relay:      released for {seen.released_s:.2f} s, then secured again", 2)
        else:
            self.say("relay:      did not move (the door stayed secured)", 2)
        lights = [f"{name} light" for name, pin in (("green", "green_led"), ("red", "red_led"))
                  if seen.pulses.get(pin)]
        beeps = seen.pulses.get("buzzer", 0)
        if lights or beeps:
            self.say(f"indicators: {', '.join(lights) or 'no light'}, buzzer {beeps} beep{'s' if beeps != 1 else ''}",
                     2)
        self.say("as expected", 2)

    # -- the run --------------------------------------------------------------------------------

    def run(self) -> int:
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / MARKER).write_text("made by gate-reader demo; the next demo run empties this folder\n")
        runtime = runtime_dir()
        daemon: DaemonProcess | None = None
        emulator: CardEmulator | None = None
        scanner: ScannerPty | None = None
        self.say("gate-reader demo: one gate on simulated hardware, the real daemon deciding, offline")
        self.say(f"files in {self.out} (the gate's config, cache and the daemon's log: {self.out / 'gate'})", 2)
        try:
            self.say()
            self.say("Setting up the centre and the gate")
            centre = Centre(self.out)
            centre.publish_initial(list_size=1024)
            self.say("the centre made an issuer key and a TUF repository publishing its certificate and a "
                     "status list of 1,024 entries (gate-reader authority publish / revoke)", 2)
            centre.publish_legacy({BADGE_TEXT: "CLEANER-7"})
            self.say(f"and a legacy card list: the cleaners' old 26-bit badge {BADGE_TEXT} "
                     "(gate-reader authority legacy-list)", 2)
            people = {name: centre.employee(name, idx, expired=name == "Dave")
                      for idx, name in ((1, "Alice"), (2, "Bob"), (3, "Carol"), (4, "Dave"))}
            self.say("four employees got credentials bound to their phones' keys: Alice (E1001), Bob (E1002), "
                     "Carol (E1003), Dave (E1004, expired yesterday)", 2)
            with LoopbackServer(centre.repo / "public") as server:
                daemon, emulator, scanner = self._start_gate(centre, server, people, runtime)
                self._play(centre, daemon, emulator, scanner, people)
                self._stop(daemon)
                daemon = None
        except SiteError as exc:  # StepFailed included
            where = f"step {self.step_no}" if self.step_no else "setup"
            self.say()
            self.say(f"FAILED at {where}: {exc}")
            if daemon is not None:
                self.say("the daemon's last log lines:", 2)
                for line in daemon.log_tail().splitlines():
                    self.say(line, 4)
            return 1
        finally:
            if daemon is not None:
                daemon.kill()
            if emulator is not None:
                emulator.stop()
            if scanner is not None:
                scanner.unplug()
            remove_runtime(runtime)
        return 0

    def _start_gate(self, centre: Centre, server: LoopbackServer, people: dict[str, Employee],
                    runtime: Path) -> tuple[DaemonProcess, CardEmulator, ScannerPty]:
        gate_root = self.out / "gate"
        gate_root.mkdir(parents=True, exist_ok=True)
        paths = GatePaths(gate_root, runtime)
        self.night_zone, self.night_time = zone_where_it_is(23)
        self.day_zone, self.day_time = zone_where_it_is(12)
        camera = self._camera_video(people["Bob"])
        port = free_udp_port()
        paths.config.write_text(gate_config(paths, server.url, centre.repo, nfc_port=port, camera=camera,
                                            release_s=self.release_s, held_open_s=self.held_open_s,
                                            timezone=self.night_zone))
        gate_reader("sync", "--config", paths.config, "--no-upload")
        self.say(f"the gate synced from the centre (gate-reader sync against {server.url}): it trusts the "
                 "issuer and holds the list and the badges", 2)
        emulator = CardEmulator(port).start()
        scanner = ScannerPty(paths.scanner)
        self.say(f"simulated hardware: NFC reader on nfcpy's udp driver (port {port}; the phones are an "
                 f"ISO-DEP card emulator), camera playing {Path(camera).name}, barcode scanner on a pty, "
                 "Wiegand reader and door on gpiozero mock pins", 2)
        daemon = DaemonProcess(paths, gate_root / "daemon.log")
        self.witness = Witness(daemon, self.release_s)
        ready_s = daemon.start()
        # The camera plays its file from the daemon's start: its step looks from here on.
        self.camera_mark = self.witness.mark()
        status = daemon.status()
        self.say(f"the daemon started (gate-reader run, pid {daemon.pid}): READY=1 after {ready_s:.1f} s, "
                 f"door {status['door']['state']}, readers: {', '.join(sorted(status['sources']))}", 2)
        if not wait_until(lambda: bool(daemon.status()["sources"]["lobby-scanner"]["up"]), 10.0):
            raise SiteError("the scanner source did not come up")
        return daemon, emulator, scanner

    def _camera_video(self, bob: Employee) -> str:
        """The camera's video: an empty gate, then Bob's QR code held up, then the empty gate."""
        empty = scene(background(640, 480), [])
        self.bob_code = bob.qr()
        code = scene(background(640, 480), [centred(code_image(self.bob_code, 4), 640, 480)])
        frames = ([empty] * int(self.qr_at_s * CAMERA_FPS) + [code] * CAMERA_FPS + [empty] * CAMERA_FPS)
        return write_mjpg(frames, self.out / "camera.avi", CAMERA_FPS)

    def step(self, title: str, world: str, act: Callable[[], object] | None, expect: Expect,
             mark: Mark | None = None) -> Seen:
        """One step: the world, the action, then the daemon's evidence checked."""
        self.title(title)
        for line in world.splitlines():
            self.say(line, 2)
        mark = mark or self.witness.mark()
        if act is not None:
            act()
        seen = self.witness.check(mark, expect)
        self.show(seen)
        return seen

    def _play(self, centre: Centre, daemon: DaemonProcess, emulator: CardEmulator, scanner: ScannerPty,
              people: dict[str, Employee]) -> None:
        alice, carol, dave = (people[n] for n in ("Alice", "Carol", "Dave"))
        granted = Expect(decision="grant", reason="granted", released=True)
        bob_code = self.bob_code  # the very code the camera saw

        def tap(who: Employee) -> None:
            if not emulator.tap(GatePassHolder(who.answer), timeout=10.0):
                raise StepFailed(f"the NFC reader did not finish with {who.name}'s phone within 10 s")

        self.step("Bob holds his phone's QR code up to the lobby camera",
                  f"(the camera plays camera.avi, recorded before the gate started: an empty gate, then Bob's\n"
                  f"code from the {self.qr_at_s:g} s mark; the code carries a fresh nonce and his phone's signature)",
                  None, replace(granted, reader="lobby-camera"), mark=self.camera_mark)
        self.step("Alice taps her phone on the NFC reader",
                  "(the reader sends a fresh 16-byte challenge; her phone signs it with a key that never leaves it)",
                  lambda: tap(alice), replace(granted, reader="lobby-nfc"))
        self.step("Seconds later, someone holds a screenshot of Bob's code to the lobby scanner",
                  "(the same code, byte for byte; the gate remembers every code it admitted while it is fresh,\n"
                  "across all its readers)",
                  lambda: scanner.scan(bob_code),
                  Expect(reader="lobby-scanner", decision="deny", reason="replayed", released=False))
        mark = self.witness.mark()
        self.title("Carol leaves the company: the centre revokes her credential, the gate syncs")
        took = centre.revoke(carol.idx)
        self.say(f"gate-reader authority revoke --list main --idx {carol.idx}: signed and published in {took:.1f} s", 2)
        gate_reader("sync", "--config", daemon.paths.config, "--no-upload")
        self.say("gate-reader sync (the gate's 30 s timer): the new list is in the cache", 2)
        line = self.witness.wait_log(mark, "cache generation", 5.0)
        self.say(f"daemon log> {line.split(': ', 2)[-1]}", 2)
        self.step("Carol, not told yet, shows her QR code at the lobby scanner",
                  "(her phone and her signature are fine; the list says revoked)",
                  lambda: scanner.scan(carol.qr()),
                  Expect(reader="lobby-scanner", decision="deny", reason="revoked", released=False))
        self.step("Dave taps his phone; his credential expired yesterday",
                  "(the phone answers the challenge correctly; the credential's exp is past)",
                  lambda: tap(dave), Expect(reader="lobby-nfc", decision="deny", reason="expired", released=False))
        night = (f"(the demo cannot wait for nightfall: it set the gate's time zone to {self.night_zone}, where it\n"
                 f"is now {self.night_time}; the garage reader takes legacy badges on schedule 'night', 19:00-07:00)")
        self.step(f"Night: a cleaner swipes an old 26-bit badge ({BADGE_TEXT}) at the garage's Wiegand reader",
                  night, lambda: daemon.wiegand("garage-wiegand", format=BADGE[0], values=list(BADGE[1])),
                  replace(granted, reader="garage-wiegand"))
        mark = self.witness.mark()
        self.title(f"Day comes: the gate moves to {self.day_zone} (now {self.day_time} there), the policy is "
                   "reloaded with SIGHUP")
        config = daemon.paths.config
        config.write_text(config.read_text().replace(self.night_zone, self.day_zone))
        daemon.send(signal.SIGHUP)
        line = self.witness.wait_log(mark, "policy reloaded", 5.0)
        self.say(f"daemon log> {line.split(': ', 2)[-1]} (no restart; the door was not touched)", 2)
        self.step("By day, the cleaner swipes the same badge",
                  "(a copyable badge number: low assurance, admitted only on its schedule)",
                  lambda: daemon.wiegand("garage-wiegand", format=BADGE[0], values=list(BADGE[1])),
                  Expect(reader="garage-wiegand", decision="deny", reason="not_authorized", released=False))
        self._door_steps(daemon)

    def _door_steps(self, daemon: DaemonProcess) -> None:
        def press_exit() -> None:
            daemon.drive("exit_button", True)
            time.sleep(0.15)  # held past its debounce (0.05 s)
            daemon.drive("exit_button", False)

        self.step("Someone inside presses the exit button", "(no credential: an exit is never blocked)",
                  press_exit, Expect(released=True, door=("released_by_exit", "relocked")))

        def prop_open() -> None:
            mark = self.witness.mark()
            press_exit()
            time.sleep(0.2)
            daemon.drive("door_contact", True)
            event = self.witness.wait_door_event(mark, "door_held_open", self.held_open_s + 5.0)
            self.say(f"... {self.held_open_s:g} s later the daemon raises '{event.reason}'; the courier closes "
                     "the door", 2)
            daemon.drive("door_contact", False)

        self.step("A courier leaves through the exit and props the door open",
                  f"(the door contact reads open for longer than held_open_s = {self.held_open_s:g} s)",
                  prop_open, Expect(released=True, door=("released_by_exit", "door_opened", "door_held_open",
                                                         "door_closed", "held_open_cleared")))

        def force() -> None:
            mark = self.witness.mark()
            daemon.drive("door_contact", True)
            self.witness.wait_door_event(mark, "door_forced", 5.0)
            time.sleep(0.3)
            daemon.drive("door_contact", False)

        self.step("Someone forces the door open", "(the contact opens while the lock is secured: no grant, no exit)",
                  force, Expect(released=False, door=("door_forced", "door_closed")))

        def fire() -> None:
            mark = self.witness.mark()
            daemon.drive("fire", True)
            self.witness.wait_door_event(mark, "fire_release", 5.0)
            time.sleep(self.release_s + 0.5)
            if not self.witness.active("relay"):
                raise StepFailed("the relay is not held released during the fire alarm")
            self.say(f"... {self.release_s + 0.5:g} s later (past any release) the relay is still held released; "
                     "the alarm ends", 2)
            daemon.drive("fire", False)

        self.step("The fire alarm panel signals fire",
                  "(every lock output is held released until the fire input clears: people must get out)",
                  fire, Expect(released=True, door=("fire_release", "fire_cleared", "relocked")))

    def _stop(self, daemon: DaemonProcess) -> None:
        self.title("The gate is stopped (SIGTERM), as systemd stops it")
        code = daemon.stop()
        records = daemon.records()
        decisions = [r for r in records if r.kind == "decision"]
        if code != 0 or records[-1].reason != "daemon_stopped":
            raise StepFailed(f"the daemon exited {code}, last journal record {records[-1].reason}")
        grants = sum(1 for r in decisions if r.decision == "grant")
        self.say(f"exit status 0, door secured, journal: {len(records)} records, hash chain verified, "
                 f"{len(decisions)} decisions ({grants} granted, {len(decisions) - grants} denied)", 2)
        self.say(f"see them: gate-reader events --config {daemon.paths.config}", 2)
        self.say()
        self.say("Demo complete: every decision above was made by the daemon, offline, and journaled before the "
                 "door moved.")
