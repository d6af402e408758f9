"""The QR camera: OpenCV capture, a cheap "has the scene changed?" gate, zxing-cpp or zbar.

``device`` is what ``cv2.VideoCapture`` opens:

- a V4L2 camera: an index (``0``) or a path (``/dev/video0``). Width, height and fps are
  requested from the device (it may pick the nearest mode it has; the size actually
  delivered is in ``health().extra["frame_size"]``). A failed read means the camera went
  away: the source raises and the base class reconnects with backoff.
- a stream URL (``rtsp://...``, ``http://...``): as a camera; the end of the stream is a loss.
- a file: a video (MJPG .avi, mp4v .mp4) or an image sequence pattern (``frames/%04d.png``).
  That is the simulator: frames are played at ``fps`` and at their own size. When a file
  ends, the source stays **up and idle** until stopped (``health().extra["ended"]``): a
  replay would show the same codes again, which a gate must not take as new reads. With
  ``loop=True`` it starts over (demos). A file that is missing or yields no readable frame
  is a device loss, retried with backoff, so a simulator may write its file after the start.

Bad frames: a frame that cannot be decoded (a corrupt PNG in a sequence, a damaged packet in
a video), a read that raises inside OpenCV, or a frame no decoder can take (not 8-bit, an
odd shape, smaller than the region of interest) is counted (``health().extra["bad_frames"]``,
and ``health().last_error`` says what was wrong), skipped, and reading goes on. A file
reports how many frames it holds, so a failed read before that count is a bad frame and one
after it is the end. A source that cannot use any frame is down, not up: a file with no
readable frame at all, and a camera (or a file that does not say its length) whose last
``max_bad_in_a_row`` frames were all bad, are device losses and reconnect with backoff.

Why the change gate: a camera looking at an empty gate sees the same scene all day. Each
frame is shrunk to an 80x60 grey thumbnail (after the ROI) and compared with the previous
one and with the thumbnail of the last decoded frame; the mean absolute difference in grey
levels decides. A frame is decoded when it is the first after (re)opening, when it differs
from the last decoded one by at least ``change_threshold`` (something moved, or drifted
slowly), or when the scene has just settled after motion (the steady frame is the sharp
one). Everything else is skipped and counted. ``change_threshold=0`` decodes every frame.

Why the dedupe keeps "last seen" rather than "last emitted": a code held in front of the
camera must give one presentation, however long it is held; a second one would be denied as
``replayed`` and show the user a red light after the green. Skipped frames count as seeing
again what the last decode found (the scene did not change). A text comes through again once
it was out of sight for ``dedupe_s``.
"""

# Over ~400 lines on purpose: one source: capture, the change gate, decode, deduplication and health share the
# thread's state; the scene drawing for tests lives apart, in camera_sim.

from __future__ import annotations

import logging
import math
import re
import sys
import time
from collections.abc import Callable
from typing import Any, NoReturn

import cv2
import numpy as np

from drivers.base import Sink, SourceBase, SourceHealth
from drivers.errors import DeviceUnavailable, DriverConfigError, DriverError
from drivers.qr_decode import FORMATS, check_choice, make_decoder
from offline_cache.loghash import short_hash

log = logging.getLogger(__name__)

THUMB_SIZE = (80, 60)  # (width, height) of the change-detection thumbnail
DEFAULT_CHANGE_THRESHOLD = 2.0  # mean |difference| in grey levels (0-255) on the thumbnail
_ENDED_POLL_S = 0.25  # how often an ended file source looks at its stop flag

CaptureFactory = Callable[[Any, int], Any]


def _redact(device: str | int) -> str:
    """The device for logs and health, without any ``user:password@`` of a stream URL."""
    return re.sub(r"//[^/@]*@", "//***@", str(device))


def _first_line(exc: BaseException) -> str:
    """An OpenCV error's message is several lines (file, function, assertion): keep the first."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two thumbnails, in grey levels."""
    return float(cv2.norm(a, b, cv2.NORM_L1)) / a.size


