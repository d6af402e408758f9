"""scripts/install_site.py: what the installer derives from a gate's config (the relay's boot
level, devices and groups, the UART) and its edits of config.txt and cmdline.txt."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.install.trees import CMDLINE_TXT, CONFIG_TXT, site


def _site(tmp_path: Path, text: str):
    config = tmp_path / "gate.toml"
    config.write_text(text)
    return site.load_site(config)


# (lock type, relay board active high) -> the relay pin's level while secured: coil off for an
# electric strike or a turnstile, coil on for a maglock; an active-low board inverts the pin.
BOOT_LEVELS = {
    ("fail_secure", True): "dl", ("fail_secure", False): "dh",
    ("turnstile", True): "dl", ("turnstile", False): "dh",
    ("fail_safe", True): "dh", ("fail_safe", False): "dl",
}


@pytest.mark.parametrize(("lock_type", "active_high"), list(BOOT_LEVELS))
def test_relay_boot_level_is_the_secured_level_for_each_lock_type_and_polarity(
        tmp_path: Path, lock_type: str, active_high: bool) -> None:
    gate = _site(tmp_path, f'[door]\nlock_type = "{lock_type}"\n'
                           f'relay = {{ pin = 4, active_high = {str(active_high).lower()} }}\n')
    block = site.render_boot_block(gate)
    gpio_lines = [line for line in block.splitlines() if line.startswith("gpio=")]
    assert gpio_lines == [f"gpio=4=op,{BOOT_LEVELS[lock_type, active_high]}"]


def test_defaults_are_the_code_defaults(tmp_path: Path) -> None:
    """No [door], no [sync]: relay on BCM 17, active high, electric strike; a 30 s period."""
    from drivers.door import DoorSettings

    gate = _site(tmp_path, "")
    door = DoorSettings()
    assert (gate.relay_pin, gate.relay_active_high, gate.lock_type) == (door.relay.pin, door.relay.active_high,
                                                                        door.lock_type)
    assert gate.interval_s == 30 and "gpio=17=op,dl\n" in site.render_boot_block(gate)
    assert "enable_uart" not in site.render_boot_block(gate)  # no reader on the UART: leave it alone


READERS = {  # a reader's config -> (DeviceAllow= specifiers, group, on the header UART)
    '"nfc"\ndevice = "usb"': (("char-usb_device",), "plugdev", False),
    '"nfc"\ndevice = "usb:054c:06c1"': (("char-usb_device",), "plugdev", False),
    '"nfc"\ndevice = "tty:AMA0:pn532"': (("char-ttyAMA",), "dialout", True),
    '"nfc"\ndevice = "tty:serial0:pn532"': (("char-ttyAMA", "char-ttyS"), "dialout", True),
    '"nfc"\ndevice = "tty:USB0:pn532"': (("char-ttyUSB",), "dialout", False),
    '"scanner"\ndevice = "/dev/ttyACM0"': (("char-ttyACM",), "dialout", False),
    '"scanner"\ndevice = "/dev/serial/by-id/usb-Honeywell_1900-if00"': (("char-ttyACM", "char-ttyUSB"), "dialout",
                                                                         False),
    '"scanner"\ndevice = "/dev/ttyS0"': (("char-ttyS",), "dialout", True),
    '"camera"\ndevice = 0': (("char-video4linux",), "video", False),
    '"camera"\ndevice = "/dev/v4l/by-id/usb-046d_C270-video-index0"': (("char-video4linux",), "video", False),
}


@pytest.mark.parametrize("reader", list(READERS))
def test_each_reader_device_becomes_its_device_class_and_group(tmp_path: Path, reader: str) -> None:
    gate = _site(tmp_path, f"[[readers]]\ndriver = {reader}\n")
    allow, group, uart = READERS[reader]
    assert [(d.key, d.allow, d.group, d.uart) for d in gate.devices] == [("readers[0].device", allow, group, uart)]
    dropin = site.render_service_dropin(gate, "/etc/gate-reader/gate-reader.toml")
    assert f"\nSupplementaryGroups=\nSupplementaryGroups=gpio {group}\n" in dropin
    assert [line for line in dropin.splitlines() if line.startswith("DeviceAllow=")] == [
        "DeviceAllow=", "DeviceAllow=char-gpiochip rw", *(f"DeviceAllow={a} rw" for a in allow)]
    assert ("enable_uart=1" in site.render_boot_block(gate)) == uart


def test_a_simulated_door_gets_no_gpio_and_a_wiegand_reader_no_device(tmp_path: Path) -> None:
    gate = _site(tmp_path, '[door]\npin_factory = "mock"\n[[readers]]\ndriver = "wiegand"\n')
    dropin = site.render_service_dropin(gate, "x")
    assert dropin.endswith("[Service]\nSupplementaryGroups=\nDeviceAllow=\n")


BAD = {  # config -> the key its error must name
    '[door]\nlock_type = "open"\n': "door.lock_type",
    '[door]\npin_factory = "gpiod"\n': "door.pin_factory",
    "[door]\nrelay = 17\n": "door.relay",
    "[door]\nrelay = { pin = 28 }\n": "door.relay.pin",
    "[door]\nrelay = { pin = true }\n": "door.relay.pin",
    '[door]\nrelay = { active_high = "yes" }\n': "door.relay.active_high",
    "door = 1\n": "door",
    "[sync]\ninterval_s = 45\n": "sync.interval_s",
    "[sync]\nroot = 5\n": "sync.root",
    "readers = 1\n": "readers",
    '[[readers]]\ndriver = "keypad"\n': "readers[0].driver",
    '[[readers]]\ndriver = "nfc"\ndevice = "udp:localhost:8888"\n': "readers[0].device",
    '[[readers]]\ndriver = "nfc"\n': "readers[0].device",
    '[[readers]]\ndriver = "camera"\ndevice = "/home/pi/video.avi"\n': "readers[0].device",
    '[[readers]]\ndriver = "camera"\ndevice = true\n': "readers[0].device",
    '[[readers]]\ndriver = "scanner"\ndevice = "loop://"\n': "readers[0].device",
    '[[readers]]\ndriver = "scanner"\ndevice = "/dev/sda"\n': "readers[0].device",
    '[[readers]]\ndriver = "scanner"\ndevice = "/dev/../etc/shadow"\n': "readers[0].device",
    '[[readers]]\ndriver = "scanner"\ndevice = "/dev/serial/by-id/.."\n': "readers[0].device",
    '[[readers]]\ndriver = "camera"\ndevice = "/dev/v4l/by-id/.."\n': "readers[0].device",
    '[door]\nrelay = { pin = 14 }\n[[readers]]\ndriver = "nfc"\ndevice = "tty:serial0:pn532"\n': "door.relay.pin",
}


@pytest.mark.parametrize("text", list(BAD))
def test_every_bad_site_value_is_refused_naming_its_key(tmp_path: Path, text: str) -> None:
    with pytest.raises(site.SiteError) as error:
        _site(tmp_path, text)
    assert str(error.value).startswith(BAD[text] + ":")


def test_unreadable_configs_are_refused_not_guessed(tmp_path: Path) -> None:
    for content, message in [(b"[sync\n", "not valid TOML"), (b"\xff\xfe", "not valid TOML"),
                             (b"#" * (2 << 20), "larger than")]:
        config = tmp_path / "gate.toml"
        config.write_bytes(content)
        with pytest.raises(site.SiteError, match=message):
            site.load_site(config)
    with pytest.raises(site.SiteError, match="cannot read"):
        site.load_site(tmp_path / "missing.toml")


BLOCK = "# BEGIN gate-reader\n[all]\ngpio=17=op,dl\n# END gate-reader\n"


def test_config_txt_block_is_put_in_once_and_replaced_in_place() -> None:
    first = site.splice(CONFIG_TXT, BLOCK, "config.txt")
    assert first == CONFIG_TXT + "\n" + BLOCK
    assert site.splice(first, BLOCK, "config.txt") == first
    # a line the owner added after the block stays after it; the block changes where it is
    owned = first + "# the owner's line\ndtoverlay=disable-bt\n"
    changed = site.splice(owned, BLOCK.replace("op,dl", "op,dh"), "config.txt")
    assert changed == owned.replace("op,dl", "op,dh")
    assert site.unsplice(changed, "config.txt") == CONFIG_TXT + "# the owner's line\ndtoverlay=disable-bt\n"
    assert site.unsplice(first, "config.txt") == CONFIG_TXT
    assert site.unsplice(CONFIG_TXT, "config.txt") == CONFIG_TXT
    assert site.splice("arm_64bit=1", BLOCK, "config.txt") == "arm_64bit=1\n\n" + BLOCK  # no final newline


@pytest.mark.parametrize("broken", [
    CONFIG_TXT + "# BEGIN gate-reader\ngpio=17=op,dl\n",  # cut off
    CONFIG_TXT + "gpio=17=op,dl\n# END gate-reader\n",
    CONFIG_TXT + BLOCK + BLOCK,  # twice
    CONFIG_TXT + "# END gate-reader\n# BEGIN gate-reader\n",  # reversed
])
def test_a_broken_config_txt_block_is_refused_not_guessed(broken: str) -> None:
    for edit in (lambda: site.splice(broken, BLOCK, "config.txt"), lambda: site.unsplice(broken, "config.txt")):
        with pytest.raises(site.SiteError, match="block is broken"):
            edit()


def test_block_starts_and_ends_in_all_so_it_never_moves_other_lines_into_a_filter(tmp_path: Path) -> None:
    gate = _site(tmp_path, '[[readers]]\ndriver = "nfc"\ndevice = "tty:serial0:pn532"\n')
    lines = [line for line in site.render_boot_block(gate, "ds3231").splitlines() if not line.startswith("#")]
    filters = [line for line in lines if line.startswith("[")]
    assert filters[0] == "[all]" and filters[-1] == "[all]"
    assert "dtoverlay=i2c-rtc,ds3231" in lines
    text = site.splice(CONFIG_TXT, site.render_boot_block(gate, "ds3231"), "config.txt")
    assert site.block_rtc(text, "config.txt") == "ds3231"
    assert site.block_rtc(CONFIG_TXT + "dtoverlay=i2c-rtc,pcf8523\n", "config.txt") is None  # not ours


def test_serial_console_is_removed_only_from_the_header_uart() -> None:
    assert site.strip_console(CMDLINE_TXT) == CMDLINE_TXT.replace("console=serial0,115200 ", "")
    for console in ("console=ttyAMA0,115200", "console=ttyS0,115200", "console=serial0"):
        assert console not in site.strip_console(f"{console} console=tty1 root=/dev/mmcblk0p2 rootwait\n")
    kept = "console=tty1 console=ttyAMA10,115200 root=/dev/mmcblk0p2 rootwait\n"  # Pi 5 debug port, HDMI
    assert site.strip_console(kept) == kept


def test_source_tag_changes_with_the_source_and_only_then(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "reader").mkdir(parents=True)
    (src / "pyproject.toml").write_text('[project]\nversion = "1.2.3"\n')
    (src / "README.md").write_text("readme\n")
    (src / "reader" / "a.py").write_text("x = 1\n")
    first = site.source_tag(src, None)
    (src / "reader" / "__pycache__").mkdir()
    (src / "reader" / "__pycache__" / "a.pyc").write_bytes(b"compiled")
    assert site.source_tag(src, None) == first and first.startswith("1.2.3-")
    (src / "reader" / "a.py").write_text("x = 2\n")
    assert site.source_tag(src, None) != first
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with pytest.raises(site.SiteError, match="0 gate_reader"):
        site.source_tag(src, wheels)
    (wheels / "gate_reader-1.3.0-py3-none-any.whl").write_bytes(b"zip")
    (wheels / "cbor2-6.3.0-py3-none-any.whl").write_bytes(b"zip")
    tag = site.source_tag(src, wheels)
    assert tag.startswith("1.3.0-")  # the wheel's version, not the source's
    (wheels / "cbor2-6.3.0-py3-none-any.whl").write_bytes(b"another zip")
    assert site.source_tag(src, wheels) != tag
    (wheels / "gate_reader-1.2.0-py3-none-any.whl").write_bytes(b"zip")
    with pytest.raises(site.SiteError, match="2 gate_reader"):
        site.source_tag(src, wheels)


def test_the_metrics_textfile_folder_is_the_one_more_place_the_daemon_may_write(tmp_path: Path) -> None:
    gate = _site(tmp_path, '[door]\npin_factory = "mock"\n[metrics]\n'
                           'textfile = "/var/lib/node_exporter/textfile_collector/gate_reader.prom"\n')
    dropin = site.render_service_dropin(gate, "x")
    assert dropin.endswith("\nReadWritePaths=-/var/lib/node_exporter/textfile_collector\n")
    for bad in ('textfile = "/var/lib/x/gate.txt"', "textfile = 5", 'textfile = "/a\\nb.prom"'):
        with pytest.raises(site.SiteError, match=r"^metrics\.textfile:"):
            _site(tmp_path, f"[metrics]\n{bad}\n")
    assert "ReadWritePaths" not in site.render_service_dropin(_site(tmp_path, "[door]\n"), "x")


def test_a_metrics_endpoint_opens_the_loopback_interface_only() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        gate = _site(Path(tmp), '[door]\npin_factory = "mock"\n[metrics]\nlisten = "127.0.0.1:9101"\n')
    dropin = site.render_service_dropin(gate, "x")
    assert dropin.endswith("\nRestrictAddressFamilies=AF_INET AF_INET6\nIPAddressAllow=localhost\n")
    assert "ReadWritePaths" not in dropin
