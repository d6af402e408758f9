"""The QR camera against OpenCV's own simulator: ``VideoCapture`` playing an MJPG video or a
PNG sequence made here, with real GatePass presentations from the test authority."""

# Over ~400 lines on purpose: one source's behaviours (decoders, dedup, change gate, ROI, bad frames, reconnects)
# on the shared scenes of camera_sim.

from __future__ import annotations

import queue
import time
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import zxingcpp

from drivers.base import Presentation
from drivers.camera import CameraSource
from drivers.camera_sim import background, centred, code_image, scene, write_mjpg, write_png_sequence
from drivers.errors import DriverConfigError, DriverError
from drivers.qr_decode import decode, zbar_unavailable_reason
from drivers.registry import source_class
from reader.gate.deciding import Decider
from reader.gatepass.authority import Holder, Issuer, issue_credential
from reader.gatepass.decide import Clock
from reader.gatepass.trust import TrustStore, anchors_from_pem
from tests.support import waiting
from tests.support.waiting import drain

W, H = 640, 480
wait_for = partial(waiting.wait_for, timeout=10.0)
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
    decision = Decider(authority.trust).decide("qr", got[0].payload, Clock(time.time()))
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


# -- bad frames ----------------------------------------------------------------------------

def play_to_end(device: str, **kwargs: Any) -> tuple[CameraSource, list[Presentation]]:
    """As play(), for files with bad frames: it ends up and idle, never reconnected, and its
    last_error names the last bad frame."""
    sink: queue.Queue = queue.Queue()
    kwargs.setdefault("fps", 200)
    source = CameraSource("cam", sink, device=device, **kwargs)
    with source:
        assert wait_for(lambda: bool(source.health().extra["ended"])), source.health()
        health = source.health()
        assert health.up and health.reconnects == 0 and source.running, health
        assert (health.last_error or "").startswith("frame: ") and health.extra["last_bad_frame"], health
        assert health.extra["bad_frames"] == source.bad_frames
    return source, drain(sink)


def code_frames(base: np.ndarray, text: str, empty: int, with_code: int) -> list[np.ndarray]:
    """An empty gate, then a phone showing ``text``."""
    code = centred(code_image(text, 4), W, H)
    return frames_with(base, [], empty) + frames_with(base, [code], with_code, seed=empty, jitter=True)


def test_corrupt_png_in_a_sequence_is_counted_skipped_and_later_frames_read(tmp_path: Path, texts: list[str],
                                                                            base: np.ndarray) -> None:
    pattern = write_png_sequence(code_frames(base, texts[0], 3, 4), tmp_path)
    first_code = tmp_path / "00003.png"
    first_code.write_bytes(first_code.read_bytes()[:60])  # cut off mid-header: the decoder fails
    source, got = play_to_end(pattern)
    assert [p.payload for p in got] == [texts[0]]  # read from the frames after the bad one
    assert source.bad_frames == 1 and source.frames == 6
    assert source.health().extra["last_bad_frame"] == "frame 4 of 7 could not be decoded"


def _jpeg_starts(data: bytes) -> list[int]:
    return [i for i in range(len(data) - 2) if data[i:i + 3] == b"\xff\xd8\xff"]


def test_video_with_a_corrupt_packet_is_read_past_it(tmp_path: Path, texts: list[str], base: np.ndarray) -> None:
    video = Path(write_mjpg(code_frames(base, texts[1], 3, 5), tmp_path / "gate.avi", 15))
    data = bytearray(video.read_bytes())
    start = _jpeg_starts(bytes(data))[3]  # the first frame with the code
    data[start:start + 400] = bytes(400)
    video.write_bytes(bytes(data))
    source, got = play_to_end(str(video))
    assert [p.payload for p in got] == [texts[1]]
    assert source.bad_frames == 1 and source.frames == 7


def test_truncated_video_ends_with_its_missing_frames_counted(tmp_path: Path, texts: list[str],
                                                              base: np.ndarray) -> None:
    video = Path(write_mjpg(code_frames(base, texts[1], 1, 7), tmp_path / "cut.avi", 15))
    data = video.read_bytes()
    video.write_bytes(data[:_jpeg_starts(data)[5] + 100])  # the header still says 8 frames
    source, got = play_to_end(str(video))
    assert [p.payload for p in got] == [texts[1]]
    assert (source.frames, source.bad_frames) == (5, 3)


class ScriptedFile:
    """A file capture over a real VideoCapture of a PNG sequence, with extra reads slipped
    in at given read numbers: a frame no decoder takes, a failed read, or an OpenCV error.
    ``length`` is what it says CAP_PROP_FRAME_COUNT is (None: the real count plus extras)."""

    def __init__(self, pattern: str, script: dict[int, Any], length: float | None = None) -> None:
        self._cap = cv2.VideoCapture(pattern)
        self._script = script
        self._reads = 0
        self._length = length

    def isOpened(self) -> bool:  # cv2's name
        return self._cap.isOpened()

    def get(self, prop: int) -> float:
        assert prop == cv2.CAP_PROP_FRAME_COUNT
        if self._length is not None:
            return self._length
        return self._cap.get(prop) + len(self._script)

    def read(self) -> tuple[bool, Any]:
        self._reads += 1
        action = self._script.get(self._reads)
        if action is None:
            return self._cap.read()
        if isinstance(action, cv2.error):
            raise action
        return action

    def release(self) -> None:
        self._cap.release()


