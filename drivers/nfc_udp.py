"""The simulated NFC reader (``udp:HOST:PORT`` paths): nfcpy's own udp driver, polling at the
cadence of a PN53x reader instead of once a second.

nfcpy's udp ``Device.sense_tta`` sends SENS_REQ and then waits a hard-coded 1.0 s for a
SENS_RES. On the simulator that second *is* the poll: the reader's cycle becomes ~1 s, and a
card that the test puts on the reader meanwhile never saw the request and waits for the next
one, so a tap took ~0.5 s on average where hardware takes tens of milliseconds. A real
reader gives up on an empty field within a few milliseconds (nfcpy 1.0.4):

- ``nfc/clf/pn533.py`` and ``nfc/clf/pn532.py`` (hence ``acr122.py``, a PN532 behind a USB
  CCID controller) set RFConfiguration item 05h, MaxRetries, to ``01 00 01``:
  MxRtyPassiveActivation = 1, so InListPassiveTarget tries activation twice and then answers
  NbTg = 0;
- ``nfc/clf/pn53x.py`` ``sense_tta`` then reads ``CIU_FIFOData``: a SENS_REQ (26h) still in
  the FIFO means no SENS_RES came, and it returns None at once;
- the 1.0 s in ``pn53x.Chipset.in_list_passive_target`` (``command(0x4A, ..., timeout=1.0)``)
  is the host's wait for the chip's response frame, which a working chip sends as soon as
  its tries are over; it is never the air wait. On the air, a REQA and its ATQA take a
  fraction of a millisecond (ISO 14443-3: the ATQA follows the REQA after ~86-91 us); the
  wall time of an empty poll is the host link's command and response round trip, a few
  milliseconds over USB.

So :class:`PolledUdpDevice` waits :data:`SENS_WAIT_S` for the answer to the poll's first
request (SENS_REQ for Type A, SENSB_REQ for Type B), and leaves everything else exactly as
nfcpy has it: anticollision and SELECT waits (0.5 s), the ISO-DEP exchange, RFOFF. It is
still nfcpy's udp driver underneath (the project's rule: simulators use the real libraries'
fakes); only the timeout of that one receive changes. The reader's cadence is then what it
is on hardware: ``NfcSource``'s poll pause plus the poll itself.

A card that answers after the wait does not confuse the next poll: nfcpy's ``sense()``
mutes the device before each poll, which on udp closes the socket, and the next request goes
out from a new one; a SENS_RES that arrives late lands in the old socket and is discarded
with it.

How ``NfcSource`` opens it: :func:`open_frontend` is its default ``frontend_factory``, and
it opens this device for ``udp`` paths and hands every other path to
``nfc.ContactlessFrontend`` unchanged. The rule is by path, never by trial: a udp path is
always the simulator (nfcpy has no other udp device), so there is nothing to fall back from;
a path it cannot open raises OSError as nfcpy's own open does. A test that wants nfcpy's
unmodified udp driver passes ``frontend_factory=nfc.ContactlessFrontend``.
"""

from __future__ import annotations

import platform
from typing import Any

import nfc
import nfc.clf
import nfc.clf.udp

#: how long the simulated reader waits for a card to answer the poll's first request: what
#: an empty PN53x poll costs on a USB host link (see the module docstring)
SENS_WAIT_S = 0.01


class PolledUdpDevice(nfc.clf.udp.Device):
    """nfcpy's udp ``Device``; the answer to SENS_REQ / SENSB_REQ is awaited ``sens_wait_s``."""

    def __init__(self, host: str, port: int, sens_wait_s: float = SENS_WAIT_S) -> None:
        if not 0 < sens_wait_s <= 1.0:
            raise ValueError(f"sens_wait_s: must be above 0 and at most nfcpy's 1.0 s, not {sens_wait_s!r}")
        self.sens_wait_s = sens_wait_s
        self._first_wait = False  # the next receive is the answer to the poll's first request
        super().__init__(host, port)

    def sense_tta(self, target: Any) -> Any:
        return self._sensing(super().sense_tta, target)

    def sense_ttb(self, target: Any) -> Any:
        return self._sensing(super().sense_ttb, target)

    def _sensing(self, sense: Any, target: Any) -> Any:
        # nfcpy's sense_tta/sense_ttb send the request and then receive its answer first of
        # all (udp.py: ``self._send_data(...); self._recv_data(1.0, ...)``): that one
        # receive gets the short wait.
        self._first_wait = True
        try:
            return sense(target)
        finally:
            self._first_wait = False

    def _recv_data(self, timeout: float | None, *brty_list: str) -> Any:
        if self._first_wait:
            self._first_wait = False
            timeout = self.sens_wait_s if timeout is None else min(timeout, self.sens_wait_s)
        return super()._recv_data(timeout, *brty_list)


def udp_address(path: str) -> tuple[str, int]:
    """``udp[:HOST][:PORT]`` as nfcpy reads it (``nfc/clf/device.py``: localhost, 54321)."""
    parts = path.split(":")
    if parts[0] != "udp" or len(parts) > 3:
        raise ValueError(f"not a udp reader path: {path!r}")
    host = parts[1] if len(parts) > 1 and parts[1] else "localhost"
    port = int(parts[2]) if len(parts) > 2 and parts[2] else 54321
    return host, port


def open_frontend(path: str) -> Any:
    """nfcpy's ``ContactlessFrontend`` for ``path``; a udp path gets :class:`PolledUdpDevice`
    (see the module docstring). OSError when the reader cannot be opened."""
    if not path.startswith("udp"):
        return nfc.ContactlessFrontend(path)
    host, port = udp_address(path)
    device = PolledUdpDevice(host, port)  # socket.gaierror (an OSError) for an unknown host
    # What nfcpy's udp init() and device.connect() set, so str(clf) reads the same.
    device._vendor_name = platform.uname()[0]
    device._device_name = "IP-Stack"
    device._chipset_name = "UDP"
    device._path = f"udp:{host}:{port}"
    clf = nfc.ContactlessFrontend()
    with clf.lock:
        clf.device = device
    return clf
