"""What ``gate-reader diag ... --sim`` runs against: the project's own simulators, no hardware.

- :class:`SimSite` (``--sim`` without ``--config``): a simulated centre (a test issuer, a
  TUF repository publishing its certificate and one status list, served on loopback) and a
  gate configured to sync from it, synced once as an installed gate is, in a folder of its
  own; every path of its config lies there.
- :class:`SimHardware`: the devices. An NFC reader on nfcpy's ``udp`` driver with the card
  emulator (``drivers.nfc_emulator``) on its other end, holding a GatePass holder with a real
  credential or a legacy card; a camera playing a PNG sequence with a QR code in it
  (``drivers.camera_sim``); a scanner on a pty; mock GPIO pins (the door, Wiegand frames
  pulsed at real timing by ``drivers.wiegand.pulse_frame``). Its ``later`` methods act as the
  person at the gate: each starts a thread that taps, scans or shows a card once the check
  is ready for it.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from offline_cache.publish import Repository
from offline_cache.sync import TRUST_TARGET
from reader.gatepass.authority import Holder, Issuer, build_status_list, issue_credential

URI = "https://status.sim.invalid/lists/main"
SIM_GATE_ID = "sim-gate"
WIEGAND_PINS = (20, 21)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class SimCentre:
    """An issuer and a holder, and a TUF repository that publishes the issuer's certificate
    and a status list (nothing revoked), served from ``root/repo/public`` on loopback."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.issuer = Issuer.generate("ES256")
        self.holder = Holder.generate("ES256")
        now = int(time.time())
        self.credential = issue_credential(self.issuer, sub="E-SIM-1", iat=now - 60, exp=now + 86_400,
                                           holder=self.holder, status=(URI, 1))
        repo = Repository.init(root / "repo")
        repo.put_target(TRUST_TARGET, self.issuer.certificate_pem)
        repo.put_target("status/main.cwt", build_status_list(self.issuer, uri=URI, size=64, values={}, iat=now - 30))
        with repo.locked():
            repo.publish()
        self.public = root / "repo" / "public"
        handler = functools.partial(_Quiet, directory=str(self.public))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, name="sim-centre", daemon=True).start()

    def qr_text(self) -> str:
        """A fresh QR presentation of the holder's credential (what a phone shows)."""
        return self.holder.present_qr(self.credential, iat=int(time.time()))

    def answer(self, challenge: bytes) -> bytes:
        """The holder's NFC answer to a CHALLENGE (what the phone's app sends)."""
        return self.holder.answer_challenge(challenge, self.credential, iat=time.time())

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SimHardware:
    """The simulated devices, in ``root``; ``centre`` (optional) makes the codes and taps real
    GatePass presentations, else they are made-up bytes of the right shape."""

    def __init__(self, root: Path, centre: SimCentre | None = None) -> None:
        from gpiozero.pins.mock import MockFactory

        from drivers.nfc_emulator import CardEmulator

        self.root = root
        self.centre = centre
        self.factory = MockFactory()
        self.card = CardEmulator(free_udp_port()).start()
        self.nfc_path = self.card.path
        self.frames = root / "frames"
        self.camera = str(self.frames / "%05d.png")
        self._write_frames()
        master, slave = os.openpty()
        self.scanner = os.ttyname(slave)
        os.close(slave)  # opened by name by the check; the master end keeps the pty alive
        self._master = master
        self._threads: list[threading.Thread] = []

    def _write_frames(self) -> None:
        from drivers.camera_sim import background, centred, code_image, scene, write_png_sequence

        self.frames.mkdir(parents=True, exist_ok=True)
        text = self.centre.qr_text() if self.centre is not None else "GP1:SIMULATED-CAMERA-FRAME"
        base = background(640, 480)
        code = code_image(text, 3)
        write_png_sequence([scene(base, [centred(code, 640, 480, i % 3)], seed=i) for i in range(30)], self.frames)

    # -- the person at the gate --------------------------------------------------------------

    def _later(self, action: Callable[[], None], delay: float = 0.2) -> Callable[[], None]:
        def start() -> None:
            thread = threading.Thread(target=lambda: (time.sleep(delay), action()), daemon=True)
            self._threads.append(thread)
            thread.start()
        return start

    def tap_later(self, legacy: bool = False) -> Callable[[], None]:
        """An ``on_ready`` that taps a phone (or a legacy card) on the simulated reader."""
        from drivers.nfc_emulator import GatePassHolder, LegacyCard

        if legacy:
            card: Any = LegacyCard(bytes.fromhex("04A1B2C3"))
        else:
            card = GatePassHolder(self.centre.answer if self.centre is not None else (lambda _c: b"\xa0" * 300))
        return self._later(lambda: self.card.tap(card, timeout=5.0))

    def scan_later(self, garbage: bool = False) -> Callable[[], None]:
        """An ``on_ready`` that scans a code on the simulated scanner (or, ``garbage``, sends
        what a scanner at another baud rate looks like: bytes that are not text)."""
        line = bytes([0xF8, 0x80, 0x00, 0xFE, 0xE0, 0x1C] * 12) if garbage else (
            (self.centre.qr_text() if self.centre is not None else "GP1:SIMULATED-SCAN").encode() + b"\r\n")
        return self._later(lambda: os.write(self._master, line))

    def wiegand_later(self, pins: tuple[int, int] = WIEGAND_PINS, bad_parity: bool = False) -> Callable[[], None]:
        """An ``on_ready`` that shows an H10301 card (facility 90, card 324) to the reader."""
        from drivers.wiegand import DEFAULT_FRAME_GAP_S, FORMATS, frame_went_out, pulse_frame

        bits = list(FORMATS["H10301"].encode([90, 324]))
        if bad_parity:
            bits[0] ^= 1

        def swipe() -> None:  # again (up to 5 times) when a thread switch stretched or cut the frame
            for _ in range(5):
                if frame_went_out(pulse_frame(self.factory.pin(pins[0]), self.factory.pin(pins[1]), bits)):
                    return
                time.sleep(2 * DEFAULT_FRAME_GAP_S)
        return self._later(swipe)

    def close(self) -> None:
        for thread in self._threads:
            thread.join(6.0)
        self.card.stop()
        with contextlib.suppress(OSError):
            os.close(self._master)
        self.factory.close()


