"""The diagnostics of the gate's state: ``config`` (check-config's result), ``clock``
(synchronised or not, the time floor, a clock chip), ``cache`` (what ``status`` shows of the
lists, trust and journal), ``sync`` (one live sync), ``daemon`` (running, through its
control socket) and a reader held by the running daemon (its source's health)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from offline_cache.errors import CacheError, CacheUnusable
from reader.gate.cache import open_readonly
from reader.gate.clock import gate_clock
from reader.gate.config import Config
from reader.gate.config_check import ConfigCheck
from reader.gate.diagnostics.result import CheckResult, failed, passed, skipped
from reader.gate.report import iso_time, status_report
from reader.gate.sync import SyncReport

_START_SYNC = "sudo systemctl start gate-reader-sync (or `gate-reader diag sync`)"
#: a sync's failed check -> (likely cause, next step)
_SYNC_CAUSES: dict[str, tuple[str, str]] = {
    "server unreachable": ("the centre's server does not answer: no network, a firewall, or the server is down",
                           "check the network and [sync] metadata_url (curl -I THE-URL), then run it again"),
    "network": ("the network failed during the sync", "check the network and [sync] metadata_url, then run it again"),
    "server timeout": ("the centre's server is too slow or the network drops", "check the network; run it again"),
    "server error": ("the centre's server answered with an error (a wrong URL gives 404)",
                     "check [sync] metadata_url and targets_url against the centre's address"),
    "bad root": ("the pinned root.json is not the centre's TUF root", "install the centre's root.json "
                 "(install.sh --root-json FILE, after removing the wrong one)"),
    "metadata signature": ("the repository is not signed by the keys root.json pins: the wrong root.json, or "
                           "the wrong server", "compare root.json with the centre's; check [sync] metadata_url"),
    "expired metadata": ("the centre's metadata expired (its refresh timer stopped), or this gate's clock is far "
                         "ahead", "ask the centre to run its refresh; check the clock (`gate-reader diag clock`)"),
    "issuer certificates": ("the centre publishes no usable issuer certificates", "ask the centre to publish them"),
}


def rtc_name(sys_class: Path = Path("/sys/class/rtc")) -> str | None:
    """The name of the first real-time clock chip the kernel has, None without one."""
    chip = sys_class / "rtc0"
    if not chip.exists():
        return None
    try:
        return (chip / "name").read_text().strip() or "rtc0"
    except OSError:
        return "rtc0"


def check_config_result(result: ConfigCheck) -> CheckResult:
    values: dict[str, Any] = {"config": str(result.path), "errors": len(result.errors),
                              "warnings": [f.message for f in result.warnings]}
    if result.errors:
        first = result.errors[0]
        return failed("config", f"{len(result.errors)} error(s), the first: {first.message}",
                      "the configuration has mistakes; the daemon refuses to start with them",
                      f"gate-reader check-config --config {result.path} lists them all; fix the file, then "
                      "sudo systemctl restart gate-reader", **values)
    return passed("config", f"valid ({len(result.warnings)} warning(s))", **values)


def check_clock(config: Config, *, synchronised: bool | None, rtc: str | None, now: float | None = None) -> CheckResult:
    """``synchronised``: what the kernel says of network time (None: it cannot say); ``rtc``:
    the clock chip's name, None without one."""
    now = time.time() if now is None else now
    floor = None
    try:
        with open_readonly(config) as store:
            floor = store.time_floor()
    except CacheUnusable:
        pass  # no cache yet: no floor, the clock cannot be below it
    except CacheError as exc:  # a floor that cannot be read (damaged, locked): not "no floor", which trusts the clock
        return failed("clock", "the time floor cannot be read", f"{exc}",
                      "follow the recovery above, then run this check again", system_time=iso_time(now),
                      synchronised=synchronised, rtc=rtc or "none")
    trusted = gate_clock(now, floor, config.policy.skew_s).trusted
    values = {"system_time": iso_time(now), "synchronised": synchronised, "rtc": rtc or "none",
              "time_floor": iso_time(floor), "trusted": trusted}
    if not trusted:
        return failed("clock", f"UNTRUSTED: the clock says {iso_time(now)}, below the time floor {iso_time(floor)}",
                      "the clock was reset (no clock battery, no network time since power-on)",
                      "let network time set it (timedatectl; UDP port 123 out), or fit a clock battery", **values)
    if synchronised is False and rtc is None:
        return failed("clock", "not synchronised, and no clock chip keeps the time",
                      "no network time yet: no network, or NTP (UDP port 123) blocked",
                      "timedatectl shows the state; set the site's time server in /etc/systemd/timesyncd.conf",
                      **values)
    state = {True: "synchronised", False: "not synchronised (the clock chip keeps it)", None: "synchronisation unknown"}
    return passed("clock", f"{state[synchronised]}, trusted" + (f", clock chip {rtc}" if rtc else ", no clock chip"),
                  **values)


