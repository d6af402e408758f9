"""The diagnostics as services: each fault a technician meets gives a FAIL with its measured
values, the likely cause and the next step (not a traceback, not a bare "error")."""

from __future__ import annotations

import errno
import time
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from drivers.door import DoorSettings
from offline_cache.journal import Journal
from offline_cache.store import Store
from reader.gate.config import parse_config
from reader.gate.diagnostics import camera, door, nfc, scanner, state, wiegand
from reader.gate.diagnostics.sim import SimHardware
from reader.gate.sync import SyncReport


@pytest.fixture
def hardware(tmp_path: Path):
    sim = SimHardware(tmp_path)
    yield sim
    sim.close()


@pytest.fixture
def local_door(tmp_path: Path):
    factory = MockFactory()
    store = Store.open(tmp_path / "c.db", create=True)
    channel = door.LocalDoor(DoorSettings(release_s=0.2), factory, Journal(store), via="mock pins")
    yield channel, store
    channel.close()
    store.close()
    factory.close()


def test_a_wrong_baud_rate_shows_as_garbage_not_as_a_quiet_scanner(hardware: SimHardware) -> None:
    result = scanner.check_scanner(hardware.scanner, {"baudrate": 9600}, seconds=1.0, need_line=True,
                                   report=lambda _l: None, on_ready=hardware.scan_later(garbage=True))
    assert result.status == "FAIL" and "not text" in result.summary
    assert result.values["not_text_share"] > 0.5 and "baud rate" in (result.cause or "")
    assert "115200" in (result.next_step or "")
    quiet = scanner.check_scanner(hardware.scanner, {}, seconds=0.3, need_line=True, report=lambda _l: None)
    assert quiet.status == "FAIL" and quiet.values["bytes"] == 0 and "keyboard (HID) mode" in (quiet.cause or "")


def test_scanner_lines_are_shown_by_length_and_hash_never_whole(hardware: SimHardware) -> None:
    lines: list[str] = []
    result = scanner.check_scanner(hardware.scanner, {}, seconds=5, need_line=True, report=lines.append,
                                   on_ready=hardware.scan_later())
    assert result.status == "PASS" and result.values["lines"] == 1
    assert "starts 'GP1:'..." in lines[-1] and "SIMULATED" not in lines[-1]


@pytest.mark.parametrize(("problem", "summary", "cause"), [
    (OSError(errno.ENOENT, "cannot find a suitable libusb-1.0"), "libusb cannot be used", "libusb-1.0"),
    ([], "no NFC reader on USB", "not plugged in"),
    (OSError(errno.EACCES, "Access denied"), "may not be opened", "permissions"),
    (OSError(errno.EBUSY, "Resource busy"), "is busy", "holds it"),
    (OSError(errno.ENODEV, "No such device"), "no reader at", "not plugged in"),
])
def test_nfc_says_which_of_libusb_permissions_driver_or_cable_is_wrong(problem: object, summary: str,
                                                                      cause: str) -> None:
    def find(_path: str) -> list[tuple[int, int, str]]:
        if isinstance(problem, OSError) and "libusb" in str(problem):
            raise problem
        return problem if isinstance(problem, list) else [(0x072F, 0x2200, "acr122")]

    def opener(_path: str) -> object:
        raise problem  # type: ignore[misc]

    result = nfc.probe_nfc("usb:072f:2200", opener=opener, find_usb=find)
    assert result.status == "FAIL" and summary in result.summary and cause in (result.cause or ""), result
    assert result.next_step


def test_nfc_finds_the_reader_and_reads_a_holder_and_a_legacy_card(hardware: SimHardware) -> None:
    found = nfc.probe_nfc(hardware.nfc_path)
    assert found.status == "PASS" and found.values["chip"] == "UDP"
    holder = nfc.tap_nfc(hardware.nfc_path, "g1", 10, lambda _l: None, on_ready=hardware.tap_later())
    assert holder.status == "PASS" and holder.values["kind"] == "GatePass holder" and holder.values["apdus"] >= 2
    assert 0 < holder.values["round_trip_ms_min"] <= holder.values["round_trip_ms_max"]
    card = nfc.tap_nfc(hardware.nfc_path, "g1", 10, lambda _l: None, on_ready=hardware.tap_later(legacy=True))
    assert card.status == "PASS" and card.values["kind"] == "legacy card" and "04A1B2C3" not in card.summary
    nothing = nfc.tap_nfc(hardware.nfc_path, "g1", 0.5, lambda _l: None)
    assert nothing.status == "FAIL" and "no tap" in nothing.summary


def test_wiegand_frames_show_bit_count_and_parity_and_a_bad_one_is_explained(hardware: SimHardware) -> None:
    lines: list[str] = []
    result = wiegand.check_frames(hardware.factory, 20, 21, seconds=3, need_frame=True, report=lines.append,
                                  on_ready=hardware.wiegand_later(bad_parity=True))
    assert result.status == "FAIL" and result.values["dropped"]["parity"] == 1
    assert "26 bits, H10301 parity BAD; dropped by the gate" in lines[0]
    assert "swap" in (result.next_step or "")
    unpowered = MockFactory()  # no pull-up of the Pi's, no input board's either: both lines read low
    try:
        idle = wiegand.check_idle(unpowered, 20, 21, pull_up=False)
    finally:
        unpowered.close()
    assert idle.status == "FAIL" and idle.summary == "D0 and D1 held low while idle"
    assert "level shifter" in (idle.cause or "")