class CameraSource(SourceBase):
    """QR codes (and optionally other 2D codes) seen by a camera, emitted as ``kind="qr"``
    presentations with the text exactly as decoded.

    ``capture_factory(device, api_preference)`` opens the capture; it defaults to
    ``cv2.VideoCapture`` and tests pass a fake one (a capture that fails and comes back).
    """

    #: this many bad frames in a row from a camera (or a file of unknown length) is a loss:
    #: 2 s at 15 fps, long past a glitch
    max_bad_in_a_row = 30

    def __init__(
        self,
        name: str,
        sink: Sink,
        *,
        device: str | int = 0,
        decoder: str = "zxing",
        width: int = 640,
        height: int = 480,
        fps: float = 15,
        roi: tuple[int, int, int, int] | None = None,
        formats: tuple[str, ...] = ("qr",),
        dedupe_s: float = 3.0,
        change_threshold: float = DEFAULT_CHANGE_THRESHOLD,
        loop: bool = False,
        capture_factory: CaptureFactory = cv2.VideoCapture,
    ) -> None:
        super().__init__(name, sink)
        self.device = self._parse_device(device)
        self.formats = check_choice(decoder, formats)
        self.decoder = decoder
        self._decode = make_decoder(decoder, self.formats)
        if int(width) <= 0 or int(height) <= 0:
            raise DriverConfigError(f"width/height: must be positive, got {width}x{height}")
        self.width, self.height = int(width), int(height)
        if not fps > 0:
            raise DriverConfigError(f"fps: must be positive, got {fps}")
        self.fps = float(fps)
        self.roi = self._parse_roi(roi)
        if dedupe_s < 0:
            raise DriverConfigError(f"dedupe_s: must not be negative, got {dedupe_s}")
        self.dedupe_s = float(dedupe_s)
        if change_threshold < 0:
            raise DriverConfigError(f"change_threshold: must not be negative, got {change_threshold}")
        self.change_threshold = float(change_threshold)
        self.loop = bool(loop)
        self._factory = capture_factory
        # live: a camera or a stream (it paces itself; a failed read is a loss). Otherwise a
        # file played at fps, whose end is not a loss.
        self.live = isinstance(self.device, int) or self.device.startswith("/dev/") or "://" in self.device
        self._cap: Any = None
        self._period = 1.0 / self.fps
        self._next_due = 0.0
        self._ended = False
        self._frames_since_open = 0
        self._prev: np.ndarray | None = None  # thumbnail of the previous frame
        self._ref: np.ndarray | None = None  # thumbnail of the last decoded frame
        self._moving = False
        self._in_view: list[str] = []  # what the last decode found
        self._seen: dict[str, float] = {}  # text -> monotonic time last seen
        self._frame_size: str | None = None
        self._reads = 0  # reads since the capture was opened, bad ones included
        self._length: int | None = None  # frames a file says it holds, when it says
        self._misses = 0  # failed reads not yet known to be bad frames (a file of unknown length)
        self._bad_in_a_row = 0
        self._last_bad: str | None = None  # what was wrong with the last bad frame
        self._stuck = 0  # sessions in a row lost to unusable frames (reset by a usable one)
        #: time.monotonic() when the frame being processed was read; a sink called in the
        #: source's thread can subtract it from Presentation.read_at (bench e2e figure)
        self.last_frame_at: float | None = None
        self.frames = 0  # frames processed
        self.decoded_frames = 0  # frames handed to the decoder
        self.skipped_frames = 0  # frames the change gate let pass undecoded
        self.dropped_frames = 0  # live frames beyond fps, read and thrown away
        self.duplicates = 0  # reads dropped by the dedupe
        self.decode_errors = 0
        self.bad_frames = 0  # frames that could not be read or used, skipped

    # -- configuration -------------------------------------------------------------------

    @staticmethod
    def _parse_device(device: str | int) -> str | int:
        if isinstance(device, bool) or not isinstance(device, int | str):
            raise DriverConfigError(f"device: expected a camera index, a path or a URL, got {device!r}")
        if isinstance(device, str):
            if not device:
                raise DriverConfigError("device: empty")
            if device.isdigit():
                return int(device)
        elif device < 0:
            raise DriverConfigError(f"device: camera index must not be negative, got {device}")
        return device

    @staticmethod
    def _parse_roi(roi: tuple[int, int, int, int] | None) -> tuple[int, int, int, int] | None:
        if roi is None:
            return None
        try:
            x, y, w, h = (int(v) for v in roi)
        except (TypeError, ValueError):
            raise DriverConfigError(f"roi: expected (x, y, width, height), got {roi!r}") from None
        if x < 0 or y < 0 or w <= 0 or h <= 0:
            raise DriverConfigError(f"roi: x and y must be >= 0, width and height > 0, got {roi!r}")
        return x, y, w, h

    # -- SourceBase ----------------------------------------------------------------------

    def _open_device(self) -> None:
        if self._stuck:
            # It opened last time but gave nothing usable: back off as after a failed open
            # (the base class reopens at once after a loss), and stay down meanwhile.
            self._stop.wait(min(self.backoff_s[0] * 2 ** (self._stuck - 1), self.backoff_s[1]))
        # The dedupe memory survives a reconnect: a camera that blinks while a phone is held
        # up must not present the same code twice. The change gate starts afresh.
        self._ended = False
        self._frames_since_open = 0
        self._prev = self._ref = None
        self._moving = False
        self._in_view = []
        self._next_due = time.monotonic()
        self._start(self._open_capture())
        log.info("camera %s: opened %s (decoder %s, formats %s)", self.name, _redact(self.device),
                 self.decoder, ",".join(self.formats))

    def _open_capture(self) -> Any:
        if self.live and not (isinstance(self.device, str) and "://" in self.device):
            api = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
        else:
            api = cv2.CAP_ANY
        try:
            cap = self._factory(self.device, api)
            opened = cap.isOpened()
        except cv2.error as exc:
            raise DeviceUnavailable(f"cannot open {_redact(self.device)}: {exc}") from exc
        if not opened:
            self._release(cap)
            raise DeviceUnavailable(f"cannot open {_redact(self.device)}")
        if self.live:
            # Requests; a camera keeps the nearest mode it has. A one-frame buffer keeps the
            # decoded frame recent when a decode takes longer than a frame period.
            for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, self.width), (cv2.CAP_PROP_FRAME_HEIGHT, self.height),
                                (cv2.CAP_PROP_FPS, self.fps), (cv2.CAP_PROP_BUFFERSIZE, 1)):
                try:
                    cap.set(prop, value)
                except cv2.error as exc:
                    log.debug("camera %s: property %s not set (%s)", self.name, prop, exc)
        return cap

    def _start(self, cap: Any) -> None:
        """Read from ``cap`` from its first frame; a file's length is asked once."""
        self._cap = cap
        self._frames_since_open = self._reads = self._misses = 0
        if not self._stuck:  # a run of bad frames goes on across a reopen that did not help
            self._bad_in_a_row = 0
        self._length = None
        if not self.live:
            try:  # 0 or -1 when OpenCV does not know
                length = float(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            except cv2.error:
                length = 0.0
            self._length = int(length) if math.isfinite(length) and length >= 1 else None

    def _release(self, cap: Any) -> None:
        try:
            cap.release()
        except Exception as exc:  # must not raise from a close path
            log.warning("camera %s: release failed (%s)", self.name, exc)

    def _close_device(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            self._release(cap)

    def _read_once(self) -> None:
        if self._ended:
            self._stop.wait(_ENDED_POLL_S)
            return
        if not self.live:
            wait = self._next_due - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                return
        frame = self._grab()
        if frame is None:
            return
        now = time.monotonic()
        if self.live and now < self._next_due - self._period / 4:
            self.dropped_frames += 1  # the camera runs faster than asked: keep its buffer drained
            return
        # The next frame is due one period later; after a lag, from now (no catch-up burst).
        self._next_due = max(self._next_due + self._period, now)
        self.last_frame_at = now
        try:
            self._process(frame, now)
        except cv2.error as exc:  # one frame OpenCV could not work on: skipped like a bad read
            self._bad_frame(f"processing failed: {_first_line(exc)}")

    def _grab(self) -> np.ndarray | None:
        """The next usable frame; None when there is none this time: a bad frame was
        skipped, or a file ended (the source goes idle or starts over)."""
        self._reads += 1
        error = None
        try:
            ok, frame = self._cap.read()
        except cv2.error as exc:
            if self.live:
                self._lost(f"read failed: {_first_line(exc)}")
            ok, frame, error = False, None, f"read {self._reads} failed: {_first_line(exc)}"
        if ok and frame is not None:
            problem = self._unusable(frame)
            if problem is not None:
                self._bad_frame(problem)
                return None
            self._frames_since_open += 1
            self._stuck = 0
            if self._misses:  # a file of unknown length went on: those misses were bad frames
                self._count_bad(f"{self._misses} frame(s) before frame {self._reads} could not be decoded",
                                self._misses)
                self._misses = 0
            if self._bad_in_a_row:
                log.info("camera %s: frames usable again after %d bad", self.name, self._bad_in_a_row)
                self._bad_in_a_row = 0
            return frame
        if self.live:
            self._lost(f"{_redact(self.device)} returned no frame")
        # A file: a frame that could not be read, or the end.
        if self._length is not None:
            if self._reads <= self._length:
                self._bad_frame(error or f"frame {self._reads} of {self._length} could not be decoded")
                return None
        elif error is not None:
            self._bad_frame(error)
            return None
        elif self._misses < self.max_bad_in_a_row:
            self._misses += 1  # counted only if a frame follows; otherwise it was the end
            return None
        self._end_of_file()
        return None

    def _lost(self, message: str) -> NoReturn:
        """A camera read failed: the device went away. If it gave no usable frame since it
        was opened, reopening did not help: the next open backs off."""
        if self._frames_since_open == 0:
            self._stuck += 1
        raise DeviceUnavailable(message)

    def _end_of_file(self) -> None:
        if self._frames_since_open == 0:
            why = f" (last bad frame: {self._last_bad})" if self._last_bad else ""
            self._stuck += 1
            raise DeviceUnavailable(f"{_redact(self.device)} has no readable frames{why}")
        if self.loop:
            log.debug("camera %s: file ended, starting over", self.name)
            self._close_device()
            self._start(self._open_capture())
            return
        log.info("camera %s: file ended after %d frames (%d bad); idle until stopped", self.name,
                 self._frames_since_open, self.bad_frames)
        self._close_device()
        self._ended = True

    def _count_bad(self, problem: str, count: int = 1) -> None:
        """Count and report frames skipped (health's bad_frames and last_error)."""
        self.bad_frames += count
        self._bad_in_a_row += count
        self._last_bad = problem
        self._report_error(f"frame: {problem}")
        # The first of a run is a warning; the rest would flood the log at the frame rate.
        (log.warning if self._bad_in_a_row == count else log.debug)(
            "camera %s: bad frame skipped (%s)", self.name, problem)

    def _bad_frame(self, problem: str) -> None:
        """A frame skipped; a camera (or a file of unknown length) that gives nothing but
        bad frames is lost, not up. A file of known length ends after its last frame."""
        self._count_bad(problem)
        if not self.live and self._length is not None:
            return
        # After a session lost this way, the first bad frame ends the next one too.
        if self._bad_in_a_row >= (1 if self._stuck else self.max_bad_in_a_row):
            self._stuck += 1
            raise DeviceUnavailable(f"{self._bad_in_a_row} frames in a row could not be used (last: {problem})")

    def _unusable(self, frame: Any) -> str | None:
        """Why the decoders cannot take this frame, or None. Checked before any OpenCV call,
        which would raise (or misread) on such a frame."""
        if not isinstance(frame, np.ndarray) or frame.size == 0:
            return "an empty frame"
        if frame.dtype != np.uint8:
            return f"{frame.dtype} pixels, not 8-bit"
        if not (frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] in (1, 3, 4))):
            return f"a frame of shape {frame.shape}"
        if self.roi is not None:
            x, y, w, h = self.roi
            if frame[y:y + h, x:x + w].size == 0:
                return f"roi: {self.roi} lies outside the {frame.shape[1]}x{frame.shape[0]} frame"
        return None

    # -- one frame -----------------------------------------------------------------------

    def _crop(self, frame: np.ndarray) -> np.ndarray:
        if self.roi is None:
            return frame
        x, y, w, h = self.roi
        return frame[y:y + h, x:x + w]  # not empty: _unusable checked it

    def _process(self, frame: np.ndarray, now: float) -> None:
        self.frames += 1
        self._frame_size = f"{frame.shape[1]}x{frame.shape[0]}"
        region = self._crop(frame)
        if region.ndim == 3 and region.shape[2] == 3:
            gray = cv2.cvtColor(region, cv2.COLOR_BGR2GRAY)
        elif region.ndim == 3 and region.shape[2] == 4:
            gray = cv2.cvtColor(region, cv2.COLOR_BGRA2GRAY)
        else:
            gray = np.ascontiguousarray(region if region.ndim == 2 else region[:, :, 0])  # zxing wants rows packed
        if not self._should_decode(cv2.resize(gray, THUMB_SIZE, interpolation=cv2.INTER_AREA)):
            self.skipped_frames += 1
            for text in self._in_view:  # the same scene: what was there is still there
                self._seen[text] = now
            return
        self.decoded_frames += 1
        try:
            texts = self._decode(gray)
        except DriverError as exc:
            self.decode_errors += 1
            log.warning("camera %s: decode failed (%s)", self.name, exc)
            return
        self._in_view = texts
        self._offer(texts, now)

    def _should_decode(self, thumb: np.ndarray) -> bool:
        """The change gate (see the module docstring); keeps the thumbnails it needs."""
        prev, self._prev = self._prev, thumb
        if prev is None or self._ref is None or prev.shape != thumb.shape:
            self._ref, self._moving = thumb, False
            return True
        moving = _mad(thumb, prev) >= self.change_threshold
        settled = self._moving and not moving
        self._moving = moving
        if settled or _mad(thumb, self._ref) >= self.change_threshold:
            self._ref = thumb
            return True
        return False

    def _offer(self, texts: list[str], now: float) -> None:
        if self._seen:
            horizon = now - self.dedupe_s
            self._seen = {text: seen for text, seen in self._seen.items() if seen > horizon}
        for text in texts:
            last = self._seen.get(text)
            self._seen[text] = now
            if last is not None and now - last < self.dedupe_s:
                self.duplicates += 1
                continue
            log.info("camera %s: read a code (%d chars, %s)", self.name, len(text), short_hash(text))
            self._emit("qr", text)

    # -- health --------------------------------------------------------------------------

    def health(self) -> SourceHealth:
        """The base health plus the camera's counters (how much the change gate saves)."""
        health = super().health()
        health.extra = {
            "device": _redact(self.device),
            "decoder": self.decoder,
            "formats": list(self.formats),
            "frame_size": self._frame_size,
            "frames": self.frames,
            "decoded_frames": self.decoded_frames,
            "skipped_frames": self.skipped_frames,
            "dropped_frames": self.dropped_frames,
            "duplicates": self.duplicates,
            "decode_errors": self.decode_errors,
            "bad_frames": self.bad_frames,
            "last_bad_frame": self._last_bad,
            "ended": self._ended,
        }
        return health


__all__ = ["FORMATS", "CameraSource"]
