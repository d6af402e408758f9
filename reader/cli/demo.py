"""``gate-reader demo``: the real daemon on simulated hardware, a scenario played against it
(``reader.demo``). Exit 0 when every step got what it expects, 1 naming the first that did not."""

from __future__ import annotations

import argparse
from pathlib import Path

from reader.errors import ConfigError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Start the gate daemon (gate-reader run) on simulated hardware with a fresh test authority and its TUF "
        "repository served on loopback: an NFC phone emulator on nfcpy's udp driver, a QR video file for the "
        "camera, a serial scanner on a pty, Wiegand and door on gpiozero mock pins. Play a scenario (valid NFC "
        "and QR, a replayed screenshot, a revoked and an expired credential, a legacy badge by night and by day, "
        "the exit button, a door held open, a forced door, fire) and show, as it happens, what the daemon "
        "decided and what the door did, read back from the daemon's log, journal and mock relay. Exit 0 when "
        "every step did what it should, 1 naming the first step that did not."
    )
    parser.add_argument("--fast", action="store_true", help="shorter releases and no pauses between steps")
    parser.add_argument("--out", type=Path, default=Path("demo-out"), metavar="DIR",
                        help="where the centre, the gate's files and the daemon's log go (default %(default)s): "
                        "a new or empty folder, or one an earlier demo made, which is emptied first")
    parser.set_defaults(func=demo_command)


def demo_command(args: argparse.Namespace) -> int:
    import shutil

    from reader.demo.scenario import MARKER, Demo

    # Absolute from here on: the demo writes the gate's config into out/gate/, and a config's
    # relative paths are taken from its own folder, so a relative --out (the default, demo-out)
    # would be doubled there (demo-out/gate/demo-out/centre/...). absolute(), not resolve(): a
    # symlinked folder stays as named.
    out: Path = args.out.absolute()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out: {out} is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER).is_file():  # never empty a folder the demo did not make
            raise ConfigError(f"--out: {out} holds files an earlier demo did not make; name a new or empty folder")
        shutil.rmtree(out)
    return Demo(out, fast=args.fast).run()
