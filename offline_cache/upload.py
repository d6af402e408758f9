"""Store and forward of the event journal to the centre's collector (issue 3, item 4).

Events travel as a CloudEvents 1.0 JSON batch (``application/cloudevents-batch+json``), so
any collector that speaks CloudEvents can take them. Each journal record becomes one event
whose id is ``gate:epoch:seq``: a collector deduplicating by id makes a resent batch
harmless, which is what lets the gate keep the rule "marked sent only on a 2xx" without ever
losing or doubling an event. Every batch also carries one heartbeat event, even a batch with
no records, so the centre notices a gate that went quiet; it holds the journal's chain head
signed with the gate key, so the centre can tell the log was not cut short.

Errors: a transport failure (collector down, slow past the timeout, TLS refused, non-2xx) is
an expected state of a gate, not a bug, so ``Uploader.run_once`` *returns* it as one line in
``UploadResult.error`` and marks nothing; the timer simply runs again. ``UploadError`` is
raised only for configuration mistakes that no retry can fix (plain http to a remote host,
an unreadable CA file or client certificate, a malformed token or gate id), at construction.
"""

# Over ~400 lines on purpose: one uploader: batches, the heartbeat, TLS and the whole-request watchdog of one
# HTTP exchange; the error mapping at the bottom explains the failures of all of them.

from __future__ import annotations

import base64
import ipaddress
import json
import logging
import math
import re
import ssl
import time as _time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import urllib3
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from offline_cache.errors import UploadError
from offline_cache.gatekey import public_key_raw
from offline_cache.times import describe_time, format_time, usable_time
from offline_cache.watchdog import Watchdog, watched_pool_classes

log = logging.getLogger(__name__)

BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
TYPE_PREFIX = "org.gatepass.gate."
HEARTBEAT_TYPE = TYPE_PREFIX + "heartbeat"
UNREADABLE_KIND = "unreadable"  # the type of a stored record whose kind cannot name one
RECORD_FIELDS = (
    "seq", "epoch", "time", "reader", "kind", "decision", "reason",
    "subject", "credential_hash", "detail", "prev_hash", "hash",
)  # fmt: skip

# Ids are "gate:epoch:seq" and the signed head is newline separated: neither part may hold
# ":" or a newline, or two different heads could sign (or be addressed) the same.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_KIND = re.compile(r"[a-z][a-z0-9_]{0,31}")  # known: decision, door, gap, system
_HEX = re.compile(r"[0-9a-f]{1,128}")
# Heartbeat keys that would mean the caller is about to ship a secret.
_SECRET_WORDS = ("token", "secret", "password", "passwd", "private", "nonce")
_MAX_ERROR_BODY = 200
_MAX_BLOB_SHOWN = 64


class JournalLike(Protocol):
    """What the uploader needs of the event journal (offline_cache/journal.py provides it)."""

    def unsent(self, limit: int) -> list[Any]:
        """Up to ``limit`` unsent records, oldest first; each has the ``RECORD_FIELDS``."""

    def mark_sent(self, seqs: list[int], at: float) -> None:
        """Record that the collector accepted these sequence numbers at ``at``."""

    def head(self) -> tuple[int, str] | None:
        """(seq, hash) of the newest record, None for an empty journal."""


@dataclass(frozen=True)
class UploadResult:
    """The outcome of one run. ``remaining`` is 0 when the run left nothing unsent and None
    when it stopped early (then ``error`` says why in one line, and some records are still
    waiting: exactly the ones not in the ``sent`` count)."""

    sent: int
    batches: int
    remaining: int | None
    error: str | None


def chain_head_message(gate_id: str, epoch: str, seq: int, head_hash: str) -> bytes:
    """The bytes the gate key signs: a fixed label, so the signature cannot be replayed as
    anything else, then the gate, journal epoch, sequence and hash, one per line."""
    return f"gate-reader chain head\n{gate_id}\n{epoch}\n{seq}\n{head_hash}".encode()


