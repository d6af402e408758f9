"""Reading one TOML table of the configuration: typed getters that name the key path on
error (``sync.interval_s: must be ...``) and a final check that no key was left unread. Shared
by :mod:`reader.gate.config` and its ``[door]``, ``[[readers]]`` and ``[daemon]`` parts."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reader.errors import ConfigError

# The largest number a config key takes (seconds, counts): ~31 years of seconds, far above any
# sane value and far below where float arithmetic on epoch times loses whole seconds.
MAX_NUMBER = 1e9


class Table:
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

    def raw(self, key: str) -> Any:
        """The value as TOML gave it (None when absent), marked read: for values whose
        shape the caller checks itself (a table or ``false``, a device of several forms)."""
        return self._get(key, False)

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


def optional(root: Table, name: str, reader: Callable[[Table], Any]) -> Any:
    root.read.add(name)
    if name not in root.data:
        return None
    table = Table(root.data[name], name, root.base)
    value = reader(table)
    table.done()
    return value
