"""Fixtures shared by the store and journal tests: a fresh cache database per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from offline_cache.store import Store


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where the cache lives; the parent directory does not exist yet (open makes it)."""
    return tmp_path / "cache" / "gate.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    with Store.open(db_path, create=True) as opened:
        yield opened
