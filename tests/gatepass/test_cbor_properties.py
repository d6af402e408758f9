"""Property tests for the strict CBOR decoder (reader/gatepass/cbor.py).

The decoder reads untrusted bytes from every QR code and NFC answer, so beyond "decodes
what cbor2 encodes" it must fail only with ``CborError``: any other exception would
escape the verifier's error handling and take the gate down.

Example counts come from ``GATE_HYPOTHESIS_EXAMPLES`` (default 300, to keep the normal
suite fast). The 10,000-example run is:

    GATE_HYPOTHESIS_EXAMPLES=10000 .venv/bin/pytest tests/gatepass -k properties

The Hypothesis example database is off (the profile in tests/conftest.py) so a run
leaves no files in the repository; a failure still prints its minimal example.
"""

# Over ~400 lines on purpose: the properties of one decoder against cbor2, sharing their strategies.

from __future__ import annotations

import contextlib
import math
import time
from typing import Any

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reader.gatepass import cbor
from reader.gatepass.cbor import FAST_MAX_BYTES, MAX_DEPTH, CborError, OtherKey, Tag, loads

INT64 = st.integers(min_value=-(2**64), max_value=2**64 - 1)
LEAVES = st.one_of(
    INT64,
    st.binary(max_size=64),
    st.text(max_size=32),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
)
KEYS = st.one_of(INT64, st.text(max_size=16), st.binary(max_size=16))


def _values(depth: int) -> st.SearchStrategy[Any]:
    """Values nested at most ``depth`` containers deep (half of MAX_DEPTH at the top)."""
    if depth == 0:
        return LEAVES
    inner = _values(depth - 1)
    return st.one_of(
        LEAVES,
        st.lists(inner, max_size=3),
        st.dictionaries(KEYS, inner, max_size=3),
    )


VALUES = _values(8)


def _kind(value: Any, frozen_ok: bool) -> type:
    """The type to compare; inside a tag the decoder may hand arrays over as tuples and maps
    as frozendicts (documented in reader/gatepass/cbor.py), which callers accept."""
    kind = type(value)
    if frozen_ok and kind is tuple:
        return list
    if frozen_ok and kind is cbor2.frozendict:
        return dict
    return kind


def same(a: Any, b: Any, frozen_ok: bool = False) -> bool:
    """Equality that also compares types: ``True == 1`` and ``1.0 == 1`` must not pass."""
    if _kind(a, frozen_ok) is not _kind(b, frozen_ok):
        return False
    if type(a) is float:
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if _kind(a, frozen_ok) is list:
        return len(a) == len(b) and all(same(x, y, frozen_ok) for x, y in zip(a, b, strict=True))
    if _kind(a, frozen_ok) is dict:
        if len(a) != len(b):
            return False
        for key, value in a.items():
            matches = [k for k in b if same(k, key)]
            if len(matches) != 1 or not same(value, b[matches[0]], frozen_ok):
                return False
        return True
    if type(a) is Tag:
        return tag_number(a) == tag_number(b) and same(a.value, b.value, frozen_ok=True)
    if type(a) is OtherKey:  # opaque; the engines may spell the same key differently (1.0 as f9 or fb)
        return same(cbor2.loads(a.encoded), cbor2.loads(b.encoded), frozen_ok=True)
    return a == b


def tag_number(tag: Any) -> int:
    """``Tag`` is ``cbor2.CBORTag``, whose number is ``.tag``."""
    return tag.tag


# --- (a) round trip --------------------------------------------------------------------


@given(VALUES)
def test_roundtrip_of_cbor2_encoding(value: Any) -> None:
    assert same(loads(cbor2.dumps(value)), value)


@given(st.integers(min_value=0, max_value=2**64 - 1), VALUES)
def test_tags_are_kept_not_interpreted(number: int, value: Any) -> None:
    """A tag comes back as ``Tag`` around the decoded value, whatever its number."""
    decoded = loads(cbor2.dumps(cbor2.CBORTag(number, value)))
    assert type(decoded) is Tag
    assert same(decoded, Tag(number, value))


@given(st.binary(min_size=1, max_size=16))
def test_bignum_tag_is_not_turned_into_an_int(magnitude: bytes) -> None:
    """cbor2 would read tag 2 as an int; a bignum NumericDate must stay visibly a tag."""
    for number in (2, 3):
        decoded = loads(cbor2.dumps(cbor2.CBORTag(number, magnitude)))
        assert type(decoded) is Tag
        assert decoded == Tag(number, magnitude)


