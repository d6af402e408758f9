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

Timing claims live here, printed, never asserted in tests. The frame helpers are public:
the camera tests build their scenes with them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reader.benchstats import percentile
from reader.gatepass.authority import Holder, Issuer, issue_credential

if TYPE_CHECKING:  # OpenCV, numpy and segno load only when the bench runs: the CLI starts without them
    import numpy as np

    from drivers.camera import CameraSource

RESOLUTIONS: tuple[tuple[int, int], ...] = ((640, 480), (1280, 720))
#: pixels per module at each resolution: a phone at arm's length fills a third of the frame
MODULE_PX: dict[tuple[int, int], int] = {(640, 480): 4, (1280, 720): 6}
DARK, LIGHT = 25, 230


def add_parser(kinds: Any) -> None:
    """Add ``qr`` to ``gate-reader bench`` (``kinds`` is its subparsers object)."""
    parser = kinds.add_parser(
        "qr",
        help="QR decode time (zxing-cpp and zbar), camera end to end, idle camera CPU",
        description="Render real GatePass QR presentations into 640x480 and 1280x720 frames and time: the "
        "decode per frame with zxing-cpp and zbar side by side (median, p99), the camera source end to end from "
        "frame read to presentation emitted, and the CPU an idle camera at 15 fps costs (percent of one core). "
        "zbar is skipped, with the reason, where pyzbar or libzbar0 is missing. The last line is one JSON object.",
    )
    parser.add_argument("--frames", type=int, default=100, help="frames per decoder and size (default %(default)s)")
    parser.add_argument("--codes", type=int, default=20, help="presentations per end-to-end run (default %(default)s)")
    parser.add_argument("--idle-seconds", type=float, default=5.0, help="idle camera run length (default %(default)s)")
    parser.add_argument("--json", action="store_true", help="print only the JSON object")
    parser.set_defaults(func=run)


# -- frames --------------------------------------------------------------------------------

def code_image(text: str, module_px: int, border: int = 4) -> np.ndarray:
    """The QR code of ``text`` (segno, error level M as the authority prints it) as a grey
    image, ``module_px`` pixels per module, with a quiet zone of ``border`` modules."""
    import numpy as np
    import segno

    matrix = np.array(segno.make_qr(text, error="m").matrix, dtype=np.uint8)
    matrix = np.pad(matrix, border, constant_values=0)
    image = np.where(matrix > 0, DARK, LIGHT).astype(np.uint8)
    return np.kron(image, np.ones((module_px, module_px), dtype=np.uint8))


def background(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A grey scene that is not flat: a gradient and a few blocks (a gate, a wall)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    gx = np.linspace(60, 170, width, dtype=np.float32)
    gy = np.linspace(0, 40, height, dtype=np.float32)[:, None]
    scene = (gx[None, :] + gy).astype(np.uint8)
    for _ in range(6):
        x, y = int(rng.integers(0, width - 40)), int(rng.integers(0, height - 40))
        w, h = int(rng.integers(20, width // 4)), int(rng.integers(20, height // 4))
        scene[y:y + h, x:x + w] = int(rng.integers(30, 220))
    return scene


def scene(base: np.ndarray, codes: list[tuple[np.ndarray, int, int]], *, noise: float = 2.0,
          seed: int = 0) -> np.ndarray:
    """A BGR frame: ``base`` with each ``(code image, x, y)`` pasted and sensor noise."""
    import cv2
    import numpy as np

    frame = base.copy()
    for image, x, y in codes:
        h, w = image.shape
        frame[y:y + h, x:x + w] = image[: frame.shape[0] - y, : frame.shape[1] - x]
    if noise:
        rng = np.random.default_rng(seed)
        frame = np.clip(frame + rng.normal(0, noise, frame.shape), 0, 255).astype(np.uint8)
    return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)


def centred(image: np.ndarray, width: int, height: int, jitter: int = 0) -> tuple[np.ndarray, int, int]:
    h, w = image.shape
    return image, max(0, (width - w) // 2 + jitter), max(0, (height - h) // 2 - jitter)


def presentations(count: int) -> list[str]:
    """``count`` distinct GatePass QR texts (one credential, a fresh nonce each)."""
    now = int(time.time())
    issuer, holder = Issuer.generate("ES256"), Holder.generate("ES256")
    credential = issue_credential(issuer, sub="E-bench", iat=now - 60, exp=now + 86_400, holder=holder)
    return [holder.present_qr(credential, iat=now) for _ in range(count)]


def write_png_sequence(frames: list[np.ndarray], directory: Path) -> str:
    """Write frames as ``directory/%05d.png``; returns the pattern VideoCapture plays."""
    import cv2

    for index, frame in enumerate(frames):
        cv2.imwrite(str(directory / f"{index:05d}.png"), frame)
    return str(directory / "%05d.png")


def write_mjpg(frames: list[np.ndarray], path: Path, fps: float) -> str:
    """Write frames as an MJPG .avi (what a USB camera streams); returns its path."""
    import cv2

    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    try:
        for frame in frames:
            writer.write(frame)
    finally:
        writer.release()
    return str(path)


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


def main(argv: list[str] | None = None) -> int:
    """``python -m reader.bench_qr``: the same as ``gate-reader bench qr``."""
    parser = argparse.ArgumentParser(prog="bench-qr")
    add_parser(parser.add_subparsers(dest="bench", required=True))
    args = parser.parse_args(["qr", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
