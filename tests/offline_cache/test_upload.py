"""The uploader against a real HTTPS collector on loopback: the batch format, "sent only on
a 2xx", resuming after an outage, TLS pinning, authentication and bounded timeouts."""

# Over ~400 lines on purpose: the uploader against one collector fixture: TLS, tokens, faults, caps.

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import logging
import math
import re
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from offline_cache.errors import UploadError
from offline_cache.journal import JournalRecord
from offline_cache.upload import RECORD_FIELDS, Uploader, UploadResult, build_batch, chain_head_message
from tests.support.collector import Collector, Pki, make_pki

GATE = "gate-7"
EPOCH = "3f9c2a7e"
RFC3339_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
HEARTBEAT = {"version": "0.1.0", "list_ages_s": {"status/1": 42.0}, "sources": {"nfc": "ok", "camera": "down"}}


class FakeJournal:
    """In memory, with the JournalLike shape and a real SHA-256 chain."""

    def __init__(self, epoch: str = EPOCH) -> None:
        self.epoch = epoch
        self.records: list[JournalRecord] = []
        self.sent: dict[int, float] = {}
        self.mark_calls = 0
        self._low = 0

    def append(self, n: int = 1, kind: str = "decision") -> None:
        for _ in range(n):
            seq = len(self.records) + 1
            prev = self.records[-1].hash if self.records else "0" * 64
            fields = (seq, self.epoch, 1_700_000_000.0 + seq / 10, "door-1", kind, "grant", "ok", f"emp-{seq}")
            digest = hashlib.sha256((prev + json.dumps(fields)).encode()).hexdigest()
            self.records.append(JournalRecord(*fields, f"h{seq:06x}", None, prev, digest, None))

    def unsent(self, limit: int) -> list[JournalRecord]:
        while self._low < len(self.records) and self.records[self._low].seq in self.sent:
            self._low += 1  # skip the sent prefix once, as an index on "unsent" would
        return list(itertools.islice((r for r in self.records[self._low :] if r.seq not in self.sent), limit))

    def mark_sent(self, seqs: list[int], at: float) -> None:
        self.mark_calls += 1
        for seq in seqs:
            self.sent[seq] = at

    def head(self) -> tuple[int, str] | None:
        return (self.records[-1].seq, self.records[-1].hash) if self.records else None

    def ids(self, seqs: range | None = None) -> list[str]:
        return [f"{GATE}:{self.epoch}:{r.seq}" for r in self.records if seqs is None or r.seq in seqs]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def gate_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def collector(pki: Pki) -> Iterator[Collector]:
    with Collector(pki) as running:
        yield running


def uploader(journal: FakeJournal, collector: Collector, key: Ed25519PrivateKey, **kw: Any) -> Uploader:
    settings: dict[str, Any] = {"ca_file": collector.pki.ca_file, "timeout_s": 5.0, "heartbeat": lambda: HEARTBEAT}
    settings.update(kw)
    return Uploader(journal, url=collector.url, gate_id=GATE, gate_key=key, **settings)


def verify_head(head: dict[str, Any], epoch: str = EPOCH) -> None:
    public = Ed25519PublicKey.from_public_bytes(base64.b64decode(head["public_key"]))
    message = f"gate-reader chain head\n{GATE}\n{epoch}\n{head['seq']}\n{head['hash']}".encode()
    assert message == chain_head_message(GATE, epoch, head["seq"], head["hash"])
    public.verify(base64.b64decode(head["signature"]), message)  # raises if it does not verify


# ---- the batch format -------------------------------------------------------------------


