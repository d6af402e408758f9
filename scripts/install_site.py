"""The installer's helper: what scripts/install.sh derives from a gate's config, and the text
edits it makes to boot files. Standard library only (Python 3.11+, tomllib): it runs with the
system's python3 before the gate's virtual environment exists.

Subcommands (each prints an error naming the config key, exit 2, and writes nothing on bad
input):

- ``render CONFIG OUTDIR [--rtc MODEL]``: the site drop-ins (devices, groups, timer period) and
  the config.txt block, as files in OUTDIR, plus ``summary`` (key=value lines for the shell).
- ``splice FILE BLOCKFILE`` / ``unsplice FILE``: FILE's text with the managed block put in or
  replaced in place, or taken out, on stdout.
- ``strip-console FILE``: cmdline.txt without a serial console on the header UART, on stdout.
- ``block-rtc FILE``: the RTC model the block in FILE names (empty when none).
- ``tag SRC [--extras A,B] [--wheels DIR]``: the version-hash name of the environment this source
  makes with those extras; from a wheel directory, also a check that the extras' wheels are there.
- ``check-root-json FILE``: refuse a file that is not TUF root metadata.

Only the keys the installer needs are read here; the daemon checks the whole file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import posixpath
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from install_bootfiles import BEGIN, END, SiteError, block_rtc, splice, strip_console, unsplice
from install_wheels import source_tag

__all__ = ["BEGIN", "END", "SiteError", "block_rtc", "source_tag", "splice", "strip_console", "unsplice"]  # re-exported

LOCK_TYPES = ("fail_secure", "fail_safe", "turnstile")
PIN_FACTORIES = ("lgpio", "rpigpio", "mock")
DRIVERS = ("nfc", "camera", "scanner", "wiegand")
# The shipped defaults (drivers/pins.py DEFAULT_PINS and drivers/door.py DoorSettings): the
# relay on BCM 17, active high, an electric strike.
DEFAULT_RELAY_PIN = 17
DEFAULT_INTERVAL_S = 30
# Below 10 s a fleet of gates would load the server for no gain (a sync is bounded by
# [sync] total_timeout_s anyway); above a day the lists go stale first.
MIN_INTERVAL_S, MAX_INTERVAL_S = 10, 86400
# The header UART (GPIO 14/15) under the names Raspberry Pi OS gives it: serial0 (ttyS0, the
# mini UART, on a Pi 3 or 4 with Bluetooth on) and ttyAMA0 on a Pi 5 (on a Pi 3 or 4 that one
# is Bluetooth's unless dtoverlay=disable-bt).
HEADER_UARTS = ("serial0", "ttyAMA0", "ttyS0")
_RTC_MODEL = re.compile(r"^[a-z0-9]{2,16}$")
_MAX_CONFIG_BYTES = 1 << 20
CONFIG_DIR = "/etc/gate-reader"  # where the installed config lives on the gate


@dataclass(frozen=True)
class Device:
    key: str  # readers[N].device
    allow: tuple[str, ...]  # DeviceAllow= specifiers
    group: str  # the group that opens it
    uart: bool = False  # on the Pi's header UART: needs enable_uart and no console there
    name: str = ""  # the /dev name, for a serial port


@dataclass(frozen=True)
class Site:
    interval_s: int
    pin_factory: str
    lock_type: str
    relay_pin: int
    relay_active_high: bool
    devices: tuple[Device, ...]
    sync_root: str = "/etc/gate-reader/root.json"  # where the pinned TUF root goes, as the gate sees it
    metrics_dir: str | None = None  # [metrics] textfile's folder: the one place outside its own the daemon writes
    metrics_listen: bool = False  # [metrics] listen: a loopback port, which the unit otherwise forbids
    has_door: bool = True  # a [door] table: without one `gate-reader run`, which the installer starts, refuses

    @property
    def uart(self) -> bool:
        return any(d.uart for d in self.devices)

    @property
    def relay_secured_high(self) -> bool:
        """The relay pin's level when the door is secured: coil off for an electric strike or
        a turnstile, coil on for a maglock (fail_safe); the pin is the coil's level when the
        board is active high, the inverse when active low."""
        coil_on = self.lock_type == "fail_safe"
        return coil_on == self.relay_active_high


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _table(data: dict, key: str) -> dict:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise SiteError(f"{key}: must be a table")
    return value


def _tty_device(key: str, name: str) -> Device:
    """A serial port by its /dev name (ttyACM0, serial0, serial/by-id/..., gate/scanner-...)."""
    uart = name in HEADER_UARTS
    for prefix, allow in (("ttyACM", ("char-ttyACM",)), ("ttyUSB", ("char-ttyUSB",)),
                          ("ttyAMA", ("char-ttyAMA",)), ("ttyS", ("char-ttyS",))):
        if re.fullmatch(prefix + r"\d*", name):
            return Device(key, allow, "dialout", uart, name)
    if re.fullmatch(r"serial[01]", name):
        # a link to ttyAMA0 or ttyS0, depending on the Pi model and Bluetooth
        return Device(key, ("char-ttyAMA", "char-ttyS"), "dialout", name == "serial0", name)
    if re.fullmatch(r"(serial/by-(id|path)|gate)/[\w.:+@-]+", name):
        # names udev gives USB serial ports: a CDC-ACM scanner or a USB-serial adapter
        return Device(key, ("char-ttyACM", "char-ttyUSB"), "dialout", False, name)
    raise SiteError(f"{key}: {name!r} is not a serial port the installer knows (ttyACM*, ttyUSB*, ttyAMA*, "
                    "ttyS*, serial0, serial/by-id/..., serial/by-path/... or gate/scanner-...)")


def _reader_device(index: int, reader: object) -> Device | None:
    key = f"readers[{index}]"
    if not isinstance(reader, dict):
        raise SiteError(f"{key}: must be a table")
    driver = reader.get("driver")
    if driver not in DRIVERS:
        raise SiteError(f"{key}.driver: {driver!r} is not one of {', '.join(DRIVERS)}")
    if driver == "wiegand":
        return None  # two GPIO lines: covered by the door's GPIO access
    key += ".device"
    device = reader.get("device")
    if driver == "camera":
        if _is_int(device) and 0 <= device <= 63:
            return Device(key, ("char-video4linux",), "video")
        if isinstance(device, str) and re.fullmatch(r"/dev/(video\d+|v4l/by-(id|path)/[\w.:+@-]+)", device) \
                and ".." not in device:
            return Device(key, ("char-video4linux",), "video")
        raise SiteError(f"{key}: {device!r} is not a V4L2 camera (an index, /dev/videoN or /dev/v4l/by-id/...); "
                        "streams and files need access the installed daemon does not have")
    if not isinstance(device, str) or not device or len(device) > 256:
        raise SiteError(f"{key}: must be a device name")
    if any(part in (".", "..") for part in device.split("/")):
        raise SiteError(f"{key}: {device!r}: a device is named without . or .. in its path")
    if driver == "scanner":
        if not device.startswith("/dev/"):
            raise SiteError(f"{key}: {device!r} is not a serial device under /dev (pyserial URLs are for tests)")
        return _tty_device(key, device.removeprefix("/dev/"))
    # nfc: an nfcpy path
    if re.fullmatch(r"usb(:[0-9a-fA-F]{1,4}(:[0-9a-fA-F]{1,4})?)?", device):
        return Device(key, ("char-usb_device",), "plugdev")
    match = re.fullmatch(r"tty:([\w.-]+)(:\w+)?", device)
    if match:
        port = match.group(1)
        # nfcpy reads tty:USB0 as /dev/ttyUSB0 (and tty:USB as any of them), otherwise the name as is
        name = f"tty{port}" if re.fullmatch(r"(S|ACM|AMA|USB)\d*", port) else port
        return _tty_device(key, name)
    raise SiteError(f"{key}: {device!r} is not an nfcpy reader path the installer supports "
                    "(usb, usb:VID:PID or tty:PORT:DRIVER; udp: is the simulator)")


def load_site(path: Path) -> Site:
    """The installer's view of a gate's config; SiteError naming the key for a bad value."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SiteError(f"cannot read: {exc.strerror}") from None
    if len(raw) > _MAX_CONFIG_BYTES:
        raise SiteError(f"larger than {_MAX_CONFIG_BYTES} bytes")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SiteError(f"not valid TOML: {exc}") from None

    sync = _table(data, "sync")
    interval = sync.get("interval_s", DEFAULT_INTERVAL_S)
    if not _is_int(interval) or not MIN_INTERVAL_S <= interval <= MAX_INTERVAL_S:
        raise SiteError(f"sync.interval_s: {interval!r} is not a whole number of seconds "
                        f"from {MIN_INTERVAL_S} to {MAX_INTERVAL_S}")
    calendar_spec(interval)  # refuses a period a calendar timer cannot keep
    sync_root = sync.get("root", "/etc/gate-reader/root.json")
    if not isinstance(sync_root, str) or not sync_root or "\0" in sync_root or len(sync_root) > 4096:
        raise SiteError(f"sync.root: {sync_root!r} is not a path")
    # relative paths are taken from the config's directory, as the daemon reads them
    sync_root = posixpath.normpath(posixpath.join(CONFIG_DIR, sync_root))

    door = _table(data, "door")
    pin_factory = door.get("pin_factory", "lgpio")
    if pin_factory not in PIN_FACTORIES:
        raise SiteError(f"door.pin_factory: {pin_factory!r} is not one of {', '.join(PIN_FACTORIES)}")
    lock_type = door.get("lock_type", "fail_secure")
    if lock_type not in LOCK_TYPES:
        raise SiteError(f"door.lock_type: {lock_type!r} is not one of {', '.join(LOCK_TYPES)}")
    relay = door.get("relay", {})
    if not isinstance(relay, dict):
        raise SiteError("door.relay: must be a table such as { pin = 17, active_high = true }")
    pin = relay.get("pin", DEFAULT_RELAY_PIN)
    if not _is_int(pin) or not 0 <= pin <= 27:
        raise SiteError(f"door.relay.pin: {pin!r} is not a GPIO number 0-27")
    active_high = relay.get("active_high", True)
    if not isinstance(active_high, bool):
        raise SiteError(f"door.relay.active_high: {active_high!r} is not true or false")

    readers = data.get("readers", [])
    if not isinstance(readers, list):
        raise SiteError("readers: must be an array of tables ([[readers]])")
    devices = tuple(d for i, r in enumerate(readers) if (d := _reader_device(i, r)) is not None)
    metrics = _table(data, "metrics")
    textfile = metrics.get("textfile")
    if textfile is not None and (not isinstance(textfile, str) or not textfile.endswith(".prom")
                                 or "\0" in textfile or "\n" in textfile or len(textfile) > 4096):
        raise SiteError(f"metrics.textfile: {textfile!r} is not the path of a .prom file")
    metrics_dir = None if textfile is None else posixpath.dirname(posixpath.normpath(
        posixpath.join(CONFIG_DIR, textfile)))
    site = Site(interval, pin_factory, lock_type, pin, active_high, devices, sync_root, metrics_dir,
                "listen" in metrics, "door" in data)
    if site.uart and pin in (14, 15):
        raise SiteError(f"door.relay.pin: GPIO {pin} is the header UART, which a reader here uses")
    return site


