"""The systemd units, udev rules and modprobe file, checked by the tools that read them:
``systemd-analyze verify`` (nothing reported), ``systemd-analyze security --offline=yes``
(every service 2.5 or better) and ``systemd-analyze calendar`` (the sync period)."""

from __future__ import annotations

import configparser
import itertools
import os
import re
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from tests.install.trees import REPO, Tree, site

SYSTEMD = REPO / "systemd"
needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")


def _analyze(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", *map(str, args)], capture_output=True, text=True, timeout=120, cwd=cwd)


def _units_as_installed(tree: Tree, dest: Path) -> Path:
    """The installed units with their site drop-ins (the tree's), plus the centre's refresh
    units from the repository, in one folder, their /opt/gate-reader paths pointing into the
    tree, so that verify finds the ExecStart= programs the installer built."""
    dest.mkdir()
    for unit in tree.path("/usr/local/lib/systemd/system").iterdir():
        shutil.copy(unit, dest)
    for unit in ("gate-reader-refresh.service", "gate-reader-refresh.timer"):
        shutil.copy(SYSTEMD / unit, dest)
    for dropins in tree.path("/etc/systemd/system").glob("*.d"):
        shutil.copytree(dropins, dest / dropins.name)
    for unit in dest.glob("*.service"):
        unit.write_text(unit.read_text().replace("/opt/gate-reader/", f"{tree.path('/opt/gate-reader')}/"))
    return dest


@needs_analyze
def test_every_unit_verifies_without_a_word(installed: Tree, tmp_path: Path) -> None:
    units = _units_as_installed(installed, tmp_path / "units")
    names = sorted(p.name for p in units.iterdir() if p.suffix in (".service", ".timer"))
    assert len(names) == 5
    for name in names:
        result = _analyze("verify", name, cwd=units)
        assert (result.returncode, result.stdout + result.stderr) == (0, ""), name


@needs_analyze
def test_every_service_is_rated_2_5_or_better(installed: Tree, tmp_path: Path) -> None:
    units = _units_as_installed(installed, tmp_path / "units")
    ratings = {}
    for unit in sorted(units.glob("*.service")):
        result = _analyze("security", "--offline=yes", unit.name, cwd=units)
        match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
        assert match, result.stdout + result.stderr
        ratings[unit.name] = float(match.group(1))
    assert set(ratings) == {"gate-reader.service", "gate-reader-sync.service", "gate-reader-refresh.service"}
    assert {name: r for name, r in ratings.items() if r > 2.5} == {}


@needs_analyze
@pytest.mark.parametrize("interval", [10, 15, 30, 60, 120, 300, 900, 3600, 7200, 86400])
def test_sync_period_is_interval_s_on_the_calendar(interval: int) -> None:
    spec = site.calendar_spec(interval)
    result = subprocess.run(["systemd-analyze", "calendar", "--iterations=4", spec], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "TZ": "UTC"})
    assert result.returncode == 0, result.stderr
    times = [datetime.strptime(m, "%Y-%m-%d %H:%M:%S")
             for m in re.findall(r"^\s+(?:Next elapse|Iter\. #\d+): \w+ (\S+ \S+) UTC$", result.stdout, re.M)]
    assert len(times) == 4, result.stdout
    assert {(b - a).total_seconds() for a, b in itertools.pairwise(times)} == {interval}


@pytest.mark.parametrize("interval", [45, 90, 7, 5000, 0, 86401, True, 30.0, "30"])
def test_sync_period_that_a_calendar_cannot_keep_is_refused(interval: object, tmp_path: Path) -> None:
    config = tmp_path / "gate.toml"
    value = {True: "true", "30": '"30"'}.get(interval, interval) if not isinstance(interval, float) else "30.0"
    config.write_text(f"[sync]\ninterval_s = {value}\n")
    with pytest.raises(site.SiteError, match=r"^sync\.interval_s: "):
        site.load_site(config)


def test_shipped_timer_default_matches_interval_s_default() -> None:
    timer = configparser.ConfigParser(strict=False, interpolation=None)
    timer.read(SYSTEMD / "gate-reader-sync.timer")
    assert timer["Timer"]["OnCalendar"] == site.calendar_spec(site.DEFAULT_INTERVAL_S)
    assert timer["Timer"]["Persistent"] == "true"
    assert timer["Timer"]["RandomizedDelaySec"] == f"{site.DEFAULT_INTERVAL_S}s"


