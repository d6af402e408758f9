"""The daemon's part of the configuration: ``[door]``, ``[[readers]]``, the local reader
policy (``[schedules.*]``, ``[holidays]``, ``[lockdown]``, ``[gate] group/timezone``) and
``[daemon]``. Every mistake names its key path; a config without them loads as before."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from drivers.door import InputPin, OutputPin
from reader.errors import ConfigError
from reader.gate.config import parse_config

BASE = '[gate]\nid = "g1"\n[cache]\npath = "/tmp/x/cache.db"\n'

FULL = BASE.replace('id = "g1"\n', 'id = "g1"\ngroup = "hq"\n') + '''
[door]
pin_factory = "mock"
lock_type = "fail_safe"
relay = { pin = 12, active_high = false }
green_led = false
exit_button = { pin = 16, debounce_s = 0.02 }
tamper = false
release_s = 2
held_open_s = 10
[[readers]]
name = "lobby-nfc"
driver = "nfc"
device = "udp:127.0.0.1:50000"
kinds = ["nfc"]
groups = ["staff"]
schedule = "office"
direction = "in"
area = "hq"
[[readers]]
name = "lobby-cam"
driver = "camera"
device = 0
fps = 10
[[readers]]
name = "old-scanner"
driver = "scanner"
device = "/dev/ttyACM0"
legacy_cards = true
legacy_schedule = "night"
[[readers]]
name = "side-wiegand"
driver = "wiegand"
device = [20, 21]
legacy_cards = true
[schedules.office]
windows = ["mon-fri 07:00-19:00"]
[schedules.night]
windows = ["mon-sun 19:00-07:00", "hol 00:00-24:00"]
[holidays]
dates = [2026-12-25]
[lockdown]
groups = ["security"]
[daemon]
runtime_dir = "run"
level_poll_s = 0.2
queue_size = 8
'''


def test_the_daemon_tables_parse_into_door_settings_readers_and_the_local_policy(tmp_path: Path) -> None:
    text = FULL.replace('group = "hq"\n', 'group = "hq"\ntimezone = "UTC"\n')
    config = parse_config(text, tmp_path / "gate.toml")
    door = config.door
    assert door is not None and door.pin_factory == "mock" and door.held_open_s == 10
    assert door.settings.lock_type == "fail_safe" and door.settings.relay == OutputPin(12, active_high=False)
    assert door.settings.green_led is None and door.settings.tamper is None
    # A table given in part keeps the default of every key it leaves out.
    assert door.settings.exit_button == InputPin(16, active_high=False, pull="up", debounce_s=0.02)
    assert [(r.name, r.driver, r.device) for r in config.readers] == [
        ("lobby-nfc", "nfc", "udp:127.0.0.1:50000"), ("lobby-cam", "camera", 0),
        ("old-scanner", "scanner", "/dev/ttyACM0"), ("side-wiegand", "wiegand", (20, 21))]
    assert dict(config.readers[1].options) == {"fps": 10}
    site = config.site
    nfc = site.readers["lobby-nfc"]
    assert (nfc.kinds, nfc.groups, nfc.schedule, nfc.direction, nfc.area) == (
        frozenset({"nfc"}), frozenset({"staff"}), "office", "in", "hq")
    # Without kinds a reader admits what its driver can present; legacy cards need enabling.
    assert site.readers["lobby-cam"].kinds == frozenset({"qr"})
    assert site.readers["side-wiegand"].legacy_cards and not site.readers["lobby-cam"].legacy_cards
    assert site.holidays == frozenset({date(2026, 12, 25)}) and site.lockdown_groups == frozenset({"security"})
    assert (site.timezone, config.gate.group, site.origin) == ("UTC", "hq", "local")
    assert config.daemon.runtime_dir == tmp_path / "run" and config.daemon.queue_size == 8


def test_every_config_without_the_daemon_tables_still_loads() -> None:
    config = parse_config(BASE)
    assert config.door is None and config.readers == () and config.site.readers == {}
    assert config.daemon.runtime_dir == Path("/run/gate-reader")


@pytest.mark.parametrize(("change", "message"), [
    (('pin_factory = "mock"', 'pin_factory = "auto"'), "door.pin_factory: must be one of mock, lgpio, rpigpio"),
    (('pin_factory = "mock"\n', ""), "door.pin_factory: missing"),
    (("relay = { pin = 12, active_high = false }", "relay = false"), "door.relay: must be a table"),
    (("relay = { pin = 12, active_high = false }", "relay = { pin = 12, polarity = 1 }"),
     "door.relay.polarity: unknown key"),
    (("exit_button = { pin = 16, debounce_s = 0.02 }", "exit_button = { pin = 12 }"),
     "door.exit_button.pin: GPIO 12 is already door.relay"),
    (("exit_button = { pin = 16, debounce_s = 0.02 }", "exit_button = { pin = 40 }"),
     "door.exit_button.pin: 40 is not a GPIO number"),
    (("release_s = 2", "release_s = 600"), "door.release_s: 600.0 is not a number of seconds"),
    (("held_open_s = 10", "held_opn_s = 10"), "door.held_opn_s: unknown key"),
    (('driver = "camera"', 'driver = "webcam"'), "readers[1].driver: must be one of camera, nfc, scanner, wiegand"),
    (("device = [20, 21]", 'device = "20,21"'), "readers[3].device: must be the two GPIO pins"),
    (("device = 0\n", ""), "readers[1].device: missing"),
    (('name = "lobby-cam"', 'name = "lobby-nfc"'), "readers[1].name: 'lobby-nfc' is already the name"),
    (('name = "lobby-cam"', 'name = "lobby cam"'), "readers[1].name: a reader name must be"),
    (('kinds = ["nfc"]', 'kinds = ["qr"]'), "readers[0].kinds: a nfc reader never presents qr"),
    (('kinds = ["nfc"]', 'kinds = ["iris"]'), "readers[0].kinds[0]: must be qr, nfc or legacy"),
    (('schedule = "office"', 'schedule = "weekend"'), "readers[0].schedule: no schedule 'weekend'"),
    (('direction = "in"', 'direction = "up"'), 'readers[0].direction: must be "in" or "out"'),
    (("legacy_cards = true\nlegacy_schedule", "legacy_cards = 1\nlegacy_schedule"),
     "readers[2].legacy_cards: must be true or false"),
    (('"mon-fri 07:00-19:00"', '"mon-fri 07:00-31:00"'), "schedules.office.windows[0]"),
    (("dates = [2026-12-25]", 'dates = ["25.12.2026"]'), "holidays.dates[0]: must be a date"),
    (('groups = ["security"]', 'members = ["security"]'), "lockdown.members: unknown key"),
    (("queue_size = 8", "queue_size = 0"), "daemon.queue_size: must be an integer at least 1"),
    (("level_poll_s = 0.2", "level_pol_s = 0.2"), "daemon.level_pol_s: unknown key"),
    (('group = "hq"', 'group = "h q"'), "gate.group: a gate group must be"),
])
def test_a_wrong_daemon_key_is_refused_with_its_key_path(change: tuple[str, str], message: str) -> None:
    old, new = change
    assert old in FULL
    with pytest.raises(ConfigError) as info:
        parse_config(FULL.replace(old, new, 1))
    assert message in str(info.value)


@pytest.mark.parametrize(("line", "message"), [
    ("lockdown = { pin = 12 }", "door.lockdown.pin: GPIO 12 is already door.relay"),
    ("lockdown = { pin = 5 }", "door.lockdown.pin: GPIO 5 is already door.door_contact"),
    ("lockdown = { pin = 28 }", "door.lockdown.pin: 28 is not a GPIO number 0-27"),
    ("lockdown = { pin = 26, pull = \"weak\" }", "door.lockdown.pull: must be \"up\" or \"down\" or \"none\""),
    ("lockdown = { pin = 26, debounce_s = 9 }", "door.lockdown.debounce_s: 9 is not a number of seconds"),
    ("lockdown = { pin = 26, polarity = 0 }", "door.lockdown.polarity: unknown key"),
    ("lockdown = true", "door.lockdown: must be a table like { pin = 17 } or false"),
    ("exit_button = { pin = 26 }", "door.lockdown.pin: GPIO 26 is already door.exit_button"),
])
def test_lockdown_input_config_errors_name_their_key_path(line: str, message: str) -> None:
    """The lockdown switch's keys are the other inputs' (pin, active_high, pull, debounce_s),
    checked the same way; its default pin (26) clashes with a role moved onto it."""
    text = FULL.replace("exit_button = { pin = 16, debounce_s = 0.02 }\n", line + "\n", 1) \
        if line.startswith("exit_button") else FULL.replace("tamper = false\n", f"tamper = false\n{line}\n", 1)
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert message in str(info.value)


def test_the_lockdown_input_defaults_to_an_active_low_switch_on_gpio_26_or_is_left_out() -> None:
    door = parse_config(FULL).door
    assert door is not None and door.settings.lockdown == InputPin(26, active_high=False, pull="up", debounce_s=0.1)
    moved = parse_config(FULL.replace("tamper = false\n",
                                      "tamper = false\nlockdown = { pin = 24, active_high = true }\n"))
    assert moved.door is not None and moved.door.settings.lockdown == InputPin(24, active_high=True, debounce_s=0.1)
    none = parse_config(FULL.replace("tamper = false\n", "tamper = false\nlockdown = false\n"))
    assert none.door is not None and none.door.settings.lockdown is None


def test_a_wrong_time_zone_names_gate_timezone() -> None:
    with pytest.raises(ConfigError, match="timezone"):
        parse_config(BASE.replace('id = "g1"\n', 'id = "g1"\ntimezone = "Mars/Olympus"\n'))


def test_the_shipped_examples_load_with_their_daemon_tables(tmp_path: Path) -> None:
    """The example's commented daemon block, uncommented, and the simulated gate's config
    load as they are; the sources they name build (no device is opened)."""
    from gpiozero.pins.mock import MockFactory

    from reader.daemon.sources import build_source
    from tests.support import EXAMPLE_CONFIG

    text = EXAMPLE_CONFIG.read_text()
    block = text[text.index("# ---- gate-reader run"):]
    uncommented = "\n".join(line[2:] if line.startswith("# ") else line for line in block.splitlines()
                            if not line.startswith("# ----"))
    head = text[:text.index("# ---- gate-reader run")].replace('# group = "hq-lobby"', 'group = "hq-lobby"')
    factory = MockFactory()
    try:
        for config in (parse_config(head + uncommented, tmp_path / "gate.toml"),
                       parse_config((EXAMPLE_CONFIG.parent / "gate-reader.sim.toml").read_text())):
            assert config.door is not None and len(config.readers) == 4
            for reader in config.readers:
                build_source(reader, lambda p: None, gate_id=config.gate.id, pin_factory=factory)
    finally:
        factory.close()
