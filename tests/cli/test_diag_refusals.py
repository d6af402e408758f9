"""A diagnostic whose own operation is refused by a known error (a missing file the config
names, an unusable cache) reports it as its FAIL with the likely cause and the next step, as
every other failure; never a usage error (exit 2) or a "check itself failed" row."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.centre import run


def test_a_sync_refused_before_it_reaches_the_centre_is_a_fail_with_its_fix_not_a_crashed_check(
        centre, tmp_path: Path) -> None:
    """A gate installed without --root-json (the installer warns and goes on): `diag sync` and
    the selftest's sync row say the root.json is missing and how to install it, exit 1, instead
    of a usage error (exit 2) or "the check itself failed"."""
    config = Path(centre.config)
    text = config.read_text()
    root_line = next(line for line in text.splitlines() if line.startswith("root = "))
    config.write_text(text.replace(root_line, f'root = "{tmp_path / "missing" / "root.json"}"'))
    code, out, err = run("diag", "sync", "--config", config, "--json")
    result = json.loads(out)
    assert code == 1 and result["status"] == "FAIL", err
    assert result["summary"].startswith("sync.root: ") and result["next_step"] == "install.sh --root-json FILE"
    code, out, err = run("diag", "selftest", "--config", config, "--json")
    (row,) = [r for r in json.loads(out) if r["check"] == "sync"]
    assert row["status"] == "FAIL" and "itself failed" not in row["summary"]
    assert row["next_step"] == "install.sh --root-json FILE"