def test_the_relay_check_fails_when_the_door_contact_never_shows_the_door_open(local_door) -> None:
    channel, store = local_door
    channel.simulated = False  # nobody at the gate to push the door
    result = door.check_relay(channel, 1, "uid 0", lambda _l: None)
    assert result.status == "FAIL" and result.values["door_opened"] == "0/1"
    assert "nobody pushed the door" in (result.cause or "")
    assert [r.reason for r, _ok in Journal(store).records()] == ["door_diagnostic"]  # journaled all the same


def test_an_active_tamper_or_fire_input_fails_with_what_it_means(local_door) -> None:
    channel, _store = local_door
    channel.drive_input("tamper", True)
    time.sleep(0.3)  # the debounce
    result = door.check_inputs(channel, 0, lambda _l: None)
    assert result.status == "FAIL" and result.values["tamper"] == "active"
    assert "normally-closed loop is cut" in (result.cause or "")


def test_leds_the_technician_did_not_see_fail(local_door) -> None:
    channel, _store = local_door
    channel.simulated = False
    asked: list[str] = []
    result = door.check_indicators(channel, ("green_led",), lambda q: asked.append(q) or False, lambda _l: None)
    assert asked == ["Did the green LED light for a moment?"]
    assert result.status == "FAIL" and "GPIO 27" in (result.cause or "")


def test_a_dark_picture_or_no_code_is_a_failure_with_a_saved_frame(tmp_path: Path) -> None:
    import cv2
    import numpy as np

    frames = tmp_path / "dark"
    frames.mkdir()
    for i in range(5):
        cv2.imwrite(str(frames / f"{i:05d}.png"), np.full((120, 160, 3), 8, dtype=np.uint8))
    dark = camera.check_camera(str(frames / "%05d.png"), seconds=2, need_code=True, png=tmp_path / "d.png",
                               report=lambda _l: None)
    assert dark.status == "FAIL" and "too dark" in dark.summary and (tmp_path / "d.png").exists()
    for i in range(5):
        cv2.imwrite(str(frames / f"{i:05d}.png"), np.full((120, 160, 3), 128, dtype=np.uint8))
    blank = camera.check_camera(str(frames / "%05d.png"), seconds=2, need_code=True, png=None, report=lambda _l: None)
    assert blank.status == "FAIL" and blank.summary == "no QR code read" and "out of focus" in (blank.cause or "")


def test_the_clock_is_untrusted_below_the_floor_and_unsynchronised_without_a_chip(tmp_path: Path) -> None:
    config = parse_config(f'[gate]\nid = "g"\n[cache]\npath = "{tmp_path / "c.db"}"\n')
    with Store.open(tmp_path / "c.db", create=True) as store:
        store.raise_time_floor(time.time() + 3600, "test")
    behind = state.check_clock(config, synchronised=True, rtc=None)
    assert behind.status == "FAIL" and behind.summary.startswith("UNTRUSTED")
    unsynced = state.check_clock(config, synchronised=False, rtc=None, now=time.time() + 3600)
    assert unsynced.status == "FAIL" and "UDP port 123" in (unsynced.cause or "")
    kept = state.check_clock(config, synchronised=False, rtc="rtc-ds1307", now=time.time() + 3600)
    assert kept.status == "PASS" and "clock chip rtc-ds1307" in kept.summary
    (tmp_path / "rtc" / "rtc0").mkdir(parents=True)
    (tmp_path / "rtc" / "rtc0" / "name").write_text("rtc-rpi\n")
    assert state.rtc_name(tmp_path / "rtc") == "rtc-rpi" and state.rtc_name(tmp_path / "none") is None


def test_a_missing_cache_and_a_failing_sync_say_what_to_do(tmp_path: Path) -> None:
    config = parse_config(f'[gate]\nid = "g"\n[cache]\npath = "{tmp_path / "c.db"}"\n[sync]\n'
                          'metadata_url = "http://127.0.0.1:9/metadata/"\ntargets_url = "http://127.0.0.1:9/t/"\n'
                          f'root = "{tmp_path / "root.json"}"\n')
    missing = state.check_cache(config)
    assert missing.status == "FAIL" and "gate-reader-sync" in (missing.next_step or "")
    down = state.check_sync(config, lambda: SyncReport(False, [], [], {}, "server unreachable: cannot connect to "
                                                       "http://127.0.0.1:9/metadata/2.root.json: refused", 0.1))
    assert down.status == "FAIL" and "does not answer" in (down.cause or "")
    assert "metadata_url" in (down.next_step or "")


def test_the_relay_check_refuses_to_judge_a_door_the_fire_input_holds_released(local_door) -> None:
    channel, store = local_door
    channel.drive_input("fire", True)
    time.sleep(0.4)  # the fire input's debounce
    result = door.check_relay(channel, 1, "uid 0", lambda _l: None)
    assert result.status == "FAIL" and result.summary == "the fire input is active: the door is held released"
    assert list(Journal(store).records()) == []  # nothing released, nothing journaled
