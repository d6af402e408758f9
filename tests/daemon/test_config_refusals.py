"""A config mistake stops ``gate-reader run`` before anything starts: the same key path as
check-config, no cache opened, no record journaled, no pin claimed, no control socket."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.centre import run

GOOD = """\
[gate]
id = "g1"
[cache]
path = "{root}/state/cache.db"
[sync]
metadata_url = "https://centre.example/metadata/"
targets_url = "https://centre.example/targets/"
root = "{root}/root.json"
[door]
pin_factory = "mock"
[daemon]
runtime_dir = "{root}/run"
[[readers]]
name = "cam"
driver = "camera"
device = "{root}/frames/%05d.png"
[[readers]]
name = "w"
driver = "wiegand"
device = [20, 21]
"""


@pytest.mark.parametrize(("change", "key"), [
    (("[door]\n", "[door]\nrelay = {{ pin = 40 }}\n"), "door.relay.pin: 40 is not a GPIO number 0-27"),
    (('driver = "camera"', 'driver = "rfid"'), "readers[0].driver: must be one of"),
    (('"https://centre.example/metadata/"', '"ftp://centre.example/metadata/"'), "sync.metadata_url: must be an"),
    (('device = "{root}/frames/%05d.png"', 'device = "{root}/frames/%05d.png"\nfps = "fast"'),
     "readers[0].fps: must be a number"),
    (('device = [20, 21]', 'device = [20, 5]'), "readers[1].device: D1 on GPIO 5 is already door.door_contact"),
])
def test_config_mistakes_stop_run_and_check_config_before_anything_starts(
        tmp_path: Path, change: tuple[str, str], key: str) -> None:
    config = tmp_path / "gate.toml"
    config.write_text(GOOD.replace(*change).format(root=tmp_path))
    code, out, err = run("run", "--config", config)
    assert code == 2 and key in err and out == ""
    assert not (tmp_path / "state").exists()  # no cache made, nothing journaled
    assert not (tmp_path / "run").exists()  # no control socket
    code, out, _err = run("check-config", "--config", config)
    assert code == 1 and f"error: {key}" in out


def test_the_good_config_passes_check_config(tmp_path: Path) -> None:
    config = tmp_path / "gate.toml"
    config.write_text(GOOD.format(root=tmp_path))
    code, out, _err = run("check-config", "--config", config)
    assert code == 0, out
