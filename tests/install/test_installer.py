"""scripts/install.sh run for real into scratch trees: where files land and with which modes,
idempotence, upgrade, uninstall, and bad input stopping it before it changes anything."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.install.trees import (
    CMDLINE_TXT,
    CONFIG_TXT,
    PIN_FACTORY,
    REPO,
    SITE_CONFIG,
    Tree,
    make_boot,
    replace_text,
    run_install,
    tools_missing,
    tree_sum,
)

GATE_UNITS = ("gate-reader.service", "gate-reader-sync.service", "gate-reader-sync.timer")
TEST_TOOLS = ("pytest", "hypothesis", "ruff", "pycose", "pyzbar")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _owner(tree: Tree, path: Path) -> tuple[int, int]:
    st = path.lstat()
    return st.st_uid, st.st_gid


def test_files_land_where_they_belong_with_their_modes(installed: Tree) -> None:
    t = installed
    gate = t.ids("gate-reader")
    expected = {  # path: (mode, owner uid, owner gid)
        "/etc/gate-reader": (0o750, 0, gate),
        "/etc/gate-reader/gate-reader.toml": (0o640, 0, gate),
        "/etc/gate-reader/root.json": (0o644, 0, 0),
        "/etc/gate-reader/gate-reader.example.toml": (0o644, 0, 0),
        "/var/lib/gate-reader": (0o700, gate, gate),
        "/opt/gate-reader": (0o755, 0, 0),
        "/usr/local/lib/sysusers.d/gate-reader.conf": (0o644, 0, 0),
        "/usr/local/lib/tmpfiles.d/gate-reader.conf": (0o644, 0, 0),
        "/usr/local/lib/systemd/journald.conf.d/gate-reader.conf": (0o644, 0, 0),
        "/usr/local/lib/systemd/system.conf.d/gate-reader-watchdog.conf": (0o644, 0, 0),
        "/etc/udev/rules.d/70-gate-reader.rules": (0o644, 0, 0),
        "/etc/modprobe.d/gate-reader-nfc.conf": (0o644, 0, 0),
        "/etc/systemd/system/gate-reader.service.d/50-site.conf": (0o644, 0, 0),
        "/etc/systemd/system/gate-reader-sync.timer.d/50-site.conf": (0o644, 0, 0),
        "/opt/gate-reader/scripts/install.sh": (0o755, 0, 0),
        "/opt/gate-reader/scripts/install_files.sh": (0o644, 0, 0),
        "/opt/gate-reader/scripts/install_site.py": (0o644, 0, 0),
        "/opt/gate-reader/scripts/install_bootfiles.py": (0o644, 0, 0),
        "/opt/gate-reader/scripts/install_wheels.py": (0o644, 0, 0),
        "/opt/gate-reader/docs/install-guide.md": (0o644, 0, 0),
        **{f"/usr/local/lib/systemd/system/{unit}": (0o644, 0, 0) for unit in GATE_UNITS},
    }
    as_root = os.geteuid() == 0  # as another user the installer cannot chown, and says so
    wrong = {}
    for name, (mode, uid, gid) in expected.items():
        path = t.path(name)
        got = (_mode(path), *_owner(t, path)) if path.exists() else None
        if got != ((mode, uid, gid) if as_root else (mode, *_owner(t, path))):
            wrong[name] = got
    assert wrong == {}
    # the shipped files are the repository's, byte for byte (never edited: site values are drop-ins)
    for unit in GATE_UNITS:
        assert t.path(f"/usr/local/lib/systemd/system/{unit}").read_bytes() == (REPO / "systemd" / unit).read_bytes()
    assert t.path("/etc/gate-reader/gate-reader.toml").read_text() == SITE_CONFIG
    # the user: a system user without a login
    passwd = {line.split(":")[0]: line.split(":") for line in t.path("/etc/passwd").read_text().splitlines()}
    assert passwd["gate-reader"][5:] == ["/var/lib/gate-reader", "/usr/sbin/nologin"]
    assert int(passwd["gate-reader"][2]) < 1000
    # enabled: the daemon at boot, the sync timer with the timers
    wants = t.path("/etc/systemd/system")
    assert (wants / "multi-user.target.wants/gate-reader.service").is_symlink()
    assert (wants / "timers.target.wants/gate-reader-sync.timer").is_symlink()
    # the command, through the environment link the units name
    assert t.path("/usr/local/bin/gate-reader").readlink() == Path("/opt/gate-reader/.venv/bin/gate-reader")
    venv_link = t.path("/opt/gate-reader/.venv")
    assert venv_link.is_symlink() and str(venv_link.readlink()).startswith("venvs/0.1.0-")
    assert (venv_link / ".gate-reader-complete").read_text().strip() == venv_link.readlink().name


def test_production_environment_has_the_program_and_no_test_tools(installed: Tree) -> None:
    venv = installed.path("/opt/gate-reader/.venv")
    result = subprocess.run([str(venv / "bin" / "gate-reader"), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "verify" in result.stdout
    listed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
                            capture_output=True, text=True, timeout=60, check=True).stdout.lower()
    names = {line.split("==")[0] for line in listed.splitlines()}
    assert "gate-reader" in names and "nfcpy" in names and "opencv-python-headless" in names
    # the metrics extra, always: a config that sets [metrics] listen later finds it there
    assert "prometheus-client" in names or "prometheus_client" in names
    assert names.isdisjoint(TEST_TOOLS)
    # a real install, not an editable link back into the source tree
    assert not list((venv / "lib").glob("python3*/site-packages/__editable__*"))


def test_boot_config_block_and_serial_console(installed: Tree) -> None:
    config = installed.path("/boot/firmware/config.txt").read_text()
    assert config.startswith(CONFIG_TXT)  # the Pi's own lines untouched, the block after them
    block = config[config.index("# BEGIN gate-reader"):]
    assert "\ngpio=17=op,dh\n" in block  # fail_safe on an active-high board: coil on = pin high
    assert "\nenable_uart=1\n" in block and "\ndtparam=watchdog=on\n" in block
    assert block.endswith("# END gate-reader\n")
    cmdline = installed.path("/boot/firmware/cmdline.txt").read_text()
    assert cmdline == CMDLINE_TXT.replace("console=serial0,115200 ", "")
    assert installed.path("/boot/firmware/cmdline.txt.gate-reader-orig").read_text() == CMDLINE_TXT


def test_sync_timer_dropin_carries_interval_s(installed: Tree) -> None:
    dropin = installed.path("/etc/systemd/system/gate-reader-sync.timer.d/50-site.conf").read_text()
    assert "\nOnCalendar=\nOnCalendar=*-*-* *:*:00\nRandomizedDelaySec=60s\n" in dropin


def test_second_install_changes_nothing(installed: Tree) -> None:
    before = tree_sum(installed.root)
    result = run_install(installed.root, "--config", installed.inputs / "site.toml",
                         "--root-json", installed.inputs / "root.json")
    assert tree_sum(installed.root) == before
    assert "wrote" not in result.stdout and "is current" in result.stdout


def test_a_run_prints_nothing_on_stderr_but_its_own_warnings(cloned: Tree) -> None:
    """A shell or tool error (a missing file read, a command's complaint) would scare the
    installer's reader and hide the real warnings: stderr carries the installer's lines only."""
    for args in ((), ("--rtc", "ds3231"), ("--uninstall",)):
        result = run_install(cloned.root, *args)
        stray = [line for line in result.stderr.splitlines() if not line.startswith("install: WARNING: ")]
        assert stray == [], args


def test_edited_config_is_kept_and_its_values_rendered(cloned: Tree) -> None:
    config = cloned.path("/etc/gate-reader/gate-reader.toml")
    edited = SITE_CONFIG.replace("interval_s = 60", "interval_s = 120  # edited on site")
    replace_text(config, edited)
    other = cloned.inputs / "site.toml"  # the site file given again: must not replace the edit
    service_dropin = cloned.path("/etc/systemd/system/gate-reader.service.d/50-site.conf")
    before_edit = service_dropin.read_text()
    result = run_install(cloned.root, "--config", other)
    # the daemon reads its config once: the edit changes its drop-in, so a live install restarts it
    assert service_dropin.read_text() != before_edit
    assert config.read_text() == edited
    assert "kept the gate's own /etc/gate-reader/gate-reader.toml" in result.stderr
    dropin = cloned.path("/etc/systemd/system/gate-reader-sync.timer.d/50-site.conf").read_text()
    assert "OnCalendar=*-*-* *:00/2:00\n" in dropin
    # and once more: nothing changes
    before = tree_sum(cloned.root)
    run_install(cloned.root, "--config", other)
    assert tree_sum(cloned.root) == before


def _make_gate_data(tree: Tree) -> dict[str, bytes]:
    """What a gate in service holds: the cache with its event journal, TUF metadata, the gate's
    key, an upload token, the system journal. Returns path -> content."""
    state = tree.path("/var/lib/gate-reader")
    db = sqlite3.connect(state / "cache.db")
    db.execute("CREATE TABLE journal (seq INTEGER PRIMARY KEY, record BLOB)")
    db.executemany("INSERT INTO journal (record) VALUES (?)", [(f"event {i}".encode(),) for i in range(50)])
    db.commit()
    db.close()
    (state / "tuf").mkdir()
    (state / "tuf" / "timestamp.json").write_text('{"signed": {"_type": "timestamp"}}')
    (state / "gate.key").write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot a real key\n-----END PRIVATE KEY-----\n")
    (state / "gate.key").chmod(0o600)
    replace_text(tree.path("/etc/gate-reader/upload.token"), "token-for-the-collector\n")
    journal = tree.path("/var/log/journal/0123456789abcdef/system.journal")
    journal.parent.mkdir(parents=True)
    journal.write_bytes(b"LPKSHHRH" + bytes(64))
    paths = [*state.rglob("*"), *tree.path("/etc/gate-reader").iterdir(), journal]
    return {str(p): p.read_bytes() for p in paths if p.is_file()}


def _source_copy(dest: Path) -> Path:
    """The project's source as a newer release would ship it: one module changed."""
    keep = ("pyproject.toml", "README.md", "reader", "drivers", "offline_cache", "scripts", "systemd", "config", "docs")
    dest.mkdir()
    for name in keep:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    with (dest / "reader" / "__init__.py").open("a") as f:
        f.write("# the next release\n")
    return dest


def test_upgrade_from_a_wheel_directory_keeps_config_keys_cache_and_journal(cloned: Tree, tmp_path: Path) -> None:
    """The next release, installed offline as from a USB stick: its wheel directory made with
    `pip wheel . -w DIR` (as the guide says), then install.sh --wheels DIR over the gate."""
    data = _make_gate_data(cloned)
    metas = {p: (Path(p).stat().st_mode, Path(p).stat().st_uid) for p in data}
    old = cloned.path("/opt/gate-reader/.venv").readlink()
    stale = cloned.path("/opt/gate-reader/venvs/0.0.9-000000000000")  # two releases back
    stale.mkdir()
    newer = _source_copy(tmp_path / "newer")
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
                    f"{newer}[metrics]", "-w", str(wheels)], check=True, capture_output=True, timeout=600)
    result = run_install(cloned.root, "--wheels", wheels, src=newer)
    new = cloned.path("/opt/gate-reader/.venv").readlink()
    assert new != old and "building the environment" in result.stdout
    assert (cloned.path("/opt/gate-reader/.venv") / "bin" / "gate-reader").exists()
    # the environment before stays for a rollback; older ones go
    assert sorted(p.name for p in cloned.path("/opt/gate-reader/venvs").iterdir()) == sorted([old.name, new.name])
    assert {p: Path(p).read_bytes() for p in data} == data
    assert {p: (Path(p).stat().st_mode, Path(p).stat().st_uid) for p in data} == metas
    rows = sqlite3.connect(cloned.path("/var/lib/gate-reader/cache.db")).execute("SELECT count(*) FROM journal")
    assert rows.fetchone() == (50,)


