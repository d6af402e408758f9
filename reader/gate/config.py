"""The gate's configuration: one TOML file, read once into frozen dataclasses.

Every mistake is refused at start with the key path in the message
(``sync.interval_s: must be a finite number above 0 ...``), and an unknown key is a mistake too: a
misspelt ``max_agе_s`` silently ignored would leave a gate on a default nobody chose.
Relative paths are taken from the config file's own directory.

Files are checked by the command that uses them, when it uses them, with the key path in
the message (``upload.ca: /etc/gate-reader/ca.pem: No such file or directory``): a command
checks only what it uses, so ``sync --no-upload`` runs while ``[upload] ca`` is still to be
installed, and ``status`` works with a sync root that went missing.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from drivers.door import INPUTS
from reader.errors import ConfigError
from reader.gate.config_door import OUTPUTS, DoorConfig, parse_door
from reader.gate.config_readers import ReaderConfig, parse_readers, site_policy
from reader.gate.config_table import MAX_NUMBER, ConfigErrors, Table, collecting, optional
from reader.gate.policy import SitePolicy
from reader.gate.schedules import check_name
from reader.gatepass.files import read_limited
from reader.gatepass.verdict import Policy

__all__ = ["LOOPBACK", "MAX_NUMBER", "Config", "ConfigErrors", "DaemonConfig", "DoorConfig", "MetricsConfig",
           "ReaderConfig", "check_config_text", "load_config", "parse_config", "read_config_text"]

MAX_CONFIG_BYTES = 1 << 20
DEFAULT_RUNTIME_DIR = Path("/run/gate-reader")


@dataclass(frozen=True)
class GateConfig:
    id: str
    key: Path  # the gate's Ed25519 key: signs the journal's chain head in uploads
    # Issuer certificates installed with the gate: used until a sync has stored the
    # repository's trust/issuers.pem (a gate that starts empty can still check signatures).
    trust: Path | None = None
    # The gate group: the centre's signed policy for it is the TUF target policy/<group>.toml.
    group: str | None = None
    timezone: str | None = None  # the site's wall clock for schedules (IANA name); else the system's


@dataclass(frozen=True)
class CacheConfig:
    path: Path
    # Start without a usable database (credentials that need a list are then
    # status_unknown until a sync succeeds) instead of refusing to start.
    start_empty: bool = False


@dataclass(frozen=True)
class SyncConfig:
    metadata_url: str
    targets_url: str
    root: Path  # the TUF root.json pinned at install
    interval_s: float = 30.0
    timeout_s: float = 10.0
    total_timeout_s: float = 60.0


@dataclass(frozen=True)
class UploadConfig:
    url: str
    ca: Path | None = None  # the collector's CA, pinned: the system store is not consulted
    token_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    batch: int = 500
    max_unsent: int = 1_000_000
    retention_days: float = 30.0
    timeout_s: float = 10.0
    total_timeout_s: float = 60.0  # one batch's whole request, the collector's answer included


@dataclass(frozen=True)
class PolicyConfig:
    """Gate-wide defaults; a reader may override them in its own table (daemon issue)."""

    max_age_s: float = 86_400.0
    on_stale: str = "deny"
    static_passes: bool = False
    legacy_cards: bool = False
    window_s: float = 30.0
    future_skew_s: float = 5.0
    skew_s: float = 300.0
    prefixes: tuple[str, ...] = ("GP1:",)
    passback: str = "hard"  # anti-passback between paired readers: "hard" refuses, "soft" warns
    passback_reset_s: float = 12 * 3600.0

    def policy(self) -> Policy:
        return Policy(
            allow_static=self.static_passes,
            allow_legacy=self.legacy_cards,
            window_s=self.window_s,
            future_skew_s=self.future_skew_s,
            skew_s=self.skew_s,
            max_age_s=self.max_age_s,
            on_stale=self.on_stale,  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class DaemonConfig:
    """``[daemon]``: how ``gate-reader run`` runs (the one-shot jobs ignore it)."""

    runtime_dir: Path = DEFAULT_RUNTIME_DIR  # the control socket; $RUNTIME_DIRECTORY wins when systemd sets it
    health_interval_s: float = 5.0  # how often the live health is written to the store
    level_poll_s: float = 1.0  # how often the door inputs are read by level (a missed edge heals)
    queue_size: int = 64  # presentations waiting for the decision worker; past it they are dropped
    source_stall_s: float = 10.0  # a source loop silent this long is restarted

    def control_dir(self) -> Path:
        runtime = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
        return Path(runtime) if runtime else self.runtime_dir

    @property
    def socket_path(self) -> Path:
        return self.control_dir() / "control.sock"


@dataclass(frozen=True)
class MetricsConfig:
    """``[metrics]``: the daemon's Prometheus metrics, as a textfile (node_exporter's textfile
    collector) and/or on a localhost endpoint (prometheus-client, the ``metrics`` extra)."""

    textfile: Path | None
    interval_s: float = 10.0  # how often the daemon renders them (and replaces the file)
    listen: tuple[str, int] | None = None  # (loopback address, port): never a port open to the network


LOOPBACK = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True)
class Config:
    gate: GateConfig
    cache: CacheConfig
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    sync: SyncConfig | None = None
    upload: UploadConfig | None = None
    source: Path | None = None
    door: DoorConfig | None = None  # what ``gate-reader run`` drives; the one-shot jobs need none
    readers: tuple[ReaderConfig, ...] = ()
    site: SitePolicy = field(default_factory=SitePolicy)  # the local reader policy
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    metrics: MetricsConfig | None = None  # no metrics file unless configured


def _gate(table: Table, cache_path: Path | None) -> GateConfig:
    gate_id = table.text("id", required=True)
    if gate_id is not None and (len(gate_id) > 64 or not all(c.isalnum() or c in "-_." for c in gate_id)):
        gate_id = table.fail(f"gate.id: letters, digits, '-', '_' and '.' only, at most 64, not {gate_id!r}")
    # No key default without a cache path: that mistake is reported already (check-config).
    key = table.file("key", default=None if cache_path is None else cache_path.parent / "gate.key")
    group = table.text("group")
    if group is not None:
        try:
            check_name(group, "a gate group")
        except ValueError as exc:
            group = table.fail(f"gate.group: {exc}")
    return GateConfig(gate_id, key, table.file("trust"), group, table.text("timezone"))  # type: ignore[arg-type]


def _metrics(table: Table) -> MetricsConfig:
    textfile = table.file("textfile", required="listen" not in table.data)
    if textfile is not None and textfile.suffix != ".prom":
        textfile = table.fail(f"metrics.textfile: must end in .prom (the only files node_exporter's textfile "
                              f"collector reads), not {str(textfile)!r}")
    return MetricsConfig(textfile, float(table.number("interval_s", 10.0, minimum=1.0, inclusive=True)),
                         _listen(table))


def _listen(table: Table) -> tuple[str, int] | None:
    """``listen = "127.0.0.1:9101"`` (or ``"[::1]:9101"``): loopback only."""
    text = table.text("listen")
    if text is None:
        return None
    host, _, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if host not in LOOPBACK or not port.isdigit() or not 1 <= int(port) <= 65535:
        return table.fail(f"metrics.listen: must be a loopback address and port such as \"127.0.0.1:9101\" or "
                          f"\"[::1]:9101\" (the gate opens no port to the network), not {text!r}")
    return host, int(port)


def _cache(table: Table) -> CacheConfig:
    return CacheConfig(table.file("path", required=True), table.flag("start_empty", False))


def _sync(table: Table) -> SyncConfig:
    return SyncConfig(
        metadata_url=table.url("metadata_url"),  # type: ignore[arg-type]
        targets_url=table.url("targets_url"),  # type: ignore[arg-type]
        root=table.file("root", required=True),
        interval_s=table.number("interval_s", 30.0),
        timeout_s=table.number("timeout_s", 10.0),
        total_timeout_s=table.number("total_timeout_s", 60.0),
    )


def _upload(table: Table) -> UploadConfig:
    config = UploadConfig(
        url=table.url("url"),  # type: ignore[arg-type]
        ca=table.file("ca"),
        token_file=table.file("token_file"),
        client_cert=table.file("client_cert"),
        client_key=table.file("client_key"),
        batch=table.number("batch", 500, integer=True),
        max_unsent=table.number("max_unsent", 1_000_000, integer=True),
        retention_days=table.number("retention_days", 30.0),
        timeout_s=table.number("timeout_s", 10.0),
        total_timeout_s=table.number("total_timeout_s", 60.0),
    )
    if (config.client_cert is None) != (config.client_key is None):
        table.fail("upload.client_cert: client_cert and client_key go together")
    if config.url is not None and config.url.startswith("https://") and config.ca is None:
        table.fail("upload.ca: missing (the collector's CA is pinned, the system store is not used)")
    return config


def _policy(table: Table) -> PolicyConfig:
    return PolicyConfig(
        max_age_s=table.number("max_age_s", 86_400.0),
        on_stale=table.choice("on_stale", "deny", ("deny", "allow")),
        static_passes=table.flag("static_passes", False),
        legacy_cards=table.flag("legacy_cards", False),
        window_s=table.number("window_s", 30.0),
        future_skew_s=table.number("future_skew_s", 5.0, inclusive=True),
        skew_s=table.number("skew_s", 300.0, inclusive=True),
        prefixes=table.strings("prefixes", ("GP1:",)),
        passback=table.choice("passback", "hard", ("hard", "soft")),
        passback_reset_s=table.number("passback_reset_s", 12 * 3600.0),
    )


def _daemon(table: Table) -> DaemonConfig:
    return DaemonConfig(
        runtime_dir=table.file("runtime_dir", default=DEFAULT_RUNTIME_DIR),
        health_interval_s=table.number("health_interval_s", 5.0),
        level_poll_s=table.number("level_poll_s", 1.0),
        queue_size=table.number("queue_size", 64, minimum=1, inclusive=True, integer=True),
        source_stall_s=table.number("source_stall_s", 10.0),
    )


def parse_config(text: str, source: Path | None = None, *, errors: ConfigErrors | None = None) -> Config:
    """Parse TOML text; ConfigError names the key path of the first mistake. With ``errors``
    every mistake is recorded there instead and reading goes on (what comes back is then
    of no use when any was recorded: :func:`check_config_text`)."""
    where = str(source) if source else "config"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML ({exc})") from None
    base = source.parent if source else Path.cwd()
    root = Table(data, "", base, errors)
    cache_config = collecting(errors, lambda: root.table("cache", _cache), None)
    gate_config = collecting(errors, lambda: root.table(
        "gate", lambda table: _gate(table, cache_config.path if cache_config else None)), None)
    policy = optional(root, "policy", _policy) or PolicyConfig()
    readers, rules, local = parse_readers(root.raw("readers"), errors)
    tables = {name: root.raw(name) for name in ("schedules", "holidays", "lockdown")}
    tables["timezone"] = gate_config.timezone if gate_config else None
    site = collecting(errors, lambda: site_policy(
        readers, rules, local, tables, static_default=policy.static_passes, legacy_default=policy.legacy_cards,
        passback=policy.passback, passback_reset_s=policy.passback_reset_s, where=where), SitePolicy())
    config = Config(
        gate=gate_config,  # type: ignore[arg-type]  # None only when collecting, and then recorded
        cache=cache_config,  # type: ignore[arg-type]
        policy=policy,
        sync=optional(root, "sync", _sync),
        upload=optional(root, "upload", _upload),
        source=source,
        door=optional(root, "door", parse_door),
        readers=tuple(readers),
        site=site,
        daemon=optional(root, "daemon", _daemon) or DaemonConfig(),
        metrics=optional(root, "metrics", _metrics),
    )
    if config.door is not None:
        _check_pins(root, config.door, config.readers)
    known = ", ".join(sorted(root.read))
    for name in sorted(set(data) - root.read):  # each one when collecting, else the first
        root.fail(f"{name}: unknown table (known: {known})")
    return config


def _check_pins(root: Table, door: DoorConfig, readers: tuple[ReaderConfig, ...]) -> None:
    """A Wiegand reader's pins are not the door's nor another reader's: they share one pin
    factory, and a pin claimed twice would leave that reader down for good, at run time."""
    used = {spec.pin: f"door.{name}" for name in (*OUTPUTS, *INPUTS)
            if (spec := getattr(door.settings, name)) is not None}
    for reader in readers:
        if reader.driver != "wiegand":
            continue
        for line, pin in zip(("D0", "D1"), reader.device, strict=True):  # type: ignore[arg-type]
            if pin in used:
                root.fail(f"{reader.key}.device: {line} on GPIO {pin} is already {used[pin]}")
            used[pin] = f"{reader.key}.device"


def check_config_text(text: str, source: Path | None = None) -> tuple[Config | None, list[ConfigError]]:
    """Every mistake of a config at once, each naming its key path (``gate-reader
    check-config``), with the same code that refuses the first one at start, and what could
    be read: with any mistake, a Config whose wrong parts are defaults or None (good for
    checking the readers that did parse, never for running a gate); None when it is not TOML."""
    errors = ConfigErrors()
    try:
        config: Config | None = parse_config(text, source, errors=errors)
    except ConfigError as exc:  # not TOML: nothing else can be read
        errors.add(exc)
        config = None
    return config, list(errors.errors)


def read_config_text(path: Path) -> str:
    """The config file's text (bounded, UTF-8); ConfigError naming the file otherwise."""
    raw = read_limited(path, MAX_CONFIG_BYTES, f"config file {path}", ConfigError)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path}: not UTF-8") from None


def load_config(path: str | Path) -> Config:
    path = Path(path)
    return parse_config(read_config_text(path), path.resolve())