class SimSite:
    """A simulated centre and a gate syncing from it, in a temporary folder (removed by
    :meth:`close`); ``config`` is the gate's config file."""

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="gate-reader-sim-")
        self.root = Path(self._tmp.name)
        self.centre = SimCentre(self.root)
        self.hardware = SimHardware(self.root, self.centre)
        self.config = self.root / "gate.toml"
        root, url = self.root, self.centre.url
        self.config.write_text(
            f'[gate]\nid = "{SIM_GATE_ID}"\nkey = "{root / "gate.key"}"\n'
            f'[cache]\npath = "{root / "state" / "cache.db"}"\n'
            f'[sync]\nmetadata_url = "{url}/metadata/"\ntargets_url = "{url}/targets/"\n'
            f'root = "{self.centre.public / "metadata" / "root.json"}"\ntimeout_s = 2\ntotal_timeout_s = 5\n'
            f'[policy]\nlegacy_cards = true\n'
            f'[door]\npin_factory = "mock"\nrelease_s = 0.5\n'
            f'[daemon]\nruntime_dir = "{root / "run"}"\n'
            f'[[readers]]\nname = "sim-nfc"\ndriver = "nfc"\ndevice = "{self.hardware.nfc_path}"\n'
            f'[[readers]]\nname = "sim-camera"\ndriver = "camera"\ndevice = "{self.hardware.camera}"\nfps = 15\n'
            f'[[readers]]\nname = "sim-scanner"\ndriver = "scanner"\ndevice = "{self.hardware.scanner}"\n'
            f'[[readers]]\nname = "sim-wiegand"\ndriver = "wiegand"\ndevice = [{WIEGAND_PINS[0]}, {WIEGAND_PINS[1]}]\n')

    def commission(self) -> None:
        """The first sync, as the installed gate's timer runs it."""
        from reader.gate.config import load_config
        from reader.gate.sync import run_sync

        report = run_sync(load_config(self.config))
        if not report.ok:
            raise RuntimeError(f"the simulated gate's first sync failed: {report.error}")

    def close(self) -> None:
        self.hardware.close()
        self.centre.close()
        self._tmp.cleanup()