def test_batch_is_a_cloudevents_json_batch(gate_key: Ed25519PrivateKey) -> None:
    journal = FakeJournal()
    journal.append(3)
    journal.records[1] = replace(journal.records[1], reader=None)  # a system event has no reader: no subject
    body = build_batch(
        journal.records, gate_id=GATE, heartbeat=HEARTBEAT, chain_head=journal.head(), gate_key=gate_key, now=1.7e9
    )
    events = json.loads(body)
    assert isinstance(events, list) and len(events) == 4
    for event in events:
        assert event["specversion"] == "1.0"
        assert event["source"] == f"urn:gate-reader:{GATE}"
        assert event["datacontenttype"] == "application/json"
        assert RFC3339_Z.fullmatch(event["time"])
        assert isinstance(event["data"], dict)
    records, heartbeat = events[:3], events[3]
    assert [e["id"] for e in records] == journal.ids()
    assert [e["type"] for e in records] == ["org.gatepass.gate.decision"] * 3
    assert [e.get("subject") for e in records] == ["door-1", None, "door-1"]
    for event, record in zip(records, journal.records, strict=True):
        assert set(event) <= {"specversion", "id", "source", "type", "time", "datacontenttype", "subject", "data"}
        assert event["data"] == {name: getattr(record, name) for name in RECORD_FIELDS}
        assert datetime.fromisoformat(event["time"]).timestamp() == pytest.approx(record.time, abs=0.001)
    assert heartbeat["type"] == "org.gatepass.gate.heartbeat"
    assert heartbeat["id"] == f"{GATE}:{EPOCH}:hb:1700000000000"
    assert heartbeat["time"] == "2023-11-14T22:13:20.000Z"
    assert set(heartbeat["data"]) == {*HEARTBEAT, "chain_head"}
    head = heartbeat["data"]["chain_head"]
    assert (head["seq"], head["hash"]) == journal.head()
    assert set(head) == {"seq", "hash", "signature", "public_key"}
    verify_head(head)


def test_each_kind_has_its_type(gate_key: Ed25519PrivateKey) -> None:
    journal = FakeJournal()
    for kind in ("decision", "door", "gap", "system"):
        journal.append(kind=kind)
    events = json.loads(
        build_batch(journal.records, gate_id=GATE, heartbeat={}, chain_head=journal.head(), gate_key=gate_key)
    )
    assert [e["type"] for e in events] == [
        f"org.gatepass.gate.{k}" for k in ("decision", "door", "gap", "system", "heartbeat")
    ]


def test_no_secret_in_the_body(gate_key: Ed25519PrivateKey) -> None:
    journal = FakeJournal()
    journal.append(2)
    body = build_batch(journal.records, gate_id=GATE, heartbeat=HEARTBEAT, chain_head=journal.head(), gate_key=gate_key)
    raw = gate_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    assert base64.b64encode(raw) not in body and raw.hex().encode() not in body and b"PRIVATE" not in body
    for bad in ({"token": "x"}, {"sources": {"nfc": {"session_nonce": "ab"}}}, {"upload": [{"password": "p"}]}):
        with pytest.raises(ValueError, match="never carries secrets"):
            build_batch([], gate_id=GATE, heartbeat=bad, chain_head=None, gate_key=gate_key, epoch=EPOCH)


def test_heartbeat_only_batch(gate_key: Ed25519PrivateKey) -> None:
    with pytest.raises(ValueError, match="needs the journal epoch"):
        build_batch([], gate_id=GATE, heartbeat={}, chain_head=None, gate_key=gate_key)
    (event,) = json.loads(build_batch([], gate_id=GATE, heartbeat={}, chain_head=None, gate_key=gate_key, epoch=EPOCH))
    assert event["type"] == "org.gatepass.gate.heartbeat" and event["data"] == {"chain_head": None}


@pytest.mark.parametrize("gate_id", ["gate:7", "gate\n7", "", "-gate"])
def test_ids_cannot_be_ambiguous(gate_key: Ed25519PrivateKey, gate_id: str) -> None:
    with pytest.raises(ValueError, match="gate id"):
        build_batch([], gate_id=gate_id, heartbeat={}, chain_head=None, gate_key=gate_key, epoch=EPOCH)


def test_one_batch_one_epoch(gate_key: Ed25519PrivateKey) -> None:
    old, new = FakeJournal("aaaa"), FakeJournal("bbbb")
    old.append()
    new.append()
    with pytest.raises(ValueError, match="epoch"):
        build_batch(old.records + new.records, gate_id=GATE, heartbeat={}, chain_head=None, gate_key=gate_key)