def test_uninstall_keeps_journal_and_cache(cloned: Tree) -> None:
    data = _make_gate_data(cloned)
    # as the guide says: with the installer's copy on the gate, which removes its own folder
    result = run_install(cloned.root, "--uninstall", src=cloned.path("/opt/gate-reader"))
    assert {p: Path(p).read_bytes() for p in data} == data
    assert "kept /etc/gate-reader" in result.stdout
    gone = ["/opt/gate-reader", "/usr/local/bin/gate-reader", "/etc/udev/rules.d/70-gate-reader.rules",
            "/etc/modprobe.d/gate-reader-nfc.conf", "/etc/systemd/system/gate-reader.service.d",
            "/etc/systemd/system/multi-user.target.wants/gate-reader.service",
            "/etc/systemd/system/timers.target.wants/gate-reader-sync.timer",
            *(f"/usr/local/lib/systemd/system/{unit}" for unit in GATE_UNITS)]
    assert [p for p in gone if cloned.path(p).exists() or cloned.path(p).is_symlink()] == []
    # config.txt is the Pi's own again
    assert cloned.path("/boot/firmware/config.txt").read_text() == CONFIG_TXT


def test_purge_removes_config_cache_and_keys(cloned: Tree) -> None:
    _make_gate_data(cloned)
    replace_text(cloned.path("/boot/firmware/config.txt"), CONFIG_TXT + "# BEGIN gate-reader\n")  # broken
    before = tree_sum(cloned.root)
    result = run_install(cloned.root, "--uninstall", "--purge", check=False)
    assert result.returncode == 2 and "block is broken" in result.stderr
    assert tree_sum(cloned.root) == before  # refused before removing anything
    replace_text(cloned.path("/boot/firmware/config.txt"), CONFIG_TXT)
    run_install(cloned.root, "--uninstall", "--purge")
    assert not cloned.path("/etc/gate-reader").exists()
    assert not cloned.path("/var/lib/gate-reader").exists()
    assert cloned.path("/var/log/journal/0123456789abcdef/system.journal").exists()  # the system's, not ours