def calendar_spec(interval_s: int) -> str:
    """The OnCalendar= expression that fires every ``interval_s`` seconds, evenly: the period
    must divide a minute, an hour or a day, or the gaps would be uneven."""
    for unit, field in ((1, "s"), (60, "m"), (3600, "h")):
        span = unit * {"s": 60, "m": 60, "h": 24}[field]
        if interval_s % unit == 0 and span % interval_s == 0:
            step = interval_s // unit
            every = "" if step == span // unit else f"/{step}"
            if field == "s":
                return f"*-*-* *:*:00{every}"
            if field == "m":
                return f"*-*-* *:00{every}:00"
            return f"*-*-* 00{every}:00:00"
    raise SiteError(f"sync.interval_s: {interval_s} does not divide a minute, an hour or a day evenly "
                    "(e.g. 10, 15, 20, 30, 60, 120, 300, 600, 900, 1800, 3600)")


_HEADER = ("# Rendered by gate-reader's installer from {config}:\n"
           "# edit the config and run the installer again; changes made here are overwritten.\n")


def render_service_dropin(site: Site, config: str, config_sha256: str = "") -> str:
    """gate-reader.service.d/50-site.conf: exactly the devices and groups the site needs. The
    config's hash is in it because the daemon reads its config once, at start: an edited config
    changes this file, and the installer restarts the daemon when one of its files changed."""
    sources: list[tuple[str, tuple[str, ...]]] = []  # (why, DeviceAllow= specifiers)
    groups: list[str] = []
    if site.pin_factory == "lgpio":
        sources.append(("door.pin_factory = lgpio", ("char-gpiochip",)))
        groups.append("gpio")
    elif site.pin_factory == "rpigpio":
        sources.append(("door.pin_factory = rpigpio", ("/dev/gpiomem",)))
        groups.append("gpio")
    for device in site.devices:
        sources.append((device.key, device.allow))
        if device.group not in groups:
            groups.append(device.group)
    stamp = f"# config sha256 {config_sha256}\n" if config_sha256 else ""
    lines = [_HEADER.format(config=config) + stamp + "[Service]", "SupplementaryGroups="]
    if groups:
        lines.append("SupplementaryGroups=" + " ".join(groups))
    lines.append("DeviceAllow=")
    allowed: set[str] = set()
    for why, specs in sources:
        new = [spec for spec in specs if spec not in allowed]
        if new:
            lines.append(f"# {why}")
            lines += [f"DeviceAllow={spec} rw" for spec in new]
            allowed.update(new)
    if site.metrics_dir is not None:  # ProtectSystem=strict: the metrics textfile's folder, and only it
        lines += ["# [metrics] textfile (a missing folder is not an error: the daemon logs that it cannot write)",
                  f"ReadWritePaths=-{site.metrics_dir}"]
    if site.metrics_listen:  # the daemon's config accepts loopback addresses only
        lines += ["# [metrics] listen: a port on the loopback interface, nothing else",
                  "RestrictAddressFamilies=AF_INET AF_INET6", "IPAddressAllow=localhost"]
    return "\n".join(lines) + "\n"