@pytest.mark.parametrize("value", [2**64, -(2**64) - 1, 2**200])
def test_cbor2_bignums_decode_as_tags(value: int) -> None:
    """cbor2 encodes ints beyond 64 bits as tags 2/3: they must not come back as ints."""
    decoded = loads(cbor2.dumps(value))
    assert type(decoded) is Tag
    assert tag_number(decoded) in (2, 3)


# --- (b) arbitrary bytes ---------------------------------------------------------------

# Headers that open containers, tags, strings and floats, so random tails reach deeper
# decoder states than purely random bytes do.
_OPENERS = st.lists(
    st.sampled_from(
        [b"\x9f", b"\xbf", b"\x5f", b"\x7f", b"\x81", b"\xa1", b"\xd2", b"\xd8\x3d", b"\x84", b"\x1b", b"\xf9", b"\xff"]
    ),
    max_size=12,
).map(b"".join)


@given(st.one_of(st.binary(max_size=2048), st.tuples(_OPENERS, st.binary(max_size=256)).map(b"".join)))
def test_arbitrary_bytes_only_raise_cbor_error(data: bytes) -> None:
    with contextlib.suppress(CborError):
        loads(data)


@given(st.binary(max_size=512), st.integers(min_value=0, max_value=40), st.integers(min_value=0, max_value=300))
def test_arbitrary_bytes_with_any_limits_only_raise_cbor_error(data: bytes, max_depth: int, max_items: int) -> None:
    with contextlib.suppress(CborError):
        loads(data, max_depth=max_depth, max_items=max_items)


@given(st.binary(max_size=2048))
def test_bytearray_and_memoryview_inputs_behave_like_bytes(data: bytes) -> None:
    """Callers hand over NFC buffers as they come; the result must not depend on the type."""
    outcomes = []
    for view in (data, bytearray(data), memoryview(data)):
        try:
            outcomes.append(("ok", loads(view)))
        except CborError:
            outcomes.append(("error", None))
    assert outcomes[0][0] == outcomes[1][0] == outcomes[2][0]


@given(
    st.one_of(
        st.binary(max_size=512), st.tuples(_OPENERS, st.binary(max_size=64)).map(b"".join), VALUES.map(cbor2.dumps)
    )
)
def test_both_engines_agree_on_small_inputs(data: bytes) -> None:
    """cbor.py promises one contract whatever the engine; small inputs normally take the cbor2
    path, so the pure-Python engine is run on the same bytes to compare."""
    budgeted = getattr(cbor, "loads_budgeted", None)
    if budgeted is None:
        pytest.skip("cbor.py has a single engine")
    outcomes = []
    for decode in (loads, budgeted):
        try:
            outcomes.append((True, decode(data)))
        except CborError as exc:
            outcomes.append((False, str(exc)))
    (fast_ok, fast), (slow_ok, slow) = outcomes
    assert fast_ok == slow_ok, (fast, slow)
    if fast_ok:
        assert same(fast, slow, frozen_ok=True), (fast, slow)


@given(
    st.one_of(
        st.binary(max_size=256), st.tuples(_OPENERS, st.binary(max_size=64)).map(b"".join), VALUES.map(cbor2.dumps)
    ),
    st.integers(min_value=1, max_value=300),
)
def test_both_engines_agree_under_any_item_budget(data: bytes, max_items: int) -> None:
    """With a small budget, ``loads`` hands cbor2 only inputs no longer than the budget and
    the rest to the budgeted engine: the verdict must not depend on which one decided."""
    outcomes = []
    for decode in (loads, cbor.loads_budgeted):
        try:
            outcomes.append((True, decode(data, max_items=max_items)))
        except CborError as exc:
            outcomes.append((False, str(exc)))
    (fast_ok, fast), (slow_ok, slow) = outcomes
    assert fast_ok == slow_ok, (fast, slow)
    if fast_ok:
        assert same(fast, slow, frozen_ok=True), (fast, slow)


