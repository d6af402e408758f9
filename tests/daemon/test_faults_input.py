"""Faults on the daemon's inputs, with the real daemon (``gate-reader run`` in a child process
on simulated hardware): what a noisy or hostile input can do is a counted refusal or a drop,
never a crash and never a release."""

from __future__ import annotations

import itertools
import os
import random
import subprocess
import sys
import time
from pathlib import Path

from drivers.camera_sim import background, centred, code_image, scene, write_png_sequence
from drivers.nfc_emulator import CardEmulator, GatePassHolder, LegacyCard
from drivers.wiegand import FORMATS, card_text
from reader.demo.site import ScannerPty as Scanner
from reader.demo.site import free_udp_port
from tests.support.centre import Centre, ok
from tests.support.simgate import Employee, SimGate, gate_text, pulses, scanner_up
from tests.support.waiting import wait_for

# Each door input's default debounce (drivers.door.DoorSettings) and a glitch well inside it.
GLITCHES = {"fire": 0.05, "door_contact": 0.03, "tamper": 0.03, "exit_button": 0.015}


def test_input_glitches_shorter_than_the_debounce_never_release_or_alarm(sim) -> None:
    # The worker also reads every input's level every level_poll_s (0.1 s here) to heal a
    # missed edge; a glitch caught by that read must not count as a change either (a fire
    # glitch would hold every lock released, a contact glitch raise door_forced).
    _centre, gate, _scanner, _port = sim
    gate.start()
    assert wait_for(lambda: scanner_up(gate), 10.0)
    for _ in range(25):
        for name, width in GLITCHES.items():
            gate.ctl({"cmd": "sim", "action": "input", "input": name, "active": True})
            time.sleep(width)
            gate.ctl({"cmd": "sim", "action": "input", "input": name, "active": False})
            time.sleep(0.02)
    time.sleep(0.5)  # past every debounce and a few level reads
    relay = gate.relay()
    assert pulses(relay["history"], relay["active_high"]) == 0
    assert [r.reason for r in gate.records("door")] == ["started"]
    status = gate.status()
    assert status["door"]["state"] == "secured" and status["door"]["alarms"] == []
    assert gate.stop() == 0


# -- Wiegand ---------------------------------------------------------------------------------

WIEGAND = '[[readers]]\nname = "wg"\ndriver = "wiegand"\ndevice = [20, 21]\nlegacy_cards = true\n'
MIN_PULSE_S, MAX_PULSE_S, FRAME_GAP_S = 10e-6, 1e-3, 0.025  # drivers.wiegand.WiegandSource's defaults
LENGTHS = {fmt.length: fmt for name, fmt in FORMATS.items() if name != "H10302"}


def _outcome(bits: list[int], sent: list[list[float]]) -> str | None:
    """What a Wiegand reader must make of ``bits`` sent with these (fall, rise) stamps:
    "noise", "length", "parity" (a drop), "read", or None when the sender was stalled
    mid-frame for a frame gap (the frame arrived in pieces; each piece is dropped or misread
    as an unknown card, never as the one sent)."""
    if any(nxt[0] - cur[1] >= FRAME_GAP_S for cur, nxt in itertools.pairwise(sent)):
        return None
    if any(not MIN_PULSE_S <= rise - fall <= MAX_PULSE_S for fall, rise in sent):
        return "noise"
    fmt = LENGTHS.get(len(bits))
    if fmt is None:
        return "length"
    return "read" if fmt.parity_ok(bits) else "parity"


def _cpu_hogs(count: int, nice: int) -> list[subprocess.Popen[bytes]]:
    """Busy processes (``nice`` lowers their weight against the daemon's threads)."""
    return [subprocess.Popen([sys.executable, "-c", f"import os; os.nice({nice})\nwhile True: pass"])
            for _ in range(count)]


