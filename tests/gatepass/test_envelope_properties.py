"""Property tests for the QR text envelope (reader/gatepass/envelope.py, spec section 2.1).

A scanner hands the gate whatever text it read, so ``open_text`` must fail only with
``EnvelopeError`` carrying one of the two format reasons, in the spec's check order, and
its size bounds must hold exactly at their edges.

Example counts come from ``GATE_HYPOTHESIS_EXAMPLES`` (default 300; the profile in
tests/conftest.py); the 10,000-example run:

    GATE_HYPOTHESIS_EXAMPLES=10000 .venv/bin/pytest tests/gatepass -k properties
"""

from __future__ import annotations

import zlib

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from reader.gatepass.envelope import (
    BASE45_ALPHABET,
    MAX_INFLATED_BYTES,
    MAX_TEXT_CHARS,
    EnvelopeError,
    base45_decode,
    base45_encode,
    inflate_bounded,
    open_text,
    seal_text,
)

FORMAT_REASONS = {"malformed", "too_large"}
BASE45_TEXT = st.text(alphabet=BASE45_ALPHABET, max_size=600)
PREFIX = "GP1:"


def open_reason(text: str) -> str | None:
    """``open_text``'s failure reason, or None when it returns; anything else propagates."""
    try:
        open_text(text)
    except EnvelopeError as exc:
        assert exc.reason in FORMAT_REASONS, exc.reason
        return exc.reason
    return None


# --- base45 ----------------------------------------------------------------------------