def build_batch(
    records: Sequence[Any],
    *,
    gate_id: str,
    heartbeat: dict[str, Any],
    chain_head: tuple[int, str] | None,
    gate_key: Ed25519PrivateKey,
    epoch: str | None = None,
    now: float | None = None,
) -> bytes:
    """One CloudEvents JSON batch: an event per record, then one heartbeat event.

    ``epoch`` defaults to the records' epoch; it must be given for a batch without records
    (the heartbeat id and the signed head include it). ``now`` (epoch seconds, default the
    clock) dates the heartbeat. Only the record fields listed in ``RECORD_FIELDS``, the
    caller's heartbeat dict, and the signed head go out; a heartbeat key that names a secret
    (token, password, nonce, ...) is refused with ValueError, as are records that mix epochs.
    """
    _check_name("gate id", gate_id)
    if epoch is None and records:
        epochs = {record.epoch for record in records}
        if len(epochs) > 1:
            raise ValueError(f"records from several epochs {sorted(map(repr, epochs))}: pass the journal's epoch")
        epoch = records[-1].epoch
    if epoch is None:
        raise ValueError("a batch without records needs the journal epoch for its heartbeat")
    _check_name("journal epoch", epoch)
    source = f"urn:gate-reader:{gate_id}"
    events = [_record_event(record, gate_id, epoch, source) for record in records]
    now = _time.time() if now is None else now
    events.append(_heartbeat_event(gate_id, epoch, source, heartbeat, chain_head, gate_key, now))
    return json.dumps(events, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _record_event(record: Any, gate_id: str, epoch: str, source: str) -> dict[str, Any]:
    """One record as an event. A stored row is whatever is in the file: a row edited by
    hand (a time of 1e20 or text, a kind that is no word, another epoch) is still sent,
    as it is, with ``data.problems`` saying what is wrong and type ``...unreadable`` if
    its kind cannot name a type. Refusing it instead would hold back every later record,
    the cap and the retention behind it for good; the centre needs to see it anyway (its
    chain check fails too, see offline_cache/journal.py)."""
    problems: list[str] = []
    kind = record.kind
    if not isinstance(kind, str) or not _KIND.fullmatch(kind):
        problems.append(f"kind {kind!r} is not a lowercase word")
        kind = UNREADABLE_KIND
    if record.epoch != epoch:
        problems.append(f"epoch {record.epoch!r} is not the journal's")
    when = format_time(record.time, "milliseconds")
    if when is None:
        problems.append(f"time {describe_time(record.time)}")
    data = {name: _json_value(getattr(record, name)) for name in RECORD_FIELDS}
    if problems:
        data["problems"] = problems
    # The id takes the batch's epoch: seq is the journal's key, so it stays unique even
    # for a row whose own epoch was edited (and an edited epoch could hold a ":").
    event_id = f"{gate_id}:{epoch}:{int(record.seq)}"
    return _event(event_id, source, TYPE_PREFIX + kind, when, data, subject=record.reader)


def _json_value(value: Any) -> Any:
    """A stored value as JSON can carry it: text, numbers and None as they are; an
    infinity (which SQLite can hold) or a BLOB as text that says what it was."""
    if value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, bytes):
        return f"bytes:{value[:_MAX_BLOB_SHOWN].hex()}" + ("..." if len(value) > _MAX_BLOB_SHOWN else "")
    return repr(value)[:200]


def _event(
    event_id: str, source: str, type_name: str, when: str | None, data: dict[str, Any], subject: Any = None
) -> dict[str, Any]:
    event = {"specversion": "1.0", "id": event_id, "source": source, "type": type_name}
    if when is not None:  # CloudEvents: time is optional, and when present it is RFC 3339
        event["time"] = when
    event["datacontenttype"] = "application/json"
    if subject:  # CloudEvents: subject, when present, is a non-empty string
        event["subject"] = str(subject)
    event["data"] = data
    return event


