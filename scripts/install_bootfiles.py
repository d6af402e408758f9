"""The installer's edits of the Pi's boot files: the managed block in config.txt (between
``# BEGIN gate-reader`` and ``# END gate-reader``, replaced in place, never guessed at when
broken) and the serial console in cmdline.txt. Standard library only; scripts/install_site.py
runs them."""

from __future__ import annotations

import re

BEGIN = "# BEGIN gate-reader"
END = "# END gate-reader"


class SiteError(ValueError):
    """A config value or boot file the installer cannot use: the message names the config key, or
    says what is wrong with the file. The installer stops on it before it changes anything."""


def _block_span(lines: list[str], name: str) -> tuple[int, int] | None:
    begins = [i for i, line in enumerate(lines) if line.strip() == BEGIN]
    ends = [i for i, line in enumerate(lines) if line.strip() == END]
    if not begins and not ends:
        return None
    if len(begins) != 1 or len(ends) != 1 or ends[0] < begins[0]:
        raise SiteError(f"{name}: the '{BEGIN}' ... '{END}' block is broken (markers missing, repeated or "
                        "out of order); put it right by hand, the installer will not guess")
    return begins[0], ends[0]


def splice(text: str, block: str, name: str) -> str:
    """``text`` with the managed block replaced in place, or appended when there is none."""
    lines = text.splitlines(keepends=True)
    span = _block_span(lines, name)
    if span is not None:
        return "".join(lines[:span[0]]) + block + "".join(lines[span[1] + 1:])
    if text and not text.endswith("\n"):
        text += "\n"
    return text + ("\n" if text.strip() else "") + block


def unsplice(text: str, name: str) -> str:
    """``text`` without the managed block (and the blank line splice put before it)."""
    lines = text.splitlines(keepends=True)
    span = _block_span(lines, name)
    if span is None:
        return text
    head = lines[:span[0]]
    if head and not head[-1].strip():
        head.pop()
    return "".join(head) + "".join(lines[span[1] + 1:])


def block_rtc(text: str, name: str) -> str | None:
    """The RTC model a previous install put in the block (``dtoverlay=i2c-rtc,MODEL``), so that
    a later run without ``--rtc`` keeps it."""
    lines = text.splitlines()
    span = _block_span(lines, name)
    if span is None:
        return None
    for line in lines[span[0]:span[1]]:
        match = re.fullmatch(r"dtoverlay=i2c-rtc,([a-z0-9]{2,16})", line.strip())
        if match:
            return match.group(1)
    return None


def strip_console(cmdline: str) -> str:
    """cmdline.txt (one line) without ``console=`` on the header UART; other consoles stay."""
    words = cmdline.split()
    kept = [w for w in words if not re.fullmatch(r"console=(serial0|ttyAMA0|ttyS0)(,\S*)?", w)]
    return cmdline if kept == words else " ".join(kept) + "\n"
