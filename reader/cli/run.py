"""``gate-reader run`` (the daemon) and ``gate-reader lockdown on|off`` (through the running
daemon's control socket: a second process cannot take the pins the daemon holds)."""

from __future__ import annotations

import argparse
import json

from reader.cli.logs import setup_logging
from reader.errors import CommandFailed
from reader.gate.config import load_config

_CONFIG_HELP = "the gate's TOML configuration (see config/gate-reader.example.toml)"


def configure_run(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Run the gate: the credential sources of [[readers]], one decision worker, the door of [door]. "
        "Checks the cache's integrity, secures the door before any source starts, tells systemd READY=1 and "
        "pings its watchdog while the decision loop and the source loops turn. SIGTERM stops it with the door "
        "secured and the journal flushed (exit 0); SIGHUP reloads the policy. One log line per decision. "
        "Exit 1 when the decision worker failed, 2 for a configuration or cache error."
    )
    parser.add_argument("--config", required=True, metavar="FILE", help=_CONFIG_HELP)
    parser.set_defaults(func=run_command)


def configure_lockdown(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Set or end a lockdown from the command line through the running daemon: every credential is then "
        "refused except those of the [lockdown] groups (the exit button still releases). Journaled with the "
        "caller's uid; kept over a daemon restart until 'off'. Exit 1 when no daemon answers."
    )
    parser.add_argument("state", choices=("on", "off"),
                        help="on: set the command line's lockdown; off: end it, whoever set it")
    parser.add_argument("--config", required=True, metavar="FILE", help=_CONFIG_HELP)
    parser.add_argument("--json", action="store_true", help="print the daemon's answer as JSON")
    parser.set_defaults(func=lockdown_command)


def run_command(args: argparse.Namespace) -> int:
    from reader.daemon.daemon import run_daemon

    config = load_config(args.config)
    # The daemon's decision lines are INFO: its log is the gate's log (journald adds the time).
    setup_logging(max(1, args.verbose))
    return run_daemon(config)


def lockdown_command(args: argparse.Namespace) -> int:
    from reader.daemon.control import ControlError, request

    config = load_config(args.config)
    try:
        answer = request(config.daemon.socket_path, {"cmd": "lockdown", "on": args.state == "on"})
    except ControlError as exc:
        raise CommandFailed(str(exc)) from None
    if args.json:
        print(json.dumps(answer))
    else:
        holders = ", ".join(answer.get("by") or []) or "nobody"
        print(f"lockdown {'on' if answer.get('lockdown') else 'off'} (held by: {holders})")
    return 0
