"""check-config: every mistake of a config at once, each with its key path, from the same
reader that refuses the first one at start; warnings for devices and files not there yet."""

from __future__ import annotations

from pathlib import Path

import pytest

from reader.errors import ConfigError
from reader.gate.config import check_config_text, parse_config
from reader.gate.config_check import check_config, device_path
from reader.gate.config_readers import ReaderConfig

MANY_MISTAKES = """\
[gate]
id = "bad gate"
[cache]
path = "cache.db"
colour = 1
[sync]
metadata_url = "ftp://centre/metadata/"
targets_url = "https://centre/targets/"
root = "root.json"
interval_s = -3
[door]
pin_factory = "lgpio"
relay = { pin = 40 }
exit_button = { pin = 41 }
[[readers]]
name = "lobby"
driver = "rfid"
device = "x"
[[readers]]
name = "cam"
driver = "camera"
device = 0
[[readers]]
name = "w"
driver = "wiegand"
device = [5, 21]
[polcy]
"""


def test_every_config_mistake_is_reported_at_once_with_its_key_path(tmp_path: Path) -> None:
    config, errors = check_config_text(MANY_MISTAKES, tmp_path / "gate.toml")
    keys = [str(e).split(": ", 1)[0] for e in errors]
    assert keys == ["cache.colour", "gate.id", "readers[0].driver", "sync.metadata_url", "sync.interval_s",
                    "door.relay.pin", "door.exit_button.pin", "readers[2].device", "polcy"]
    messages = "\n".join(map(str, errors))
    assert "door.exit_button.pin: 41 is not a GPIO number 0-27" in messages
    assert "sync.metadata_url: must be an http(s) URL, not 'ftp://centre/metadata/'" in messages
    assert "readers[2].device: D0 on GPIO 5 is already door.door_contact" in messages
    # the first of them is what the daemon's start refuses on, the same text
    with pytest.raises(ConfigError) as first:
        parse_config(MANY_MISTAKES, tmp_path / "gate.toml")
    assert str(first.value) == str(errors[0])
    # the readers that did parse are there to be checked further
    assert config is not None and [r.name for r in config.readers] == ["cam", "w"]


def test_a_mistake_under_a_refused_key_is_not_repeated(tmp_path: Path) -> None:
    text = '[gate]\nid = "g"\n[cache]\npath = "c.db"\n[door]\npin_factory = "mock"\nrelay = 17\n'
    _config, errors = check_config_text(text, tmp_path / "gate.toml")
    assert [str(e) for e in errors] == ["door.relay: must be a table like { pin = 17 }, not 17"]
    _config, errors = check_config_text('[gate]\nid = "g"\n', tmp_path / "gate.toml")
    assert [str(e) for e in errors] == ["cache: missing"]
    _config, errors = check_config_text("[gate\n", tmp_path / "gate.toml")
    assert len(errors) == 1 and "not valid TOML" in str(errors[0])


def test_a_wiegand_reader_on_a_door_pin_is_refused_at_start(tmp_path: Path) -> None:
    text = ('[gate]\nid = "g"\n[cache]\npath = "c.db"\n[door]\npin_factory = "mock"\n'
            '[[readers]]\nname = "w1"\ndriver = "wiegand"\ndevice = [20, 21]\n'
            '[[readers]]\nname = "w2"\ndriver = "wiegand"\ndevice = [21, 17]\n')
    with pytest.raises(ConfigError, match=r"readers\[1\].device: D0 on GPIO 21 is already readers\[0\].device"):
        parse_config(text, tmp_path / "gate.toml")
    _config, errors = check_config_text(text, tmp_path / "gate.toml")
    # one line per key: its second pin's clash (on the relay) is not repeated under the same key
    assert [str(e) for e in errors] == ["readers[1].device: D0 on GPIO 21 is already readers[0].device"]


def test_missing_devices_and_files_are_warnings_not_errors(tmp_path: Path) -> None:
    config = tmp_path / "gate.toml"
    config.write_text('[gate]\nid = "g"\n[cache]\npath = "state/cache.db"\n'
                      '[sync]\nmetadata_url = "https://c/m/"\ntargets_url = "https://c/t/"\nroot = "root.json"\n'
                      '[[readers]]\nname = "scan"\ndriver = "scanner"\ndevice = "/dev/gate/scanner-nothing"\n'
                      '[[readers]]\nname = "cam"\ndriver = "camera"\ndevice = "' + str(tmp_path) + '/%05d.png"\n')
    result = check_config(config)
    assert result.errors == [] and result.config is not None
    assert [f.key for f in result.warnings] == ["readers[0].device", "sync.root", "cache.path"]
    assert "/dev/gate/scanner-nothing does not exist (yet)" in result.warnings[0].message


def test_a_reader_check_refusal_is_an_error_with_its_key(tmp_path: Path) -> None:
    config = tmp_path / "gate.toml"
    config.write_text('[gate]\nid = "g"\n[cache]\npath = "c.db"\n'
                      '[[readers]]\nname = "n"\ndriver = "nfc"\ndevice = "usb"\ncolour = 1\n')

    def refuse(reader: ReaderConfig, gate_id: str) -> None:
        assert gate_id == "g"
        raise ConfigError(f"{reader.key}.colour: unknown key")

    result = check_config(config, refuse)
    assert [f.message for f in result.errors] == ["readers[0].colour: unknown key"] and result.config is None


@pytest.mark.parametrize(("driver", "device", "path"), [
    ("nfc", "tty:AMA0:pn532", "/dev/ttyAMA0"), ("nfc", "tty:serial0:pn532", "/dev/serial0"),
    ("nfc", "tty:USB:pn532", None), ("nfc", "usb:072f:2200", None), ("nfc", "udp:127.0.0.1:1", None),
    ("camera", 2, "/dev/video2"), ("camera", "rtsp://cam/stream", None), ("camera", "/f/%05d.png", "/f"),
    ("scanner", "/dev/ttyACM0", "/dev/ttyACM0"), ("scanner", "rfc2217://host:1", None),
])
def test_device_paths_are_the_files_the_drivers_open(driver: str, device: object, path: str | None) -> None:
    got = device_path(ReaderConfig(0, "r", driver, device))  # type: ignore[arg-type]
    assert (None if got is None else str(got)) == path


@pytest.mark.parametrize(("metrics", "message"), [
    ('textfile = "/var/lib/x/gate.txt"', "metrics.textfile: must end in .prom"),
    ('textfile = "/var/lib/x/gate.prom"\ninterval_s = 0.5', "metrics.interval_s: must be a finite number at least 1"),
    ("interval_s = 10", "metrics.textfile: missing"),
])
def test_a_metrics_table_that_cannot_work_is_refused_with_its_key(tmp_path: Path, metrics: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(f'[gate]\nid = "g"\n[cache]\npath = "c.db"\n[metrics]\n{metrics}\n', tmp_path / "gate.toml")


def test_a_metrics_endpoint_without_prometheus_client_is_an_error(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    config = tmp_path / "gate.toml"
    config.write_text('[gate]\nid = "g"\n[cache]\npath = "c.db"\n[metrics]\nlisten = "127.0.0.1:9101"\n')
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "prometheus_client"
                        else real(name, *a))
    result = check_config(config)
    assert [f.key for f in result.errors] == ["metrics.listen"] and "gate-reader[metrics]" in result.errors[0].message
