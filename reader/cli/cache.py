"""``gate-reader sync``, ``upload``, ``gate-key``, ``events`` and ``status``: the offline cache
from the command line, for the systemd timer and for the technician. The work is done by
the services of ``reader.gate``; here are the options, the printing and the exit status
(errors reach the user through reader.cli: a configuration or cache error is exit 2)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time

from offline_cache.errors import CacheError
from reader.cli.logs import command_logger
from reader.errors import CommandFailed, ConfigError
from reader.gate.config import Config, load_config

EXIT_USAGE = 2  # as reader.cli's (importing it here would be a cycle)

_CONFIG_HELP = "the gate's TOML configuration (see config/gate-reader.example.toml)"


def configure_sync(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "One sync: refresh the TUF metadata from [sync] metadata_url (root pinned at install), "
        "download the targets that changed, verify every issuer certificate and list as GatePass says "
        "(signature, typ, iat never going back) and store those that pass in one transaction; a list that "
        "fails is ignored as if absent and named in a warning (and in 'status'). Then, if [upload] is "
        "configured, upload the event journal (its failure is a warning, not the sync's exit status). Exit 0 "
        "on success; when the repository itself fails, exit 1 with one line naming the failed check, the "
        "cache keeping its previous data; 2 for a configuration error."
    )
    parser.add_argument("--config", required=True, metavar="FILE", help=_CONFIG_HELP)
    parser.add_argument("--no-upload", action="store_true", help="skip the journal upload after the sync")
    parser.set_defaults(func=run_sync_command)


def configure_upload(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Upload unsent journal records as CloudEvents batches to [upload] url over HTTPS (the "
        "collector's CA pinned), with a heartbeat and the chain head signed by the gate key; mark records "
        "sent only on a 2xx answer; then apply the unsent cap (gap records) and the retention of sent "
        "records. Exit 0 when everything was sent, 1 on failure (records stay unsent)."
    )
    parser.add_argument("--config", required=True, metavar="FILE", help=_CONFIG_HELP)
    parser.set_defaults(func=run_upload_command)


def configure_gate_key(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Create [gate] key (Ed25519, mode 0600) if it does not exist yet, and print its public key "
        "as PEM: the centre registers it to check the journal chain heads this gate signs in its uploads. "
        "An existing key is never replaced; a key file readable by others is refused."
    )
    parser.add_argument("--config", required=True, metavar="FILE", help=_CONFIG_HELP)
    parser.set_defaults(func=run_gate_key_command)


def configure_events(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Print journal records in order: sequence, time, reader, kind, decision, reason, subject, "
        "credential hash, and whether the hash chain checks out at that record. With --follow, keep printing "
        "new records as the daemon appends them, until interrupted (Ctrl-C or SIGTERM: exit 0)."
    )
    parser.add_argument("--config", required=True, metavar="FILE", help=_CONFIG_HELP)
    parser.add_argument("--since", metavar="SEQ|TIME|SPAN",
                        help="only records after sequence number SEQ (120), from TIME (ISO 8601 with its zone, "
                        "2026-12-01T08:00:00Z), or from SPAN back from now (30s, 10m, 2h, 1d)")
    parser.add_argument("--reader", action="append", default=[], metavar="NAME",
                        help="only this reader's records (again for more readers)")
    parser.add_argument("--decision", choices=("grant", "deny"), help="only decisions of this kind")
    parser.add_argument("--kind", action="append", default=[], metavar="KIND",
                        help="only records of this kind: decision, door, system, gap (again for more)")
    parser.add_argument("--follow", "-f", action="store_true", help="keep printing new records as they come")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.set_defaults(func=run_events_command)


def configure_status(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Show the status lists (uri, iat, entries, staleness), the legacy list, the trust anchors, "
        "the time floor and whether the clock is trusted, the last sync, its error and the targets it "
        "ignored, the last upload, and the journal counts (total, unsent, gaps); then the problems: a failing "
        "sync, stale or ignored lists, an upload backlog or a failing upload, an untrusted clock. Reads the "
        "cache without changing it. Exit 0 with no problem, 1 with any, 2 for a configuration or cache error."
    )
    parser.add_argument("--config", required=True, metavar="FILE", help=_CONFIG_HELP)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run_status_command)


def _config(args: argparse.Namespace) -> Config:
    return load_config(args.config)


def run_sync_command(args: argparse.Namespace) -> int:
    """Exit status: the sync's alone (0 done, 1 the repository failed, 2 configuration).
    The upload that follows reports its failure as a warning and in ``status``: a sync
    unit shown failed while the lists are current would send someone after the wrong
    thing (issue 8, item 14)."""
    from reader.gate.sync import run_sync

    config = _config(args)
    report = run_sync(config)
    if not report.ok:
        raise CommandFailed(report.error or "failed")
    print(f"sync ok in {report.seconds:.2f} s: downloaded {', '.join(report.downloaded) or 'nothing'}; "
          f"stored {', '.join(report.written) or 'nothing new'}"
          + (f"; ignored {len(report.ignored)}" if report.ignored else ""))
    say = command_logger("sync")
    for target, why in report.ignored:
        say.warning("ignored %s (as if absent): %s", target, why)
    if config.upload is not None and not args.no_upload:
        try:
            _upload(config)
        except (ConfigError, CacheError, CommandFailed) as exc:
            say.warning("upload failed: %s", exc)
    return 0


def _upload(config: Config) -> None:
    """Run the upload and print what it sent; CommandFailed when the collector did not take
    everything (ConfigError, CacheError for what no retry can fix)."""
    from reader.gate.upload import run_upload

    result = run_upload(config)
    if result.error:
        raise CommandFailed(f"{result.error} ({result.sent} sent before it)")
    print(f"upload ok: {result.sent} records in {result.batches} batches")


def run_upload_command(args: argparse.Namespace) -> int:
    """Exit status 0 when everything was sent, 1 when the collector did not take it all."""
    _upload(_config(args))
    return 0


def run_gate_key_command(args: argparse.Namespace) -> int:
    from offline_cache.gatekey import public_key_pem
    from reader.gate.upload import gate_key

    config = _config(args)
    key = gate_key(config)
    print(f"gate {config.gate.id}: key {config.gate.key}")
    sys.stdout.write(public_key_pem(key).decode())
    return 0


def run_events_command(args: argparse.Namespace) -> int:
    """The journal read-only (a diagnostic never changes it): without a usable database
    there is nothing to show, start_empty or not, and the error names the file."""
    from offline_cache.journal import Journal
    from reader.gate.cache import open_readonly
    from reader.gate.events import EventFilter, EventReader, parse_since, record_json, record_text

    config = _config(args)
    try:
        seq, since_time = parse_since(args.since, time.time()) if args.since is not None else (None, None)
    except ValueError as exc:
        raise CommandFailed(str(exc), EXIT_USAGE) from None
    chosen = EventFilter(frozenset(args.reader), args.decision, frozenset(args.kind), since_time)
    show = record_json if args.json else record_text
    with open_readonly(config) as store:
        events = EventReader(Journal(store), seq, chosen)
        for record, chain_ok in events.new():
            print(show(record, chain_ok))
        if not args.follow:
            return 0
        stop = _until_terminated()
        sys.stdout.flush()
        while not stop.wait(_FOLLOW_POLL_S):
            for record, chain_ok in events.new():
                print(show(record, chain_ok), flush=True)
    return 0


_FOLLOW_POLL_S = 0.5


def _until_terminated() -> threading.Event:
    """An event set by SIGTERM or Ctrl-C: ``events --follow`` ends with exit 0 on either
    (a technician's interrupt is how it is meant to end, not a failure)."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def run_status_command(args: argparse.Namespace) -> int:
    """Exit status: 0 when nothing needs attention, 1 when ``problems`` lists anything (so
    monitoring sees a failing gate), 2 when the config or the cache cannot be read."""
    from reader.gate.cache import open_readonly
    from reader.gate.report import status_report

    config = _config(args)
    with open_readonly(config) as store:
        report = status_report(config, store)
    if config.door is not None:
        _live_daemon(config, report)
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
    _print_daemon(report["daemon"])
    for problem in report["problems"]:
        print(f"problem: {problem}")
    return code


def _live_daemon(config: Config, report: dict) -> None:
    """The running daemon's health through its control socket, in place of the stored one
    (which stays the answer when no daemon answers: marked stale when old)."""
    from reader.daemon.control import ControlError, request
    from reader.gate.report import daemon_problems

    try:
        live = request(config.daemon.socket_path, {"cmd": "status"}, timeout=3.0)["daemon"]
    except ControlError as exc:
        if report["daemon"] is not None:
            report["daemon"]["unreachable"] = str(exc)
        return
    stored = set(daemon_problems(config, report["daemon"]))
    report["problems"] = [p for p in report["problems"] if p not in stored] + daemon_problems(config, live)
    report["daemon"] = live


def _print_daemon(daemon: dict | None) -> None:
    if daemon is None:
        return
    if daemon.get("error"):
        print(f"daemon: {daemon['error']}")
        return
    door = daemon.get("door") or {}
    if daemon.get("origin") == "live":
        origin = "live"
    else:
        origin = ("STOPPED, " if daemon.get("stopped") else "") + f"stored {daemon.get('age_s')} s ago" + (
            ", STALE" if daemon.get("stale") and not daemon.get("stopped") else "")
    holders = ", ".join(door.get("lockdown_by") or [])  # who holds it: "cli", "input" (the switch)
    lockdown = ("ON" + (f" (by {holders})" if holders else "")) if daemon.get("lockdown") else "off"
    print(f"daemon ({origin}): door {door.get('state')}, lockdown {lockdown}, "
          f"alarms {', '.join(door.get('alarms') or []) or 'none'}, "
          f"policy {daemon.get('policy_origin')}, decisions {daemon.get('decisions')}")
    for name, source in sorted((daemon.get("sources") or {}).items()):
        state = "up" if source.get("up") else "DOWN"
        print(f"source {name} ({source.get('driver')}): {state}, {source.get('reads')} reads, "
              f"{source.get('restarts')} restarts" + (f", last error: {source['last_error']}"
                                                      if source.get("last_error") else ""))