CV2_ERROR = cv2.error("OpenCV(5.0.0) cap.cpp:1: error: (-2:Unspecified error) read failed in function 'read'\n")
ODD_FRAMES = {
    2: (True, np.zeros((H, W, 3), np.uint16)),  # 16-bit pixels
    3: (True, np.zeros(W * H, np.uint8)),  # one-dimensional
    4: (True, np.zeros((H, W, 2), np.uint8)),  # two channels
    5: (True, np.zeros((0, 0, 3), np.uint8)),  # empty
    6: (False, None),  # a read that failed before the end
    7: CV2_ERROR,  # a read that raised inside OpenCV
}


def scripted_source(pattern: str, script: dict[int, Any], sink: queue.Queue, length: float | None = None,
                    **kwargs: Any) -> CameraSource:
    return CameraSource("cam", sink, device=pattern, fps=200,
                        capture_factory=lambda device, api: ScriptedFile(device, script, length), **kwargs)


def test_frames_no_decoder_can_take_and_read_errors_are_skipped(tmp_path: Path, texts: list[str],
                                                                base: np.ndarray) -> None:
    pattern = write_png_sequence(code_frames(base, texts[2], 2, 3), tmp_path)
    sink: queue.Queue = queue.Queue()
    with scripted_source(pattern, ODD_FRAMES, sink) as source:
        assert wait_for(lambda: bool(source.health().extra["ended"]))
        health = source.health()
    assert [p.payload for p in drain(sink)] == [texts[2]]  # the code came after six bad reads
    assert health.up and health.reconnects == 0
    assert (source.frames, source.bad_frames) == (5, 6)
    assert health.extra["last_bad_frame"] == "read 7 failed: OpenCV(5.0.0) cap.cpp:1: error: (-2:Unspecified " \
        "error) read failed in function 'read'"


def test_file_of_unknown_length_reads_past_a_failed_read(tmp_path: Path, texts: list[str],
                                                         base: np.ndarray) -> None:
    pattern = write_png_sequence(code_frames(base, texts[0], 2, 3), tmp_path)
    sink: queue.Queue = queue.Queue()
    with scripted_source(pattern, {2: (False, None)}, sink, length=0) as source:
        assert wait_for(lambda: bool(source.health().extra["ended"]))
        health = source.health()
    assert [p.payload for p in drain(sink)] == [texts[0]]
    assert health.up and (source.frames, source.bad_frames) == (5, 1)  # the misses at the end were the end


def test_file_of_unknown_length_that_only_raises_is_down_not_up(tmp_path: Path, base: np.ndarray) -> None:
    pattern = write_png_sequence(frames_with(base, [], 3), tmp_path)
    always = dict.fromkeys(range(2, 10_000), CV2_ERROR)
    source = scripted_source(pattern, always, queue.Queue(), length=-1)
    source.max_bad_in_a_row = 5
    source.backoff_s = (0.05, 0.1)
    with source:
        assert wait_for(lambda: source.health().reconnects >= 1)
        health = source.health()
        assert source.running
    assert "frames in a row could not be used" in (health.last_error or ""), health
    assert not source.health().extra["ended"]


def test_file_without_a_readable_frame_is_down_not_up(tmp_path: Path, base: np.ndarray) -> None:
    pattern = write_png_sequence(frames_with(base, [], 3), tmp_path)
    for path in tmp_path.glob("*.png"):
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))
    source = CameraSource("cam", queue.Queue(), device=pattern, fps=200)
    source.backoff_s = (0.05, 0.1)
    with source:
        assert wait_for(lambda: "has no readable frames" in (source.health().last_error or ""))
        assert not source.health().up and not source.health().extra["ended"]
        assert source.running


class OddCamera:
    """A live camera that opens but delivers only 16-bit frames (a mode no decoder takes),
    or, with ``frames=False``, no frame at all."""

    def __init__(self, frames: bool = True) -> None:
        self.frames = frames

    def isOpened(self) -> bool:  # cv2's name
        return True

    def set(self, prop: int, value: float) -> bool:
        return True

    def read(self) -> tuple[bool, np.ndarray | None]:
        time.sleep(0.002)
        return (True, np.zeros((48, 64), np.uint16)) if self.frames else (False, None)

    def release(self) -> None:
        pass


@pytest.mark.parametrize(("frames", "error"), [
    (True, "read: 5 frames in a row could not be used (last: uint16 pixels, not 8-bit)"),
    (False, "read: 0 returned no frame"),
])
def test_camera_that_opens_but_gives_nothing_usable_is_down_and_backs_off(frames: bool, error: str) -> None:
    opened: list[OddCamera] = []

    def factory(device: Any, api: int) -> OddCamera:
        opened.append(OddCamera(frames))
        return opened[-1]

    source = CameraSource("cam", queue.Queue(), device=0, fps=1000, capture_factory=factory)
    source.max_bad_in_a_row = 5
    source.backoff_s = (0.5, 1.0)
    with source:
        assert wait_for(lambda: source.health().reconnects >= 1)
        time.sleep(0.05)
        health = source.health()
        # down, and backing off before it opens the camera again (not reopening in a tight loop)
        assert not health.up and len(opened) == 1 and source.running
    assert health.last_error == error
    assert source.bad_frames == (5 if frames else 0) and source.frames == 0


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
