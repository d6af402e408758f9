"""The gate side of an upload: the journal to the collector, with a heartbeat, then the
unsent cap and the retention of sent records (offline_cache.upload does the HTTP)."""

from __future__ import annotations

import logging
import time
from importlib import metadata
from typing import Any

from offline_cache.gatekey import load_or_create_gate_key
from offline_cache.journal import Journal
from offline_cache.store import Store
from offline_cache.upload import Uploader, UploadResult
from reader.config import Config
from reader.errors import ConfigError
from reader.gate_state import status_report

log = logging.getLogger(__name__)


def _version() -> str:
    try:
        return metadata.version("gate-reader")
    except metadata.PackageNotFoundError:
        return "unknown"


def heartbeat(config: Config, store: Store, now: float) -> dict[str, Any]:
    """What the centre needs to see a silent or struggling gate: version, list ages,
    clock, last sync, journal backlog. Source health joins it when the daemon runs."""
    report = status_report(config, store, now)
    return {
        "version": _version(),
        "lists": [{"uri": entry["uri"], "age_s": entry["age_s"], "stale": entry["stale"]}
                  for entry in report["status_lists"]],
        "clock_trusted": report["clock_trusted"],
        "sync": report["sync"],
        "journal": report["journal"],
        "sources": {},
    }


def run_upload(config: Config, *, now: float | None = None) -> UploadResult:
    if config.upload is None:
        raise ConfigError("upload: the config has no [upload] table")
    upload = config.upload
    token = None
    if upload.token_file is not None:
        try:
            token = upload.token_file.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"upload.token_file: {upload.token_file}: {exc.strerror or exc}") from None
    gate_key = load_or_create_gate_key(config.gate.key)
    stamp = time.time() if now is None else now
    with Store.open(config.cache.path) as store:
        journal = Journal(store)
        uploader = Uploader(
            journal,
            url=upload.url,
            gate_id=config.gate.id,
            gate_key=gate_key,
            ca_file=str(upload.ca) if upload.ca else None,
            token=token,
            client_cert=(str(upload.client_cert), str(upload.client_key)) if upload.client_cert else None,
            batch=upload.batch,
            timeout_s=upload.timeout_s,
            heartbeat=lambda: heartbeat(config, store, stamp),
            allow_insecure_loopback=True,
        )
        result = uploader.run_once(stamp)
        dropped = journal.enforce_cap(upload.max_unsent, stamp)
        if dropped:
            log.warning("journal: %s unsent records dropped past max_unsent=%s (a gap record says so)",
                        dropped, upload.max_unsent)
        journal.prune_sent(stamp - upload.retention_days * 86_400)
    return result
