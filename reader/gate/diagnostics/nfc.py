"""``gate-reader diag nfc``: find the reader and name its chip and USB id, or say which of
libusb, the permissions, the kernel driver or the cable is wrong; then wait for one tap and
show whether it was a GatePass holder or a legacy card, with the exchange's round-trip times.

The tap is read by the gate's own NFC source (``drivers.nfc.NfcSource``), its reader wrapped
so each ISO-DEP frame's round trip (``clf.exchange``) is timed. Nothing a card answers is
shown: sizes, counts, times and a short hash only (an answer is a credential).
"""

from __future__ import annotations

import errno
import os
import queue
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from offline_cache.loghash import short_hash
from reader.gate.config_check import nfc_tty_path
from reader.gate.diagnostics.result import CheckResult, Report, failed, passed

_KERNEL_MODULES = ("pn533_usb", "pn533", "port100", "pn532_uart", "nfc")
_UNPLUG = ("plug it in again (another USB port, another cable; a powered hub for a long cable); "
           "`lsusb` must then list it, e.g. 072f:2200")


def _usb_ids(path: str) -> tuple[int | None, int | None]:
    parts = path.split(":")[1:]
    if len(parts) == 2 and all(len(p) == 4 for p in parts):
        return int(parts[0], 16), int(parts[1], 16)
    return None, None


def usb_readers(path: str) -> list[tuple[int, int, str]]:
    """The NFC readers nfcpy drives that libusb sees, as (vid, pid, chip module); OSError when
    libusb itself cannot be loaded or used."""
    import nfc.clf.device
    import usb1

    vid, pid = _usb_ids(path)
    found = []
    with usb1.USBContext() as context:
        for device in context.getDeviceList(skip_on_error=True):
            ids = (device.getVendorID(), device.getProductID())
            chip = nfc.clf.device.usb_device_map.get(ids)
            if chip is not None and vid in (None, ids[0]) and pid in (None, ids[1]):
                found.append((*ids, chip))
    return found


def _kernel_holders() -> list[str]:
    return [m for m in _KERNEL_MODULES if Path(f"/sys/module/{m}").is_dir()]


def probe_nfc(path: str, *, opener: Callable[[str], Any] | None = None,
              find_usb: Callable[[str], list[tuple[int, int, str]]] = usb_readers) -> CheckResult:
    """Open the reader at ``path`` (nfcpy's path) and close it again."""
    from drivers.nfc_udp import open_frontend

    usb_id = None
    if path.startswith("usb"):
        try:
            listed = find_usb(path)
        except (OSError, ImportError) as exc:
            return failed("nfc", "libusb cannot be used", f"libusb-1.0 is missing or broken ({exc})",
                          "sudo apt install libusb-1.0-0, then run this again", path=path)
        if not listed:
            return failed("nfc", f"no NFC reader on USB for {path}",
                          "it is not plugged in, its cable or USB port is bad, or it has no power", _UNPLUG, path=path)
        usb_id = f"{listed[0][0]:04x}:{listed[0][1]:04x}"
    elif (device := nfc_tty_path(path)) is not None:
        if not device.exists():
            return failed("nfc", f"{device} does not exist", "the serial port is off (the installer turns the "
                          "header UART on; it needs a reboot) or the name is wrong for this Pi model",
                          "reboot after the installer; Pi 5: tty:AMA0:pn532, Pi 3/4: tty:serial0:pn532", path=path)
        if not os.access(device, os.R_OK | os.W_OK):
            return failed("nfc", f"{device}: permission denied", "this user is not in the group dialout",
                          "run it as root (sudo) or as the gate-reader user", path=path)
    opened = None
    started = time.monotonic()
    try:
        opened = (opener or open_frontend)(path)
    except OSError as exc:
        return _open_failure(path, usb_id, exc)
    except Exception as exc:  # nfcpy raises what its transports raise
        return failed("nfc", f"the reader at {path} did not open ({type(exc).__name__}: {exc})",
                      "a reader nfcpy does not drive, or one that does not answer", _UNPLUG, path=path)
    try:
        device = getattr(opened, "device", None)
        chip = getattr(device, "chipset_name", "") or "?"
        name = str(device) if device is not None else path
    finally:
        opened.close()
    values = {"path": path, "reader": name, "chip": chip, "open_ms": round((time.monotonic() - started) * 1000, 1)}
    if usb_id:
        values["usb_id"] = usb_id
    return passed("nfc", f"found {name}" + (f" (USB {usb_id})" if usb_id else ""), **values)


