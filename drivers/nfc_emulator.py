"""A phone/card simulator for the NFC source: an ISO-DEP (ISO 14443-4) card on nfcpy's ``udp``
driver, in listen mode.

nfcpy's udp listener completes Type A anticollision and hands over the first frame after it
(the RATS for an ISO-DEP card); from then on ``clf.exchange()`` carries raw ISO-DEP blocks, so
this module answers the ATS and speaks I-blocks (with chaining both ways), R(ACK/NAK) and
S(DESELECT/WTX) itself. On top of that sits the card's application: a GatePass holder (spec
2.2) or a legacy card (spec 2.3). The emulator never touches keys: a holder is handed a
function from the CHALLENGE data (CBOR ``{1: rnonce, 2: gate id}``) to the presentation bytes.

How the two udp ends meet: the card binds ``0.0.0.0:PORT`` and the reader sends its frames to
``HOST:PORT`` from an ephemeral port, to which the card answers. A card "on the reader" is a
bound socket; taking it away closes the socket, so the reader hears nothing (a removal) and
a later ``present()`` binds again (a new tap). Each test needs its own port.

Use::

    with CardEmulator(port) as card:          # the reader's path is card.path
        card.present(GatePassHolder(answer))  # on the reader until removed
        ...                                   # the reader reads it once
        card.remove()                         # returns once it answers nothing more
        card.tap(LegacyCard(uid))             # present, wait for the reader, remove
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cbor2
import nfc
import nfc.clf

log = logging.getLogger(__name__)

GATEPASS_AID = bytes.fromhex("F04741544550415353")
SW_OK = b"\x90\x00"
SW_NOT_FOUND = b"\x6a\x82"
_FS_TABLE = (16, 24, 32, 40, 48, 64, 96, 128, 256)  # FSDI/FSCI -> frame size (ISO 14443-4)
_WAIT_S = 0.05  # how long one receive waits before the card looks at its flags again
# nfcpy's listen closes and re-binds the socket on every call, and a call that ends while
# the reader is mid-anticollision drops the reader's next frame: with short listens the
# card and a polling reader can fall into step and never meet. So the card listens for
# good and is woken by a frame it sends itself when the test moves it.
_LISTEN_S = 3600.0
_WAKE = b"106A ff"


def _random_uid() -> bytes:
    """A 4-byte random NFCID1 (first byte 08h), as phones doing HCE present themselves."""
    return b"\x08" + os.urandom(3)


def _check_uid(uid: bytes) -> None:
    if len(uid) not in (4, 7, 10) or uid[0] == 0x88:
        raise ValueError("a Type A UID has 4, 7 or 10 bytes and does not start with 88h (cascade tag)")


@dataclass(frozen=True)
class GatePassHolder:
    """A phone (HCE) or card with the GatePass application.

    ``answer`` maps the CHALLENGE data to the presentation bytes. Faults, for tests:
    ``remove_after_apdus=N`` answers N APDUs, then leaves the field without answering the
    next one; ``garbage`` answers the CHALLENGE with nonsense and a status word no holder
    sends; ``oversize`` pads the answer past the spec's 4096-byte bound; ``wtx`` asks for
    that many waiting-time extensions before answering the CHALLENGE; ``mute_rats`` announces
    ISO-DEP in SEL_RES and then never answers the RATS (no ATS: the card does not activate).
    """

    answer: Callable[[bytes], bytes]
    uid: bytes = field(default_factory=_random_uid)
    remove_after_apdus: int | None = None
    garbage: bool = False
    oversize: bool = False
    wtx: int = 0
    mute_rats: bool = False

    def __post_init__(self) -> None:
        _check_uid(self.uid)


@dataclass(frozen=True)
class LegacyCard:
    """A card the gate knows only by its UID: with ``iso_dep`` it speaks ISO-DEP and answers
    the GatePass SELECT with ``6A 82``; without, it announces no ISO-DEP in SEL_RES at all."""

    uid: bytes
    iso_dep: bool = True

    def __post_init__(self) -> None:
        _check_uid(self.uid)


Card = GatePassHolder | LegacyCard


class _Removed(Exception):
    """The card left the field (a fault mode or ``remove()``): stop answering at once."""


class _Application:
    """The card's APDU layer for one activation: SELECT, CHALLENGE, GET RESPONSE."""

    def __init__(self, card: Card, max_le: int = 256) -> None:
        self.card = card
        self.selected = False
        self.pending = b""
        self.apdus = 0
        self.max_le = max_le

    def _chunk(self, le: int) -> bytes:
        size = min(le or 256, self.max_le)
        chunk, self.pending = self.pending[:size], self.pending[size:]
        if not self.pending:
            return chunk + SW_OK
        return chunk + bytes([0x61, min(len(self.pending), 256) & 0xFF])

    def process(self, apdu: bytes) -> bytes:
        self.apdus += 1
        card = self.card
        limit = card.remove_after_apdus if isinstance(card, GatePassHolder) else None
        if limit is not None and self.apdus > limit:
            raise _Removed
        if len(apdu) < 4:
            return b"\x67\x00"
        cla, ins, p1 = apdu[0], apdu[1], apdu[2]
        data = apdu[5:5 + apdu[4]] if len(apdu) > 5 else b""
        le = apdu[-1] if len(apdu) in (5, 6 + len(data)) else 0
        if cla == 0x00 and ins == 0xA4 and p1 == 0x04:
            if isinstance(card, GatePassHolder) and data == GATEPASS_AID:
                self.selected = True
                return cbor2.dumps({"v": 1}) + SW_OK
            self.selected = False
            return SW_NOT_FOUND
        if not self.selected:
            return b"\x69\x85"  # conditions of use not satisfied
        assert isinstance(card, GatePassHolder)
        if cla == 0x80 and ins == 0x10:
            if card.garbage:
                return b"\xa5" * 7 + b"\x6f\x42"
            answer = card.answer(bytes(data))
            if card.oversize:
                answer += bytes(5000 - len(answer)) if len(answer) < 5000 else b"\x00"
            self.pending = answer
            return self._chunk(le)
        if cla == 0x00 and ins == 0xC0 and self.pending:
            return self._chunk(le)
        return b"\x6d\x00"  # instruction not supported


