"""The QR camera against OpenCV's own simulator: ``VideoCapture`` playing an MJPG video or a
PNG sequence made here, with real GatePass presentations from the test authority."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import zxingcpp

from drivers.base import Presentation
from drivers.camera import CameraSource
from drivers.errors import DriverConfigError, DriverError
from drivers.qr_decode import decode, zbar_unavailable_reason
from drivers.registry import source_class
from reader.bench_qr import background, centred, code_image, scene, write_mjpg, write_png_sequence
from reader.gatepass.authority import Holder, Issuer, issue_credential
from reader.gatepass.decide import Clock, decide_text
from reader.gatepass.statuslist import StatusLists
from reader.gatepass.trust import TrustStore, anchors_from_pem

W, H = 640, 480
ZBAR_MISSING = zbar_unavailable_reason()
DECODERS = ["zxing", pytest.param("zbar", marks=pytest.mark.skipif(ZBAR_MISSING is not None,
                                                                 reason=ZBAR_MISSING or ""))]


class Authority:
    """A test issuer, one holder with a credential, and the gate's trust store."""

    def __init__(self) -> None:
        now = int(time.time())
        self.issuer = Issuer.generate("ES256")
        self.holder = Holder.generate("ES256")
        self.credential = issue_credential(self.issuer, sub="E000042", iat=now - 60, exp=now + 86_400,
                                           holder=self.holder)
        self.trust = TrustStore(anchors_from_pem(self.issuer.certificate_pem, "test-issuer"))

    def present(self) -> str:
        return self.holder.present_qr(self.credential, iat=int(time.time()))


@pytest.fixture(scope="module")
def authority() -> Authority:
    return Authority()


@pytest.fixture(scope="module")
def texts(authority: Authority) -> list[str]:
    return [authority.present() for _ in range(3)]


@pytest.fixture(scope="module")
def base() -> np.ndarray:
    return background(W, H, seed=1)


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def drain(sink: queue.Queue) -> list[Presentation]:
    out = []
    while True:
        try:
            out.append(sink.get_nowait())
        except queue.Empty:
            return out


def play(device: str, **kwargs: Any) -> tuple[CameraSource, list[Presentation]]:
    """Run a source on a file until it ended (up, idle, never reconnected); its
    presentations in order."""
    sink: queue.Queue = queue.Queue()
    kwargs.setdefault("fps", 200)
    source = CameraSource("cam", sink, device=device, **kwargs)
    with source:
        assert wait_for(lambda: bool(source.health().extra["ended"])), source.health()
        health = source.health()
        assert health.up and health.last_error is None and health.reconnects == 0, health
        assert source.running
    return source, drain(sink)


def frames_with(base: np.ndarray, codes: list[tuple[np.ndarray, int, int]], count: int, seed: int = 0,
                jitter: bool = False) -> list[np.ndarray]:
    out = []
    for i in range(count):
        shift = (i % 3) - 1 if jitter else 0
        out.append(scene(base, [(image, x + shift, y) for image, x, y in codes], seed=seed + i))
    return out


# -- reads ---------------------------------------------------------------------------------

@pytest.mark.parametrize("decoder", DECODERS)
def test_gatepass_qr_in_video_gives_one_granted_presentation(tmp_path: Path, authority: Authority,
                                                             base: np.ndarray, decoder: str) -> None:
    text = authority.present()
    code = centred(code_image(text, 4), W, H)
    frames = frames_with(base, [], 3) + frames_with(base, [code], 12, seed=3, jitter=True) + frames_with(base, [], 3)
    video = write_mjpg(frames, tmp_path / "gate.avi", 15)

    source, got = play(video, decoder=decoder)

    assert [(p.source, p.kind, p.payload) for p in got] == [("cam", "qr", text)]
    decision = decide_text(got[0].payload, clock=Clock(time.time()), trust=authority.trust, lists=StatusLists())
    assert decision.granted, decision
    assert source.duplicates > 0  # the jittering code was decoded again and deduplicated


def test_decode_alone_reads_grey_and_bgr(texts: list[str], base: np.ndarray) -> None:
    frame = scene(base, [centred(code_image(texts[0], 4), W, H)])
    assert decode(frame) == [texts[0]]
    assert decode(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), "zxing", ("qr",)) == [texts[0]]


def test_frames_without_code_emit_nothing(tmp_path: Path) -> None:
    frames = [scene(background(W, H, seed=i), [], seed=i) for i in range(10)]  # the scene changes every frame
    source, got = play(write_png_sequence(frames, tmp_path))
    assert got == []
    assert source.decoded_frames == 10


@pytest.mark.parametrize("decoder", DECODERS)
def test_two_codes_at_once_are_both_emitted_once(tmp_path: Path, texts: list[str], decoder: str) -> None:
    width, height = 1280, 720
    left, right = code_image(texts[0], 4), code_image(texts[1], 4)
    codes = [(left, 80, 150), (right, 1280 - 80 - right.shape[1], 150)]
    frames = frames_with(background(width, height), codes, 6, jitter=True)
    source, got = play(write_png_sequence(frames, tmp_path), decoder=decoder, change_threshold=0)
    assert sorted(p.payload for p in got) == sorted(texts[:2])
    assert source.decoded_frames == 6