def test_every_group_a_unit_names_is_made_by_sysusers(tmp_path: Path) -> None:
    sysusers = (SYSTEMD / "sysusers.d" / "gate-reader.conf").read_text()
    made = {line.split()[1] for line in sysusers.splitlines() if line[:2] in ("u ", "g ")}
    named: set[str] = set()
    texts = [unit.read_text() for unit in SYSTEMD.glob("gate-reader*.service")]
    # the site drop-in, for a gate with one reader of each kind
    config = tmp_path / "gate.toml"
    config.write_text('[[readers]]\ndriver = "nfc"\ndevice = "usb"\n[[readers]]\ndriver = "camera"\ndevice = 0\n'
                      '[[readers]]\ndriver = "scanner"\ndevice = "/dev/ttyUSB0"\n')
    texts.append(site.render_service_dropin(site.load_site(config), str(config)))
    for text in texts:
        if "User=gatepass-centre" in text:
            continue  # the centre's machine, not a gate: its user is the centre's own
        for key in ("User", "Group", "SupplementaryGroups"):
            for value in re.findall(rf"^{key}=(.*)$", text, re.M):
                named.update(value.split())
    assert {"gate-reader", "gpio", "plugdev", "video", "dialout"} <= named <= made


def test_hardware_watchdog_leaves_margin_below_the_pi_maximum() -> None:
    conf = configparser.ConfigParser()
    conf.read(SYSTEMD / "system.conf.d" / "gate-reader-watchdog.conf")
    seconds = int(conf["Manager"]["RuntimeWatchdogSec"].removesuffix("s"))
    assert 0 < seconds <= 12  # bcm2835-wdt counts to ~15 s at most


_RULE_TOKEN = re.compile(r'(?P<key>[A-Z_]+)(?P<attr>\{[\w.]+\})?(?P<op>==|!=|\+=|:=|=)"(?P<value>[^"]*)"')
_MATCH_KEYS = {"ACTION", "SUBSYSTEM", "KERNEL", "ENV", "ATTR", "ATTRS"}
_ASSIGN_KEYS = {"GROUP", "MODE", "SYMLINK", "ENV", "GOTO", "LABEL"}


def _udev_rules() -> list[list[re.Match[str]]]:
    """Each rule line as its KEY{attr}OP"value" tokens; a line those do not make up exactly
    (stray text, a missing comma or quote) fails."""
    rules = []
    for line in (SYSTEMD / "udev" / "70-gate-reader.rules").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        tokens = list(_RULE_TOKEN.finditer(line))
        assert ", ".join(t.group(0) for t in tokens) == line, f"not udev rule syntax: {line}"
        rules.append(tokens)
    return rules


def test_udev_rules_are_well_formed_and_their_labels_exist() -> None:
    rules = _udev_rules()
    labels = {t["value"] for r in rules for t in r if t["key"] == "LABEL"}
    for rule in rules:
        for token in rule:
            if token["op"] in ("==", "!="):
                assert token["key"] in _MATCH_KEYS, token.group(0)
            else:
                assert token["key"] in _ASSIGN_KEYS, token.group(0)
            if token["key"] == "GOTO":
                assert token["value"] in labels
            if token["key"] == "MODE":
                assert token["value"] == "0660"  # never world-accessible


def test_every_usb_reader_nfcpy_drives_has_a_udev_rule() -> None:
    device = pytest.importorskip("nfc.clf.device")
    covered = set()
    for rule in _udev_rules():
        fields = {(t["key"], t["attr"]): t["value"] for t in rule}
        if fields.get(("GROUP", None)) == "plugdev":
            covered.add((int(fields[("ATTR", "{idVendor}")], 16), int(fields[("ATTR", "{idProduct}")], 16)))
    assert covered == set(device.usb_device_map)


def test_kernel_nfc_drivers_are_blacklisted() -> None:
    text = (SYSTEMD / "modprobe.d" / "gate-reader-nfc.conf").read_text()
    blacklisted = {line.split()[1] for line in text.splitlines() if line.startswith("blacklist ")}
    # the USB drivers that claim nfcpy's readers (pn533_usb: PN531/PN533/ACR122U/RC-S370,
    # port100: RC-S380), the other PN533 transports, and the core they pull in
    assert {"nfc", "pn533", "pn533_usb", "port100", "pn533_i2c", "pn532_uart"} <= blacklisted
