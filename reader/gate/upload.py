"""The gate side of an upload: the journal to the collector, with a heartbeat, then the
unsent cap and the retention of sent records (offline_cache.upload does the HTTP).

Every attempt is recorded in the store (time, and the one-line error or none), so that
``gate-reader status`` shows a failing upload whoever ran it: the upload command, or the
sync that runs it after a successful sync and does not let its failure change the sync's
exit status (issue 8, item 14).
"""

from __future__ import annotations

import time
from importlib import metadata
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from offline_cache.errors import CacheError, UploadError
from offline_cache.gatekey import load_or_create_gate_key
from offline_cache.journal import Journal
from offline_cache.store import Store
from offline_cache.upload import Uploader, UploadResult
from reader.errors import ConfigError
from reader.gate.cache import cache_file
from reader.gate.config import Config
from reader.gate.report import status_report
from reader.gatepass.files import read_limited

MAX_TOKEN_BYTES = 64 << 10  # a bearer token is a line; a JWT a few KB
MAX_PEM_BYTES = 1 << 20


def _version() -> str:
    try:
        return metadata.version("gate-reader")
    except metadata.PackageNotFoundError:
        return "unknown"


def heartbeat(config: Config, store: Store, now: float) -> dict[str, Any]:
    """What the centre needs to see a silent or struggling gate: version, list ages,
    clock, last sync, journal backlog, the problems ``status`` lists, and the running
    daemon's sources and door as it last stored them (with their age: stale when the
    daemon stopped writing)."""
    report = status_report(config, store, now)
    return {
        "version": _version(),
        "lists": [{"uri": entry["uri"], "age_s": entry["age_s"], "stale": entry["stale"]}
                  for entry in report["status_lists"]],
        "clock_trusted": report["clock_trusted"],
        "sync": report["sync"],
        "journal": report["journal"],
        "problems": report["problems"],
        "sources": (report["daemon"] or {}).get("sources", {}),
        "daemon": _daemon_summary(report["daemon"]),
    }


def _daemon_summary(daemon: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the centre needs of the daemon's health: its age, door, lockdown, counts."""
    if daemon is None:
        return None
    keys = ("at", "age_s", "stale", "door", "lockdown", "decisions", "policy_origin", "pid")
    return {key: daemon.get(key) for key in keys}


def gate_key(config: Config) -> Ed25519PrivateKey:
    """The gate's key ([gate] key), made at first use. Any failure (a directory that
    cannot be written, a file others may read, not a key) names the key."""
    try:
        return load_or_create_gate_key(config.gate.key)
    except CacheError as exc:
        raise ConfigError(f"gate.key: {exc}") from None


def _readable(path: Path | None, key: str, limit: int = MAX_PEM_BYTES) -> bytes | None:
    """A file [upload] names, read once (bounded) so that a missing or unreadable one,
    or a directory, is a configuration error naming its key, not a TLS error later."""
    return None if path is None else read_limited(path, limit, f"{key}: {path}", ConfigError)


def _uploader(config: Config, store: Store, journal: Journal, stamp: float) -> Uploader:
    upload = config.upload
    assert upload is not None
    raw_token = _readable(upload.token_file, "upload.token_file", MAX_TOKEN_BYTES)
    try:
        token = None if raw_token is None else raw_token.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"upload.token_file: {upload.token_file}: not UTF-8") from None
    for path, key in ((upload.ca, "upload.ca"), (upload.client_cert, "upload.client_cert"),
                      (upload.client_key, "upload.client_key")):  # fmt: skip
        _readable(path, key)
    key = gate_key(config)
    try:
        return Uploader(
            journal,
            url=upload.url,
            gate_id=config.gate.id,
            gate_key=key,
            ca_file=str(upload.ca) if upload.ca else None,
            token=token,
            client_cert=(str(upload.client_cert), str(upload.client_key)) if upload.client_cert else None,
            batch=upload.batch,
            timeout_s=upload.timeout_s,
            total_timeout_s=upload.total_timeout_s,
            heartbeat=lambda: heartbeat(config, store, stamp),
            allow_insecure_loopback=True,
        )
    except UploadError as exc:  # raised only for settings no retry can fix
        raise ConfigError(str(exc)) from None


def run_upload(config: Config, *, now: float | None = None) -> UploadResult:
    """One upload run. Returns the result (``error`` set when the collector did not take
    everything); raises ConfigError for a setting that no retry can fix. Either way the
    attempt is recorded for ``status``. Nothing is logged for a failure: the caller
    reports it, once."""
    if config.upload is None:
        raise ConfigError("upload: the config has no [upload] table")
    upload = config.upload
    stamp = time.time() if now is None else now
    with Store.open(cache_file(config)) as store:
        journal = Journal(store)
        try:
            uploader = _uploader(config, store, journal, stamp)
        except ConfigError as exc:
            store.record_upload(stamp, str(exc))
            raise
        with uploader:
            result = uploader.run_once(stamp)
        store.record_upload(stamp, result.error)
        # The cap and the retention run whatever the upload did: a collector down for days
        # must not let the journal grow past max_unsent (enforce_cap logs what it drops).
        journal.enforce_cap(upload.max_unsent, stamp)
        journal.prune_sent(stamp - upload.retention_days * 86_400)
    return result