def test_wiegand_frames_with_jitter_truncation_and_cpu_load_are_read_whole_or_dropped_and_counted(
        centre: Centre, tmp_path: Path) -> None:
    rng = random.Random(20261130)
    formats = ["H10301", "H10306", "C1000-35", "H10304"]
    cards = []  # (subject, card text, bits) of enrolled cards
    for i in range(30):
        fmt = FORMATS[formats[i % 4]]
        values = [rng.randrange(1, 2 ** n) for _first, n in fmt.fields]
        cards.append((f"C{i:02d}", card_text(fmt.name, *values), list(fmt.encode(values))))
    (tmp_path / "cards.csv").write_text("".join(f"{text},{subject}\n" for subject, text, _bits in cards))
    ok("authority", "legacy-list", *centre.issuer_args, "--cards-file", tmp_path / "cards.csv",
       "--exp", int(time.time()) + 86_400, "--out", tmp_path / "legacy.cwt")
    ok("authority", "publish", "--repo", centre.repo, "--legacy", tmp_path / "legacy.cwt")
    ok("sync", "--config", centre.config, "--no-upload")  # type: ignore[attr-defined]
    gate = SimGate(tmp_path, gate_text(centre, tmp_path, free_udp_port(), release_s=0.2, extra=WIEGAND))
    scanner = Scanner(tmp_path / "scanner")
    # Every valid card once, and among them frames a reader must drop: cut short (to a length
    # no format has), a parity bit flipped, pulses too short to be real (spikes). Each frame:
    # (what it is, the bits sent, the pulse width asked, the subject of the card it carries).
    frames: list[tuple[str, list[int], float, str | None]] = [
        ("valid", bits, rng.uniform(20e-6, 100e-6), subject) for subject, _text, bits in cards]
    for i in range(18):
        subject, _text, bits = cards[rng.randrange(len(cards))]
        if i % 3 == 0:
            cut = rng.randrange(1, 6) if len(bits) != 37 else rng.choice((1, 4, 5))  # never onto 26/34/35
            frame = ("truncated", bits[:-cut], 50e-6, None)
        elif i % 3 == 1:
            frame = ("bad parity", [1 - bits[0], *bits[1:]], 50e-6, None)
        else:
            frame = ("spikes", bits, 0.0, subject)  # the card's frame, but pulses of a few us
        frames.insert(rng.randrange(len(frames) + 1), frame)
    hogs: list[subprocess.Popen[bytes]] = []
    try:
        gate.start()
        assert wait_for(lambda: scanner_up(gate), 10.0)
        hogs = _cpu_hogs(2, nice=5)  # the sender and the reader's threads compete with two busy cores
        outcomes: list[str | None] = []
        for _label, bits, pulse_s, _subject in frames:
            interval_s = rng.uniform(0.6e-3, 2.5e-3)  # each reader has its own pace: jitter frame to frame
            answer = gate.ctl({"cmd": "sim", "action": "wiegand", "reader": "wg", "bits": bits,
                               "pulse_s": pulse_s, "interval_s": interval_s})
            outcomes.append(_outcome(bits, answer["pulses"]))
            time.sleep(0.035)  # more than a frame gap of silence between frames
        for hog in hogs:
            hog.kill()
        expected = {cause: outcomes.count(cause) for cause in ("noise", "length", "parity")}
        # A frame that arrived whole and valid is read, once, in the order sent (a spike frame
        # that the load stretched into real pulses is a valid frame too).
        reads = [frame[3] for frame, outcome in zip(frames, outcomes, strict=True) if outcome == "read"]
        # The load stretches some of the sender's pulses past max_pulse_s (the pins stamp what was
        # really sent, and the oracle judges that): most frames must still go out whole.
        assert None not in reads and len(reads) >= 15, outcomes
        assert wait_for(lambda: len(gate.records("decision")) >= len(reads), 10.0)
        time.sleep(0.3)
        granted = [r.subject for r in gate.records("decision") if r.decision == "grant"]
        assert granted == reads
        health = gate.status()["sources"]["wg"]
        if None not in outcomes:
            assert health["extra"]["dropped"] == expected
            assert health["reads"] == len(reads)
        else:  # each piece of a frame whose sender stalled is dropped, or read as an unknown card
            assert all(health["extra"]["dropped"][cause] >= n for cause, n in expected.items())
        assert min(expected.values()) >= 1, expected  # every kind of drop was exercised
        assert gate.stop() == 0
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait(5)
        gate.kill()
        scanner.unplug()


# -- bad input on every source ---------------------------------------------------------------------


