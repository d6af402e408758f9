"""Draw the gate's default wiring from the code's own pin table.

    .venv/bin/python scripts/draw_wiring.py            writes docs/wiring.svg
    .venv/bin/python scripts/draw_wiring.py --check    exit 1 when docs/wiring.svg is not what it draws
                                        (--output FILE: another picture's file)
    .venv/bin/python scripts/draw_wiring.py --table    prints the install guide's wiring table (Markdown)

Everything about the pins comes from ``drivers.pins.DEFAULT_PINS`` (BCM number, header pin,
direction, wiring) and ``drivers.door.DoorSettings`` (which level means active), so the picture
and the guide's table change when the code's defaults do, and a test keeps them equal. The
output has no date or version in it: the same table always draws the same bytes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from xml.sax.saxutils import escape

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from drivers.door import DoorSettings, InputPin, OutputPin  # noqa: E402 (after the path is set)
from drivers.pins import DEFAULT_PINS  # noqa: E402

SVG = REPO / "docs" / "wiring.svg"

# The 40-pin header (J8) of every Pi since the B+: pin number -> BCM GPIO, or its power name.
HEADER: dict[int, int | str] = {
    1: "3V3", 2: "5V", 3: 2, 4: "5V", 5: 3, 6: "GND", 7: 4, 8: 14, 9: "GND", 10: 15,
    11: 17, 12: 18, 13: 27, 14: "GND", 15: 22, 16: 23, 17: "3V3", 18: 24, 19: 10, 20: "GND",
    21: 9, 22: 25, 23: 11, 24: 8, 25: "GND", 26: 7, 27: "ID_SD", 28: "ID_SC", 29: 5, 30: "GND",
    31: 6, 32: 12, 33: 13, 34: "GND", 35: 19, 36: 16, 37: 26, 38: 20, 39: "GND", 40: 21,
}

# Notes for the installer that hold whatever the pins are (the guide explains each).
NOTES = (
    "Inputs switch to GND with the Pi's internal pull-up; each one's active level is chosen so a cut wire",
    "reads as the safe failure (door open, tamper, fire). Never feed more than 3.3 V into any GPIO.",
    "Exit button and lockdown are normally-open switches (active low): a pin left unwired never presses",
    "exit or locks the gate down; a gate without a lockdown switch may also set [door] lockdown = false.",
    "Relay: drive the coil through a transistor or a relay board with a flyback diode across the coil;",
    "the lock has its own supply. An opto-isolated relay board keeps the lock's wiring off the Pi.",
    "Wiegand D0/D1 are 5 V on most readers: through a 5 V -> 3.3 V level shifter or an opto-isolated",
    "input board, never directly. Tie the reader's GND to the Pi's GND.",
    "Fire input: the fire panel's contact tells the gate to release and log it; the lock's power must",
    "also be cut by the fire panel in hardware, as local codes require.",
)

COLOURS = {"output": "#d9822b", "input": "#2b6cb0", "3V3": "#e0a800", "5V": "#c53030", "GND": "#1a1a1a",
           "free": "#cfcfcf", "ID": "#9e9e9e"}


def active_level(role: str) -> str:
    """'high' or 'low': the pin level that means on (outputs) or active (inputs)."""
    spec = getattr(DoorSettings(), role, None)
    if isinstance(spec, OutputPin | InputPin):
        return "high" if spec.active_high else "low"
    if role.startswith("wiegand_"):
        return "low"  # Wiegand lines idle high and pulse low for each bit
    raise SystemExit(f"draw_wiring: no active level known for {role!r}; add it here")


def _check_table() -> dict[int, str]:
    """header pin -> role; stops when the code's table disagrees with the header map."""
    used: dict[int, str] = {}
    for role, pin in DEFAULT_PINS.items():
        if HEADER.get(pin.header) != pin.bcm:
            raise SystemExit(f"draw_wiring: {role}: header pin {pin.header} is {HEADER.get(pin.header)}, "
                             f"not GPIO {pin.bcm}")
        used[pin.header] = role
    return used


