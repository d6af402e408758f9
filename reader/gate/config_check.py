"""``gate-reader check-config`` as a service: every mistake of a gate's config at once, each
with its key path and what is expected, and the warnings worth a look before the gate runs.

Errors come from the config reader itself in its collecting mode
(:func:`reader.gate.config.check_config_text`), so check-config and the daemon's start refuse
exactly the same things; the driver keys of each ``[[readers]]`` entry are checked by a
function the caller hands in (the daemon's own, ``reader.daemon.sources``: this layer does
not import the daemon). Warnings are what may still come right: a device or a file a key
names that does not exist yet (a reader not plugged in, a root.json the installer puts in
place). Nothing is opened, created or touched.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from reader.errors import ConfigError
from reader.gate.config import Config, ReaderConfig, check_config_text, read_config_text
from reader.gate.config_table import key_of

#: nfcpy's tty names that stand for /dev/ttyNAME (the others are /dev/NAME, or a glob)
_NFC_TTY = re.compile(r"^(S|ACM|AMA|USB)\d+$")
_NFC_TTY_GLOB = re.compile(r"^(S|ACM|AMA|USB|usbserial.*)?$")

#: checks one reader's driver keys as the daemon would (reader, gate id); ConfigError when wrong
ReaderCheck = Callable[[ReaderConfig, str], None]


@dataclass(frozen=True)
class Finding:
    """One line of check-config: ``level`` error (the gate refuses to start) or warning."""

    level: Literal["error", "warning"]
    key: str  # the key path (``readers[1].driver``), or the file for a file-wide mistake
    message: str  # the whole line: ``key: what is wrong and what is expected``


@dataclass(frozen=True)
class ConfigCheck:
    path: Path
    config: Config | None  # None when there is any error
    findings: tuple[Finding, ...]

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "warning"]


def _error(exc: ConfigError) -> Finding:
    return Finding("error", key_of(exc), str(exc))


def check_config(path: str | Path, reader_check: ReaderCheck | None = None) -> ConfigCheck:
    """Check the config at ``path``. ConfigError only when the file cannot be read at all
    (missing, unreadable, too large, not UTF-8); every mistake in it is a finding."""
    path = Path(path)
    text = read_config_text(path)
    config, errors = check_config_text(text, path.resolve())
    findings = [_error(exc) for exc in errors]
    if config is not None and reader_check is not None:  # also the readers that parsed beside mistakes
        gate_id = config.gate.id if config.gate is not None and config.gate.id else "check-config"
        for reader in config.readers:
            try:
                reader_check(reader, gate_id)
            except ConfigError as exc:
                findings.append(_error(exc))
    if config is not None and config.metrics is not None and config.metrics.listen is not None \
            and importlib.util.find_spec("prometheus_client") is None:  # the daemon's start refuses it too
        findings.append(Finding("error", "metrics.listen", "metrics.listen: needs prometheus-client (pip install "
                                "'gate-reader[metrics]'); or leave listen out and use metrics.textfile"))
    if config is not None and not errors:
        findings += config_warnings(config)
    has_errors = any(f.level == "error" for f in findings)
    return ConfigCheck(path, None if has_errors else config, tuple(findings))


def device_path(reader: ReaderConfig) -> Path | None:
    """The file a reader's device is, when it is one (a serial port, a camera node, a video
    file); None for what is not a path (nfcpy's ``usb``, a URL, GPIO pins, a tty glob)."""
    device = reader.device
    if reader.driver == "wiegand":
        return None
    if reader.driver == "camera":
        if isinstance(device, int):
            return Path(f"/dev/video{device}")
        if "://" in str(device):
            return None
        return Path(str(device)).parent if "%" in str(device) else Path(str(device))  # a PNG sequence: its folder
    if reader.driver == "nfc":
        return nfc_tty_path(str(device))
    if "://" in str(device):  # a pyserial URL
        return None
    return Path(str(device))


def nfc_tty_path(path: str) -> Path | None:
    """The serial port of an nfcpy ``tty:NAME[:DRIVER]`` path (``tty:AMA0`` is /dev/ttyAMA0,
    ``tty:serial0`` is /dev/serial0); None for another kind of path or a glob (``tty:USB``)."""
    kind, _, rest = path.partition(":")
    if kind != "tty":
        return None
    name = rest.split(":", 1)[0]
    if _NFC_TTY.match(name):
        return Path(f"/dev/tty{name}")
    return None if _NFC_TTY_GLOB.match(name) else Path("/dev") / name


def config_warnings(config: Config) -> list[Finding]:
    """Devices and files the config names that do not exist (yet)."""
    found: list[Finding] = []
    for reader in config.readers:
        path = device_path(reader)
        if path is not None and not path.exists():
            found.append(Finding("warning", f"{reader.key}.device",
                                 f"{reader.key}.device: {path} does not exist (yet): the {reader.driver} reader "
                                 f"{reader.name} shows down until it is there (plugged in, or its udev name right)"))
    files: list[tuple[str, Path | None, str]] = [
        ("gate.trust", config.gate.trust, "the issuer certificates installed with the gate"),
    ]
    if config.sync is not None:
        files.append(("sync.root", config.sync.root, "install it with: install.sh --root-json FILE"))
    if config.upload is not None:  # the gate key signs the uploads' chain heads, nothing else
        upload = config.upload
        files += [("gate.key", config.gate.key, "make it with: gate-reader gate-key --config FILE"),
                  ("upload.ca", upload.ca, "the collector's CA certificate"),
                  ("upload.token_file", upload.token_file, "the collector's token"),
                  ("upload.client_cert", upload.client_cert, "the gate's client certificate"),
                  ("upload.client_key", upload.client_key, "the gate's client key")]
    for key, path, what in files:
        if path is not None and not Path(path).exists():
            found.append(Finding("warning", key, f"{key}: {path} does not exist (yet): {what}"))
    cache_dir = Path(config.cache.path).parent
    if not cache_dir.exists():
        found.append(Finding("warning", "cache.path", f"cache.path: the folder {cache_dir} does not exist (yet): "
                                                      "the daemon or the first sync makes it"))
    return found