@given(st.binary(max_size=2048))
def test_base45_roundtrip(data: bytes) -> None:
    text = base45_encode(data)
    assert set(text) <= set(BASE45_ALPHABET)
    assert len(text) == 3 * (len(data) // 2) + 2 * (len(data) % 2)
    assert base45_decode(text) == data


@pytest.mark.parametrize(
    ("data", "text"),
    [(b"AB", "BB8"), (b"Hello!!", "%69 VD92EX0"), (b"base-45", "UJCLQE7W581"), (b"ietf!", "QED8WEX0"), (b"", "")],
)
def test_base45_rfc9285_examples(data: bytes, text: str) -> None:
    assert base45_encode(data) == text
    assert base45_decode(text) == data


@given(st.one_of(st.text(max_size=600), BASE45_TEXT))
def test_base45_decode_only_raises_value_error(text: str) -> None:
    """And a text it accepts is the canonical encoding of what it returns (RFC 9285 has
    exactly one encoding per byte string, so nothing may decode "loosely")."""
    try:
        data = base45_decode(text)
    except ValueError:
        return
    assert base45_encode(data) == text


@pytest.mark.parametrize("text", ["GGW", ":::", "A", "ABCD", "bb8", "BB8 \n", "BB8::"])
def test_base45_rejects_bad_length_value_or_character(text: str) -> None:
    with pytest.raises(ValueError):
        base45_decode(text)


# --- open_text on anything -------------------------------------------------------------


@given(st.text(max_size=5000))
def test_open_text_on_arbitrary_text(text: str) -> None:
    open_reason(text)


@given(BASE45_TEXT)
def test_open_text_on_prefixed_base45_alphabet_text(body: str) -> None:
    reason = open_reason(PREFIX + body)
    if reason is None:
        return
    assert reason == "malformed"  # at most 604 characters: never too long


@given(st.binary(max_size=2000))
def test_open_text_returns_the_bytes_or_their_inflation(data: bytes) -> None:
    assume(data[:1] != b"\x78")
    assert open_text(seal_text(data, compress=False)) == data
    assert open_text(seal_text(data, compress=True)) == data


@given(st.binary(max_size=300), st.sampled_from(["gp1:", " GP1:", "GP1", "GP2:", "", "HC1:"]))
def test_prefix_match_is_exact_and_case_sensitive(data: bytes, prefix: str) -> None:
    assume(data[:1] != b"\x78")
    text = prefix + base45_encode(data)
    assume(not text.startswith(PREFIX))  # "GP1" + ":00..." is a real prefix after all
    assert open_reason(text) == "malformed"
    if prefix:
        assert open_text(text, prefixes=(prefix,)) == data


# --- zlib bounds -----------------------------------------------------------------------


def test_zlib_bomb_is_too_large() -> None:
    bomb = zlib.compress(b"\0" * 200_000, 9)
    text = PREFIX + base45_encode(bomb)
    assert len(text) <= MAX_TEXT_CHARS
    assert open_reason(text) == "too_large"


def test_inflate_limit_is_exact() -> None:
    at_limit = zlib.compress(b"\0" * MAX_INFLATED_BYTES, 9)
    assert open_text(PREFIX + base45_encode(at_limit)) == b"\0" * MAX_INFLATED_BYTES
    over = zlib.compress(b"\0" * (MAX_INFLATED_BYTES + 1), 9)
    assert open_reason(PREFIX + base45_encode(over)) == "too_large"


@given(st.integers(min_value=0, max_value=3 * MAX_INFLATED_BYTES), st.integers(min_value=0, max_value=9))
def test_inflate_limit_holds_for_any_size(size: int, level: int) -> None:
    packed = zlib.compress(bytes(size), level)
    if size <= MAX_INFLATED_BYTES:
        assert inflate_bounded(packed, MAX_INFLATED_BYTES) == bytes(size)
    else:
        with pytest.raises(EnvelopeError) as info:
            inflate_bounded(packed, MAX_INFLATED_BYTES)
        assert info.value.reason == "too_large"


@given(st.binary(max_size=1000), st.binary(min_size=1, max_size=64))
def test_data_after_the_zlib_stream_is_malformed(data: bytes, extra: bytes) -> None:
    assert open_reason(PREFIX + base45_encode(zlib.compress(data) + extra)) == "malformed"


@given(st.binary(max_size=1000), st.data())
def test_truncated_zlib_stream_is_malformed(data: bytes, draw: st.DataObject) -> None:
    packed = zlib.compress(data)
    cut = draw.draw(st.integers(min_value=1, max_value=len(packed) - 1))
    assert open_reason(PREFIX + base45_encode(packed[:cut])) == "malformed"


@given(st.binary(min_size=1, max_size=600))
def test_any_bytes_starting_with_0x78_only_fail_with_format_reasons(tail: bytes) -> None:
    """Bytes with the zlib first byte are always inflated: garbage there is a format error."""
    open_reason(PREFIX + base45_encode(b"\x78" + tail))


@given(st.binary(min_size=2, max_size=800), st.integers(min_value=0, max_value=7), st.data())
def test_corrupted_zlib_stream_never_escapes(data: bytes, bit: int, draw: st.DataObject) -> None:
    packed = bytearray(zlib.compress(data))
    index = draw.draw(st.integers(min_value=1, max_value=len(packed) - 1))
    packed[index] ^= 1 << bit
    reason = open_reason(PREFIX + base45_encode(bytes(packed)))
    assert reason in (None, "malformed")  # the Adler-32 check may be the only thing hit


def test_zlib_preset_dictionary_is_malformed() -> None:
    compressor = zlib.compressobj(zdict=b"GatePass")
    packed = compressor.compress(b"GatePass GatePass") + compressor.flush()
    assert packed[:1] == b"\x78"
    assert open_reason(PREFIX + base45_encode(packed)) == "malformed"


# --- text length and check order -------------------------------------------------------


def test_text_length_boundary() -> None:
    body_at_limit = "0" * (MAX_TEXT_CHARS - len(PREFIX))  # 4092 characters: 1364 triples
    assert len(PREFIX + body_at_limit) == MAX_TEXT_CHARS
    assert open_text(PREFIX + body_at_limit) == b"\0" * (2 * len(body_at_limit) // 3)
    # 4097 characters: the length check comes before base45 (4093 is not even a base45 length).
    assert open_reason(PREFIX + body_at_limit + "0") == "too_large"


@given(st.integers(min_value=MAX_TEXT_CHARS + 1, max_value=3 * MAX_TEXT_CHARS), st.sampled_from(["0", "a", "~"]))
def test_too_long_text_is_too_large_whatever_its_content(length: int, filler: str) -> None:
    assert open_reason((PREFIX + filler * length)[:length]) == "too_large"


@given(st.integers(min_value=0, max_value=3 * MAX_TEXT_CHARS), st.sampled_from(["XX1:", "gp1:", "0"]))
def test_unknown_prefix_is_malformed_before_the_length_check(length: int, prefix: str) -> None:
    assert open_reason(prefix + "0" * length) == "malformed"


def test_length_counts_characters_not_bytes() -> None:
    """Non-ASCII text at 4096 characters passes the length check and fails base45."""
    text = PREFIX + "é" * (MAX_TEXT_CHARS - len(PREFIX))
    assert open_reason(text) == "malformed"
    assert open_reason(text + "é") == "too_large"