@pytest.mark.parametrize(("change", "message"), [
    (lambda t: replace_text(t.path("/etc/gate-reader/gate-reader.toml"),
                            SITE_CONFIG.replace('"fail_safe"', '"open"')), "door.lock_type"),
    (lambda t: replace_text(t.path("/etc/gate-reader/gate-reader.toml"), "[sync\n"), "not valid TOML"),
    (lambda t: replace_text(t.path("/etc/gate-reader/gate-reader.toml"),
                            SITE_CONFIG.replace('device = "/dev/video0"', 'device = "rtsp://cam/1"')),
     "readers[3].device"),
    (lambda t: replace_text(t.path("/boot/firmware/config.txt"),
                            t.path("/boot/firmware/config.txt").read_text().replace("# END gate-reader\n", "")),
     "block is broken"),
], ids=["bad-value", "not-toml", "stream-camera", "broken-boot-block"])
def test_bad_input_stops_the_installer_before_any_change(cloned: Tree, change, message: str) -> None:
    change(cloned)
    before = tree_sum(cloned.root)
    result = run_install(cloned.root, check=False)
    assert result.returncode == 2 and message in result.stderr
    assert tree_sum(cloned.root) == before


def _edit_config(tree: Tree, old: str, new: str) -> None:
    assert old in SITE_CONFIG
    replace_text(tree.path("/etc/gate-reader/gate-reader.toml"), SITE_CONFIG.replace(old, new))


