"""Find and decode 2D codes in one camera frame, with zxing-cpp (default) or zbar.

Kept apart from the capture loop so ``gate-reader bench qr`` and the tests can time and call
the decoders on frames they make, without a camera.

Why zxing-cpp by default: on a 640x480 frame it takes ~1 ms against zbar's ~10-18 ms, reads
QR, DataMatrix, Aztec and PDF417, and hands back the text exactly as encoded. zbar (pyzbar,
which needs the system's libzbar0) reads only QR among the 2D formats a phone shows, and
re-encodes what it finds as UTF-8 text; GatePass texts are base45 ASCII, so both give the same
string for them.

The text is returned exactly as decoded: no strip, no case folding (spec 2.1: the verifier
takes the text as given).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from drivers.errors import DriverConfigError, DriverError

#: the formats a camera may be asked to read (config names)
FORMATS: tuple[str, ...] = ("qr", "datamatrix", "aztec", "pdf417")
DECODERS: tuple[str, ...] = ("zxing", "zbar")
#: what zbar can read among FORMATS (its PDF417 decoder was never finished)
ZBAR_FORMATS: frozenset[str] = frozenset({"qr"})

Decoder = Callable[[np.ndarray], list[str]]


def zbar_unavailable_reason() -> str | None:
    """None when pyzbar and the system's libzbar0 load; otherwise why not (for a config
    error or a test skip)."""
    try:
        import pyzbar.pyzbar  # noqa: F401
    except ImportError as exc:  # pyzbar missing, or libzbar0 missing (pyzbar raises ImportError)
        return f"pyzbar cannot load ({exc}); install the zbar extra and the system's libzbar0"
    return None


def _gray(frame: np.ndarray) -> np.ndarray:
    """8-bit single-channel view of ``frame``: the decoders binarise luminance anyway, and
    handing them grey saves zxing-cpp ~30 % and is the only layout zbar accepts."""
    if frame.ndim == 2:
        return frame
    if frame.ndim == 3 and frame.shape[2] == 1:
        return frame[:, :, 0]
    import cv2

    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2GRAY)
    raise DriverError(f"frame of shape {frame.shape} is neither grey nor BGR(A)")


def check_choice(decoder: str, formats: Sequence[str]) -> tuple[str, ...]:
    """Validate a decoder name and format list as a config error would name them; returns
    the formats as a tuple without duplicates, in the order given."""
    if decoder not in DECODERS:
        raise DriverConfigError(f"decoder: unknown decoder {decoder!r} (known: {', '.join(DECODERS)})")
    if isinstance(formats, str):
        formats = (formats,)
    chosen = tuple(dict.fromkeys(formats))
    if not chosen:
        raise DriverConfigError("formats: at least one format is needed")
    unknown = [name for name in chosen if name not in FORMATS]
    if unknown:
        raise DriverConfigError(f"formats: unknown format {unknown[0]!r} (known: {', '.join(FORMATS)})")
    if decoder == "zbar":
        unsupported = [name for name in chosen if name not in ZBAR_FORMATS]
        if unsupported:
            raise DriverConfigError(f"formats: zbar cannot read {unsupported[0]!r}; use decoder 'zxing'")
        reason = zbar_unavailable_reason()
        if reason is not None:
            raise DriverConfigError(f"decoder: {reason}")
    return chosen


@functools.lru_cache(maxsize=16)
def make_decoder(decoder: str = "zxing", formats: tuple[str, ...] = ("qr",)) -> Decoder:
    """A prepared decoder (library imported, format set resolved once): ``frame -> texts``.

    Raises DriverConfigError for an unknown decoder or format, or zbar without libzbar0.
    The returned callable raises DriverError when the library rejects a frame.
    """
    formats = check_choice(decoder, formats)
    if decoder == "zxing":
        return _zxing_decoder(formats)
    return _zbar_decoder()


def _zxing_decoder(formats: tuple[str, ...]) -> Decoder:
    import zxingcpp

    by_name = {
        "qr": zxingcpp.BarcodeFormat.QRCode,
        "datamatrix": zxingcpp.BarcodeFormat.DataMatrix,
        "aztec": zxingcpp.BarcodeFormat.Aztec,
        "pdf417": zxingcpp.BarcodeFormat.PDF417,
    }
    wanted: Any = by_name[formats[0]] if len(formats) == 1 else tuple(by_name[name] for name in formats)
    plain = zxingcpp.TextMode.Plain  # the content as encoded; HRI would reformat GS1 data

    def decode_zxing(frame: np.ndarray) -> list[str]:
        try:
            found = zxingcpp.read_barcodes(_gray(frame), formats=wanted, text_mode=plain)
        except (ValueError, RuntimeError, TypeError) as exc:
            raise DriverError(f"zxing-cpp rejected the frame: {exc}") from exc
        return [barcode.text for barcode in found]

    return decode_zxing


def _zbar_decoder() -> Decoder:
    from pyzbar import pyzbar

    symbols = [pyzbar.ZBarSymbol.QRCODE]

    def decode_zbar(frame: np.ndarray) -> list[str]:
        gray = np.ascontiguousarray(_gray(frame))
        try:
            found = pyzbar.decode(gray, symbols=symbols)
        except (pyzbar.PyZbarError, ValueError, TypeError) as exc:
            raise DriverError(f"zbar rejected the frame: {exc}") from exc
        # zbar hands over UTF-8; anything else becomes U+FFFD and the verifier says malformed.
        return [symbol.data.decode("utf-8", errors="replace") for symbol in found]

    return decode_zbar


def decode(frame: np.ndarray, decoder: str = "zxing", formats: Sequence[str] = ("qr",)) -> list[str]:
    """Every code of ``formats`` found in ``frame`` (grey or BGR uint8), texts exactly as
    decoded, in the decoder's order. An empty list when there is none."""
    return make_decoder(decoder, tuple(formats))(frame)
