"""Strict, bounded CBOR (RFC 8949) decoding for untrusted credential bytes.

One contract, whatever the engine: the input is exactly one well-formed item (nothing
after it), no map repeats a key, nesting stays within ``max_depth``, text is valid UTF-8,
and no tag is given a meaning -- a tagged item comes back as a ``cbor2.CBORTag``. The last
point is why plain ``cbor2.loads`` will not do: it turns a tag 2 bignum into an int (a
bignum NumericDate must be ``malformed``), unwraps the self-describe tag 55799 and string
references, and makes datetimes, sets and UUIDs out of tagged items.

Two engines keep both speed and bounds. Every call has an item budget, ``max_items``:
callers that decode before any signature is checked (headers, a presentation, a
credential's claims) give small ones, because the shapes they expect are small.

- Inputs no longer than the budget (and than :data:`FAST_MAX_BYTES`) go through cbor2's
  Rust decoder with every built-in semantic decoder replaced by one that keeps the tag,
  duplicate keys refused and depth capped. This is the hot path of each decision. cbor2
  has no item budget, but needs none here: every item takes at least one byte, so the
  input's length bounds its items. Whatever cbor2 refuses is decided again by the
  pure-Python decoder, the reference, under the same budget.
- Longer inputs go through the pure-Python decoder below, which spends the budget at every
  container header before it builds anything, and so stops a hostile input after at most
  ``max_items`` items, whatever its length: 64 KiB of one-entry maps would otherwise cost
  tens of milliseconds per decision, and 32 MiB tens of millions of Python objects.

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
from typing import Any, NamedTuple

import cbor2
from cbor2 import CBORSimpleValue, CBORTag

from reader.gatepass.errors import CborError

MAX_DEPTH = 16
MAX_ITEMS = 65_536  # the default budget: never binds an input of FAST_MAX_BYTES or less
FAST_MAX_BYTES = 65_536

_HALF = struct.Struct(">e")
_SINGLE = struct.Struct(">f")
_DOUBLE = struct.Struct(">d")

Tag = CBORTag  # the one tagged-item type both engines return
UNDEFINED = cbor2.undefined
_BREAK = object()  # the budgeted engine's marker for a break byte




class OtherKey(NamedTuple):
    """A map key that is not an int, text or byte string, held by its CBOR encoding.

    A named tuple rather than a frozen dataclass: both are immutable, but a tuple hashes in
    C, and a hostile map of such keys hashes each twice (a dataclass's Python ``__hash__``
    was a tenth of such a decode). Decoded maps never have plain tuples as keys, so
    comparing equal to one cannot confuse a lookup."""

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


class _OddKey(ValueError):
    """Raised inside cbor2 by :func:`_refuse_odd_keys`: the budgeted engine takes over."""


def _refuse_odd_keys(mapping: Mapping[Any, Any], immutable: bool) -> Any:
    """cbor2 object hook: keep maps whose keys are all ints, text or byte strings, and hand
    any other input to the budgeted engine, which wraps the odd keys in OtherKey.

    GatePass objects never have such keys, so valid credentials stay on the fast engine.
    Wrapping them here instead (re-encoding each with cbor2.dumps) cost about 1.5 us per
    three-byte map ``{{}: 0}``, and a hostile payload is mostly such maps."""
    for key in mapping:
        key_type = type(key)
        if key_type is not int and key_type is not str and key_type is not bytes:
            raise _OddKey("map key of another type")
    return mapping


# One configured decoder per thread and depth, its input swapped per call: building one
# costs more than decoding a credential's claims.
_DECODERS = threading.local()


def _decoder(max_depth: int) -> Any:
    decoder = _DECODERS.__dict__.get(max_depth)
    if decoder is None:
        decoder = cbor2.CBORDecoder(
            io.BytesIO(b""),
            semantic_decoders=_KEEP_TAGS,
            object_hook=_refuse_odd_keys,
            max_depth=max_depth,
            allow_duplicate_keys=False,
        )
        _DECODERS.__dict__[max_depth] = decoder
    return decoder


def loads(data: bytes, *, max_depth: int = MAX_DEPTH, max_items: int = MAX_ITEMS) -> Any:
    """Decode exactly one CBOR item from ``data``; anything else raises :class:`CborError`,
    more than ``max_items`` items (the top-level one included) too.

    cbor2 decodes only inputs of at most ``max_items`` bytes (and FAST_MAX_BYTES), whose
    length bounds their items; longer ones go to the budgeted engine (see the module text).
    """
    if type(data) is not bytes:
        data = bytes(data)
    if len(data) > max_items or len(data) > FAST_MAX_BYTES:
        return loads_budgeted(data, max_depth=max_depth, max_items=max_items)
    stream = io.BytesIO(data)
    decoder = _decoder(max_depth)
    decoder.fp = stream
    try:
        value = decoder.decode()
    except (cbor2.CBORDecodeError, ValueError, TypeError, RecursionError, MemoryError):
        # A decoder that failed mid-item is not reused: start the next input from scratch.
        _DECODERS.__dict__.pop(max_depth, None)
        # cbor2 refuses more than the contract does in two corners: it compares map keys
        # with Python's ==, so the distinct CBOR keys 1, 1.0 and true collide, and our hook
        # refuses keys of other types. Whatever it refused, the budgeted decoder gives the
        # verdict (and the error message). Valid credentials do not come this way, and the
        # second pass is bounded too: the input is no longer than the budget.
        return loads_budgeted(data, max_depth=max_depth, max_items=max_items)
    if stream.tell() != len(data):
        raise CborError("trailing bytes after the CBOR item")
    return value


_ARGUMENT_BYTES = {24: 1, 25: 2, 26: 4, 27: 8}
_FLOATS = {25: _HALF, 26: _SINGLE, 27: _DOUBLE}
_SIMPLE_CONSTANTS = {20: False, 21: True, 22: None, 23: UNDEFINED}


def loads_budgeted(data: bytes, *, max_depth: int = MAX_DEPTH, max_items: int = MAX_ITEMS) -> Any:
    """The pure-Python engine: the same contract as :func:`loads`, with the item budget
    checked at every container header before anything is built for it (indefinite-length
    containers pay per element, indefinite-length strings per chunk). Whatever is paid for
    takes at least one byte of its own, so an input of ``max_items`` bytes or less never
    runs out of budget: the two engines agree on every input cbor2 is given."""
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
        """A map of ``length`` pairs, or up to a break when ``length`` is -1 (then each key,
        the break included, and each value is paid for as it comes)."""
        out: dict[Any, Any] = {}
        while length:
            key_start = pos
            if length < 0:
                spend(1)
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
            if length < 0:
                spend(1)
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
                spend(1)  # no item, but a loop turn: 64 KiB of empty chunks would not be free
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
