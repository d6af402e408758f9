"""Reading one TOML table of the configuration: typed getters that name the key path on
error (``sync.interval_s: must be ...``) and a final check that no key was left unread. Shared
by :mod:`reader.gate.config` and its ``[door]``, ``[[readers]]`` and ``[daemon]`` parts.

Two modes. Normally the first mistake is raised (a program refuses to start on it). With a
:class:`ConfigErrors` collector (``gate-reader check-config``) a getter records its mistake and
returns its default so reading goes on, and a part that cannot go on (a table that is not a
table, a rule across keys) is recorded whole by :func:`collecting`: every mistake of the file
is found by the same code that refuses it at start, not by a second parser.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from reader.errors import ConfigError

# The largest number a config key takes (seconds, counts): ~31 years of seconds, far above any
# sane value and far below where float arithmetic on epoch times loses whole seconds.
MAX_NUMBER = 1e9

T = TypeVar("T")


def key_of(error: BaseException | str) -> str:
    """The key path a config error names (its text before the first ``": "``)."""
    return str(error).split(": ", 1)[0]


class ConfigErrors:
    """Every mistake of one config file, in file order, one per key path: a mistake under a
    key already refused (``door.relay.pin`` after ``door.relay``) follows from it and is not
    repeated."""

    def __init__(self) -> None:
        self.errors: list[ConfigError] = []

    def add(self, error: ConfigError) -> None:
        key = key_of(error)
        for seen in map(key_of, self.errors):
            if key == seen or key.startswith((seen + ".", seen + "[")):
                return
        self.errors.append(error)

    def __bool__(self) -> bool:
        return bool(self.errors)


def collecting(errors: ConfigErrors | None, read: Callable[[], T], fallback: T) -> T:
    """``read()``; when collecting, a ConfigError it raises is recorded and ``fallback``
    returned, so the next part of the file is read."""
    if errors is None:
        return read()
    try:
        return read()
    except ConfigError as exc:
        errors.add(exc)
        return fallback


class Table:
    """One TOML table being read: typed getters that name the key path on error, and a
    final check that no key was left unread."""

    def __init__(self, data: Any, path: str, base: Path, errors: ConfigErrors | None = None) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: must be a table")
        self.data = data
        self.path = path
        self.base = base
        self.errors = errors
        self.read: set[str] = set()

    def fail(self, message: str, default: Any = None) -> Any:
        """A mistake: raised, or when collecting recorded, and ``default`` returned."""
        if self.errors is None:
            raise ConfigError(message)
        self.errors.add(ConfigError(message))
        return default

    def name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def raw(self, key: str) -> Any:
        """The value as TOML gave it (None when absent), marked read: for values whose
        shape the caller checks itself (a table or ``false``, a device of several forms)."""
        return self._get(key, False)

    def _get(self, key: str, required: bool) -> Any:
        self.read.add(key)
        if key not in self.data:
            return self.fail(f"{self.name(key)}: missing") if required else None
        return self.data[key]

    def _check(self, key: str, value: Any, ok: bool, what: str, default: Any = None) -> Any:
        if not ok:
            return self.fail(f"{self.name(key)}: must be {what}, not {value!r}", default)
        return value

    def text(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self._get(key, required)
        if value is None:
            return default
        return self._check(key, value, isinstance(value, str) and value.strip() != "", "a non-empty string", default)

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
        return self._check(key, value, ok, f"{'an integer' if integer else 'a finite number'} {bound}", default)

    def flag(self, key: str, default: bool) -> bool:
        value = self._get(key, False)
        if value is None:
            return default
        return self._check(key, value, isinstance(value, bool), "true or false", default)

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self._get(key, False)
        if value is None:
            return default
        return self._check(key, value, value in choices, " or ".join(f'"{c}"' for c in choices), default)

    def url(self, key: str, *, required: bool = True) -> str | None:
        value = self.text(key, required=required)
        if value is not None and not value.startswith(("https://", "http://")):
            return self.fail(f"{self.name(key)}: must be an http(s) URL, not {value!r}")
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
        return tuple(self._check(key, value, ok, "a non-empty list of non-empty strings", default))

    def done(self) -> None:
        known = ", ".join(sorted(self.read))
        for key in sorted(set(self.data) - self.read):  # each one when collecting, else the first
            self.fail(f"{self.name(key)}: unknown key (known keys: {known})")

    def table(self, key: str, reader: Callable[[Table], T]) -> T:
        """The sub-table ``key`` (required) read by ``reader``, then checked for unknown keys."""
        sub = Table(self._get(key, True), self.name(key), self.base, self.errors)
        value = reader(sub)
        sub.done()
        return value


def optional(root: Table, name: str, reader: Callable[[Table], Any]) -> Any:
    """The optional table ``name`` read by ``reader`` (None when absent); when collecting, a
    mistake that stops ``reader`` is recorded and the table counts as absent."""
    root.read.add(name)
    if name not in root.data:
        return None

    def read() -> Any:
        table = Table(root.data[name], name, root.base, root.errors)
        value = reader(table)
        table.done()
        return value

    return collecting(root.errors, read, None)
