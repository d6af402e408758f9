"""The QR text envelope: ``PREFIX + base45(zlib(COSE_Sign1))`` (spec section 2.1).

The checks run in the spec's order and stop at the first failure, each raising
:class:`EnvelopeError` with the decision reason (``malformed`` or ``too_large``).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

from reader.gatepass.errors import EnvelopeError

MAX_TEXT_CHARS = 4096
MAX_INFLATED_BYTES = 65_536
MAX_NFC_BYTES = 4096
DEFAULT_PREFIXES: tuple[str, ...] = ("GP1:",)

BASE45_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
# Character -> value 0..44 for bytes.translate; every other byte maps to 0xFF.
_BASE45_TABLE = bytes(BASE45_ALPHABET.index(chr(b)) if chr(b) in BASE45_ALPHABET else 0xFF for b in range(256))



# Maps a base45 digit to 1 when, as the most significant digit of a triple, it could push
# the triple past 65535 (2025 * 32 + 44 + 45 * 44 = 66824), and to 0 otherwise.
_HIGH_DIGIT = bytes(1 if value >= 32 else 0 for value in range(256))


def _lanes(digits: bytes, width: int) -> int:
    """Spread bytes into ``width``-byte lanes of one big integer, so the digit arithmetic
    of every triple happens in a few C-level big-integer operations, not a Python loop."""
    wide = bytearray(len(digits) * width)
    wide[width - 1 :: width] = digits
    return int.from_bytes(wide, "big")


def base45_decode(text: str) -> bytes:
    """Decode RFC 9285 base45; raise ``ValueError`` for a bad character, length or value.

    Every triple ``c d e`` is ``c + 45 d + 2025 e``. When no ``e`` is 32 or more (nearly
    always), every triple fits 16 bits, so 16-bit lanes hold the answer with no carry and
    the big integer's bytes are the output. Otherwise 32-bit lanes (at most 91124 each)
    show a triple above 65535 as a nonzero high half. A 580-character code decodes in
    about 5 us.
    """
    full, rest = divmod(len(text), 3)
    if rest == 1:
        raise ValueError("base45 length leaves a single character")
    try:
        digits = text.encode("ascii").translate(_BASE45_TABLE)
    except UnicodeEncodeError:
        raise ValueError("character outside the base45 alphabet") from None
    if b"\xff" in digits:
        raise ValueError("character outside the base45 alphabet")
    end = full * 3
    low, middle, high = digits[0:end:3], digits[1:end:3], digits[2:end:3]
    if b"\x01" not in high.translate(_HIGH_DIGIT):
        words = _lanes(low, 2) + 45 * _lanes(middle, 2) + 2025 * _lanes(high, 2)
        out = words.to_bytes(full * 2, "big")
    else:
        words = _lanes(low, 4) + 45 * _lanes(middle, 4) + 2025 * _lanes(high, 4)
        lanes = words.to_bytes(full * 4, "big")
        if lanes[0::4].count(0) != full or lanes[1::4].count(0) != full:
            raise ValueError("base45 triple above 65535")
        wide = bytearray(full * 2)
        wide[0::2] = lanes[2::4]
        wide[1::2] = lanes[3::4]
        out = bytes(wide)
    if rest:
        tail = digits[-2] + 45 * digits[-1]
        if tail > 0xFF:
            raise ValueError("base45 pair above 255")
        out += bytes((tail,))
    return out


def base45_encode(data: bytes) -> str:
    """Encode bytes as RFC 9285 base45."""
    alphabet = BASE45_ALPHABET
    chars = []
    for i in range(0, len(data) - 1, 2):
        value = data[i] << 8 | data[i + 1]
        value, c = divmod(value, 45)
        e, d = divmod(value, 45)
        chars.append(alphabet[c] + alphabet[d] + alphabet[e])
    if len(data) % 2:
        d, c = divmod(data[-1], 45)
        chars.append(alphabet[c] + alphabet[d])
    return "".join(chars)


def inflate_bounded(data: bytes, limit: int) -> bytes:
    """Inflate one zlib stream to at most ``limit`` bytes.

    Raises ``EnvelopeError('too_large')`` past the limit and ``EnvelopeError('malformed')``
    for a zlib error, a truncated stream or bytes after the stream's end.
    """
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise EnvelopeError("malformed", f"zlib: {exc}") from None
    if len(out) > limit:
        # Asking for one byte past the cap tells "exactly at the cap" from "beyond it".
        raise EnvelopeError("too_large", f"inflates past {limit} bytes")
    if not inflater.eof:
        raise EnvelopeError("malformed", "zlib stream is truncated")
    if inflater.unused_data:
        raise EnvelopeError("malformed", "data after the zlib stream")
    return out


def open_text(text: str, prefixes: Sequence[str] = DEFAULT_PREFIXES) -> bytes:
    """Checks 1-4 of spec 2.1: return the COSE bytes inside a QR/scanner text."""
    for prefix in prefixes:
        if text.startswith(prefix):
            break
    else:
        raise EnvelopeError("malformed", "unknown prefix")
    if len(text) > MAX_TEXT_CHARS:
        raise EnvelopeError("too_large", f"text longer than {MAX_TEXT_CHARS} characters")
    try:
        raw = base45_decode(text[len(prefix) :])
    except ValueError as exc:
        raise EnvelopeError("malformed", f"base45: {exc}") from None
    if raw[:1] == b"\x78":
        return inflate_bounded(raw, MAX_INFLATED_BYTES)
    return raw


def seal_text(cose: bytes, prefix: str = DEFAULT_PREFIXES[0], compress: bool | None = None) -> str:
    """Wrap COSE bytes as QR text. ``compress=None`` compresses only when it shrinks the bytes
    (signatures and keys rarely compress, spec notes 373 -> 384 bytes for ES256/ES256)."""
    body = cose
    if compress is not False:
        packed = zlib.compress(cose, 9)
        if compress or len(packed) < len(cose):
            body = packed
    if body is cose and body[:1] == b"\x78":
        # Uncompressed bytes that start with 0x78 would be taken for zlib; COSE never does
        # (0x78 is a CBOR text header), but refuse rather than emit an ambiguous code.
        raise ValueError("uncompressed payload starts with 0x78")
    return prefix + base45_encode(body)