def _heartbeat_event(
    gate_id: str, epoch: str, source: str, heartbeat: dict[str, Any],
    chain_head: tuple[int, str] | None, gate_key: Ed25519PrivateKey, now: float,
) -> dict[str, Any]:  # fmt: skip
    _check_no_secrets(heartbeat, "heartbeat")
    if "chain_head" in heartbeat:
        raise ValueError("heartbeat: 'chain_head' is filled by the uploader, not the caller")
    head: dict[str, Any] | None = None
    if chain_head is not None:
        seq, head_hash = int(chain_head[0]), chain_head[1]
        if not _HEX.fullmatch(head_hash):
            raise ValueError(f"chain head hash {head_hash!r} is not lowercase hex")
        signature = gate_key.sign(chain_head_message(gate_id, epoch, seq, head_hash))
        head = {
            "seq": seq,
            "hash": head_hash,
            "signature": base64.b64encode(signature).decode(),
            "public_key": base64.b64encode(public_key_raw(gate_key)).decode(),
        }
    data = {**heartbeat, "chain_head": head}
    if usable_time(now) is None:  # the clock itself: refused like any bad input, never a crash
        raise ValueError(f"heartbeat time {describe_time(now)}")
    ms = round(now * 1000)  # round, not int(): 1.001 * 1000 is 1000.9999..., and ids must not collide
    return _event(f"{gate_id}:{epoch}:hb:{ms}", source, HEARTBEAT_TYPE, format_time(ms / 1000, "milliseconds"), data)


def _check_name(what: str, value: object) -> None:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValueError(f"{what} {value!r}: use letters, digits, '.', '_' and '-' only (at most 128)")


