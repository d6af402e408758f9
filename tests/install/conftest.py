"""The fixtures of the installer's tests (tests/install/trees.py says how they work)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.install.trees import ROOT_JSON, SITE_CONFIG, Tree, clone, make_boot, run_install, tools_missing


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tree]:
    """One real install, made once per session; tests that change a tree use ``clone``."""
    reason = tools_missing()
    if reason:
        pytest.skip(reason)
    base = tmp_path_factory.mktemp("installed")
    inputs = base / "inputs"
    inputs.mkdir()
    (inputs / "site.toml").write_text(SITE_CONFIG)
    (inputs / "root.json").write_text(ROOT_JSON)
    root = base / "root"
    make_boot(root)
    run_install(root, "--config", inputs / "site.toml", "--root-json", inputs / "root.json")
    yield Tree(root, inputs)
    shutil.rmtree(base, ignore_errors=True)  # a tree is ~300 MB: not left for pytest to keep


@pytest.fixture
def cloned(installed: Tree, tmp_path: Path) -> Iterator[Tree]:
    """A copy of the session's installed tree, for a test that changes it."""
    tree = clone(installed, tmp_path / "root")
    yield tree
    shutil.rmtree(tmp_path / "root", ignore_errors=True)