@pytest.mark.parametrize(("old", "new", "key"), [
    ("relay = { pin = 17, active_high = true }", "relay = { pin = 17, active_high = true }\ngreen_led = { pin = 99 }",
     "door.green_led.pin: 99 is not a GPIO number"),
    ('driver = "scanner"', 'driver = "barcode"', "readers[2].driver"),
    ('metadata_url = "https://pki.example.gov/gatepass/metadata/"', 'metadata_url = "pki.example.gov/metadata"',
     "sync.metadata_url: must be an http(s) URL"),
    ('device = "/dev/video0"', 'device = "/dev/video0"\nfocus = "sharp"', "readers[3].focus: unknown key"),
    ('pin_factory = "', 'pin_factory = "rpigpio"\n# was "', "door.pin_factory: pin factory 'rpigpio' cannot load"),
], ids=["wrong-pin", "unknown-driver", "bad-url", "unknown-driver-key", "pin-factory-not-here"])
def test_a_config_the_gate_would_refuse_stops_the_install_with_nothing_half_started(
        cloned: Tree, old: str, new: str, key: str) -> None:
    """The installed gate's config edited wrong, then the installer run (an upgrade, a re-run):
    it stops with the key path, and nothing changed: the running version, its units, its enable
    links and the config stay, so the daemon goes on running what it ran."""
    _edit_config(cloned, old, new)
    before = tree_sum(cloned.root)
    result = run_install(cloned.root, check=False)
    assert result.returncode == 2 and key in result.stdout + result.stderr, result.stdout + result.stderr
    assert tree_sum(cloned.root) == before
    assert "nothing was installed or started" in result.stderr or "readers[2].driver" in result.stderr