def _check_no_secrets(value: object, where: str) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            lowered = str(key).lower()
            if any(word in lowered for word in _SECRET_WORDS):
                raise ValueError(f"{where}.{key}: a heartbeat never carries secrets")
            _check_no_secrets(inner, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for index, inner in enumerate(value):
            _check_no_secrets(inner, f"{where}[{index}]")


class Uploader:
    """POSTs the journal's unsent records to the collector, batch by batch, and marks them
    sent only when the collector answered 2xx.

    One ``run_once`` does no retries of its own: the sync timer calls it again, and a failed
    batch is simply sent whole next time (the collector is idempotent by event id). Plain
    ``http://`` is refused, since it would expose the bearer token and the access log (names
    of people and when they passed) to anyone on the path and let them forge acceptance;
    ``allow_insecure_loopback=True`` permits it to 127.0.0.0/8, ::1 and localhost only,
    where the bytes never leave the machine (the demo).
    """

    def __init__(
        self,
        journal: JournalLike,
        *,
        url: str,
        gate_id: str,
        gate_key: Ed25519PrivateKey,
        ca_file: str | None,
        token: str | None = None,
        client_cert: tuple[str, str] | None = None,
        batch: int = 500,
        timeout_s: float = 10.0,
        total_timeout_s: float = 60.0,
        heartbeat: Callable[[], dict[str, Any]],
        epoch: str | None = None,
        allow_insecure_loopback: bool = False,
    ) -> None:
        """``epoch`` is the journal's epoch id, needed only to sign a heartbeat when nothing
        is unsent (records carry their own); without it a journal attribute ``epoch`` is
        used if there is one. Raises ``UploadError`` for a configuration mistake."""
        try:
            _check_name("gate id", gate_id)
            _check_name("journal epoch", epoch if epoch is not None else "unset")
        except ValueError as exc:
            raise UploadError(f"upload: {exc}") from None
        if not isinstance(gate_key, Ed25519PrivateKey):
            raise UploadError("upload: the gate key must be an Ed25519 private key")
        if not 1 <= batch <= 100_000:
            raise UploadError(f"upload.batch {batch}: must be between 1 and 100000")
        if not 0 < timeout_s <= 600:
            raise UploadError(f"upload.timeout_s {timeout_s}: must be above 0 and at most 600")
        if not 0 < total_timeout_s <= 3600:
            raise UploadError(f"upload.total_timeout_s {total_timeout_s}: must be above 0 and at most 3600")
        if token is not None and not re.fullmatch(r"[\x21-\x7e]+", token):  # no header injection, no spaces
            raise UploadError("upload token: must be non-empty printable ASCII without spaces")
        self._journal = journal
        self._gate_id = gate_id
        self._key = gate_key
        self._epoch = epoch
        self._batch = batch
        self._heartbeat = heartbeat
        self._last_hb_ms = 0
        self._where = _check_url(url, allow_insecure_loopback)
        self._url = url
        self._headers = {"Content-Type": BATCH_CONTENT_TYPE, "User-Agent": "gate-reader-uploader"}
        if token is not None:
            self._headers["Authorization"] = f"Bearer {token}"
        self._timeout = urllib3.Timeout(connect=timeout_s, read=timeout_s)
        self._timeout_s = timeout_s
        self._total_s = total_timeout_s
        self._pool = self._make_pool(url, ca_file, client_cert)
        # The socket timeout bounds each wait for bytes; a collector trickling its answer
        # would reset it forever and hold the sync unit that runs the upload. The watchdog
        # ends a request that is not done within total_timeout_s (offline_cache/watchdog.py).
        self._watchdog = Watchdog()
        self._pool.pool_classes_by_scheme = watched_pool_classes(self._watchdog)

    @staticmethod
    def _make_pool(url: str, ca_file: str | None, client_cert: tuple[str, str] | None) -> urllib3.PoolManager:
        if urlsplit(url).scheme == "http":
            return urllib3.PoolManager(maxsize=1, retries=False)
        if not ca_file:
            raise UploadError("upload.ca: required for https (the collector's CA is pinned, not the system store)")
        # Load them once here so a wrong path fails at start, not as a TLS error every run.
        try:
            context = ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise UploadError(f"upload.ca: {ca_file}: cannot load CA certificates: {exc}") from None
        cert_file = key_file = None
        if client_cert is not None:
            cert_file, key_file = client_cert
            try:
                context.load_cert_chain(cert_file, key_file)
            except (OSError, ssl.SSLError) as exc:
                raise UploadError(
                    f"upload client certificate {cert_file} / key {key_file}: cannot load: {exc}"
                ) from None
        # ca_certs given means urllib3 loads only that file: the system store is not trusted.
        return urllib3.PoolManager(
            maxsize=1, retries=False, cert_reqs="CERT_REQUIRED",
            ca_certs=ca_file, cert_file=cert_file, key_file=key_file,
        )  # fmt: skip

    def close(self) -> None:
        """Drop pooled connections; idempotent."""
        self._pool.clear()
        self._watchdog.close()

    def __enter__(self) -> Uploader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run_once(self, now: float | None = None) -> UploadResult:
        """Send batches until nothing is unsent or one fails; a run with nothing unsent still
        sends one heartbeat-only batch. ``now`` fixes the clock (tests); by default each
        batch is dated when built. Errors of the journal itself propagate."""
        sent = batches = 0
        last: tuple[str, int] | None = None
        while True:
            records = self._journal.unsent(self._batch)
            if not records and batches:
                return self._done(sent, batches, 0, None)
            if records and last is not None and records[0].epoch == last[0] and records[0].seq <= last[1]:
                # A journal that keeps returning what it was told is sent would loop forever.
                error = f"journal still lists seq {records[0].seq} as unsent after it was marked sent"
                return self._done(sent, batches, None, error)
            at = _time.time() if now is None else now
            try:
                body = self._build(records, at)
            except (ValueError, TypeError) as exc:
                return self._done(sent, batches, None, f"cannot build batch: {exc}")
            error = self._post(body)
            if error is not None:
                return self._done(sent, batches, None, error)
            batches += 1
            if records:
                seqs = [int(r.seq) for r in records]
                self._journal.mark_sent(seqs, at)
                sent += len(seqs)
                last = (records[-1].epoch, seqs[-1])
                log.debug("collector took seq %s..%s", seqs[0], seqs[-1])
            if len(records) < self._batch:
                return self._done(sent, batches, 0, None)

    def _build(self, records: list[Any], at: float) -> bytes:
        # The journal's own epoch before any record's: a stored row's epoch may have been
        # edited, and it must not decide the batch (build_batch flags that row instead).
        epoch = self._epoch or getattr(self._journal, "epoch", None)
        if epoch is None and records:
            epoch = records[-1].epoch
        if not isinstance(epoch, str):
            raise ValueError("journal epoch unknown: pass epoch= to the Uploader")
        # Heartbeat ids carry milliseconds; keep them unique when batches follow quickly.
        hb_ms = max(int(at * 1000), self._last_hb_ms + 1)
        self._last_hb_ms = hb_ms
        return build_batch(
            records,
            gate_id=self._gate_id,
            heartbeat=self._heartbeat_data(),
            chain_head=self._journal.head(),
            gate_key=self._key,
            epoch=epoch,
            now=hb_ms / 1000,
        )

    def _heartbeat_data(self) -> dict[str, Any]:
        # A broken health probe must not hold back the access log.
        try:
            return dict(self._heartbeat())
        except Exception as exc:
            log.warning("heartbeat callback failed: %s", type(exc).__name__, exc_info=True)
            return {"heartbeat_error": type(exc).__name__}

    def _post(self, body: bytes) -> str | None:
        """None on a 2xx, else the one line that says what went wrong; the whole request,
        the answer's head included, within total_timeout_s."""
        self._watchdog.arm(self._total_s)
        try:
            error = self._request(body)
        finally:
            self._watchdog.disarm()
        if error is not None and self._watchdog.expired:
            return f"collector {self._where} did not complete the request within {self._total_s:g} s"
        return error

    def _request(self, body: bytes) -> str | None:
        try:
            response = self._pool.request(
                "POST", self._url, body=body, headers=self._headers,
                timeout=self._timeout, retries=False, redirect=False, preload_content=False,
            )  # fmt: skip
        except urllib3.exceptions.SSLError as exc:
            return f"TLS failure with the collector {self._where}: {_reason(exc)}"
        except urllib3.exceptions.NewConnectionError as exc:  # refused, unreachable, no such name
            return f"cannot connect to the collector {self._where}: {_reason(exc)}"
        except urllib3.exceptions.ConnectTimeoutError:
            return f"collector {self._where} did not accept a connection within {self._timeout_s:g} s"
        except urllib3.exceptions.ReadTimeoutError:
            return f"collector {self._where} did not answer within {self._timeout_s:g} s"
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            return f"upload to the collector {self._where} failed: {_reason(exc)}"
        status = response.status
        if 200 <= status < 300:
            try:
                response.drain_conn()  # read the (small) body so the connection can be reused
            finally:
                response.release_conn()
            return None
        # Not accepted: a short excerpt of the answer helps whoever reads the log; the rest is
        # not worth waiting for, so the connection is closed rather than drained.
        snippet = _snippet(response)
        response.close()
        return f"collector {self._where} answered {status} {response.reason or ''}".rstrip() + snippet

    def _done(self, sent: int, batches: int, remaining: int | None, error: str | None) -> UploadResult:
        if error is None:
            log.info("uploaded %s records in %s batches to %s", sent, batches, self._where)
        else:  # returned to the caller, who reports it once: not logged a second time here
            log.debug("upload stopped after %s records: %s", sent, error)
        return UploadResult(sent=sent, batches=batches, remaining=remaining, error=error)


def _check_url(url: str, allow_insecure_loopback: bool) -> str:
    """Validate the collector URL; return what logs may show of it (no query, no userinfo)."""
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        raise UploadError("upload.url: credentials belong in the token setting, not in the URL")
    if not parts.hostname:
        raise UploadError(f"upload.url {url!r}: no host")
    where = f"{parts.scheme}://{parts.netloc}{parts.path}"
    if parts.scheme == "https":
        return where
    if parts.scheme != "http":
        raise UploadError(f"upload.url {where}: only https is supported")
    if not allow_insecure_loopback:
        raise UploadError(f"upload.url {where}: plain http is refused (token and access log would travel in clear)")
    if not _is_loopback(parts.hostname):
        raise UploadError(f"upload.url {where}: plain http is allowed only to a loopback address")
    return where


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _reason(exc: BaseException) -> str:
    # urllib3 nests the cause (an ssl or socket error) in its own; the innermost says most.
    inner: BaseException = exc
    while True:
        nxt = getattr(inner, "reason", None)
        nxt = nxt if isinstance(nxt, BaseException) else inner.__cause__ or inner.__context__
        if nxt is None or nxt is inner:
            break
        inner = nxt
    text = str(inner) or type(inner).__name__
    return " ".join(text.split())[:300]


def _snippet(response: urllib3.BaseHTTPResponse) -> str:
    try:
        raw = response.read1(_MAX_ERROR_BODY)
    except Exception:
        return ""
    text = " ".join(raw.decode("utf-8", "replace").split())[:_MAX_ERROR_BODY]
    return f": {text}" if text else ""