# ---- uploading --------------------------------------------------------------------------


def test_marks_sent_only_what_the_collector_took(collector: Collector, gate_key: Ed25519PrivateKey) -> None:
    journal = FakeJournal()
    journal.append(7)
    result = uploader(journal, collector, gate_key, batch=3).run_once(now=1.7e9)
    assert result == UploadResult(sent=7, batches=3, remaining=0, error=None)
    assert set(journal.sent) == set(range(1, 8)) and set(journal.sent.values()) == {1.7e9}
    assert collector.record_ids() == journal.ids() and collector.duplicates == 0
    assert [len(b) for b in collector.batches] == [4, 4, 2]  # records + one heartbeat each
    assert len({h["id"] for h in collector.heartbeats()}) == 3  # same clock, still distinct ids
    assert all(r.headers["content-type"] == "application/cloudevents-batch+json" for r in collector.requests)
    for heartbeat in collector.heartbeats():
        verify_head(heartbeat["data"]["chain_head"])


@pytest.mark.parametrize("status", [500, 503])
def test_error_answer_leaves_all_unsent_then_recovers(
    collector: Collector, gate_key: Ed25519PrivateKey, status: int
) -> None:
    journal = FakeJournal()
    journal.append(5)
    up = uploader(journal, collector, gate_key, batch=2)
    collector.fail_status = status
    result = up.run_once()
    assert (result.sent, result.batches, result.remaining) == (0, 0, None)
    assert result.error is not None and f"answered {status}" in result.error and "\n" not in result.error
    assert journal.sent == {} and journal.mark_calls == 0
    collector.fail_status = None
    assert up.run_once() == UploadResult(sent=5, batches=3, remaining=0, error=None)
    assert collector.record_ids() == journal.ids() and collector.duplicates == 0


def test_failure_mid_run_keeps_what_was_acknowledged(collector: Collector, gate_key: Ed25519PrivateKey) -> None:
    journal = FakeJournal()
    journal.append(10)
    up = uploader(journal, collector, gate_key, batch=3)
    collector.fail_status, collector.fail_after = 503, 2
    result = up.run_once()
    assert (result.sent, result.batches, result.remaining) == (6, 2, None) and "503" in (result.error or "")
    assert set(journal.sent) == set(range(1, 7))
    collector.fail_status = None
    assert up.run_once().sent == 4
    assert collector.record_ids() == journal.ids() and collector.duplicates == 0


def test_lost_answer_resend_is_idempotent(collector: Collector, gate_key: Ed25519PrivateKey) -> None:
    journal = FakeJournal()
    journal.append(4)
    up = uploader(journal, collector, gate_key)
    collector.lose_answer = True  # stored, but the gate hears a 500
    assert up.run_once().error is not None and journal.sent == {}
    collector.lose_answer = False
    assert up.run_once().sent == 4
    assert collector.record_ids() == journal.ids()  # each event once, by id
    assert collector.duplicates == 4


def test_collector_down(collector: Collector, gate_key: Ed25519PrivateKey) -> None:
    journal = FakeJournal()
    journal.append(3)
    collector.stop()
    result = uploader(journal, collector, gate_key).run_once()
    assert result.sent == 0 and result.remaining is None
    assert result.error is not None and result.error.startswith("cannot connect to the collector")
    assert journal.sent == {}


def test_collector_down_for_days(collector: Collector, gate_key: Ed25519PrivateKey) -> None:
    journal = FakeJournal()
    up = uploader(journal, collector, gate_key, batch=500)
    assert up.run_once().error is None  # first contact, then the collector goes away
    collector.stop()
    for _ in range(5):  # the timer keeps trying while events pile up
        journal.append(1000)
        assert up.run_once().error is not None
    assert journal.sent == {} and len(journal.records) == 5000
    collector.start()
    result = up.run_once()
    assert result == UploadResult(sent=5000, batches=math.ceil(5000 / 500), remaining=0, error=None)
    assert collector.record_ids() == journal.ids()  # all, exactly once, oldest first
    assert collector.duplicates == 0 and len(collector.batches) == 1 + 10
    assert set(journal.sent) == set(range(1, 5001))


