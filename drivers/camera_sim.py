"""A camera simulator: scenes with QR codes drawn into them, and the files OpenCV's
``VideoCapture`` plays back as a camera (an MJPG .avi, what a USB camera streams, or a PNG
sequence). The camera tests and ``gate-reader bench qr`` build their frames here, beside the
NFC card emulator (``drivers/nfc_emulator.py``): the camera source itself needs no v4l2
device to be tested.

Scenes are grey: a gradient with a few blocks (a gate, a wall), the codes pasted with their
quiet zone, and sensor noise; frames come back as BGR, as a camera hands them over. numpy,
OpenCV and segno load when a function is called, not on import.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

DARK, LIGHT = 25, 230


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
    """``image`` placed in the middle of a ``width`` x ``height`` frame, moved ``jitter``
    pixels (as a hand does from frame to frame), for :func:`scene`."""
    h, w = image.shape
    return image, max(0, (width - w) // 2 + jitter), max(0, (height - h) // 2 - jitter)


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