def test_bad_input_on_every_source_is_a_counted_refusal_or_drop_never_a_crash_or_release(
        centre: Centre, tmp_path: Path) -> None:
    rng = random.Random(7)
    ok("sync", "--config", centre.config, "--no-upload")  # type: ignore[attr-defined]
    # The camera's file: a code that is not GatePass, a corrupt image, a code with a bad payload.
    frames_dir = tmp_path / "frames"
    frames_dir.mkdir()
    base = background(640, 480)
    write_png_sequence([scene(base, [centred(code_image("https://example.com/not-a-pass", 6), 640, 480)]),
                        scene(base, []), scene(base, [centred(code_image("GP1:NOT+BASE45~", 6), 640, 480)])],
                       frames_dir)
    (frames_dir / "00001.png").write_bytes(b"\x89PNG\r\n\x1a\n" + rng.randbytes(3000))  # corrupt
    port = free_udp_port()
    gate = SimGate(tmp_path, gate_text(centre, tmp_path, port, release_s=0.2, camera=str(frames_dir / "%05d.png"),
                                       extra=WIEGAND))
    scanner = Scanner(tmp_path / "scanner")
    valid = Employee(centre, 30)
    lines: list[bytes] = [
        b"\xff\xfe\x00\x80 not text", b"hello world", b"GP1:", b"GP1:" + b"!" * 40, b"\x1b[2J\x07\x00",
        b"GP1:" + b"A" * 5000,  # over the 4096 bound: too_large, then the reader resynchronises
        valid.qr().encode()[:300],  # a real code cut short
        b"GP1:" + base64_like(rng, 580),
    ]
    try:
        with CardEmulator(port) as phone_reader:
            gate.start()
            assert wait_for(lambda: scanner_up(gate), 10.0)
            assert scanner.master is not None
            for line in lines:  # raw bytes, as a scanner sends them
                os.write(scanner.master, line + b"\r\n")
            os.write(scanner.master, b"\r\n\r\n\n")  # empty lines: nothing to present
            answer = valid.phone().answer
            cards = [
                GatePassHolder(answer, garbage=True),  # nonsense and a status word no holder sends
                GatePassHolder(answer, remove_after_apdus=1),  # leaves after SELECT: a truncated exchange
                GatePassHolder(lambda data: answer(data)[:120]),  # its answer cut short
                GatePassHolder(lambda data: rng.randbytes(373)),  # random bytes of a presentation's size
                GatePassHolder(answer, oversize=True),  # past the 4096-byte bound
                LegacyCard(bytes.fromhex("04A1B2C3")),  # a UID card where legacy cards are not admitted
            ]
            for card in cards:
                phone_reader.tap(card, timeout=10.0)
            for bits in ([1] * 7, [0, 1] * 20, [rng.randrange(2) for _ in range(29)]):  # no such length
                gate.ctl({"cmd": "sim", "action": "wiegand", "reader": "wg", "bits": bits})
                time.sleep(0.035)
            expected_decisions = 2 + len(lines) + 4  # camera, scanner, NFC answers that reached the gate
            assert wait_for(lambda: len(gate.records("decision")) >= expected_decisions, 10.0), gate.decisions()
            time.sleep(0.5)
            decisions = gate.decisions()
            status = gate.status()
        assert len(decisions) == expected_decisions, decisions
        assert all(decision == "deny" for _reader, decision, _reason in decisions)
        by_reader = {name: [reason for reader, _d, reason in decisions if reader == name]
                     for name in ("cam", "scan", "nfc")}
        assert by_reader["cam"] == ["malformed", "malformed"]
        assert len(by_reader["scan"]) == len(lines) and "too_large" in by_reader["scan"]
        assert set(by_reader["scan"]) <= {"malformed", "too_large"}
        assert sorted(by_reader["nfc"]) == sorted(["malformed", "malformed", "too_large", "legacy_not_allowed"])
        sources = status["sources"]
        assert sources["cam"]["extra"]["bad_frames"] >= 1
        assert sources["wg"]["extra"]["dropped"]["length"] == 3
        assert status["decisions"]["deny"] == expected_decisions and status["decisions"]["grant"] == 0
        assert all(sources[name]["up"] for name in ("scan", "nfc", "wg", "cam"))
        relay = gate.relay()
        assert pulses(relay["history"], relay["active_high"]) == 0
        # The NFC exchanges that never became a presentation are each said once in the log.
        log = gate.log.read_text()
        assert "Traceback" not in log and "consumer failed" not in log and "worker failed" not in log
        assert log.count("no presentation") >= 2
        assert gate.stop() == 0
    finally:
        gate.kill()
        scanner.unplug()


def base64_like(rng: random.Random, count: int) -> bytes:
    """Characters of the base45 alphabet in random order: the right alphabet, not a presentation."""
    alphabet = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
    return bytes(rng.choice(alphabet) for _ in range(count))