def test_a_config_with_a_metrics_endpoint_installs_and_the_daemon_would_start(cloned: Tree) -> None:
    """[metrics] listen needs prometheus-client: the environment always has it, so the new
    program's check-config (the daemon's own start check) passes, and the drop-in opens loopback."""
    _edit_config(cloned, "[door]", '[metrics]\nlisten = "127.0.0.1:9101"\n\n[door]')
    result = run_install(cloned.root)
    assert "install: check-config: error" not in result.stdout
    assert "0 errors" in result.stdout and "environment" in result.stdout and "is current" in result.stdout
    dropin = cloned.path("/etc/systemd/system/gate-reader.service.d/50-site.conf").read_text()
    assert "\nRestrictAddressFamilies=AF_INET AF_INET6\nIPAddressAllow=localhost\n" in dropin


def test_a_first_install_with_a_refused_config_leaves_only_the_built_environment(tmp_path: Path) -> None:
    """Nothing half-started on a first install either: no user, config, unit, enable link, udev
    rule or boot setting; only the new environment, complete, so the next run does not build it
    again (it is built first because the version about to run checks the config)."""
    if tools_missing():
        pytest.skip(tools_missing())
    root = tmp_path / "root"
    make_boot(root)
    site_toml = tmp_path / "site.toml"
    site_toml.write_text(SITE_CONFIG.replace('metadata_url = "https://pki.example.gov/gatepass/metadata/"',
                                             'metadata_url = "ftp://pki.example.gov/metadata/"'))
    boot_before = tree_sum(root)
    result = run_install(root, "--config", site_toml, check=False)
    assert result.returncode == 2 and "install: check-config: error: sync.metadata_url" in result.stdout
    assert "nothing was installed or started" in result.stderr
    left = {p for p in tree_sum(root) if not p.startswith("opt/gate-reader/venvs/")}
    assert left == set(boot_before) | {"opt", "opt/gate-reader", "opt/gate-reader/venvs"}
    assert {k: v for k, v in tree_sum(root).items() if k in boot_before} == boot_before
    (venv,) = root.joinpath("opt/gate-reader/venvs").iterdir()
    assert (venv / ".gate-reader-complete").is_file()
    # fixed, the next run uses that environment and installs
    site_toml.write_text(SITE_CONFIG)
    result = run_install(root, "--config", site_toml)
    assert "building the environment" not in result.stdout
    assert root.joinpath("etc/systemd/system/multi-user.target.wants/gate-reader.service").is_symlink()
    shutil.rmtree(root, ignore_errors=True)


def _fake_wheel(path: Path, requires: list[str]) -> None:
    import zipfile

    metadata = "Metadata-Version: 2.1\nName: gate-reader\nVersion: 0.1.0\n" + "".join(
        f"Requires-Dist: {line}\n" for line in requires)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("gate_reader-0.1.0.dist-info/METADATA", metadata)


def test_a_wheel_directory_without_the_metrics_wheel_is_refused_before_any_change(tmp_path: Path) -> None:
    root = tmp_path / "root"
    make_boot(root)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _fake_wheel(wheels / "gate_reader-0.1.0-py3-none-any.whl",
                ["cbor2>=6.3", 'prometheus-client>=0.17; extra == "metrics"', 'pytest>=8; extra == "test"'])
    (wheels / "cbor2-6.3.0-py3-none-any.whl").write_bytes(b"zip")
    site_toml = tmp_path / "site.toml"
    site_toml.write_text(SITE_CONFIG)
    before = tree_sum(root)
    result = run_install(root, "--config", site_toml, "--wheels", wheels, check=False)
    assert result.returncode == 2, result.stderr
    assert "no wheel for prometheus-client, which gate-reader[metrics] needs" in result.stderr
    assert "pip wheel '.[metrics]' -w DIR" in result.stderr
    assert tree_sum(root) == before


def test_bad_arguments_stop_a_fresh_install_before_any_change(tmp_path: Path) -> None:
    root = tmp_path / "root"
    make_boot(root)
    bad_root = tmp_path / "root.json"
    bad_root.write_text('{"signed": {"_type": "targets"}}')
    before = tree_sum(root)
    for args, message in [
        (("--root-json", bad_root), "not signed TUF root metadata"),
        (("--config", tmp_path / "missing.toml"), "no such file"),
        (("--rtc", "ds3231; reboot"), "--rtc"),
        (("--bogus",), "unknown argument"),
    ]:
        result = run_install(root, *args, check=False)
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)
        assert tree_sum(root) == before


