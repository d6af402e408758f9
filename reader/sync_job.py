"""The gate side of a sync: fetch through TUF, verify every target as GatePass says, and
hand the store one update to apply in one transaction.

TUF (offline_cache.sync) proves the files are the ones the repository published and that
nothing rolled back or froze; this module then proves what the files say: the issuer
certificates parse, each status list token is signed by one of them with the right typ,
and no list's iat goes back. Any failure fails the whole sync with one line naming the
check, and the store keeps what it had.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from offline_cache.errors import RollbackRefused, SyncError
from offline_cache.store import Store, SyncUpdate
from offline_cache.sync import fetch_targets
from reader.clock import gate_clock, system_clock_synchronised
from reader.config import Config
from reader.errors import ConfigError, TrustStoreError
from reader.gatepass.legacy import verify_legacy_token
from reader.gatepass.statuslist import TokenRejected, verify_status_token
from reader.gatepass.trust import TrustStore, anchors_from_pem

log = logging.getLogger(__name__)

TRUST_TARGET = "trust/issuers.pem"


@dataclass(frozen=True)
class SyncReport:
    ok: bool
    downloaded: list[str]
    written: list[str]
    versions: dict[str, int]
    error: str | None = None
    seconds: float = 0.0


def _trust_from(pem: bytes, label: str) -> TrustStore:
    try:
        return TrustStore(anchors_from_pem(pem, label))
    except TrustStoreError as exc:
        raise SyncError("issuer certificates", f"{label}: {exc}") from None


def verify_fetched(store: Store, fetched, now: float, skew_s: float) -> SyncUpdate:
    """Check every fetched target as the spec says; SyncError names the first that fails."""
    trust_pem = fetched.trust_pem if fetched.trust_pem is not None else store.trust_pem()
    if trust_pem is None:
        raise SyncError("issuer certificates", f"the repository has no {TRUST_TARGET} and the gate holds none")
    trust = _trust_from(trust_pem, TRUST_TARGET)
    clock = gate_clock(now, store.time_floor(), skew_s)
    trusted_now = clock.now if clock.trusted else None
    statuses: list[tuple[str, float, float | None, bytes]] = []
    seen_uris: dict[str, str] = {}
    for path, raw in sorted(fetched.status.items()):
        try:
            status_list = verify_status_token(raw, trust, now=trusted_now, skew_s=skew_s)
        except TokenRejected as exc:
            raise SyncError("status list", f"{path}: {exc}") from None
        if status_list.uri in seen_uris:
            raise SyncError("status list", f"{path} and {seen_uris[status_list.uri]} both claim {status_list.uri}")
        seen_uris[status_list.uri] = path
        # An iat older than the held list's is refused by Store.apply_sync, for the whole
        # update at once; run_sync turns that into the "status list rollback" failure.
        statuses.append((status_list.uri, status_list.iat, status_list.exp, raw))
    legacy = None
    if fetched.legacy is not None:
        try:
            legacy_list = verify_legacy_token(fetched.legacy, trust, now=trusted_now, skew_s=skew_s)
        except TokenRejected as exc:
            raise SyncError("legacy card list", f"legacy/cards.cwt: {exc}") from None
        legacy = (legacy_list.iat, legacy_list.exp, fetched.legacy)
    # Spec 6: the floor is the newest verified list iat, or now when the kernel says the
    # clock is synchronised.
    candidates = [iat for _uri, iat, _exp, _raw in statuses]
    if system_clock_synchronised():
        candidates.append(now)
    return SyncUpdate(
        trust_pem=fetched.trust_pem,
        status=statuses,
        legacy=legacy,
        tuf_versions=dict(fetched.versions),
        time_floor=max(candidates) if candidates else None,
        at=now,
    )


def run_sync(config: Config, *, now: float | None = None) -> SyncReport:
    """One sync as ``gate-reader sync`` runs it. Returns the report; on failure the report
    carries the one-line error and the store records it (its data untouched)."""
    if config.sync is None:
        raise ConfigError("sync: the config has no [sync] table")
    started = time.monotonic()
    try:
        root = Path(config.sync.root).read_bytes()
    except OSError as exc:
        raise ConfigError(f"sync.root: {config.sync.root}: {exc.strerror or exc}") from None
    store = Store.open(config.cache.path, create=True)
    try:
        try:
            fetched = fetch_targets(
                metadata_url=config.sync.metadata_url,
                targets_url=config.sync.targets_url,
                root=root,
                cache_dir=Path(config.cache.path).parent,
                timeout_s=config.sync.timeout_s,
                total_timeout_s=config.sync.total_timeout_s,
            )
            stamp = time.time() if now is None else now
            update = verify_fetched(store, fetched, stamp, config.policy.skew_s)
            try:
                result = store.apply_sync(update)
            except RollbackRefused as exc:
                raise SyncError("status list rollback", str(exc)) from None
        except SyncError as exc:
            message = f"{exc.check}: {exc}"
            store.record_sync_failure(message, time.time() if now is None else now)
            log.error("sync failed: %s", message)
            return SyncReport(False, [], [], {}, message, time.monotonic() - started)
        log.info("sync ok: downloaded %s, stored %s", fetched.downloaded or "nothing", result.written or "nothing")
        return SyncReport(True, list(fetched.downloaded), list(result.written), dict(fetched.versions), None,
                          time.monotonic() - started)
    finally:
        store.close()