def test_code_at_two_pixels_per_module_does_not_crash(tmp_path: Path, texts: list[str], base: np.ndarray) -> None:
    frames = frames_with(base, [centred(code_image(texts[0], 2), W, H)], 5, jitter=True)
    source, got = play(write_mjpg(frames, tmp_path / "tiny.avi", 15), change_threshold=0)
    assert [p.payload for p in got] in ([], [texts[0]])  # may or may not decode; never garbles
    assert source.decoded_frames == 5 and source.decode_errors == 0


def test_same_code_held_for_many_frames_is_one_presentation(tmp_path: Path, texts: list[str],
                                                            base: np.ndarray) -> None:
    frames = frames_with(base, [centred(code_image(texts[0], 4), W, H)], 20, jitter=True)
    source, got = play(write_png_sequence(frames, tmp_path), change_threshold=0)
    assert [p.payload for p in got] == [texts[0]]
    assert (source.decoded_frames, source.duplicates) == (20, 19)


def test_other_2d_formats_only_when_asked(tmp_path: Path, base: np.ndarray) -> None:
    barcode = zxingcpp.create_barcode("GP1:DATAMATRIX TEST", zxingcpp.BarcodeFormat.DataMatrix)
    image = np.array(zxingcpp.write_barcode_to_image(barcode, scale=6, add_quiet_zones=True), dtype=np.uint8)
    pattern = write_png_sequence(frames_with(base, [centred(image, W, H)], 3), tmp_path)
    assert play(pattern)[1] == []
    assert [p.payload for p in play(pattern, formats=("qr", "datamatrix"))[1]] == ["GP1:DATAMATRIX TEST"]


# -- the change gate -----------------------------------------------------------------------

def test_unchanged_frames_are_not_decoded(tmp_path: Path, texts: list[str], base: np.ndarray) -> None:
    code = centred(code_image(texts[0], 4), W, H)
    # 10 frames of an empty gate, then the phone held still for 10: sensor noise differs per frame.
    frames = frames_with(base, [], 10) + frames_with(base, [code], 10, seed=10)
    source, got = play(write_png_sequence(frames, tmp_path))
    assert [p.payload for p in got] == [texts[0]]
    assert source.frames == 20
    # the first frame, the frame the phone appeared, and that scene once settled
    assert source.decoded_frames == 3
    assert source.skipped_frames == 17


# -- faults --------------------------------------------------------------------------------

class PacedCapture:
    """A camera stand-in over a real VideoCapture of a PNG sequence: paced, optionally
    failing after ``fail_after`` frames, repeating its last frame when the file ends."""

    def __init__(self, pattern: str, fail_after: int | None = None) -> None:
        self._cap = cv2.VideoCapture(pattern)
        self._fail_after = fail_after
        self._reads = 0
        self._last: np.ndarray | None = None
        self.settings: dict[int, float] = {}

    def isOpened(self) -> bool:  # cv2's name
        return self._cap.isOpened()

    def set(self, prop: int, value: float) -> bool:
        self.settings[prop] = value
        return True

    def read(self) -> tuple[bool, np.ndarray | None]:
        time.sleep(0.01)
        self._reads += 1
        if self._fail_after is not None and self._reads > self._fail_after:
            return False, None
        ok, frame = self._cap.read()
        if ok:
            self._last = frame
        return (True, self._last) if self._last is not None else (False, None)

    def release(self) -> None:
        self._cap.release()


class ClosedCapture:
    def isOpened(self) -> bool:  # cv2's name
        return False

    def release(self) -> None:
        pass


def test_capture_failing_and_returning_resumes_reads(tmp_path: Path, texts: list[str], base: np.ndarray) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    pattern_a = write_png_sequence(frames_with(base, [centred(code_image(texts[0], 4), W, H)], 3), first)
    pattern_b = write_png_sequence(frames_with(base, [centred(code_image(texts[1], 4), W, H)], 3), second)
    calls: list[tuple[Any, int, bool]] = []
    sink: queue.Queue = queue.Queue()
    source: CameraSource

    def factory(device: Any, api: int) -> Any:
        calls.append((device, api, source.health().up))
        if len(calls) == 1:
            return PacedCapture(pattern_a, fail_after=3)  # the camera is unplugged after 3 frames
        if len(calls) == 2:
            return ClosedCapture()  # not back yet
        return PacedCapture(pattern_b)  # plugged in again

    source = CameraSource("cam", sink, device=0, fps=1000, capture_factory=factory)
    source.backoff_s = (0.05, 0.2)
    with source:
        assert wait_for(lambda: sink.qsize() >= 2)
        health = source.health()
    assert [p.payload for p in drain(sink)] == texts[:2]
    assert [(device, up) for device, _, up in calls] == [(0, False), (0, False), (0, False)]
    assert health.up and health.reconnects == 1 and health.down_since is None
    assert health.last_error is not None and health.last_error.startswith("open:")


