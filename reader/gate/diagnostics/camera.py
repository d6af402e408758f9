"""``gate-reader diag camera``: grab frames and report the frame rate, brightness, sharpness
and decode time, and save a PNG of the best frame with each code found outlined, so the
technician can aim and focus.

Brightness is the mean grey level (0-255); sharpness the variance of the Laplacian of the
grey frame (edges: a QR code in focus at 640x480 gives several hundred, a blurred one tens).
Decoding is zxing-cpp's, as the camera source decodes; its text is never shown (a code on
a phone is a credential): its length and short hash are.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from offline_cache.loghash import short_hash
from reader.gate.diagnostics.result import CheckResult, Report, failed, passed

DARK, BRIGHT = 40.0, 215.0  # mean grey levels outside which codes on a phone screen are hard to read
BLURRED = 60.0  # Laplacian variance below which a frame with a code in it is out of focus
_FPS_FRAMES = 15  # frames read at least (when there are) so the frame rate is measured, not guessed


def _open(device: str | int, width: int, height: int, fps: float) -> Any:
    import cv2

    capture = cv2.VideoCapture(device)
    if capture.isOpened() and (isinstance(device, int) or str(device).startswith("/dev/")):
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        capture.set(cv2.CAP_PROP_FPS, fps)
    return capture


def _not_open(device: str | int) -> CheckResult:
    node = Path(f"/dev/video{device}") if isinstance(device, int) else Path(str(device))
    if str(node).startswith("/dev/") and not node.exists():
        return failed("camera", f"{node} does not exist", "the camera is not plugged in, or its device name is wrong",
                      "plug it in; `ls /dev/video* /dev/v4l/by-id/` lists the cameras", device=str(device))
    if "://" not in str(device) and not str(node).startswith("/dev/"):
        where = node.parent if "%" in node.name else node
        if not where.exists():
            return failed("camera", f"{where} does not exist", "the video file or picture folder is not there",
                          "check the reader's device in the config", device=str(device))
    if node.exists() and not os.access(node, os.R_OK):
        return failed("camera", f"{node}: permission denied", "this user is not in the group video",
                      "run it as root (sudo) or as the gate-reader user", device=str(device))
    return failed("camera", f"{device} does not open", "another program has the camera (the daemon: stop it "
                  "first), or it is not a camera OpenCV can read", "sudo systemctl stop gate-reader, run this "
                  "again, then sudo systemctl start gate-reader", device=str(device))


def check_camera(device: str | int, *, seconds: float, need_code: bool, png: Path | None, report: Report,
                 width: int = 640, height: int = 480, fps: float = 15.0) -> CheckResult:
    """Read frames for ``seconds`` (a live camera paces itself; a file is played at
    ``fps``); with ``need_code``, stop at the first frame with a code and FAIL without one."""
    import cv2
    import zxingcpp

    capture = _open(device, width, height, fps)
    if not capture.isOpened():
        capture.release()
        return _not_open(device)
    live = isinstance(device, int) or str(device).startswith("/dev/") or "://" in str(device)
    frames, brightness, sharpness, decode_ms = 0, [], [], []
    best: tuple[float, Any, list[Any]] | None = None  # (score, frame, codes)
    shown = 0  # codes in view last reported
    arrivals: list[float] = []
    started = time.monotonic()
    try:
        while time.monotonic() - started < seconds:
            ok, frame = capture.read()
            if not ok or frame is None:
                if frames == 0 and time.monotonic() - started > 3.0:
                    break
                if not live:
                    break  # a file that ended
                continue
            frames += 1
            arrivals.append(time.monotonic())
            grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
            brightness.append(float(grey.mean()))
            sharpness.append(float(cv2.Laplacian(grey, cv2.CV_64F).var()))
            t0 = time.perf_counter()
            codes = zxingcpp.read_barcodes(grey, formats=zxingcpp.BarcodeFormat.QRCode)
            decode_ms.append((time.perf_counter() - t0) * 1000)
            score = len(codes) * 1e9 + sharpness[-1]
            if best is None or score > best[0]:
                best = (score, frame, list(codes))
            if codes and len(codes) != shown:
                shown = len(codes)
                report(f"frame {frames}: code found ({len(codes[0].text)} characters, {short_hash(codes[0].text)}) "
                       f"in {decode_ms[-1]:.1f} ms")
            if need_code and best[2] and frames >= _FPS_FRAMES:  # a code, and enough frames to time
                break
            if not live:
                time.sleep(max(0.0, started + frames / fps - time.monotonic()))
    finally:
        capture.release()
    span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else 0.0
    if frames == 0:
        return failed("camera", f"{device} opened but gave no frame", "the camera stalls (USB bandwidth or "
                      "power: another USB device on the same port), or a file without readable frames",
                      "another USB port, without a hub; `gate-reader diag camera` again", device=str(device))
    assert best is not None
    height_px, width_px = best[1].shape[:2]
    values: dict[str, Any] = {
        "device": str(device), "frames": frames,
        "fps": round((frames - 1) / span, 1) if span > 0 else None, "size": f"{width_px}x{height_px}",
        "brightness": round(sum(brightness) / len(brightness), 1), "sharpness": round(max(sharpness), 1),
        "decode_ms_median": round(sorted(decode_ms)[len(decode_ms) // 2], 2), "codes": len(best[2]),
    }
    if png is not None:
        try:
            values["png"] = str(_save(png, best[1], best[2]))
        except OSError as exc:
            values["png"] = f"not saved: {exc}"
    light = values["brightness"]
    if not DARK <= light <= BRIGHT:
        what = "too dark" if light < DARK else "overexposed"
        return failed("camera", f"the picture is {what} (brightness {light} of 255)",
                      "the lens is covered, the lighting at the gate, or the camera pointed at a light" if light < DARK
                      else "direct light or glare into the lens", "shade or light the reading spot; look at the "
                      "saved picture", **values)
    if need_code and not best[2]:
        blurred = values["sharpness"] < BLURRED
        return failed("camera", "no QR code read",
                      f"out of focus (sharpness {values['sharpness']})" if blurred else
                      "no code was shown, or it is too small or far (under 3 pixels per module nothing decodes)",
                      "hold a test code 15-30 cm in front of the camera; look at the saved picture to aim and focus",
                      **values)
    found = f", a code read in {decode_ms[-1]:.1f} ms" if best[2] else ""
    return passed("camera", f"{frames} frames at {values['fps']} fps, {values['size']}, brightness {light}, "
                            f"sharpness {values['sharpness']}{found}", **values)


def _save(path: Path, frame: Any, codes: list[Any]) -> Path:
    """The frame as a PNG with each code outlined in green (the file the technician opens)."""
    import cv2
    import numpy as np

    picture = frame.copy() if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    for code in codes:
        p = code.position
        corners = np.array([[p.top_left.x, p.top_left.y], [p.top_right.x, p.top_right.y],
                            [p.bottom_right.x, p.bottom_right.y], [p.bottom_left.x, p.bottom_left.y]], dtype=np.int32)
        cv2.polylines(picture, [corners], isClosed=True, color=(0, 200, 0), thickness=3)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), picture):
        raise OSError(f"{path}: OpenCV could not write the picture")
    return path