def render_timer_dropin(site: Site, config: str) -> str:
    """gate-reader-sync.timer.d/50-site.conf: the period from [sync] interval_s."""
    return (_HEADER.format(config=config) + "[Timer]\n"
            f"# sync.interval_s = {site.interval_s}\n"
            "OnCalendar=\n"
            f"OnCalendar={calendar_spec(site.interval_s)}\n"
            f"RandomizedDelaySec={site.interval_s}s\n")


def render_boot_block(site: Site, rtc: str | None = None) -> str:
    """The lines between the markers in config.txt. They start in [all] and end in it, so the
    block never changes which models the lines around it apply to."""
    level = "dh" if site.relay_secured_high else "dl"
    coil = "on" if site.lock_type == "fail_safe" else "off"
    polarity = "active high" if site.relay_active_high else "active low"
    lines = [
        BEGIN,
        "# Managed by gate-reader's installer (scripts/install.sh): replaced at each install,",
        "# removed by --uninstall. Change the gate's config and install again, not these lines.",
        "[all]",
        f"# The lock relay from power-on, before any software runs: BCM {site.relay_pin}, relay board {polarity},",
        f"# {site.lock_type}: secured = coil {coil} = pin {'high' if level == 'dh' else 'low'}.",
        f"gpio={site.relay_pin}=op,{level}",
        "# The hardware watchdog, which systemd feeds (RuntimeWatchdogSec).",
        "dtparam=watchdog=on",
    ]
    if site.uart:
        uart_keys = ", ".join(d.key for d in site.devices if d.uart)
        lines += [
            f"# A reader on the header UART, GPIO 14/15 ({uart_keys}): the UART on, no serial console on it.",
            "enable_uart=1",
            "# On a Pi 5 the header UART is ttyAMA0 and needs its overlay (serial0 is the debug connector there).",
            "[pi5]",
            "dtoverlay=uart0-pi5",
            "[all]",
        ]
    if rtc:
        lines += [f"# The real-time clock on I2C (--rtc {rtc}).", f"dtoverlay=i2c-rtc,{rtc}"]
    lines.append(END)
    return "\n".join(lines) + "\n"


