"""Strict, bounded CBOR (RFC 8949) decoding for untrusted credential bytes.

One contract, whatever the engine: the input is exactly one well-formed item (nothing
after it), no map repeats a key, nesting stays within ``max_depth``, text is valid UTF-8,
and no tag is given a meaning -- a tagged item comes back as a ``cbor2.CBORTag``. The last
point is why plain ``cbor2.loads`` will not do: it turns a tag 2 bignum into an int (a
bignum NumericDate must be ``malformed``), unwraps the self-describe tag 55799 and string
references, and makes datetimes, sets and UUIDs out of tagged items.

Two engines keep both speed and bounds:

- Inputs up to :data:`FAST_MAX_BYTES` (every presentation and credential) go through
  cbor2's Rust decoder with every built-in semantic decoder replaced by one that keeps the
  tag, duplicate keys refused and depth capped. This is the hot path of each decision.
  Whatever cbor2 refuses is decided again by the pure-Python decoder, the reference.
- Larger inputs (status and legacy list tokens, up to 32 MiB) go through the pure-Python
  decoder below, which also enforces an item budget: cbor2 has none, and 32 MiB of
  one-byte items would be tens of millions of Python objects on a Raspberry Pi.

Values: ``int``, ``bytes``, ``str``, ``float``, ``bool``, ``None``, ``cbor2.undefined``,
``cbor2.CBORSimpleValue``, ``cbor2.CBORTag``, lists and dicts (cbor2 hands the contents of a
tag over as tuples and ``cbor2.frozendict``; callers accept both). Map keys that are not
``int``/``str``/``bytes`` are wrapped in :class:`OtherKey`, so that ``true`` or ``1.0`` can
never be read as the integer claim key ``1``.
"""

from __future__ import annotations

import io
import struct
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cbor2
from cbor2 import CBORSimpleValue, CBORTag

MAX_DEPTH = 16
MAX_ITEMS = 65_536  # never binds an input of FAST_MAX_BYTES or less: every item takes a byte
FAST_MAX_BYTES = 65_536

_HALF = struct.Struct(">e")
_SINGLE = struct.Struct(">f")
_DOUBLE = struct.Struct(">d")

Tag = CBORTag  # the one tagged-item type both engines return
UNDEFINED = cbor2.undefined
_BREAK = object()  # the budgeted engine's marker for a break byte


class CborError(ValueError):
    """The bytes are not exactly one well-formed CBOR item within the decoder's limits:
    truncated or trailing data, reserved encodings, invalid UTF-8, duplicate map keys,
    nesting deeper than ``max_depth`` or (large inputs) more than ``max_items`` items."""


@dataclass(frozen=True, slots=True)
class OtherKey:
    """A map key that is not an int, text or byte string, held by its CBOR encoding."""

    encoded: bytes


def _keep_tag(number: int) -> Any:
    def keep(value: Any, immutable: bool) -> CBORTag:
        return CBORTag(number, value)

    return keep


# Every tag cbor2 6 interprets by itself (found by probing each tag number 0..1100 and the
# well-known large ones with ints, strings, bytes, arrays and maps). A test re-probes them,
# so a cbor2 upgrade that adds one fails loudly instead of slipping a meaning in.
SEMANTIC_TAGS = (0, 1, 2, 3, 4, 5, 25, 28, 29, 30, 35, 36, 37, 52, 54, 100, 256, 258, 260, 261, 1004, 55799)
_KEEP_TAGS = {number: _keep_tag(number) for number in SEMANTIC_TAGS}


def _wrap_odd_keys(mapping: Mapping[Any, Any], immutable: bool) -> Any:
    """cbor2 object hook: keep every map, wrapping keys of other types in OtherKey."""
    for key in mapping:
        key_type = type(key)
        if key_type is not int and key_type is not str and key_type is not bytes:
            break
    else:
        return mapping
    wrapped = {}
    for key, value in mapping.items():
        key_type = type(key)
        if key_type is not int and key_type is not str and key_type is not bytes:
            key = OtherKey(cbor2.dumps(key))
        wrapped[key] = value
    return cbor2.frozendict(wrapped) if immutable else wrapped