def test_file_that_appears_later_is_read(tmp_path: Path, texts: list[str], base: np.ndarray) -> None:
    video = tmp_path / "late.avi"
    sink: queue.Queue = queue.Queue()
    source = CameraSource("cam", sink, device=str(video), fps=200)
    source.backoff_s = (0.05, 0.1)
    with source:
        assert wait_for(lambda: source.health().last_error is not None)
        assert not source.health().up
        frames = frames_with(base, [centred(code_image(texts[2], 4), W, H)], 3)
        write_mjpg(frames, tmp_path / "writing.avi", 15)
        (tmp_path / "writing.avi").rename(video)  # appears whole
        assert wait_for(lambda: sink.qsize() == 1)
        assert wait_for(lambda: source.health().up)
    assert [p.payload for p in drain(sink)] == [texts[2]]


def test_roi_is_honoured(tmp_path: Path, texts: list[str]) -> None:
    width, height = 1280, 720
    left, right = code_image(texts[0], 4), code_image(texts[1], 4)
    codes = [(left, 80, 150), (right, 1280 - 80 - right.shape[1], 150)]
    pattern = write_png_sequence(frames_with(background(width, height), codes, 3), tmp_path)
    _, got = play(pattern, roi=(0, 0, 640, 720))
    assert [p.payload for p in got] == [texts[0]]
    _, got = play(pattern, roi=(640, 100, 640, 520))
    assert [p.payload for p in got] == [texts[1]]


def test_roi_outside_the_frame_is_a_reported_error(tmp_path: Path, base: np.ndarray) -> None:
    pattern = write_png_sequence(frames_with(base, [], 2), tmp_path)
    source = CameraSource("cam", queue.Queue(), device=pattern, roi=(2000, 2000, 10, 10))
    source.backoff_s = (0.05, 0.1)
    with source:
        assert wait_for(lambda: "roi" in (source.health().last_error or ""))
        assert source.running


# -- lifecycle -----------------------------------------------------------------------------

def test_stop_is_prompt_and_close_idempotent(tmp_path: Path, base: np.ndarray) -> None:
    pattern = write_png_sequence(frames_with(base, [], 2), tmp_path)
    source = CameraSource("cam", queue.Queue(), device=pattern, fps=1, loop=True)
    source.start()
    assert wait_for(lambda: source.frames >= 1)
    started = time.monotonic()
    source.stop()
    assert time.monotonic() - started < 0.5
    assert not source.running and not source.health().up
    source.close()
    source.close()
    with pytest.raises(DriverError):
        source.start()


def test_loop_replays_a_file(tmp_path: Path, texts: list[str], base: np.ndarray) -> None:
    # An empty gate, then the phone: each pass is a change the camera sees and reads again.
    frames = frames_with(base, [], 2) + frames_with(base, [centred(code_image(texts[0], 4), W, H)], 2)
    pattern = write_png_sequence(frames, tmp_path)
    sink: queue.Queue = queue.Queue()
    with CameraSource("cam", sink, device=pattern, fps=100, loop=True, dedupe_s=0) as source:
        assert wait_for(lambda: sink.qsize() >= 2)
        assert source.health().up and not source.health().extra["ended"]


def test_ended_file_stays_up_and_idle(tmp_path: Path, base: np.ndarray) -> None:
    source, _ = play(write_png_sequence(frames_with(base, [], 2), tmp_path))  # play() checks up and idle
    assert source.frames == 2


# -- configuration -------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, key", [
    ({"decoder": "opencv"}, "decoder"),
    ({"formats": ("qr", "ean13")}, "formats"),
    ({"formats": ()}, "formats"),
    ({"fps": 0}, "fps"),
    ({"width": 0}, "width"),
    ({"roi": (0, 0, 0, 10)}, "roi"),
    ({"roi": (1, 2, 3)}, "roi"),
    ({"device": -1}, "device"),
    ({"dedupe_s": -1}, "dedupe_s"),
])
def test_bad_settings_are_config_errors(kwargs: dict[str, Any], key: str) -> None:
    with pytest.raises(DriverConfigError, match=key):
        CameraSource("cam", queue.Queue(), **kwargs)


@pytest.mark.skipif(ZBAR_MISSING is not None, reason=ZBAR_MISSING or "")
def test_zbar_reads_only_qr() -> None:
    with pytest.raises(DriverConfigError, match="zbar cannot read 'aztec'"):
        CameraSource("cam", queue.Queue(), decoder="zbar", formats=("qr", "aztec"))


def test_registry_names_the_camera() -> None:
    assert source_class("camera") is CameraSource
    assert CameraSource("cam", queue.Queue(), device="/dev/video9").live
    assert not CameraSource("cam", queue.Queue(), device="frames/%04d.png").live
    assert CameraSource("cam", queue.Queue(), device="0").device == 0