def check_root_json(path: Path) -> None:
    """TUF root metadata (python-tuf's JSON), or SiteError saying what it is not."""
    try:
        raw = path.read_bytes()
        if len(raw) > _MAX_CONFIG_BYTES:
            raise SiteError(f"larger than {_MAX_CONFIG_BYTES} bytes")
        meta = json.loads(raw)
    except OSError as exc:
        raise SiteError(f"cannot read: {exc.strerror}") from None
    except ValueError as exc:
        raise SiteError(f"not JSON: {exc}") from None
    signed = meta.get("signed") if isinstance(meta, dict) else None
    if not isinstance(signed, dict) or signed.get("_type") != "root" or not meta.get("signatures"):
        raise SiteError("not signed TUF root metadata (no signed._type = 'root' with signatures)")


def _render(args: argparse.Namespace) -> None:
    if args.rtc is not None and not _RTC_MODEL.fullmatch(args.rtc):
        raise SiteError(f"--rtc: {args.rtc!r} is not an i2c-rtc overlay model name (e.g. ds3231, pcf85063a)")
    site = load_site(args.config)
    config = args.name or str(args.config)
    out: Path = args.out
    digest = hashlib.sha256(args.config.read_bytes()).hexdigest()[:16]
    (out / "gate-reader.service.conf").write_text(render_service_dropin(site, config, digest))
    (out / "gate-reader-sync.timer.conf").write_text(render_timer_dropin(site, config))
    (out / "config.txt.block").write_text(render_boot_block(site, args.rtc))
    summary = {
        "interval_s": site.interval_s, "pin_factory": site.pin_factory, "lock_type": site.lock_type,
        "relay": f"BCM {site.relay_pin} {'active high' if site.relay_active_high else 'active low'}",
        "uart": int(site.uart), "usb_nfc": int(any(d.group == "plugdev" for d in site.devices)),
        "readers": len(site.devices), "sync_root": site.sync_root,
        "uart_names": ",".join(d.name for d in site.devices if d.uart), "door": int(site.has_door),
    }
    (out / "summary").write_text("".join(f"{k}={v}\n" for k, v in summary.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="install_site.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("render")
    p.add_argument("config", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--rtc")
    p.add_argument("--name", help="the config's path as the gate sees it, for the drop-ins' comments")
    for name in ("splice", "unsplice", "strip-console", "check-root-json", "block-rtc"):
        p = sub.add_parser(name)
        p.add_argument("file", type=Path)
        if name == "splice":
            p.add_argument("block", type=Path)
    p = sub.add_parser("tag")
    p.add_argument("src", type=Path)
    p.add_argument("--wheels", type=Path)
    p.add_argument("--extras", default="", help="comma-separated extras the environment gets")
    args = parser.parse_args(argv)

    subject = getattr(args, "config", None) or getattr(args, "file", None) or getattr(args, "src", "")
    try:
        if args.command == "render":
            _render(args)
        elif args.command == "splice":
            sys.stdout.write(splice(args.file.read_text("utf-8"), args.block.read_text("utf-8"), str(args.file)))
        elif args.command == "unsplice":
            sys.stdout.write(unsplice(args.file.read_text("utf-8"), str(args.file)))
        elif args.command == "block-rtc":
            print(block_rtc(args.file.read_text("utf-8"), str(args.file)) or "")
        elif args.command == "strip-console":
            sys.stdout.write(strip_console(args.file.read_text("utf-8")))
        elif args.command == "check-root-json":
            check_root_json(args.file)
        else:
            print(source_tag(args.src, args.wheels, tuple(e for e in args.extras.split(",") if e)))
    except SiteError as exc:
        print(f"install: {subject}: {exc}", file=sys.stderr)
        return 2
    except (OSError, UnicodeDecodeError) as exc:
        print(f"install: {subject}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
