"""The wiring picture and the guide's wiring table are drawn from the code's own pin table
(drivers.pins.DEFAULT_PINS): regenerating them gives the committed files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from drivers.pins import DEFAULT_PINS
from tests.install.trees import REPO

DRAW = REPO / "scripts" / "draw_wiring.py"


def _draw(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(DRAW), *args], capture_output=True, text=True, timeout=60)


def test_wiring_svg_is_what_the_default_pin_table_draws() -> None:
    result = _draw("--check")
    assert result.returncode == 0, result.stderr
    svg = (REPO / "docs" / "wiring.svg").read_text()
    for role, pin in DEFAULT_PINS.items():
        assert f"{role} &#183; GPIO{pin.bcm} &#183; {pin.direction}" in svg


def test_install_guide_wiring_table_is_the_default_pin_table() -> None:
    table = _draw("--table").stdout
    assert len(table.splitlines()) == 2 + len(DEFAULT_PINS)
    assert table in (REPO / "docs" / "install-guide.md").read_text()


def test_a_drawing_out_of_date_is_reported_and_left_alone(tmp_path: Path) -> None:
    current = tmp_path / "current.svg"
    assert _draw("--output", str(current)).returncode == 0
    stale = tmp_path / "stale.svg"
    stale.write_text(current.read_text().replace(">relay ", ">lock "))
    result = _draw("--check", "--output", str(stale))
    assert result.returncode == 1 and "out of date" in result.stderr
    assert stale.read_text() != current.read_text()  # --check never rewrites
    assert _draw("--check", "--output", str(current)).returncode == 0