@given(VALUES.map(cbor2.dumps))
def test_an_item_budget_of_the_input_length_never_binds(data: bytes) -> None:
    """Whatever the budget pays for (items, indefinite-length elements and breaks, string
    chunks) takes a byte of its own: that is what lets cbor2 decode without counting."""
    assert same(loads(data), cbor.loads_budgeted(data, max_items=len(data)), frozen_ok=True)


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("indefinite map", b"\xbf" + b"".join(b"\x19%b\x00" % i.to_bytes(2) for i in range(300)) + b"\xff"),
        ("indefinite map, odd", b"\xbf" + b"".join(b"\x81\x19%b\xf4" % i.to_bytes(2) for i in range(300)) + b"\xff"),
        ("indefinite byte string chunks", b"\x5f" + b"\x40" * 600 + b"\xff"),
        ("indefinite text string chunks", b"\x7f" + b"\x60" * 600 + b"\xff"),
        ("indefinite array", b"\x9f" + b"\x80" * 600 + b"\xff"),
    ],
)
def test_indefinite_containers_and_string_chunks_spend_the_item_budget(name: str, data: bytes) -> None:
    """Regression: the budgeted engine counted neither the entries of an indefinite-length
    map nor the chunks of an indefinite-length string, so 64 KiB of them cost the whole
    input's worth of Python work whatever the budget."""
    with pytest.raises(CborError, match="too many CBOR items"):
        cbor.loads_budgeted(data, max_items=256)
    with pytest.raises(CborError, match="too many CBOR items"):
        loads(data, max_items=256)
    loads(data, max_items=len(data))  # and within budget they decode


