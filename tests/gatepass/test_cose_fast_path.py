"""The hand split of the common COSE_Sign1 shape must agree with the full decoder on every
input it accepts, and leave everything else to it."""

from __future__ import annotations

import cbor2
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given
from hypothesis import strategies as st

from reader.gatepass.cbor import CborError, loads
from reader.gatepass.cose import CoseFormatError, _split_common_sign1, ecdsa_der, parse_sign1, sign1_from_item
from reader.gatepass.decide import _split_common_presentation


def _full(data: bytes):
    try:
        return sign1_from_item(loads(data))
    except (CborError, CoseFormatError):
        return None


def _same(data: bytes) -> None:
    fast = _split_common_sign1(data)
    if fast is None:
        return
    full = _full(data)
    assert full is not None, data.hex()
    assert (fast.protected_bytes, fast.protected, dict(fast.unprotected), fast.payload, fast.signature) == (
        full.protected_bytes, full.protected, dict(full.unprotected), full.payload, full.signature)
    # The Sig_structure cut from the received bytes is the one the decoder path builds.
    assert fast.to_be_signed() == full.to_be_signed(), data.hex()


items = st.one_of(st.binary(max_size=300), st.integers(), st.text(max_size=5), st.dictionaries(
    st.integers(-3, 5), st.binary(max_size=8), max_size=2))


@given(st.lists(items, min_size=3, max_size=5), st.sampled_from([None, 18, 61, 98, (61, 18), (18, 18)]),
       st.binary(max_size=4))
def test_fast_split_agrees_with_the_decoder(parts, tag, trailing) -> None:
    body = [cbor2.dumps({1: -7}) if isinstance(parts[0], bytes) else parts[0], *parts[1:]]
    item = body
    for number in ((tag,) if isinstance(tag, int) else tag or ())[::-1]:
        item = cbor2.CBORTag(number, item)
    data = cbor2.dumps(item) + trailing
    _same(data)
    for cut in (1, len(data) // 2, len(data) - 1):
        _same(data[:cut])


@given(st.binary(max_size=600))
def test_fast_split_on_noise(data: bytes) -> None:
    _same(data)


def test_tag_61_alone_is_left_to_the_decoder() -> None:
    body = [cbor2.dumps({1: -7}), {}, b"payload", b"s" * 64]
    data = cbor2.dumps(cbor2.CBORTag(61, body))
    assert _split_common_sign1(data) is None
    try:
        parse_sign1(data)
    except CoseFormatError as exc:
        assert "61" in str(exc)
    else:
        raise AssertionError("tag 61 without tag 18 must be refused")
    assert _split_common_sign1(cbor2.dumps(cbor2.CBORTag(61, cbor2.CBORTag(18, body)))) is not None
    assert _split_common_sign1(cbor2.dumps(body)) is not None
    assert _split_common_sign1(cbor2.dumps([*body[:1], {4: b"k"}, *body[2:]])) is None  # non-empty unprotected


def test_payload_length_in_a_longer_form_than_needed_is_left_to_the_decoder() -> None:
    """The split cuts the Sig_structure from the received bytes, so it only takes payload
    headers in their shortest form; the decoder path re-encodes any other."""
    protected = cbor2.dumps({1: -7})
    for payload_item in (b"\x58\x05" + b"p" * 5, b"\x59\x00\x30" + b"p" * 48):
        data = b"\xd2\x84\x43" + protected + b"\xa0" + payload_item + b"\x58\x40" + b"s" * 64
        assert _split_common_sign1(data) is None
        sign1 = parse_sign1(data)
        assert sign1.to_be_signed() == cbor2.dumps(["Signature1", protected, b"", sign1.payload])


presentation_values = st.one_of(st.binary(max_size=70), st.integers(-3, 2**64), st.text(max_size=6), st.none(),
                                st.floats(allow_nan=False), st.booleans())


@given(st.dictionaries(st.one_of(st.integers(-1, 7), st.text(max_size=2)), presentation_values, max_size=6),
       st.binary(max_size=3))
def test_presentation_split_agrees_with_the_decoder(payload: dict, trailing: bytes) -> None:
    data = cbor2.dumps(payload) + trailing
    for candidate in (data, data[:-1], data[: len(data) // 2]):
        fast = _split_common_presentation(candidate)
        if fast is None:
            continue
        assert fast == loads(candidate), candidate.hex()


def test_presentation_split_takes_the_common_shapes() -> None:
    qr = {1: b"c" * 300, 2: 1_800_000_000, 3: b"n" * 16}
    nfc = {1: b"c" * 300, 2: 1_800_000_000, 4: b"r" * 16, 5: "gate-1"}
    for payload in (qr, nfc, {1: b"c", 2: 5, 4: b"r" * 16}):
        assert _split_common_presentation(cbor2.dumps(payload)) == payload
    assert _split_common_presentation(cbor2.dumps({2: 1, 1: b"c", 3: b"n"})) is None  # other order: decoder
    assert _split_common_presentation(cbor2.dumps({1: b"c", 2: 1.5, 3: b"n"})) is None


@given(st.sampled_from([32, 48, 66]), st.data())
def test_ecdsa_der_matches_cryptography(size: int, data) -> None:
    # Leading zero bytes and high bits are what the hand-built DER has to get right.
    part = st.one_of(st.binary(min_size=size, max_size=size),
                     st.binary(min_size=0, max_size=size).map(lambda b: b.rjust(size, b"\0")),
                     st.binary(min_size=size - 1, max_size=size - 1).map(lambda b: b"\x80" + b))
    r, s = data.draw(part), data.draw(part)
    expected = encode_dss_signature(int.from_bytes(r, "big"), int.from_bytes(s, "big"))
    assert ecdsa_der(r + s, size) == expected