def check_cache(config: Config, now: float | None = None) -> CheckResult:
    """What ``status`` shows of the offline cache: lists, trust, legacy list, journal."""
    try:
        with open_readonly(config) as store:
            report = status_report(config, store, now)
    except CacheError as exc:
        return failed("cache", "no usable cache", f"{exc}", _START_SYNC, cache=str(config.cache.path))
    lists = report["status_lists"]
    values: dict[str, Any] = {
        "cache": report["cache"], "trust_anchors": len(report["trust_anchors"]), "status_lists": len(lists),
        "oldest_list_age_s": max((entry["age_s"] for entry in lists), default=None),
        "legacy_cards": (report["legacy_list"] or {}).get("cards"), "journal": report["journal"],
        "last_sync": report["sync"].get("last_success"),
    }
    stale = [entry["uri"] for entry in lists if entry["stale"]]
    ignored = report["sync"].get("ignored") or []
    if not report["trust_anchors"]:
        return failed("cache", "no issuer certificates: every credential is refused",
                      "no sync has succeeded yet, and [gate] trust names none", _START_SYNC, **values)
    if config.sync is not None and not lists:
        return failed("cache", "no status list: credentials are status_unknown", "no sync has stored one yet",
                      _START_SYNC, **values)
    if stale:
        return failed("cache", f"stale: {', '.join(stale)}", "the sync has not succeeded for longer than "
                      f"[policy] max_age_s ({config.policy.max_age_s:g} s)", "`gate-reader diag sync` says why",
                      **values)
    if ignored:
        first = ignored[0] if isinstance(ignored[0], dict) else {}
        return failed("cache", f"the last sync ignored {len(ignored)} target(s): {first.get('target')}",
                      str(first.get("reason")), "the centre must publish it again, signed right", **values)
    return passed("cache", f"{len(lists)} list(s), the oldest {values['oldest_list_age_s']} s old; "
                           f"{len(report['trust_anchors'])} issuer(s); journal {report['journal']['total']} records",
                  **values)


def check_sync(config: Config, sync: Callable[[], SyncReport]) -> CheckResult:
    """One live sync (``sync`` runs it; as the cache's owner when run as root)."""
    if config.sync is None:
        return skipped("sync", "no [sync] in the config")
    report = sync()
    values: dict[str, Any] = {"metadata_url": config.sync.metadata_url, "seconds": round(report.seconds, 2)}
    if report.ok:
        values.update(downloaded=report.downloaded, stored=report.written, ignored=[t for t, _ in report.ignored])
        return passed("sync", f"ok in {report.seconds:.2f} s: stored {', '.join(report.written) or 'nothing new'}"
                      + (f"; ignored {len(report.ignored)}" if report.ignored else ""), **values)
    error = report.error or "failed"
    check = error.split(":", 1)[0]
    cause, step = _SYNC_CAUSES.get(check, (error, "journalctl -u gate-reader-sync -b shows the earlier attempts"))
    if check.startswith("sync.root"):
        cause, step = "the pinned TUF root.json is missing or unreadable", "install.sh --root-json FILE"
    values["error"] = error
    return failed("sync", error, cause, step, **values)


def check_daemon(config: Config, live: dict[str, Any] | None, error: str | None) -> CheckResult:
    """The running daemon as its control socket answers (``live``), or why it does not."""
    if config.door is None:
        return skipped("daemon", "no [door] in the config: this gate runs no daemon")
    if live is None:
        return failed("daemon", f"not running ({error})", "gate-reader.service is stopped, failed or starting",
                      "systemctl status gate-reader; journalctl -u gate-reader -b shows why", socket=str(
                          config.daemon.socket_path))
    door = live.get("door") or {}
    sources = live.get("sources") or {}
    up = sum(1 for s in sources.values() if isinstance(s, dict) and s.get("up"))
    values = {"pid": live.get("pid"), "door": door.get("state"), "lockdown": live.get("lockdown"),
              "sources_up": f"{up}/{len(sources)}", "alarms": door.get("alarms") or [],
              "decisions": live.get("decisions")}
    if door.get("alarms"):
        return failed("daemon", f"running, door alarm: {', '.join(door['alarms'])}",
                      "the door machine raised an alarm (forced, held open, tamper or fire)",
                      "`gate-reader diag inputs` shows the inputs; `gate-reader events --kind door` the history",
                      **values)
    return passed("daemon", f"running (pid {live.get('pid')}), door {door.get('state')}, {up}/{len(sources)} "
                            "readers up", **values)


def check_held_source(name: str, driver: str, source: dict[str, Any] | None) -> CheckResult:
    """A reader the running daemon holds: its source's health instead of opening it here."""
    if source is None:
        return failed(driver, f"{name}: the running daemon has no such reader", "the daemon runs another config",
                      "sudo systemctl restart gate-reader", reader=name)
    values = {"reader": name, "held_by": "the running daemon", "up": source.get("up"), "reads": source.get("reads"),
              "restarts": source.get("restarts")}
    if not source.get("up"):
        return failed(driver, f"{name}: down since {iso_time(source.get('down_since'))}: {source.get('last_error')}",
                      "the device is missing or failing (the daemon retries by itself)",
                      f"sudo systemctl stop gate-reader; gate-reader diag {driver} shows why; then "
                      "sudo systemctl start gate-reader", **values)
    return passed(driver, f"{name}: up in the running daemon, {source.get('reads')} reads", **values)