def test_a_pi_without_config_txt_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    site_toml = tmp_path / "site.toml"
    site_toml.write_text(SITE_CONFIG.replace(f'pin_factory = "{PIN_FACTORY}"', 'pin_factory = "lgpio"'))
    result = run_install(root, "--config", site_toml, check=False)
    assert result.returncode == 2 and "config.txt" in result.stderr and "relay" in result.stderr
    assert list(root.iterdir()) == []


def test_a_config_without_a_door_is_refused_before_any_change(tmp_path: Path) -> None:
    """The example config (what a first install without --config would use) has [door] commented
    out: check-config passes it (the one-shot jobs need no door), but the daemon the installer
    enables and starts would refuse to start: half-started. Refused first, naming the key."""
    root = tmp_path / "root"
    make_boot(root)
    before = tree_sum(root)
    result = run_install(root, check=False)
    assert result.returncode == 2 and "gate-reader.example.toml: door: missing" in result.stderr
    assert "--config SITE.toml" in result.stderr
    assert tree_sum(root) == before


@pytest.mark.parametrize(("model", "device", "warned"), [
    ("Raspberry Pi 5 Model B Rev 1.0", "tty:serial0:pn532", "/dev/serial0 is the debug connector"),
    ("Raspberry Pi 4 Model B Rev 1.5", "tty:AMA0:pn532", "/dev/ttyAMA0 is the Bluetooth UART"),
    ("Raspberry Pi 5 Model B Rev 1.0", "tty:AMA0:pn532", None),
    ("Raspberry Pi 4 Model B Rev 1.5", "tty:serial0:pn532", None),
])
def test_a_uart_name_wrong_for_the_pi_model_is_warned(cloned: Tree, model: str, device: str,
                                                      warned: str | None) -> None:
    model_file = cloned.path("/proc/device-tree/model")
    model_file.parent.mkdir(parents=True)
    model_file.write_bytes(model.encode() + b"\0")
    replace_text(cloned.path("/etc/gate-reader/gate-reader.toml"),
                 SITE_CONFIG.replace('"tty:serial0:pn532"', f'"{device}"'))
    result = run_install(cloned.root)
    if warned:
        assert warned in result.stderr
    else:
        assert "UART" not in result.stderr and "debug connector" not in result.stderr


def test_time_sync_is_enabled_chrony_first_and_an_rtc_reported(cloned: Tree) -> None:
    units = cloned.path("/usr/lib/systemd/system")
    units.mkdir(parents=True)
    (units / "systemd-timesyncd.service").write_text("[Service]\nExecStart=/bin/true\n[Install]\n"
                                                     "WantedBy=sysinit.target\n")
    rtc = cloned.path("/sys/class/rtc/rtc0")
    rtc.mkdir(parents=True)
    (rtc / "name").write_text("rpi-rtc soc:rpi_rtc\n")
    result = run_install(cloned.root)
    assert cloned.path("/etc/systemd/system/sysinit.target.wants/systemd-timesyncd.service").is_symlink()
    assert "real-time clock found: rtc0 (rpi-rtc soc:rpi_rtc)" in result.stdout
    # chrony, where installed, is the one enabled
    (units / "chrony.service").write_text("[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n")
    result = run_install(cloned.root)
    assert "chrony.service enabled" in result.stdout
    assert cloned.path("/etc/systemd/system/multi-user.target.wants/chrony.service").is_symlink()


def test_an_rtc_chip_given_once_stays_until_taken_out(cloned: Tree) -> None:
    config_txt = cloned.path("/boot/firmware/config.txt")
    run_install(cloned.root, "--rtc", "ds3231")
    assert "\ndtoverlay=i2c-rtc,ds3231\n" in config_txt.read_text()
    before = tree_sum(cloned.root)
    run_install(cloned.root)  # an upgrade without --rtc must not lose the clock
    assert tree_sum(cloned.root) == before
    run_install(cloned.root, "--rtc", "none")
    assert "i2c-rtc" not in config_txt.read_text()


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_installer_scripts_pass_shellcheck() -> None:
    scripts = [REPO / "scripts" / "install.sh", REPO / "scripts" / "install_files.sh"]
    result = subprocess.run(["shellcheck", "-x", *map(str, scripts)], capture_output=True, text=True, timeout=120,
                            cwd=REPO)
    assert result.returncode == 0, result.stdout