def _open_failure(path: str, usb_id: str | None, exc: OSError) -> CheckResult:
    code = exc.errno
    values = {"path": path, "usb_id": usb_id, "error": f"{errno.errorcode.get(code or 0, code)}: {exc.strerror or exc}"}
    if code == errno.EACCES:
        return failed("nfc", f"the reader at {path} is there but may not be opened",
                      "permissions: the installer's udev rule gives the reader to the group plugdev",
                      "run as root (sudo) or the gate-reader user; after installing, unplug and plug it in", **values)
    if code == errno.EBUSY:
        holders = _kernel_holders()
        cause = (f"the kernel's NFC driver holds it ({', '.join(holders)})" if holders
                 else "another program holds it (pcscd, or a second gate-reader)")
        return failed("nfc", f"the reader at {path} is busy", cause,
                      "sudo modprobe -r pn533_usb pn533 nfc (the installer keeps them off after a reboot); "
                      "sudo systemctl disable --now pcscd.socket pcscd.service", **values)
    if code in (errno.ENODEV, errno.ENOENT):
        return failed("nfc", f"no reader at {path}", "not plugged in, or the path names another reader",
                      _UNPLUG, **values)
    return failed("nfc", f"the reader at {path} failed to open", "the cable or the reader itself (it answers "
                  "libusb but not nfcpy's commands)", _UNPLUG, **values)


class _TimedFrontend:
    """A ContactlessFrontend whose ``exchange`` calls (one ISO-DEP frame and its answer) are
    timed; everything else is the frontend's own."""

    def __init__(self, clf: Any) -> None:
        self._clf = clf
        self.round_trips_ms: list[float] = []

    def exchange(self, send_data: Any, timeout: float) -> Any:
        started = time.perf_counter()
        try:
            return self._clf.exchange(send_data, timeout)
        finally:
            self.round_trips_ms.append((time.perf_counter() - started) * 1000)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._clf, name)


def tap_nfc(path: str, gate_id: str, timeout: float, report: Report, *,
            frontend: Callable[[str], Any] | None = None, on_ready: Callable[[], None] | None = None) -> CheckResult:
    """Wait up to ``timeout`` seconds for one tap on the reader at ``path``."""
    from drivers.nfc import NfcSource
    from drivers.nfc_udp import open_frontend

    timed: list[_TimedFrontend] = []

    def factory(reader_path: str) -> Any:
        timed.append(_TimedFrontend((frontend or open_frontend)(reader_path)))
        return timed[-1]

    taps: queue.Queue[Any] = queue.Queue()
    source = NfcSource("diag-nfc", taps, path=path, gate_id=gate_id, frontend_factory=factory)
    source.start()
    try:
        deadline = time.monotonic() + min(10.0, timeout)
        while not source.health().up and time.monotonic() < deadline:
            time.sleep(0.05)
        if not source.health().up:
            return failed("nfc", f"the reader at {path} did not open", str(source.health().last_error),
                          "run `gate-reader diag nfc` without waiting for a tap to see why (--no-tap)", path=path)
        report(f"reader ready at {path}: tap a card or phone within {timeout:g} s")
        if on_ready is not None:
            on_ready()
        try:
            presentation = taps.get(timeout=timeout)
        except queue.Empty:
            return failed("nfc", f"no tap read within {timeout:g} s", "nothing was held to the reader, or the card "
                          "or phone is not ISO 14443 (a 125 kHz badge is not NFC), or held too briefly",
                          "hold it flat on the reader for a second; a phone needs NFC on and the GatePass app",
                          path=path)
        extra = source.health().extra
    finally:
        source.close()
    trips = timed[-1].round_trips_ms if timed else []
    values: dict[str, Any] = {"path": path, "kind": "GatePass holder" if presentation.kind == "nfc" else "legacy card",
                              "exchange_ms": extra.get("last_exchange_ms"), "apdus": extra.get("last_apdus"),
                              "bytes": len(presentation.payload), "hash": short_hash(presentation.payload)}
    if trips:
        values.update(frames=len(trips), round_trip_ms_min=round(min(trips), 2),
                      round_trip_ms_median=round(statistics.median(trips), 2), round_trip_ms_max=round(max(trips), 2))
    what = (f"GatePass holder: {values['bytes']} bytes in {values['apdus']} APDUs" if presentation.kind == "nfc"
            else f"legacy card (UID of {len(presentation.payload) // 2} bytes, {values['hash']})")
    return passed("nfc", f"{what}, {values['exchange_ms']} ms", **values)