# One configured decoder per thread and depth, its input swapped per call: building one
# costs more than decoding a credential's claims.
_DECODERS = threading.local()


def _decoder(max_depth: int) -> Any:
    decoder = _DECODERS.__dict__.get(max_depth)
    if decoder is None:
        decoder = cbor2.CBORDecoder(
            io.BytesIO(b""),
            semantic_decoders=_KEEP_TAGS,
            object_hook=_wrap_odd_keys,
            max_depth=max_depth,
            allow_duplicate_keys=False,
        )
        _DECODERS.__dict__[max_depth] = decoder
    return decoder


def loads(data: bytes, *, max_depth: int = MAX_DEPTH, max_items: int = MAX_ITEMS) -> Any:
    """Decode exactly one CBOR item from ``data``; anything else raises :class:`CborError`.

    ``max_items`` binds the large-input engine; for inputs up to FAST_MAX_BYTES the input
    length is the bound (every item takes at least one byte).
    """
    if type(data) is not bytes:
        data = bytes(data)
    if len(data) > FAST_MAX_BYTES:
        return loads_budgeted(data, max_depth=max_depth, max_items=max_items)
    stream = io.BytesIO(data)
    decoder = _decoder(max_depth)
    decoder.fp = stream
    try:
        value = decoder.decode()
    except (cbor2.CBORDecodeError, ValueError, TypeError, RecursionError, MemoryError):
        # A decoder that failed mid-item is not reused: start the next input from scratch.
        _DECODERS.__dict__.pop(max_depth, None)
        # cbor2 refuses more than the contract does in one corner: it compares map keys
        # with Python's ==, so the distinct CBOR keys 1, 1.0 and true collide. Whatever it
        # refused, the budgeted decoder gives the verdict (and the error message). Only
        # bad input comes this way, so the slower decoder costs a valid credential nothing.
        return loads_budgeted(data, max_depth=max_depth, max_items=max_items)
    if stream.tell() != len(data):
        raise CborError("trailing bytes after the CBOR item")
    return value


_ARGUMENT_BYTES = {24: 1, 25: 2, 26: 4, 27: 8}
_FLOATS = {25: _HALF, 26: _SINGLE, 27: _DOUBLE}
_SIMPLE_CONSTANTS = {20: False, 21: True, 22: None, 23: UNDEFINED}


