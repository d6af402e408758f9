"""The NFC credential source: nfcpy polls for ISO 14443 A/B targets and runs the GatePass
exchange of spec 2.2 with each ISO-DEP target, or reads a legacy card's UID (spec 2.3).

Reader paths are nfcpy's: ``usb``, ``usb:054c:06c3``, ``usb:001:023``, ``tty:AMA0:pn532``,
``com:COM3:pn532``, and ``udp:HOST:PORT`` for the simulator (``drivers.nfc_emulator``).

Why ``clf.sense()`` in our own loop rather than ``clf.connect()``: connect swallows IOError
(an unplugged reader would look like "no card" forever), polls five times with 0.5 s pauses
before it looks at ``terminate``, and hands a non-ISO-DEP card to tag-type activation that
MIFARE Classic and friends fail, which would re-read them on every poll. Here one call of
``_read_once`` is one poll or one presence check, so stop is prompt and each tap is ours.

One presentation per tap (debounce):

- ISO-DEP target (phone or smart card): after the exchange the field stays on and the card
  is presence-checked (an R(NAK), as nfcpy's connect does) every ``presence_interval_s``
  until it stops answering; the tap ends there. A phone's UID is random per activation, so
  the field must stay on: re-sensing would look like a new card.
- Other targets (UID-only cards): the UID is held while consecutive polls keep finding it;
  a poll that finds no card, or another one, ends the tap.

Bounds and faults. A holder answer longer than ``max_response`` (the spec's 4096) is not
read further: the source emits the first ``max_response + 1`` bytes as an ``nfc``
presentation, so the verifier decides ``too_large`` once and the journal shows why (a
truncated answer would be decided ``malformed``, and dropping it would leave the holder with
no light at all). ``exchange_timeout_s`` bounds one tap's exchange, checked before each
APDU; a single APDU waits as long as the card's own frame waiting time (ATS FWI) and
nfcpy's retries allow. A card that leaves mid-exchange, answers garbage or stops answering
gets one warning line (lengths and short hashes only, never a nonce, an answer or a UID)
and no presentation; it is held like any card until it leaves, so it is not retried in a
loop. An OSError from nfcpy (USB unplugged, tty gone, udp socket error) is the reader:
``_read_once`` raises DeviceUnavailable and the base class reconnects with backoff.

nfcpy logs each ISO-DEP retry itself (WARNING, then ERROR "unrecoverable timeout error")
when a card leaves mid-exchange; the entry point may raise the ``nfc`` logger's level, since
every such event also gets this module's own line.

The timing of the last tap (from the target found by ``sense`` to the presentation handed
to the sink) and its APDU count are in ``health().extra``: ``last_exchange_ms``,
``last_apdus``, ``last_kind``; ``card_present`` says whether a tap is still in progress.
They are set before the presentation is emitted, so a consumer reading them on receipt
sees the figures of that presentation.

Polling. Polls that find nothing start every ``poll_interval_ms`` (default 50, the
``[[readers]]`` key of that name, 10 to 1000): after an empty poll the source pauses for what
the poll left of the interval. On a USB PN533/ACR122U an empty poll of both ISO 14443 kinds
takes ~10-20 ms, so the cycle is the interval, and a phone put on the reader waits ~25 ms on
average (at most ~50) for the poll that finds it. A shorter interval takes that down (20 ms:
~15 ms off the median) at the price of more polls a second, each a USB round trip or two in
Python; the default keeps the idle daemon's CPU low on a Pi, a reader where the felt tap
matters more sets 20.

Failed exchanges are counted per cause in ``health().extra["failed_exchanges"]`` (since
the source was made; each also gets its warning line): ``card_gone`` (stopped answering
mid-exchange, or an answer without a status word), ``bad_status`` (a status word no holder
sends, or more data announced and none given), ``timeout`` (``exchange_timeout_s`` passed)
and ``not_activated`` (announced ISO-DEP, then no ATS). ``gate-reader status`` shows a
source's extras as they are.

``frontend_factory`` is how tests hand in a reader that fails on purpose, as gpiozero takes
``pin_factory``. The default is ``drivers.nfc_udp.open_frontend``: nfcpy's
``ContactlessFrontend`` for the path, except that a ``udp`` path (the simulator) polls as a
PN53x does, giving up on an empty field within milliseconds instead of nfcpy's udp driver's
1 s; why, and why that is no fallback, is in that module's docstring.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import time
from collections.abc import Callable
from typing import Any

import cbor2
import nfc
import nfc.clf
import nfc.tag
import nfc.tag.tt4

from drivers.base import Sink, SourceBase
from drivers.errors import DeviceUnavailable, DriverConfigError, DriverTimeout
from drivers.nfc_udp import open_frontend
from offline_cache.loghash import short_hash

log = logging.getLogger(__name__)

GATEPASS_AID = bytes.fromhex("F04741544550415353")  # F0 + "GATEPASS" (spec 2.2)
_PATH = re.compile(r"^(usb(:[0-9a-fA-F]+(:[0-9a-fA-F]+)?)?|(tty|com):[\w.-]+(:\w+)?|udp(:[^:]*)?(:\d+)?)$")
_CARD_ERRORS = (nfc.clf.CommunicationError, nfc.tag.TagCommandError, IndexError, ValueError, TypeError)
#: the causes ``health().extra["failed_exchanges"]`` counts (see the module docstring)
FAILURE_CAUSES = ("card_gone", "bad_status", "timeout", "not_activated")
POLL_INTERVAL_MS = (10, 1000)  # the bounds of ``poll_interval_ms``

FrontendFactory = Callable[[str], Any]


class _CardGone(Exception):
    """The card stopped answering mid-exchange (left the field, or the reader's link broke)."""


class NfcSource(SourceBase):
    """GatePass holders and legacy cards on an nfcpy reader; see the module docstring."""

    presence_interval_s: float = 0.1  # pause between presence checks of a card left on

    def __init__(
        self,
        name: str,
        sink: Sink,
        *,
        path: str = "usb",
        gate_id: str,
        rnonce: Callable[[], bytes] = lambda: os.urandom(16),
        exchange_timeout_s: float = 1.0,
        max_response: int = 4096,
        poll_interval_ms: int = 50,
        frontend_factory: FrontendFactory | None = None,
    ) -> None:
        super().__init__(name, sink)
        if not isinstance(path, str) or not _PATH.match(path):
            raise DriverConfigError(f"path: {path!r} is not an nfcpy reader path (usb[:VID:PID], tty:PORT:DRIVER, "
                                    "com:PORT:DRIVER or udp:HOST:PORT)")
        if not isinstance(gate_id, str) or not gate_id:
            raise DriverConfigError("gate_id: must be a non-empty string")
        if len(cbor2.dumps({1: bytes(16), 2: gate_id})) > 255:
            raise DriverConfigError("gate_id: too long for a short CHALLENGE APDU (at most ~230 bytes)")
        if not exchange_timeout_s > 0:
            raise DriverConfigError("exchange_timeout_s: must be positive")
        if max_response < 1:
            raise DriverConfigError("max_response: must be positive")
        low, high = POLL_INTERVAL_MS
        if isinstance(poll_interval_ms, bool) or not isinstance(poll_interval_ms, int) \
                or not low <= poll_interval_ms <= high:
            # Below 10 ms the loop would mostly poll (CPU, and a field that never rests); above
            # a second a tap is felt to fail.
            raise DriverConfigError(f"poll_interval_ms: must be an integer from {low} to {high}, "
                                    f"not {poll_interval_ms!r}")
        self.path = path
        self.gate_id = gate_id
        self._rnonce = rnonce
        self.exchange_timeout_s = exchange_timeout_s
        self.max_response = max_response
        self.poll_interval_s = poll_interval_ms / 1000  # empty polls start this often (start to start)
        self._factory: FrontendFactory = frontend_factory or open_frontend
        # The simulator only listens as Type A; on hardware poll both ISO 14443 kinds.
        self._targets = ("106A",) if path.startswith("udp") else ("106A", "106B")
        self._clf: Any = None
        self._held_tag: Any = None  # an ISO-DEP card left on the reader, presence-checked
        self._held_uid: bytes | None = None  # a UID-only card left on the reader
        self._failed = dict.fromkeys(FAILURE_CAUSES, 0)
        self._health.extra = {"failed_exchanges": dict(self._failed)}

    # -- the device ------------------------------------------------------------------------

    def _open_device(self) -> None:
        try:
            self._clf = self._factory(self.path)
        except OSError as exc:
            raise DeviceUnavailable(f"no NFC reader at {self.path} ({exc.strerror or exc})") from None
        except Exception as exc:  # nfcpy raises ImportError, ValueError... for odd paths
            raise DeviceUnavailable(f"cannot open NFC reader {self.path} ({exc})") from None
        self._held_tag = self._held_uid = None

    def _close_device(self) -> None:
        clf, self._clf = self._clf, None
        self._held_tag = self._held_uid = None
        self._set_extra(card_present=False)
        if clf is not None:
            try:
                clf.close()
            except Exception as exc:
                log.debug("source %s: closing the reader: %s", self.name, exc)

    def _read_once(self) -> None:
        if self._held_tag is not None:
            self._check_presence()
            return
        started = time.monotonic()
        try:
            target = self._clf.sense(*[nfc.clf.RemoteTarget(brty) for brty in self._targets], iterations=1)
        except Exception as exc:  # sense() handles card errors itself: anything left is the reader
            raise DeviceUnavailable(f"reader {self.path} failed ({self._describe(exc)})") from None
        seen = time.perf_counter()
        if target is None:
            if self._held_uid is not None:
                log.debug("source %s: card %s removed", self.name, short_hash(self._held_uid))
                self._held_uid = None
                self._set_extra(card_present=False)
            self._stop.wait(max(0.0, self.poll_interval_s - (time.monotonic() - started)))
            return
        self._tap(target, seen)

    # -- one tap ---------------------------------------------------------------------------

    def _tap(self, target: Any, seen: float) -> None:
        uid = self._uid(target)
        if self._held_uid is not None:
            if uid == self._held_uid:
                self._stop.wait(self.presence_interval_s)
                return  # the same UID-only card, still on the reader
            self._held_uid = None
        self._set_extra(card_present=True)
        if not self._speaks_iso_dep(target):
            self._held_uid = uid
            self._emit_legacy(uid, seen, 0, "no ISO-DEP")
            return
        try:
            tag = nfc.tag.activate(self._clf, target)
        except OSError as exc:
            raise DeviceUnavailable(f"reader {self.path} failed ({self._describe(exc)})") from None
        except _CARD_ERRORS as exc:
            tag, failure = None, self._describe(exc)
        else:
            failure = "no answer to RATS"
        if not isinstance(tag, nfc.tag.tt4.Type4Tag):
            self._failed_exchange("not_activated", "card %s announced ISO-DEP but did not activate (%s)",
                                  short_hash(uid), failure)
            self._held_uid = uid
            return
        self._held_tag = tag
        try:
            self._exchange(tag, uid, seen)
        except OSError as exc:
            raise DeviceUnavailable(f"reader {self.path} failed ({self._describe(exc)})") from None

    def _exchange(self, tag: Any, uid: bytes, seen: float) -> None:
        """SELECT, CHALLENGE, GET RESPONSE until 90 00 (spec 2.2); emits at most once."""
        deadline = seen + self.exchange_timeout_s
        apdus = 0

        def send(cla: int, ins: int, p1: int, p2: int, data: bytes | None = None, mrl: int = 256) -> bytes:
            nonlocal apdus
            if time.perf_counter() > deadline:
                raise DriverTimeout(f"exchange took over {self.exchange_timeout_s:.1f} s")
            apdus += 1
            try:
                response = bytes(tag.send_apdu(cla, ins, p1, p2, data, mrl=mrl, check_status=False))
            except _CARD_ERRORS as exc:
                raise _CardGone(self._describe(exc)) from None
            if len(response) < 2:
                raise _CardGone("answer without a status word")
            return response

        try:
            response = send(0x00, 0xA4, 0x04, 0x00, GATEPASS_AID)
            sw = response[-2:]
            if sw == b"\x6a\x82":
                self._emit_legacy(uid, seen, apdus, "no GatePass application")
                return
            if sw != b"\x90\x00":
                self._failed_exchange("bad_status", "card %s answered SELECT with status %s", short_hash(uid),
                                      sw.hex().upper())
                return
            challenge = bytes(self._rnonce())
            if len(challenge) != 16:
                raise DriverConfigError(f"rnonce: the nonce source returned {len(challenge)} bytes, not 16")
            response = send(0x80, 0x10, 0x00, 0x00, cbor2.dumps({1: challenge, 2: self.gate_id}))
            answer = bytearray()
            while True:
                answer += response[:-2]
                sw1, sw2 = response[-2], response[-1]
                if len(answer) > self.max_response:
                    # Pass on one byte more than the bound, not a truncation: the verifier
                    # then decides too_large, once, and the journal shows why.
                    log.warning("source %s: holder %s answer passed %d bytes after %d APDUs; stopped reading, "
                                "the verifier decides too_large", self.name, short_hash(uid), self.max_response,
                                apdus)
                    self._emit_nfc(bytes(answer[:self.max_response + 1]), challenge, seen, apdus)
                    return
                if (sw1, sw2) == (0x90, 0x00):
                    break
                if sw1 != 0x61:
                    self._failed_exchange("bad_status", "holder %s answered with status %02X%02X after %d bytes in "
                                          "%d APDUs", short_hash(uid), sw1, sw2, len(answer), apdus)
                    return
                response = send(0x00, 0xC0, 0x00, 0x00, None, mrl=sw2 or 256)
                if len(response) == 2 and response[0] == 0x61:
                    self._failed_exchange("bad_status", "holder %s announced more data but GET RESPONSE returned "
                                          "none", short_hash(uid))
                    return
            self._emit_nfc(bytes(answer), challenge, seen, apdus)
        except _CardGone as exc:
            self._failed_exchange("card_gone", "card %s stopped answering after %d APDUs (%s): removed "
                                  "mid-exchange, or the link broke", short_hash(uid), apdus, exc)
        except DriverTimeout as exc:
            self._failed_exchange("timeout", "card %s: %s after %d APDUs", short_hash(uid), exc, apdus)

    def _check_presence(self) -> None:
        tag = self._held_tag
        try:
            present = tag.is_present
        except OSError as exc:
            raise DeviceUnavailable(f"reader {self.path} failed ({self._describe(exc)})") from None
        except Exception as exc:
            log.debug("source %s: presence check failed: %s", self.name, exc)
            present = False
        if present:
            self._stop.wait(self.presence_interval_s)
            return
        log.debug("source %s: card %s removed", self.name, short_hash(bytes(tag.identifier)))
        self._held_tag = None
        self._set_extra(card_present=False)

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _uid(target: Any) -> bytes:
        if target.sensb_res:
            return bytes(target.sensb_res[1:5])  # Type B: the PUPI
        return bytes(target.sdd_res or b"")

    @staticmethod
    def _speaks_iso_dep(target: Any) -> bool:
        if target.sensb_res:
            return len(target.sensb_res) > 10 and bool(target.sensb_res[10] & 0x01)
        is_type1 = target.sens_res is not None and target.sens_res[0] & 0x1F == 0
        return not is_type1 and bool(target.sel_res) and bool(target.sel_res[0] & 0x20)

    @staticmethod
    def _describe(exc: BaseException) -> str:
        if isinstance(exc, OSError) and exc.errno is not None:
            return f"{errno.errorcode.get(exc.errno, exc.errno)}: {exc.strerror or exc}"
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

    def _set_extra(self, **values: object) -> None:
        with self._lock:
            self._health.extra = {**self._health.extra, **values}

    def _failed_exchange(self, cause: str, message: str, *args: object) -> None:
        """One tap that gave no presentation: counted by cause, and one warning line (short
        hashes and lengths only)."""
        self._failed[cause] += 1
        self._set_extra(failed_exchanges=dict(self._failed))  # a new dict: health() hands it out
        log.warning("source %s: " + message + "; no presentation", self.name, *args)

    def _emit_legacy(self, uid: bytes, seen: float, apdus: int, why: str) -> None:
        elapsed_ms = (time.perf_counter() - seen) * 1000
        self._set_extra(last_exchange_ms=round(elapsed_ms, 3), last_apdus=apdus, last_kind="legacy")
        log.info("source %s: legacy card %s (%s) in %.1f ms", self.name, short_hash(uid), why, elapsed_ms)
        self._emit("legacy", uid.hex().upper())

    def _emit_nfc(self, answer: bytes, challenge: bytes, seen: float, apdus: int) -> None:
        elapsed_ms = (time.perf_counter() - seen) * 1000
        self._set_extra(last_exchange_ms=round(elapsed_ms, 3), last_apdus=apdus, last_kind="nfc")
        log.info("source %s: GatePass answer %d bytes (%s) in %d APDUs, %.1f ms", self.name, len(answer),
                 short_hash(answer), apdus, elapsed_ms)
        self._emit("nfc", answer, challenge)
