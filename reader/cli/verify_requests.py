"""Requests to ``gate-reader verify``: the :class:`Request` value, and ``--jsonl`` lines read,
bounded and parsed into one. Everything here refuses with a ``ConfigError`` or
``ValueError`` whose message becomes the line's ``{"error": ...}`` answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from reader.errors import ConfigError
from reader.gate.timeparse import check_time, parse_clock, shown
from reader.gatepass.envelope import DEFAULT_PREFIXES

#: A request is a payload (at most 4096 characters), a few paths and flags: far below this.
MAX_JSONL_LINE_BYTES = 1 << 20
#: A request is an object holding lists of strings (depth 2). Python's json recurses per
#: level and 100,000 nested arrays would raise RecursionError, so deeper is refused unparsed.
MAX_JSONL_DEPTH = 8


@dataclass(frozen=True)
class Request:
    """One check, as given on the command line or on one --jsonl line. ``at`` is checked
    here, so no Request holds a clock that is NaN, infinite or outside 0 .. year 9999."""

    payload: str
    at: float | None
    trust: tuple[str, ...]
    status: tuple[str, ...]
    prefixes: tuple[str, ...]
    allow_static: bool
    nfc: bytes | None

    def __post_init__(self) -> None:
        if self.at is not None:
            check_time(self.at, "at")


def challenge(text: str) -> bytes:
    """The 16-byte NFC challenge (rnonce) given as hex."""
    try:
        value = bytes.fromhex(text)
    except ValueError:
        raise ConfigError(f"nfc challenge {text!r} is not hex") from None
    if len(value) != 16:
        raise ConfigError(f"nfc challenge must be 16 bytes, got {len(value)}")
    return value


def _strings(value: Any, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise ConfigError(f"{key} must be a string or a list of strings")


def _refuse_constant(name: str) -> Any:
    # Python's json reads NaN, Infinity and -Infinity by default; JSON has no such numbers.
    raise ConfigError(f"not JSON: {name} is not a JSON number")


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
_JSON_SPECIAL = re.compile(r'[\\"\[\]{}]')


def _nested_deeper_than(line: str, limit: int) -> bool:
    """Whether the JSON text nests arrays and objects deeper than ``limit``, found without
    recursion. Brackets inside strings do not count. On text that is not JSON the count
    agrees with the parser up to the point where the parser fails, so nothing deeper than
    ``limit`` ever reaches it."""
    if line.count("[") + line.count("{") <= limit:
        return False  # every real request: no scan at all
    depth = 0
    in_string = False
    escaped = -1  # the position of a character escaped by a backslash inside a string
    for match in _JSON_SPECIAL.finditer(line):
        position = match.start()
        if position == escaped:
            continue
        char = line[position]
        if in_string:
            if char == "\\":
                escaped = position + 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def request_from_json(line: str) -> Request:
    """One --jsonl line as a Request; ConfigError (or ValueError) says what is wrong with it."""
    if len(line) > MAX_JSONL_LINE_BYTES:
        raise ConfigError(f"request line longer than {MAX_JSONL_LINE_BYTES} bytes")
    if _nested_deeper_than(line, MAX_JSONL_DEPTH):
        raise ConfigError(f"request nests arrays or objects deeper than {MAX_JSONL_DEPTH} levels")
    try:
        data = _DECODER.decode(line)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError("a request must be a JSON object")
    payload = data.get("payload")
    if not isinstance(payload, str):
        raise ConfigError("payload must be a string")
    at = data.get("at")
    if at is not None:
        if isinstance(at, bool) or not isinstance(at, int | float | str):
            raise ConfigError("at must be epoch seconds or an ISO 8601 string")
        at = parse_clock(at) if isinstance(at, str) else check_time(at, f"at {shown(at)}")
    allow_static = data.get("allow_static", False)
    if not isinstance(allow_static, bool):
        raise ConfigError("allow_static must be true or false")
    nfc = data.get("nfc")
    if nfc is not None and not isinstance(nfc, str):
        raise ConfigError("nfc must be a hex string")
    prefixes = _strings(data["prefix"], "prefix") if data.get("prefix") is not None else DEFAULT_PREFIXES
    return Request(
        payload=payload,
        at=at,
        trust=_strings(data.get("trust", []), "trust"),
        status=_strings(data.get("status", []), "status"),
        prefixes=prefixes,
        allow_static=allow_static,
        nfc=challenge(nfc) if nfc is not None else None,
    )


def read_request_lines(stdin: TextIO) -> Iterator[str | ConfigError]:
    """Each request line of ``stdin``, or the error that answers it. A line (its end
    included) may hold MAX_JSONL_LINE_BYTES: it is read at most that much at a time, so an
    endless line cannot fill the memory, and the rest of a longer one is read and dropped
    (the line gets one error answer). Bytes are decoded line by line, so a line that is not
    UTF-8 spoils only itself."""
    binary = getattr(stdin, "buffer", None)
    reader: Any = binary if binary is not None else stdin  # StringIO in tests has no buffer
    end: Any = b"\n" if binary is not None else "\n"
    while True:
        line = reader.readline(MAX_JSONL_LINE_BYTES + 1)
        if not line:
            return
        if len(line) > MAX_JSONL_LINE_BYTES:
            while not line.endswith(end):
                line = reader.readline(MAX_JSONL_LINE_BYTES + 1)
                if not line:
                    break
            yield ConfigError(f"request line longer than {MAX_JSONL_LINE_BYTES} bytes")
            continue
        if isinstance(line, bytes):
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield ConfigError(f"request line is not UTF-8 ({exc.reason} at byte {exc.start})")
                continue
        yield line