def loads_budgeted(data: bytes, *, max_depth: int = MAX_DEPTH, max_items: int = MAX_ITEMS) -> Any:
    """The pure-Python engine: the same contract as :func:`loads`, plus an item budget
    checked at every container header before anything is built for it."""
    if type(data) is not bytes:
        data = bytes(data)
    end = len(data)
    budget = max_items - 1  # items still allowed after the top-level one
    from_bytes = int.from_bytes

    def argument(info: int, pos: int) -> tuple[int, int]:
        size = _ARGUMENT_BYTES.get(info)
        if size is None:
            raise CborError(f"reserved additional information {info}")
        stop = pos + size
        if stop > end:
            raise CborError("truncated CBOR item")
        return from_bytes(data[pos:stop], "big"), stop

    def text(raw: bytes) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CborError("text string is not valid UTF-8") from None

    def spend(count: int) -> None:
        nonlocal budget
        budget -= count
        if budget < 0:
            raise CborError("too many CBOR items")

    def item(pos: int, depth: int) -> tuple[Any, int]:
        """One item at ``pos``: (value, position after it). A break byte gives _BREAK."""
        if pos >= end:
            raise CborError("truncated CBOR item")
        initial = data[pos]
        pos += 1
        major = initial >> 5
        info = initial & 0x1F
        if major == 7:
            return simple(info, pos)
        if info < 24:
            length = info
        elif info == 31:
            return indefinite(major, pos, depth)
        else:
            length, pos = argument(info, pos)

        if major == 0:
            return length, pos
        if major == 1:
            return -1 - length, pos
        if major == 2 or major == 3:
            stop = pos + length
            if stop > end:
                raise CborError("truncated CBOR item")
            return (data[pos:stop] if major == 2 else text(data[pos:stop])), stop
        if depth >= max_depth:
            raise CborError("CBOR nesting too deep")
        depth += 1
        if major == 6:
            spend(1)
            value, pos = item(pos, depth)
            if value is _BREAK:
                raise CborError("unexpected break")
            return Tag(length, value), pos
        # Every item takes at least one byte: a larger count cannot be honest, and refusing
        # it here keeps an attacker from making us allocate for it.
        if length > end - pos:
            raise CborError("container longer than its input")
        if major == 4:
            spend(length)
            out = []
            append = out.append
            for _ in range(length):
                value, pos = item(pos, depth)
                if value is _BREAK:
                    raise CborError("unexpected break")
                append(value)
            return out, pos
        spend(2 * length)
        return mapping(pos, depth, length)

    def mapping(pos: int, depth: int, length: int) -> tuple[dict[Any, Any], int]:
        """A map of ``length`` pairs, or up to a break when ``length`` is -1."""
        out: dict[Any, Any] = {}
        while length:
            key_start = pos
            key, pos = item(pos, depth)
            key_type = type(key)
            if key_type is not int and key_type is not str and key_type is not bytes:
                if key is _BREAK:
                    if length < 0:
                        return out, pos
                    raise CborError("unexpected break")
                key = OtherKey(bytes(data[key_start:pos]))
            if key in out:
                raise CborError("duplicate map key")
            value, pos = item(pos, depth)
            if value is _BREAK:
                raise CborError("unexpected break")
            out[key] = value
            length -= 1
        return out, pos

    def indefinite(major: int, pos: int, depth: int) -> tuple[Any, int]:
        if major == 2 or major == 3:
            parts = []
            while True:
                if pos >= end:
                    raise CborError("truncated indefinite string")
                initial = data[pos]
                pos += 1
                if initial == 0xFF:
                    raw = b"".join(parts)
                    return (raw if major == 2 else text(raw)), pos
                info = initial & 0x1F
                if initial >> 5 != major or info >= 28:
                    raise CborError("bad chunk in indefinite-length string")
                length, pos = (info, pos) if info < 24 else argument(info, pos)
                if pos + length > end:
                    raise CborError("truncated CBOR item")
                parts.append(data[pos : pos + length])
                pos += length
        if major != 4 and major != 5:
            raise CborError("indefinite length on an integer or tag")
        if depth >= max_depth:
            raise CborError("CBOR nesting too deep")
        if major == 5:
            return mapping(pos, depth + 1, -1)
        out = []
        while True:
            spend(1)
            value, pos = item(pos, depth + 1)
            if value is _BREAK:
                return out, pos
            out.append(value)

    def simple(info: int, pos: int) -> tuple[Any, int]:
        """Major type 7: simple values, floats and the break byte."""
        if info < 20:
            return CBORSimpleValue(info), pos
        if info < 24:
            return _SIMPLE_CONSTANTS[info], pos
        if info == 24:
            if pos >= end:
                raise CborError("truncated CBOR item")
            if data[pos] < 32:
                raise CborError("simple value encoded in two bytes below 32")
            return CBORSimpleValue(data[pos]), pos + 1
        if info == 31:
            return _BREAK, pos
        unpacker = _FLOATS.get(info)
        if unpacker is None:
            raise CborError(f"reserved simple value encoding {info}")
        stop = pos + unpacker.size
        if stop > end:
            raise CborError("truncated CBOR item")
        return unpacker.unpack(data[pos:stop])[0], stop

    try:
        value, pos = item(0, 0)
    except RecursionError:  # pragma: no cover - max_depth keeps us far from the limit
        raise CborError("CBOR nesting too deep") from None
    if value is _BREAK:
        raise CborError("unexpected break")
    if pos != end:
        raise CborError("trailing bytes after the CBOR item")
    return value
