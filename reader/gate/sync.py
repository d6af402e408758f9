"""The gate side of a sync: fetch through TUF, verify every target as GatePass says, and
hand the store one update to apply in one transaction.

TUF (offline_cache.sync) proves the files are the ones the repository published and that
nothing rolled back or froze; this module then proves what the files say: the issuer
certificates parse, each status list token is signed by one of them with the right typ,
and no list's iat goes back.

Two kinds of failure, kept apart (issue 8, item 2):

* the repository itself fails (TUF metadata, the network, no usable issuer certificates
  at all): the whole sync fails with one line naming the check, and the store keeps what
  it had;
* one target fails its GatePass check (a list signed by a stranger, an iat an hour ahead,
  an older iat than the list held; a broken issuer bundle while the gate holds one): spec
  3 says such a token is ignored as if absent. The sync applies every target that passes,
  so a good revocation published beside a bad list still reaches the gate, and names each
  ignored one with why (in its report, and in the store for ``gate-reader status``, which
  lists them as problems).

The centre's policy for the gate's group (``policy/<group>.toml``) follows the same rules,
with one more: TUF's signed targets.json makes its absence authenticated, so a successful
sync that does not find it listed (or a gate with no group) drops the one held (issue 10).
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from offline_cache.errors import RollbackRefused, SyncError
from offline_cache.store import CENTRAL_POLICY_KEY, PolicyWithdrawn, Store, StoredToken, SyncUpdate, policy_target
from offline_cache.sync import LEGACY_TARGET, TRUST_TARGET, FetchedTargets, fetch_targets
from reader.errors import ConfigError
from reader.gate.cache import open_cache
from reader.gate.clock import gate_clock, system_clock_synchronised
from reader.gate.config import Config
from reader.gate.policy import SitePolicy, merge, parse_policy_toml, unmatched_readers
from reader.gatepass.errors import TrustStoreError
from reader.gatepass.files import read_limited
from reader.gatepass.legacy import verify_legacy_token
from reader.gatepass.statuslist import StatusList, TokenRejected, verify_status_token
from reader.gatepass.trust import TrustStore, anchors_from_pem

log = logging.getLogger(__name__)

MAX_ROOT_BYTES = 1 << 20  # a TUF root.json is a few KB: refuse to slurp a wrong big file


@dataclass(frozen=True)
class SyncReport:
    ok: bool
    downloaded: list[str]
    written: list[str]
    versions: dict[str, int]
    error: str | None = None
    seconds: float = 0.0
    ignored: list[tuple[str, str]] = field(default_factory=list)  # (target, why), as spec 3 ignores them
    withdrawn: str | None = None  # the central policy target this sync dropped (the centre withdrew it)


def _trust_from(pem: bytes, label: str) -> TrustStore:
    try:
        return TrustStore(anchors_from_pem(pem, label))
    except TrustStoreError as exc:
        raise SyncError("issuer certificates", str(exc)) from None  # the message names ``label``


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _against_held(iat: float, raw: bytes, held: StoredToken | None) -> str | None:
    """Why a verified token is not applied over the one held (None: it may be applied).
    Spec 3: never go back to a smaller iat; on an equal iat keep the one held."""
    if held is None or held.sha256 == _sha256(raw):
        return None
    if iat < held.iat:
        return f"iat {iat:g} is older than the held list's {held.iat:g} (a list never goes back)"
    if iat == held.iat:
        # Worth naming: an issuer that re-signs a list without moving its iat (a revocation
        # added, say) would otherwise see it never reach the gate, and never know why.
        return f"same iat {iat:g} as the held list but other content: the held one is kept"
    return None


def _central_policy(store: Store, fetched: FetchedTargets, target: str | None, site: SitePolicy | None,
                    ignored: list[tuple[str, str]]) -> tuple[str, bytes] | PolicyWithdrawn | None:
    """What this sync does to the held central policy: the centre's policy for the gate's
    group, when fetched and good (it parses, bounded and strict, and lays over the local
    policy as a whole); PolicyWithdrawn when the centre publishes none for the group (the
    verified targets.json does not list it, so the absence is signed) or the gate has no
    group; None (keep) when the one published is bad: it is ignored and named as a bad list
    is, and a bad publish does not strip the gate's rules. A held policy of another group
    (``[gate] group`` changed) is never kept: it could not apply."""
    if target is None:
        return PolicyWithdrawn("[gate] names no group")
    if fetched.policy is None:  # fetch_targets asked for it: not in the verified targets.json
        return PolicyWithdrawn(f"{target} is not in the repository's signed targets")
    try:
        tables = parse_policy_toml(fetched.policy, where=f"central {target}")
        if site is not None:
            merge(site, tables)
            unknown = unmatched_readers(site, tables)
            if unknown:
                log.info("central %s names readers this gate does not have: %s", target, ", ".join(unknown))
    except ValueError as exc:
        ignored.append((target, str(exc)))
        held = store.get_json(CENTRAL_POLICY_KEY)
        if held is None or (isinstance(held, dict) and held.get("target") == target):
            return None
        return PolicyWithdrawn(f"it is not the gate group's, whose {target} is ignored")
    return target, fetched.policy


def verify_fetched(store: Store, fetched: FetchedTargets, now: float, skew_s: float, *,
                   policy: str | None = None, site: SitePolicy | None = None) -> SyncUpdate:
    """Check every fetched target as the spec says. SyncError when the issuer certificates
    cannot be had (nothing can be checked then); a target that fails is left out and
    named in ``SyncUpdate.ignored``. ``policy`` is the gate group's policy target, checked
    against the local ``site`` policy; None means the gate has no group, and a policy held
    is dropped (as it is when the repository does not publish ``policy``)."""
    ignored: list[tuple[str, str]] = []
    held_pem = store.trust_pem()
    new_pem = fetched.trust_pem
    trust = None
    if new_pem is not None:
        try:
            trust = _trust_from(new_pem, TRUST_TARGET)
        except SyncError as exc:
            if held_pem is None:
                raise
            # A broken bundle is a target like the lists: ignored as if absent, the held
            # certificates still check the lists (a revocation must not wait for it).
            ignored.append((TRUST_TARGET, f"{exc}; the held issuer certificates are kept"))
            new_pem = None
    if trust is None:
        if held_pem is None:
            raise SyncError("issuer certificates", f"the repository has no {TRUST_TARGET} and the gate holds none")
        trust = _trust_from(held_pem, f"{store.path} (trust)")
    # A damaged floor (edited, a bad disk) is no floor to trust a clock by: this sync verifies
    # without the clock, and the floor it writes replaces the damaged one (the recovery).
    clock = gate_clock(now, store.time_floor(damaged=math.inf), skew_s)
    trusted_now = clock.now if clock.trusted else None
    chosen: dict[str, tuple[str, StatusList]] = {}  # uri -> (target, list): per uri the largest iat
    for path, raw in sorted(fetched.status.items()):
        try:
            status_list = verify_status_token(raw, trust, now=trusted_now, skew_s=skew_s)
        except TokenRejected as exc:
            ignored.append((path, str(exc)))
            continue
        other = chosen.get(status_list.uri)
        if other is None or status_list.iat > other[1].iat:
            chosen[status_list.uri] = (path, status_list)
        if other is not None:  # two targets for one uri: the newer is used, the other named
            loser, winner = (other[0], path) if chosen[status_list.uri][0] == path else (path, other[0])
            ignored.append((loser, f"{status_list.uri} is also in {winner}, which is used (larger or equal iat)"))
    held = {token.uri: token for token in store.status_tokens()}
    statuses: list[tuple[str, float, float | None, bytes]] = []
    for uri, (path, status_list) in sorted(chosen.items()):
        why = _against_held(status_list.iat, status_list.raw, held.get(uri))
        if why is not None:
            ignored.append((path, why))
            continue
        statuses.append((uri, status_list.iat, status_list.exp, status_list.raw))
    legacy = None
    if fetched.legacy is not None:
        try:
            legacy_list = verify_legacy_token(fetched.legacy, trust, now=trusted_now, skew_s=skew_s)
        except TokenRejected as exc:
            ignored.append((LEGACY_TARGET, str(exc)))
        else:
            why = _against_held(legacy_list.iat, fetched.legacy, store.legacy_token())
            if why is None:
                legacy = (legacy_list.iat, legacy_list.exp, fetched.legacy)
            else:
                ignored.append((LEGACY_TARGET, why))
    central = _central_policy(store, fetched, policy, site, ignored)
    # Spec 6: the floor is the newest verified list iat, or now when the kernel says the
    # clock is synchronised. Ignored lists do not count: they were not accepted.
    candidates = [iat for _uri, iat, _exp, _raw in statuses]
    if system_clock_synchronised():
        candidates.append(now)
    return SyncUpdate(
        trust_pem=new_pem,
        status=statuses,
        legacy=legacy,
        tuf_versions=dict(fetched.versions),
        time_floor=max(candidates) if candidates else None,
        at=now,
        ignored=sorted(ignored),
        policy=central,
    )


def run_sync(config: Config, *, now: float | None = None) -> SyncReport:
    """One sync as ``gate-reader sync`` runs it. Returns the report; on failure the report
    carries the one-line error and the store records it (its data untouched). Nothing is
    logged at error level for a failure returned here: the caller reports it, once."""
    if config.sync is None:
        raise ConfigError("sync: the config has no [sync] table")
    started = time.monotonic()
    target = None if config.gate.group is None else policy_target(config.gate.group)
    root = read_limited(config.sync.root, MAX_ROOT_BYTES, f"sync.root: {config.sync.root}", ConfigError)
    store = open_cache(config, create=True)  # the sync owns the cache: it may create it, or move a corrupt one aside
    try:
        try:
            fetched = fetch_targets(
                metadata_url=config.sync.metadata_url,
                targets_url=config.sync.targets_url,
                root=root,
                cache_dir=Path(config.cache.path).parent,
                timeout_s=config.sync.timeout_s,
                total_timeout_s=config.sync.total_timeout_s,
                policy=target,
            )
            stamp = time.time() if now is None else now
            update = verify_fetched(store, fetched, stamp, config.policy.skew_s, policy=target, site=config.site)
            try:
                result = store.apply_sync(update)
            except RollbackRefused as exc:
                # Only when another writer stored a newer list between the check above and
                # this transaction (two syncs at once): the next sync sorts it out.
                raise SyncError("status list rollback", str(exc)) from None
        except SyncError as exc:
            message = f"{exc.check}: {exc}"
            store.record_sync_failure(message, time.time() if now is None else now)
            log.debug("sync failed: %s", message)
            return SyncReport(False, [], [], {}, message, time.monotonic() - started)
        log.info("sync ok: downloaded %s, stored %s, ignored %s", fetched.downloaded or "nothing",
                 result.written or "nothing", [target for target, _why in update.ignored] or "nothing")  # fmt: skip
        return SyncReport(True, list(fetched.downloaded), list(result.written), dict(fetched.versions), None,
                          time.monotonic() - started, list(update.ignored), result.policy_withdrawn)  # fmt: skip
    finally:
        store.close()
