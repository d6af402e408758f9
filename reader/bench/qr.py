"""``gate-reader bench qr``: the QR camera's figures, measured on frames made here.

Real GatePass presentations (ES256 issuer and holder, from the test authority) are rendered
with segno into scenes of 640x480 and 1280x720 (a textured, noisy background, the code
with its quiet zone, modules of 4 and 6 px, moved a little from frame to frame as a hand
does). Then, side by side in one run:

- decode time per frame, zxing-cpp and zbar, on the grey frame the camera hands its decoder
  (median, p99, and how many frames gave the exact text), and on frames with no code;
- end to end, through a real ``CameraSource`` playing a PNG sequence: from the frame being
  read to the presentation emitted (the sink runs in the source's thread, so the time is
  ``Presentation.read_at - source.last_frame_at``);
- the idle camera: a static scene (sensor noise only) as an MJPG video played at 15 fps, and
  the process's CPU time over the wall time: percent of one core. That includes OpenCV
  decoding the MJPG frames, which a USB camera's MJPG stream costs too.

Timing claims live here, printed, never asserted in tests. The scenes and the files played
as a camera come from the camera simulator, ``drivers/camera_sim.py``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drivers.camera_sim import background, centred, code_image, scene, write_mjpg, write_png_sequence
from reader.bench.stats import percentile
from reader.gatepass.authority import Holder, Issuer, issue_credential

if TYPE_CHECKING:  # OpenCV, numpy and segno load only when the bench runs: the CLI starts without them
    import numpy as np

    from drivers.camera import CameraSource

RESOLUTIONS: tuple[tuple[int, int], ...] = ((640, 480), (1280, 720))
#: pixels per module at each resolution: a phone at arm's length fills a third of the frame
MODULE_PX: dict[tuple[int, int], int] = {(640, 480): 4, (1280, 720): 6}


# -- frames ----------------------------------------------------------------------------------------

def presentations(count: int) -> list[str]:
    """``count`` distinct GatePass QR texts (one credential, a fresh nonce each)."""
    now = int(time.time())
    issuer, holder = Issuer.generate("ES256"), Holder.generate("ES256")
    credential = issue_credential(issuer, sub="E-bench", iat=now - 60, exp=now + 86_400, holder=holder)
    return [holder.present_qr(credential, iat=now) for _ in range(count)]


# -- measurements --------------------------------------------------------------------------

def _ms(samples: list[float]) -> tuple[float, float]:
    return round(statistics.median(samples) * 1000, 3), round(percentile(samples, 0.99) * 1000, 3)


def time_decoder(decode: Callable[[np.ndarray], list[str]], frames: list[np.ndarray],
                 expected: list[str | None]) -> tuple[list[float], int]:
    """Per-frame decode seconds and how many frames gave exactly the expected text."""
    decode(frames[0])  # warm: first call pays allocations
    samples, exact = [], 0
    for frame, text in zip(frames, expected, strict=True):
        t0 = time.perf_counter()
        found = decode(frame)
        samples.append(time.perf_counter() - t0)
        exact += text is not None and found == [text]
    return samples, exact


def run_camera(source_kwargs: dict[str, Any], timeout: float) -> tuple[CameraSource, list[float], list[str]]:
    """Play a file through a CameraSource until it ends; the e2e seconds and texts emitted."""
    from drivers.base import Presentation
    from drivers.camera import CameraSource

    latencies: list[float] = []
    texts: list[str] = []
    holder: dict[str, CameraSource] = {}

    def sink(presentation: Presentation) -> None:
        source = holder["source"]
        assert source.last_frame_at is not None
        latencies.append(presentation.read_at - source.last_frame_at)
        texts.append(str(presentation.payload))

    source = CameraSource("bench", sink, **source_kwargs)
    holder["source"] = source
    with source:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not source.health().extra.get("ended"):
            time.sleep(0.02)
    return source, latencies, texts


def idle_cpu(width: int, height: int, seconds: float, workdir: Path,
             change_threshold: float | None = None) -> tuple[float, int, int]:
    """Percent of one core for a camera at 15 fps on a static scene, and its frame and
    decode counts. ``change_threshold=0`` turns the change gate off (to show what it saves)."""
    from drivers.camera import DEFAULT_CHANGE_THRESHOLD, CameraSource

    fps = 15.0
    path = workdir / f"idle-{width}x{height}.avi"
    if not path.exists():
        base = background(width, height, seed=7)
        frames = [scene(base, [], noise=2.0, seed=i) for i in range(max(2, int(seconds * fps)))]
        write_mjpg(frames, path, fps)
    threshold = DEFAULT_CHANGE_THRESHOLD if change_threshold is None else change_threshold
    source = CameraSource("idle", lambda p: None, device=str(path), fps=fps, width=width, height=height,
                          change_threshold=threshold)
    with source:
        while source.frames < 1 and source.running:
            time.sleep(0.005)
        wall0, cpu0 = time.perf_counter(), time.process_time()
        while not source.health().extra.get("ended") and source.running:
            time.sleep(0.05)
        wall1, cpu1 = time.perf_counter(), time.process_time()
    return round(100 * (cpu1 - cpu0) / (wall1 - wall0), 2), source.frames, source.decoded_frames


def run(args: argparse.Namespace) -> int:
    import cv2
    import segno

    from drivers.qr_decode import make_decoder, zbar_unavailable_reason

    say: Callable[[str], None] = (lambda line: None) if args.json else print
    frames_n, codes_n = max(5, args.frames), max(2, args.codes)
    result: dict[str, Any] = {"benchmark": "qr", "frames": frames_n}
    decoders = ["zxing"]
    zbar_reason = zbar_unavailable_reason()
    if zbar_reason is None:
        decoders.append("zbar")
    else:
        result["zbar_skipped"] = zbar_reason
        say(f"zbar skipped: {zbar_reason}")

    texts = presentations(max(codes_n, 10))
    say(f"GatePass QR text: {len(texts[0])} characters, QR version {segno.make_qr(texts[0], error='m').version}")

    for width, height in RESOLUTIONS:
        size = f"{width}x{height}"
        base = background(width, height)
        images = [code_image(text, MODULE_PX[(width, height)]) for text in texts[:10]]
        frames, expected = [], []
        for i in range(frames_n):
            code = centred(images[i % len(images)], width, height, jitter=(i % 7) - 3)
            frames.append(cv2.cvtColor(scene(base, [code], seed=i), cv2.COLOR_BGR2GRAY))
            expected.append(texts[i % len(images)])
        empty = [cv2.cvtColor(scene(base, [], seed=i), cv2.COLOR_BGR2GRAY) for i in range(min(frames_n, 30))]
        for name in decoders:
            decode = make_decoder(name, ("qr",))
            samples, exact = time_decoder(decode, frames, expected)
            median, p99 = _ms(samples)
            empty_median, _ = _ms(time_decoder(decode, empty, [None] * len(empty))[0])
            result[f"{name}_{size}_median_ms"] = median
            result[f"{name}_{size}_p99_ms"] = p99
            result[f"{name}_{size}_exact"] = round(exact / len(frames), 3)
            result[f"{name}_{size}_empty_median_ms"] = empty_median
            say(f"{name:5} {size:>9}: decode median {median} ms, p99 {p99} ms, exact text on {exact}/{len(frames)} "
                f"frames ({MODULE_PX[(width, height)]} px/module); no code in frame: median {empty_median} ms")

    with tempfile.TemporaryDirectory(prefix="bench-qr-") as tmp:
        workdir = Path(tmp)
        for width, height in RESOLUTIONS:
            size = f"{width}x{height}"
            base = background(width, height)
            sequence: list[np.ndarray] = []
            for i, text in enumerate(texts[:codes_n]):
                image = code_image(text, MODULE_PX[(width, height)])
                sequence.append(scene(base, [], seed=3 * i))  # the gate empty, then a phone
                sequence += [scene(base, [centred(image, width, height, jitter=j)], seed=3 * i + 1 + j)
                             for j in range(2)]
            folder = workdir / size
            folder.mkdir()
            pattern = write_png_sequence(sequence, folder)
            for name in decoders:
                kwargs = {"device": pattern, "decoder": name, "width": width, "height": height, "fps": 30}
                source, latencies, seen = run_camera(kwargs, timeout=len(sequence) / 30 + 30)
                if not latencies:
                    say(f"{name:5} {size:>9}: end to end: no presentation emitted")
                    continue
                median, p99 = _ms(latencies)
                result[f"e2e_{name}_{size}_median_ms"] = median
                result[f"e2e_{name}_{size}_p99_ms"] = p99
                result[f"e2e_{name}_{size}_emitted"] = len(seen)
                say(f"{name:5} {size:>9}: frame read -> presentation emitted: median {median} ms, p99 {p99} ms; "
                    f"{len(seen)} of {codes_n} codes emitted, {len(set(seen))} distinct; decoded "
                    f"{source.decoded_frames} of {source.frames} frames")

        for width, height in RESOLUTIONS:
            percent, frames, decoded = idle_cpu(width, height, args.idle_seconds, workdir)
            key = "idle_cpu_percent" if (width, height) == RESOLUTIONS[0] else f"idle_{width}x{height}_cpu_percent"
            result[key] = percent
            result[key.replace("cpu_percent", "decoded_frames")] = decoded
            say(f"idle camera {width}x{height} at 15 fps, static scene: {percent} % of one core "
                f"({decoded} of {frames} frames decoded)")
        percent, frames, decoded = idle_cpu(*RESOLUTIONS[0], args.idle_seconds, workdir, change_threshold=0)
        result["idle_cpu_percent_without_gate"] = percent
        say(f"the same 640x480 idle camera decoding every frame (change gate off): {percent} % of one core")

    print(json.dumps(result))
    return 0