def markdown_table() -> str:
    rows = ["| Role | GPIO (BCM) | Header pin | Direction | Active | Wiring (default polarity) |",
            "|---|---|---|---|---|---|"]
    for role, pin in DEFAULT_PINS.items():
        rows.append(f"| `{role}` | {pin.bcm} | {pin.header} | {pin.direction} | {active_level(role)} | "
                    f"{pin.wiring} |")
    return "\n".join(rows) + "\n"


def draw() -> str:
    used = _check_table()
    width, top, step, rows = 1040, 96, 28, 20
    left_x, right_x = 500, 540  # the two columns of the header
    height = top + rows * step + 40 + 18 * len(NOTES) + 30
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        '<text x="20" y="30" font-size="18" font-weight="bold">gate-reader: default wiring on the 40-pin header'
        '</text>',
        '<text x="20" y="52" fill="#555">Drawn by scripts/draw_wiring.py from drivers/pins.py DEFAULT_PINS '
        '(BCM numbering; pin 1 is the corner pin next to the square pad).</text>',
        f'<rect x="{left_x - 22}" y="{top - 22}" width="{right_x - left_x + 44}" height="{rows * step + 16}" '
        'rx="6" fill="#2f4f2f"/>',
    ]
    for number in range(1, 41):
        row, right = (number - 1) // 2, number % 2 == 0
        x, y = (right_x if right else left_x), top + row * step
        what = HEADER[number]
        role = used.get(number)
        if role:
            kind = DEFAULT_PINS[role].direction
        elif isinstance(what, int):
            kind = "free"
        else:
            kind = "ID" if what.startswith("ID_") else what
        out.append(f'<circle cx="{x}" cy="{y}" r="10" fill="{COLOURS[kind]}" stroke="#ffffff" stroke-width="1.5"/>')
        out.append(f'<text x="{x}" y="{y + 4}" font-size="9" text-anchor="middle" '
                   f'fill="{"#000" if kind == "free" else "#fff"}">{number}</text>')
        anchor, tx = ("start", x + 40) if right else ("end", x - 40)
        name = f"GPIO{what}" if isinstance(what, int) else what
        if role:
            pin = DEFAULT_PINS[role]
            out.append(f'<line x1="{x + (12 if right else -12)}" y1="{y}" x2="{tx + (-4 if right else 4)}" y2="{y}" '
                       f'stroke="{COLOURS[kind]}" stroke-width="2"/>')
            out.append(f'<text x="{tx}" y="{y - 2}" text-anchor="{anchor}" font-weight="bold" fill="{COLOURS[kind]}">'
                       f'{escape(role)} &#183; {name} &#183; {pin.direction}, active {active_level(role)}</text>')
            out.append(f'<text x="{tx}" y="{y + 11}" text-anchor="{anchor}" font-size="10" fill="#333">'
                       f'{escape(pin.wiring)}</text>')
        else:
            out.append(f'<text x="{x + 30 if right else x - 30}" y="{y + 4}" text-anchor="{anchor}" font-size="10" '
                       f'fill="#777">{name}</text>')
    y = top + rows * step + 30
    legend = [("output", "output (used)"), ("input", "input (used)"), ("free", "free GPIO"), ("3V3", "3.3 V"),
              ("5V", "5 V"), ("GND", "ground")]
    for i, (kind, label) in enumerate(legend):
        lx = 20 + i * 160
        out.append(f'<circle cx="{lx + 8}" cy="{y}" r="7" fill="{COLOURS[kind]}"/>')
        out.append(f'<text x="{lx + 22}" y="{y + 4}">{label}</text>')
    y += 30
    for line in NOTES:
        out.append(f'<text x="20" y="{y}" fill="#222">{escape(line)}</text>')
        y += 18
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", action="store_true", help="exit 1 when docs/wiring.svg is out of date")
    group.add_argument("--table", action="store_true", help="print the guide's wiring table")
    parser.add_argument("--output", type=Path, default=SVG, help="the picture's file (default docs/wiring.svg)")
    args = parser.parse_args(argv)
    if args.table:
        sys.stdout.write(markdown_table())
        return 0
    svg = draw()
    if args.check:
        if not args.output.exists() or args.output.read_text(encoding="utf-8") != svg:
            print(f"draw_wiring: {args.output} is out of date: run scripts/draw_wiring.py", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(svg, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
