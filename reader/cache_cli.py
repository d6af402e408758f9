"""``gate-reader sync``, ``upload``, ``events`` and ``status``: the offline cache from the
command line, for the systemd timer and for the technician."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from offline_cache.errors import CacheError
from reader.config import Config, load_config
from reader.errors import ConfigError, GateReaderError

if TYPE_CHECKING:
    from offline_cache.store import Store

_CONFIG_HELP = "the gate's TOML configuration (see config/gate-reader.example.toml)"


def add_parser(commands: Any) -> None:
    p = commands.add_parser(
        "sync", help="fetch signed revocation lists through TUF into the offline cache",
        description="One sync: refresh the TUF metadata from [sync] metadata_url (root pinned at install), "
        "download the targets that changed, verify every issuer certificate and list as GatePass says "
        "(signature, typ, iat never going back) and store those that pass in one transaction; a list that "
        "fails is ignored as if absent and named in a warning (and in 'status'). Then, if [upload] is "
        "configured, upload the event journal (its failure is a warning, not the sync's exit status). Exit 0 "
        "on success; when the repository itself fails, exit 1 with one line naming the failed check, the "
        "cache keeping its previous data; 2 for a configuration error.",
    )
    p.add_argument("--config", required=True, metavar="FILE", help=_CONFIG_HELP)
    p.add_argument("--no-upload", action="store_true", help="skip the journal upload after the sync")
    p.set_defaults(func=run_sync_command)

    p = commands.add_parser(
        "upload", help="send the event journal to the collector",
        description="Upload unsent journal records as CloudEvents batches to [upload] url over HTTPS (the "
        "collector's CA pinned), with a heartbeat and the chain head signed by the gate key; mark records "
        "sent only on a 2xx answer; then apply the unsent cap (gap records) and the retention of sent "
        "records. Exit 0 when everything was sent, 1 on failure (records stay unsent).",
    )
    p.add_argument("--config", required=True, metavar="FILE", help=_CONFIG_HELP)
    p.set_defaults(func=run_upload_command)

    p = commands.add_parser(
        "gate-key", help="make the gate's Ed25519 key (at install) and print its public key",
        description="Create [gate] key (Ed25519, mode 0600) if it does not exist yet, and print its public key "
        "as PEM: the centre registers it to check the journal chain heads this gate signs in its uploads. "
        "An existing key is never replaced; a key file readable by others is refused.",
    )
    p.add_argument("--config", required=True, metavar="FILE", help=_CONFIG_HELP)
    p.set_defaults(func=run_gate_key_command)

    p = commands.add_parser(
        "events", help="print the event journal",
        description="Print journal records in order: sequence, time, reader, kind, decision, reason, subject, "
        "credential hash, and whether the hash chain checks out at that record.",
    )
    p.add_argument("--config", required=True, metavar="FILE", help=_CONFIG_HELP)
    p.add_argument("--since", type=int, metavar="SEQ", help="only records after this sequence number")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=run_events_command)

    p = commands.add_parser(
        "status", help="what the gate's cache holds and how fresh it is",
        description="Show the status lists (uri, iat, entries, staleness), the legacy list, the trust anchors, "
        "the time floor and whether the clock is trusted, the last sync, its error and the targets it "
        "ignored, the last upload, and the journal counts (total, unsent, gaps); then the problems: a failing "
        "sync, stale or ignored lists, an upload backlog or a failing upload, an untrusted clock. Reads the "
        "cache without changing it. Exit 0 with no problem, 1 with any, 2 for a configuration or cache error.",
    )
    p.add_argument("--config", required=True, metavar="FILE", help=_CONFIG_HELP)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_status_command)


def _fail(command: str, message: str, code: int = 2) -> int:
    print(f"gate-reader {command}: error: {message}", file=sys.stderr)
    return code


def _warn(command: str, message: str) -> None:
    print(f"gate-reader {command}: warning: {message}", file=sys.stderr)


def _config(args: argparse.Namespace) -> Config:
    return load_config(args.config)


def run_sync_command(args: argparse.Namespace) -> int:
    """Exit status: the sync's alone (0 done, 1 the repository failed, 2 configuration).
    The upload that follows reports its failure as a warning and in ``status``: a sync
    unit shown failed while the lists are current would send someone after the wrong
    thing (issue 8, item 14)."""
    from reader.sync_job import run_sync

    try:
        config = _config(args)
        report = run_sync(config)
    except (ConfigError, CacheError, GateReaderError) as exc:
        return _fail("sync", str(exc))
    if not report.ok:
        return _fail("sync", report.error or "failed", 1)
    print(f"sync ok in {report.seconds:.2f} s: downloaded {', '.join(report.downloaded) or 'nothing'}; "
          f"stored {', '.join(report.written) or 'nothing new'}"
          + (f"; ignored {len(report.ignored)}" if report.ignored else ""))
    for target, why in report.ignored:
        _warn("sync", f"ignored {target} (as if absent): {why}")
    if config.upload is not None and not args.no_upload:
        message = _upload(config)
        if message is not None:
            _warn("sync", f"upload failed: {message}")
    return 0


def _upload(config: Config) -> str | None:
    """Run the upload; None when it went through, else its one-line failure."""
    from reader.upload_job import run_upload

    try:
        result = run_upload(config)
    except (ConfigError, CacheError, GateReaderError) as exc:
        return str(exc)
    if result.error:
        return f"{result.error} ({result.sent} sent before it)"
    print(f"upload ok: {result.sent} records in {result.batches} batches")
    return None


def run_upload_command(args: argparse.Namespace) -> int:
    from reader.upload_job import run_upload

    try:
        result = run_upload(_config(args))
    except (ConfigError, CacheError, GateReaderError) as exc:
        return _fail("upload", str(exc))
    if result.error:
        return _fail("upload", f"{result.error} ({result.sent} sent before it)", 1)
    print(f"upload ok: {result.sent} records in {result.batches} batches")
    return 0


def run_gate_key_command(args: argparse.Namespace) -> int:
    from offline_cache.gatekey import public_key_pem
    from reader.upload_job import gate_key

    try:
        config = _config(args)
        key = gate_key(config)
    except (ConfigError, CacheError) as exc:
        return _fail("gate-key", str(exc))
    print(f"gate {config.gate.id}: key {config.gate.key}")
    sys.stdout.write(public_key_pem(key).decode())
    return 0


def run_events_command(args: argparse.Namespace) -> int:
    from offline_cache.journal import Journal
    from reader.gate_state import iso_time

    try:
        config = _config(args)
        with _read_cache(config) as store:
            rows = Journal(store).records(since=args.since)
    except (ConfigError, CacheError) as exc:
        return _fail("events", str(exc))
    for record, chain_ok in rows:
        fields = {
            "seq": record.seq, "time": iso_time(record.time), "reader": record.reader, "kind": record.kind,
            "decision": record.decision, "reason": record.reason, "subject": record.subject,
            "credential_hash": record.credential_hash, "detail": record.detail, "chain_ok": chain_ok,
        }
        if args.json:
            # default=: an edited row can hold a BLOB where text belongs; show it, do not crash.
            print(json.dumps(fields, default=lambda value: repr(value)[:200]))
        else:
            print(" ".join("-" if value is None else str(value) for key, value in fields.items() if key != "detail")
                  + (f"  ({record.detail})" if record.detail else ""))
    return 0


def _read_cache(config: Config) -> Store:
    """The cache read-only (a diagnostic never changes it). Without a usable database
    there is nothing to show, start_empty or not: the error names the file."""
    from offline_cache.store import Store
    from reader.gate_state import cache_file

    return Store.open(cache_file(config), readonly=True)


def run_status_command(args: argparse.Namespace) -> int:
    """Exit status: 0 when nothing needs attention, 1 when ``problems`` lists anything (so
    monitoring sees a failing gate), 2 when the config or the cache cannot be read."""
    from reader.gate_state import status_report

    try:
        config = _config(args)
        with _read_cache(config) as store:
            report = status_report(config, store)
    except (ConfigError, CacheError) as exc:
        return _fail("status", str(exc))
    code = 1 if report["problems"] else 0
    if args.json:
        print(json.dumps(report))
        return code
    print(f"gate {report['gate']}  cache {report['cache']}")
    print(f"clock: {'trusted' if report['clock_trusted'] else 'UNTRUSTED'} (time floor {report['time_floor']})")
    sync = report["sync"]
    print(f"last sync: attempt {sync.get('last_attempt')}, success {sync.get('last_success')}"
          + (f", error: {sync['last_error']}" if sync.get("last_error") else ""))
    for entry in report["status_lists"]:
        print(f"list {entry['uri']}: iat {entry['iat']} ({entry['age_s']} s old), {entry['entries']} entries"
              + (" STALE" if entry["stale"] else ""))
    if report["legacy_list"]:
        legacy = report["legacy_list"]
        print(f"legacy list: iat {legacy['iat']}, {legacy['cards']} cards" + (" STALE" if legacy["stale"] else ""))
    for anchor in report["trust_anchors"]:
        print(f"trust: kid {anchor['kid']} {anchor['subject'] or ''}".rstrip())
    journal = report["journal"]
    print("journal: " + ", ".join(f"{key} {value}" for key, value in journal.items()))
    upload = report["upload"]
    if upload["configured"]:
        print(f"last upload: attempt {upload['last_attempt']}, success {upload['last_success']}"
              + (f", oldest unsent {upload['oldest_unsent']}" if upload["oldest_unsent"] else ""))
    for problem in report["problems"]:
        print(f"problem: {problem}")
    return code