def test_maps_with_keys_of_other_types_leave_cbor2_for_the_budgeted_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """cbor2's object hook no longer re-encodes odd keys (1.5 us per three-byte map, the
    bulk of a hostile payload): it hands the input to the budgeted engine, which wraps them."""
    data = b"\xa3\x01\x00\xf5\x00\xa0\x00"  # {1: 0, true: 0, {}: 0}
    calls = []
    real = cbor.loads_budgeted
    monkeypatch.setattr(cbor, "loads_budgeted", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    decoded = loads(data)
    assert calls == [1]
    assert decoded == {1: 0, OtherKey(b"\xf5"): 0, OtherKey(b"\xa0"): 0}
    assert loads(b"\xa2\x01\x00\x61a\x00") == {1: 0, "a": 0} and calls == [1]  # plain keys stay on cbor2


# --- (c) trailing bytes ----------------------------------------------------------------


@given(VALUES, st.binary(min_size=1, max_size=32))
def test_trailing_bytes_are_rejected(value: Any, extra: bytes) -> None:
    with pytest.raises(CborError):
        loads(cbor2.dumps(value) + extra)


# --- (d) duplicate keys ----------------------------------------------------------------


def _map_bytes(entries: list[tuple[bytes, bytes]], indefinite: bool) -> bytes:
    body = b"".join(k + v for k, v in entries)
    if indefinite:
        return b"\xbf" + body + b"\xff"
    n = len(entries)
    header = bytes([0xA0 | n]) if n < 24 else b"\xb8" + bytes([n])
    return header + body


@given(
    st.lists(KEYS, min_size=1, max_size=8, unique_by=lambda k: (type(k), k)),
    st.data(),
    st.booleans(),
    st.booleans(),
)
def test_duplicate_map_keys_are_rejected(keys: list[Any], data: st.DataObject, indefinite: bool, nest: bool) -> None:
    entries = [(cbor2.dumps(k), cbor2.dumps(data.draw(LEAVES))) for k in keys]
    dup = data.draw(st.sampled_from(entries))
    position = data.draw(st.integers(min_value=0, max_value=len(entries)))
    entries.insert(position, (dup[0], cbor2.dumps(data.draw(LEAVES))))
    encoded = _map_bytes(entries, indefinite)
    if nest:
        encoded = b"\x82\x00" + encoded  # one level down, inside an array
    with pytest.raises(CborError):
        loads(encoded)


@pytest.mark.parametrize(
    "encoded",
    [
        b"\xa2\x01\x00\x18\x01\x00",  # 1 and 1 in a non-shortest form
        b"\xa2\x61a\x00\x7f\x61a\xff\x00",  # "a" and "a" as an indefinite text string
        b"\xa2\x41a\x00\x5f\x41a\xff\x00",  # h'61' and h'61' as an indefinite byte string
        b"\xa2\x20\x00\x38\x00\x00",  # -1 twice
    ],
)
def test_duplicate_keys_in_other_encodings_are_rejected(encoded: bytes) -> None:
    """The same key spelled two ways is still the same key (claims are looked up by value)."""
    with pytest.raises(CborError):
        loads(encoded)


def test_text_bytes_and_int_keys_are_not_duplicates() -> None:
    decoded = loads(b"\xa3\x01\x00\x61\x31\x00\x41\x01\x00")
    assert len(decoded) == 3
    assert decoded[1] == 0


@pytest.mark.parametrize(
    "encoded",
    [
        b"\xa2\x01\x00\xf5\x00",  # {1: 0, true: 0}
        b"\xa2\x01\x00\xf9\x3c\x00\x00",  # {1: 0, 1.0: 0}
        b"\xa2\x00\x00\xf4\x00",  # {0: 0, false: 0}
    ],
    ids=["1-and-true", "1-and-1.0", "0-and-false"],
)
def test_keys_of_different_cbor_types_are_not_duplicates(encoded: bytes) -> None:
    """RFC 8949 5.6: 1, 1.0 and true are different keys, and cbor.py wraps the odd ones in
    OtherKey so they are never read as the integer key 1. (Regression: cbor2's fast
    path compared keys with Python ==, refused these maps, and so denied a well-signed
    credential with such an unknown claim as malformed.)"""
    decoded = loads(encoded)
    assert len(decoded) == 2


# --- (e) nesting -----------------------------------------------------------------------

_WRAPPERS: dict[str, tuple[bytes, bytes]] = {
    "array": (b"\x81", b""),
    "indefinite_array": (b"\x9f", b"\xff"),
    "map": (b"\xa1\x00", b""),
    "indefinite_map": (b"\xbf\x00", b"\xff"),
    "tag": (b"\xd8\x2a", b""),
}


def _nested(kind: str, levels: int) -> bytes:
    head, tail = _WRAPPERS[kind]
    return head * levels + b"\x00" + tail * levels


@given(
    st.sampled_from(sorted(_WRAPPERS)), st.integers(min_value=0, max_value=64), st.integers(min_value=1, max_value=32)
)
def test_nesting_deeper_than_max_depth_is_rejected(kind: str, levels: int, max_depth: int) -> None:
    data = _nested(kind, levels)
    if levels > max_depth:
        with pytest.raises(CborError):
            loads(data, max_depth=max_depth)
    else:
        loads(data, max_depth=max_depth)


def test_default_depth_boundary() -> None:
    loads(_nested("array", MAX_DEPTH))
    with pytest.raises(CborError):
        loads(_nested("array", MAX_DEPTH + 1))


@pytest.mark.parametrize("kind", sorted(_WRAPPERS))
def test_very_deep_nesting_fails_fast_without_recursion_error(kind: str) -> None:
    start = time.perf_counter()
    with pytest.raises(CborError):
        loads(_nested(kind, 100_000))
    assert time.perf_counter() - start < 1.0


def test_item_budget_on_large_inputs() -> None:
    """Status and legacy list tokens can be megabytes: there ``max_items`` bounds the work
    (inputs up to FAST_MAX_BYTES are bounded by their length instead, per cbor.py)."""
    count = FAST_MAX_BYTES + 10
    array = b"\x9a" + count.to_bytes(4, "big") + b"\x00" * count
    with pytest.raises(CborError):
        loads(array)
    assert loads(array, max_items=count + 1) == [0] * count
    with pytest.raises(CborError):
        loads(b"\x9f" + b"\x00" * count + b"\xff")


# --- (f) lengths that lie ---------------------------------------------------------------


@pytest.mark.parametrize(
    "initial",
    [0x9B, 0xBB, 0x5B, 0x7B],  # array, map, byte string, text string with an 8-byte length
    ids=["array", "map", "bytes", "text"],
)
@pytest.mark.parametrize("claimed", [2**63, 2**64 - 1, 2**32])
@pytest.mark.parametrize(
    "wrap", [b"", b"\x5f", b"\x7f", b"\x81", b"\xd8\x18"], ids=["bare", "ibytes", "itext", "array", "tag"]
)
def test_huge_claimed_length_fails_fast(initial: int, claimed: int, wrap: bytes) -> None:
    data = wrap + bytes([initial]) + claimed.to_bytes(8, "big") + b"\x00\x00"
    start = time.perf_counter()
    with pytest.raises(CborError):
        loads(data)
    assert time.perf_counter() - start < 0.1


@given(
    st.sampled_from([0x80, 0xA0, 0x40, 0x60]),
    st.integers(min_value=0, max_value=2**64 - 1),
    st.binary(max_size=64),
)
def test_any_length_longer_than_the_input_is_rejected(major_bits: int, claimed: int, rest: bytes) -> None:
    data = bytes([major_bits | 27]) + claimed.to_bytes(8, "big") + rest
    if claimed <= len(rest):
        return  # an honest length: covered by the round-trip test
    with pytest.raises(CborError):
        loads(data)