class CardEmulator:
    """A card or phone that a test puts on the simulated reader at ``udp:host:port``.

    ``present(card)`` puts a card on the reader (replacing one that is there), ``remove()``
    takes it away, ``tap(card)`` does both around one reader exchange. The emulator runs in
    its own thread between ``start()`` and ``stop()`` (or as a context manager).
    """

    fwi: int = 7  # frame waiting time index announced in the ATS: 4096/13.56 MHz * 2**7 = 38.7 ms

    def __init__(self, port: int, card: Card | None = None, *, host: str = "127.0.0.1") -> None:
        self.path = f"udp:{host}:{port}"
        self.port = port
        self._card = card
        self._cond = threading.Condition()
        self._stopping = False
        self._generation = 0  # bumped by present()/remove(): the session in flight is stale
        self._thread: threading.Thread | None = None
        self.activations = 0  # ISO-DEP activations (RATS answered) since start
        self.apdus = 0  # APDUs received since start
        self._present = False
        self._done = threading.Event()  # the reader finished with the current presentation
        self._off = threading.Event()  # no socket bound: nothing answers the reader
        self._off.set()

    # -- the test's side -------------------------------------------------------------------

    def start(self) -> CardEmulator:
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name=f"card-{self.path}", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Take the card away and end the thread (the socket closes: the field is gone)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._wake()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    def __enter__(self) -> CardEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def present(self, card: Card | None = None) -> None:
        """Put ``card`` (or the last one) on the reader: a fresh activation follows."""
        with self._cond:
            if card is not None:
                self._card = card
            if self._card is None:
                raise ValueError("no card to present")
            self._generation += 1
            self._present = True
            self._done.clear()
            self._cond.notify_all()
        self._wake()

    def remove(self, timeout: float = 2.0) -> None:
        """Take the card away: it stops answering at once, mid-exchange or not. Returns once
        its socket is closed, so the reader's next frame finds nobody."""
        with self._cond:
            self._generation += 1
            self._present = False
            self._cond.notify_all()
        self._wake()
        if self._thread is not None:
            self._off.wait(timeout)

    def wait_done(self, timeout: float = 5.0) -> bool:
        """Wait until the reader finished with the presented ISO-DEP card: it sent its first
        presence check, deselected the card, or switched the field off."""
        return self._done.wait(timeout)

    def tap(self, card: Card | None = None, timeout: float = 5.0) -> bool:
        """Present an ISO-DEP card, wait until the reader is done with it, take it away."""
        self.present(card)
        try:
            return self.wait_done(timeout)
        finally:
            self.remove()

    # -- the card's side -------------------------------------------------------------------

    def _wake(self) -> None:
        """Make a listening card look at its flags now (see ``_LISTEN_S``)."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(_WAKE, ("127.0.0.1", self.port))

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and not self._present:
                    self._cond.wait(0.5)
                if self._stopping:
                    return
                generation, card = self._generation, self._card
            assert card is not None
            try:
                clf = nfc.ContactlessFrontend(self.path)
            except OSError as exc:
                log.warning("card emulator %s: cannot open (%s)", self.path, exc)
                return
            self._off.clear()
            try:
                self._field(clf, card, generation)
            except Exception:
                log.exception("card emulator %s: failed", self.path)
            finally:
                clf.close()  # closes the socket: the card is off the reader
                self._off.set()
                self._mark_done(generation)

    def _mark_done(self, generation: int) -> None:
        with self._cond:
            if generation == self._generation:  # not a presentation the test moved on from
                self._done.set()

    def _live(self, generation: int) -> bool:
        return not self._stopping and self._present and self._generation == generation

    def _field(self, clf: Any, card: Card, generation: int) -> None:
        """Listen for the reader while the card lies on it; run one ISO-DEP session per
        activation (the reader switching its field off ends a session)."""
        target = nfc.clf.LocalTarget("106A")
        uid = card.uid
        target.sens_res = bytes([{4: 0x04, 7: 0x44, 10: 0x84}[len(uid)], 0x00])
        target.sdd_res = bytearray(uid)
        iso_dep = not (isinstance(card, LegacyCard) and not card.iso_dep)
        target.sel_res = bytes([0x20 if iso_dep else 0x00])
        while self._live(generation):
            activated = clf.listen(target, _LISTEN_S)
            if activated is None:  # the port is taken (EADDRINUSE): nfcpy gives up at once
                log.warning("card emulator %s: cannot listen (port in use?)", self.path)
                with self._cond:
                    self._cond.wait(0.5)
                continue
            if not self._live(generation):
                continue
            command = activated.tt4_cmd
            if not iso_dep or not command or command[0] != 0xE0:
                continue  # not a RATS (a stray frame, or a reader talking Type 2): stay mute
            if isinstance(card, GatePassHolder) and card.mute_rats:
                continue  # the fault: no ATS
            try:
                self._session(clf, card, bytes(command), generation)
            except _Removed:
                with self._cond:
                    if self._generation == generation:
                        self._present = False
                return

    def _receive(self, clf: Any, send: bytes | None, generation: int) -> bytes | None:
        """Send a block (if any) and wait for the next command; None when the field is off."""
        while True:
            if not self._live(generation):
                raise _Removed
            try:
                data = clf.exchange(send, _WAIT_S)
            except nfc.clf.BrokenLinkError:
                return None  # RFOFF: the reader switched its field off
            except nfc.clf.TimeoutError:
                send = None
                continue
            except nfc.clf.CommunicationError:
                send = None
                continue
            if data:
                return bytes(data)
            send = None

    def _session(self, clf: Any, card: Card, rats: bytes, generation: int) -> None:
        fsd = _FS_TABLE[min(rats[1] >> 4, 8)] if len(rats) > 1 else 256
        max_inf = fsd - 3  # PCB and the two CRC bytes the air interface would add
        app = _Application(card)
        self.activations += 1
        ats = bytes([0x05, 0x78, 0x80, self.fwi << 4, 0x00])  # TL T0(FSCI 8) TA TB(FWI) TC
        send: bytes | None = ats
        last: bytes | None = None  # the last block sent, for retransmission
        last_bn = 1  # the card's block number starts at 1 (ISO 14443-4 7.5.3.2)
        chain = bytearray()  # command data arriving in chained I-blocks
        outgoing: list[bytes] = []  # response chunks still to send
        wtx_left = 0
        answer: bytes | None = None
        while True:
            command = self._receive(clf, send, generation)
            send = None
            if command is None:
                self._mark_done(generation)
                return
            pcb = command[0]
            if pcb & 0xE2 == 0x02:  # I-block
                bn = pcb & 1
                start = 1 + bool(pcb & 0x08) + bool(pcb & 0x04)  # CID, NAD
                chain += command[start:]
                if pcb & 0x10:
                    send = last = bytes([0xA2 | bn])  # R(ACK): send the next part
                    last_bn = bn
                    continue
                apdu, chain = bytes(chain), bytearray()
                self.apdus += 1
                answer = app.process(apdu)
                last_bn = bn
                wtx_left = card.wtx if isinstance(card, GatePassHolder) and apdu[:2] == b"\x80\x10" else 0
                if wtx_left:
                    wtx_left -= 1
                    send = last = b"\xf2\x01"
                    continue
                outgoing = self._chunks(answer, max_inf)
                send = last = self._iblock(outgoing, bn)
            elif pcb & 0xE6 == 0xA2:  # R-block
                bn = pcb & 1
                if pcb & 0x10:  # R(NAK)
                    if bn == last_bn and last is not None:
                        send = last  # our block was lost: send it again
                    else:
                        self._mark_done(generation)  # a presence check: the reader is through
                        send = bytes([0xA2 | last_bn])
                elif bn != last_bn and outgoing:
                    last_bn = bn
                    send = last = self._iblock(outgoing, bn)
                elif last is not None:
                    send = last
            elif pcb & 0xF7 == 0xC2:  # S(DESELECT)
                clf.exchange(b"\xc2", 0)
                self._mark_done(generation)
                return
            elif pcb & 0xF7 == 0xF2 and answer is not None:  # S(WTX) response
                if wtx_left:
                    wtx_left -= 1
                    send = last = b"\xf2\x01"
                    continue
                outgoing = self._chunks(answer, max_inf)
                send = last = self._iblock(outgoing, last_bn)
            # anything else: stay silent, as a card does on a frame it cannot parse

    @staticmethod
    def _chunks(answer: bytes, max_inf: int) -> list[bytes]:
        """The answer cut into I-block payloads; an empty answer is one empty block."""
        return [answer[i : i + max_inf] for i in range(0, len(answer), max_inf)] or [b""]

    @staticmethod
    def _iblock(outgoing: list[bytes], bn: int) -> bytes:
        chunk = outgoing.pop(0)
        return bytes([(0x12 if outgoing else 0x02) | bn]) + chunk