def test_wrong_ca_is_a_tls_error(pki: Pki, gate_key: Ed25519PrivateKey) -> None:
    journal = FakeJournal()
    journal.append(2)
    with Collector(pki, rogue=True) as rogue:  # right names, certificate from another CA
        result = uploader(journal, rogue, gate_key).run_once()
    assert result.error is not None and result.error.startswith("TLS failure")
    assert "certificate verify failed" in result.error
    assert journal.sent == {} and rogue.requests == []


def test_token_authentication(
    collector: Collector, gate_key: Ed25519PrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "tok-7f3a9c1d2e"
    collector.token = secret
    journal = FakeJournal()
    journal.append(3)
    caplog.set_level(logging.DEBUG)
    for token in (None, "tok-wrong"):
        result = uploader(journal, collector, gate_key, token=token).run_once()
        assert result.error is not None and "answered 401" in result.error
        assert journal.sent == {}
    assert uploader(journal, collector, gate_key, token=secret).run_once().sent == 3
    assert collector.requests[-1].headers["authorization"] == f"Bearer {secret}"
    assert all(secret.encode() not in r.body for r in collector.requests)
    assert secret not in caplog.text


def test_client_certificate_authentication(collector: Collector, gate_key: Ed25519PrivateKey, pki: Pki) -> None:
    collector.require_client_cert = True
    journal = FakeJournal()
    journal.append(3)
    result = uploader(journal, collector, gate_key).run_once()
    assert result.error is not None and "answered 403" in result.error and journal.sent == {}
    stranger = uploader(journal, collector, gate_key, client_cert=(pki.stranger_cert, pki.stranger_key)).run_once()
    assert stranger.error is not None and journal.sent == {}  # the collector tears the handshake down
    assert uploader(journal, collector, gate_key, client_cert=(pki.client_cert, pki.client_key)).run_once().sent == 3
    key_pem = Path(pki.client_key).read_bytes()
    assert all(key_pem not in r.body for r in collector.requests)


def test_slow_collector_is_bounded_by_the_timeout(collector: Collector, gate_key: Ed25519PrivateKey) -> None:
    collector.delay_s = 5.0
    journal = FakeJournal()
    journal.append(2)
    started = time.monotonic()
    result = uploader(journal, collector, gate_key, timeout_s=0.3).run_once()
    elapsed = time.monotonic() - started
    assert result.error is not None and "did not answer within 0.3 s" in result.error
    assert journal.sent == {}
    assert elapsed < 3.0  # a bound, not a benchmark: without the timeout this is 5 s


def test_trickled_answer_hits_the_total_timeout(collector: Collector, gate_key: Ed25519PrivateKey) -> None:
    # A byte of the answer's head every 0.1 s never trips the 0.5 s socket timeout; the
    # whole request ends at total_timeout_s, nothing is marked sent, and the next run works.
    collector.trickle_s = 0.1
    journal = FakeJournal()
    journal.append(2)
    up = uploader(journal, collector, gate_key, timeout_s=0.5, total_timeout_s=1.0)
    started = time.monotonic()
    result = up.run_once()
    elapsed = time.monotonic() - started
    assert result.error is not None and "did not complete the request within 1 s" in result.error
    assert journal.sent == {} and 0.9 < elapsed < 2.0, elapsed
    collector.trickle_s = 0.0
    assert up.run_once().sent == 2 and up.run_once().error is None  # the pool recovers, then keeps alive


def test_heartbeat_only_when_nothing_is_unsent(collector: Collector, gate_key: Ed25519PrivateKey) -> None:
    journal = FakeJournal()
    up = uploader(journal, collector, gate_key, epoch=EPOCH)
    assert up.run_once() == UploadResult(sent=0, batches=1, remaining=0, error=None)
    (first,) = collector.heartbeats()
    assert first["data"]["chain_head"] is None and first["data"]["version"] == "0.1.0"
    journal.append(2)
    assert up.run_once().sent == 2
    assert up.run_once() == UploadResult(sent=0, batches=1, remaining=0, error=None)
    assert len(collector.batches) == 3 and len(collector.batches[-1]) == 1
    last = collector.batches[-1][0]["data"]["chain_head"]
    assert (last["seq"], last["hash"]) == journal.head()
    verify_head(last)


def test_heartbeat_needs_the_epoch(collector: Collector, gate_key: Ed25519PrivateKey) -> None:
    class NoEpoch:  # only the JournalLike methods, and nothing unsent
        def __init__(self) -> None:
            self.inner = FakeJournal()
            self.unsent, self.mark_sent, self.head = self.inner.unsent, self.inner.mark_sent, self.inner.head

    result = uploader(NoEpoch(), collector, gate_key).run_once()  # type: ignore[arg-type]
    assert result.error is not None and "pass epoch= to the Uploader" in result.error
    assert collector.requests == []
    assert uploader(NoEpoch(), collector, gate_key, epoch=EPOCH).run_once().error is None  # type: ignore[arg-type]


def test_a_failing_heartbeat_probe_does_not_hold_the_log_back(
    collector: Collector, gate_key: Ed25519PrivateKey
) -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("camera probe crashed")

    journal = FakeJournal()
    journal.append(2)
    assert uploader(journal, collector, gate_key, heartbeat=broken).run_once().sent == 2
    assert collector.heartbeats()[0]["data"]["heartbeat_error"] == "RuntimeError"


def test_plain_http_only_to_loopback_when_asked(pki: Pki, gate_key: Ed25519PrivateKey) -> None:
    journal = FakeJournal()
    journal.append(1)
    kw: dict[str, Any] = {"gate_id": GATE, "gate_key": gate_key, "ca_file": None, "heartbeat": dict}
    with pytest.raises(UploadError, match="plain http is refused"):
        Uploader(journal, url="http://127.0.0.1:9/events", **kw)
    with pytest.raises(UploadError, match="only to a loopback address"):
        Uploader(journal, url="http://collector.example/events", allow_insecure_loopback=True, **kw)
    with Collector(pki, tls=False) as plain:
        assert Uploader(journal, url=plain.url, allow_insecure_loopback=True, **kw).run_once().sent == 1


def test_configuration_mistakes_raise(pki: Pki, gate_key: Ed25519PrivateKey, tmp_path: Path) -> None:
    journal = FakeJournal()
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    base: dict[str, Any] = {"url": "https://127.0.0.1:9/e", "gate_id": GATE, "gate_key": gate_key, "heartbeat": dict}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"ca_file": None}, "upload.ca: required"),
        ({"ca_file": str(tmp_path / "missing.pem")}, "missing.pem: cannot load"),
        ({"ca_file": str(garbage)}, "garbage.pem: cannot load"),
        ({"ca_file": pki.ca_file, "client_cert": (pki.client_cert, str(tmp_path / "nokey"))}, "client certificate"),
        ({"ca_file": pki.ca_file, "url": "https://u:p@127.0.0.1/e"}, "not in the URL"),
        ({"ca_file": pki.ca_file, "url": "ftp://127.0.0.1/e"}, "only https"),
        ({"ca_file": pki.ca_file, "gate_id": "a:b"}, "gate id"),
        ({"ca_file": pki.ca_file, "token": "two words"}, "token"),
        ({"ca_file": pki.ca_file, "token": "x\r\nX-Evil: 1"}, "token"),
        ({"ca_file": pki.ca_file, "token": "tök"}, "token"),
        ({"ca_file": pki.ca_file, "batch": 0}, "upload.batch"),
    ]
    for change, message in cases:
        with pytest.raises(UploadError, match=re.escape(message)):
            Uploader(journal, **{**base, **change})
