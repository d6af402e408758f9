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

import math
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reader.errors import ConfigError
from reader.gatepass.files import read_limited
from reader.gatepass.verdict import Policy

MAX_CONFIG_BYTES = 1 << 20
# The largest number a config key takes (seconds, counts): ~31 years of seconds, far above any
# sane value and far below where float arithmetic on epoch times loses whole seconds.
MAX_NUMBER = 1e9


@dataclass(frozen=True)
class GateConfig:
    id: str
    key: Path  # the gate's Ed25519 key: signs the journal's chain head in uploads
    # Issuer certificates installed with the gate: used until a sync has stored the
    # repository's trust/issuers.pem (a gate that starts empty can still check signatures).
    trust: Path | None = None


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
class Config:
    gate: GateConfig
    cache: CacheConfig
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    sync: SyncConfig | None = None
    upload: UploadConfig | None = None
    source: Path | None = None


class _Table:
    """One TOML table being read: typed getters that name the key path on error, and a
    final check that no key was left unread."""

    def __init__(self, data: Any, path: str, base: Path) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: must be a table")
        self.data = data
        self.path = path
        self.base = base
        self.read: set[str] = set()

    def name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def _get(self, key: str, required: bool) -> Any:
        self.read.add(key)
        if key not in self.data:
            if required:
                raise ConfigError(f"{self.name(key)}: missing")
            return None
        return self.data[key]

    def _check(self, key: str, value: Any, ok: bool, what: str) -> Any:
        if not ok:
            raise ConfigError(f"{self.name(key)}: must be {what}, not {value!r}")
        return value

    def text(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self._get(key, required)
        if value is None:
            return default
        return self._check(key, value, isinstance(value, str) and value.strip() != "", "a non-empty string")

    def number(self, key: str, default: float, *, minimum: float = 0.0, inclusive: bool = False,
               integer: bool = False) -> Any:
        """A finite number above ``minimum`` (or at it, when ``inclusive``) and at most
        MAX_NUMBER: NaN, infinity and 1e999 (TOML reads all three) would reach the clock
        and the policy unchecked, and ``inf`` seconds of freshness window is no window."""
        value = self._get(key, False)
        if value is None:
            return default
        kinds = (int,) if integer else (int, float)
        ok = (isinstance(value, kinds) and not isinstance(value, bool) and math.isfinite(value)
              and (value >= minimum if inclusive else value > minimum) and value <= MAX_NUMBER)
        bound = f"{'at least' if inclusive else 'above'} {minimum:g} and at most {MAX_NUMBER:g}"
        return self._check(key, value, ok, f"{'an integer' if integer else 'a finite number'} {bound}")

    def flag(self, key: str, default: bool) -> bool:
        value = self._get(key, False)
        if value is None:
            return default
        return self._check(key, value, isinstance(value, bool), "true or false")

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self._get(key, False)
        if value is None:
            return default
        return self._check(key, value, value in choices, " or ".join(f'"{c}"' for c in choices))

    def url(self, key: str, *, required: bool = True) -> str | None:
        value = self.text(key, required=required)
        if value is not None and not value.startswith(("https://", "http://")):
            raise ConfigError(f"{self.name(key)}: must be an http(s) URL, not {value!r}")
        return value

    def file(self, key: str, *, required: bool = False, default: Path | None = None) -> Any:
        """A path, made absolute from the config's directory. Not opened here: the command
        that uses the file reads it and names this key if it cannot."""
        value = self.text(key, required=required)
        if value is None:
            return default
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base / path

    def strings(self, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self._get(key, False)
        if value is None:
            return default
        ok = isinstance(value, list) and bool(value) and all(isinstance(v, str) and v for v in value)
        return tuple(self._check(key, value, ok, "a non-empty list of non-empty strings"))

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.read)
        if unknown:
            known = ", ".join(sorted(self.read))
            raise ConfigError(f"{self.name(unknown[0])}: unknown key (known keys: {known})")


def _optional(root: _Table, name: str, reader: Callable[[_Table], Any]) -> Any:
    root.read.add(name)
    if name not in root.data:
        return None
    table = _Table(root.data[name], name, root.base)
    value = reader(table)
    table.done()
    return value


def _gate(table: _Table, cache_path: Path) -> GateConfig:
    gate_id = table.text("id", required=True)
    assert gate_id is not None
    if len(gate_id) > 64 or not all(c.isalnum() or c in "-_." for c in gate_id):
        raise ConfigError(f"gate.id: letters, digits, '-', '_' and '.' only, at most 64, not {gate_id!r}")
    key = table.file("key", default=cache_path.parent / "gate.key")
    return GateConfig(gate_id, key, table.file("trust"))


def _sync(table: _Table) -> SyncConfig:
    return SyncConfig(
        metadata_url=table.url("metadata_url"),  # type: ignore[arg-type]
        targets_url=table.url("targets_url"),  # type: ignore[arg-type]
        root=table.file("root", required=True),
        interval_s=table.number("interval_s", 30.0),
        timeout_s=table.number("timeout_s", 10.0),
        total_timeout_s=table.number("total_timeout_s", 60.0),
    )


def _upload(table: _Table) -> UploadConfig:
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
        raise ConfigError("upload.client_cert: client_cert and client_key go together")
    if config.url.startswith("https://") and config.ca is None:
        raise ConfigError("upload.ca: missing (the collector's CA is pinned, the system store is not used)")
    return config


def _policy(table: _Table) -> PolicyConfig:
    return PolicyConfig(
        max_age_s=table.number("max_age_s", 86_400.0),
        on_stale=table.choice("on_stale", "deny", ("deny", "allow")),
        static_passes=table.flag("static_passes", False),
        legacy_cards=table.flag("legacy_cards", False),
        window_s=table.number("window_s", 30.0),
        future_skew_s=table.number("future_skew_s", 5.0, inclusive=True),
        skew_s=table.number("skew_s", 300.0, inclusive=True),
        prefixes=table.strings("prefixes", ("GP1:",)),
    )


def parse_config(text: str, source: Path | None = None) -> Config:
    """Parse TOML text; ConfigError names the key path of the first mistake."""
    where = str(source) if source else "config"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML ({exc})") from None
    base = source.parent if source else Path.cwd()
    root = _Table(data, "", base)
    cache_table = root._get("cache", True)
    cache = _Table(cache_table, "cache", base)
    cache_path = cache.file("path", required=True)
    cache_config = CacheConfig(cache_path, cache.flag("start_empty", False))
    cache.done()
    gate = _Table(root._get("gate", True), "gate", base)
    gate_config = _gate(gate, cache_path)
    gate.done()
    config = Config(
        gate=gate_config,
        cache=cache_config,
        policy=_optional(root, "policy", _policy) or PolicyConfig(),
        sync=_optional(root, "sync", _sync),
        upload=_optional(root, "upload", _upload),
        source=source,
    )
    unknown = sorted(set(data) - root.read)
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown table (known: cache, gate, policy, sync, upload)")
    return config


def load_config(path: str | Path) -> Config:
    path = Path(path)
    raw = read_limited(path, MAX_CONFIG_BYTES, f"config file {path}", ConfigError)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path}: not UTF-8") from None
    return parse_config(text, path.resolve())
