"""What every test shares: the hypothesis profile, and the ``centre`` fixture of the
command-level tests (a centre served on loopback and a gate configured to sync from it).
Helpers live in tests/support/."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.support.centre import URI, Centre

# One profile for every property test. Example counts come from GATE_HYPOTHESIS_EXAMPLES
# (default 300, to keep the normal run short); the 10,000-example run:
#     GATE_HYPOTHESIS_EXAMPLES=10000 .venv/bin/python -m pytest tests/gatepass -k properties
# No deadline: a parser's worst case is bounded by its budgets, not by wall time on a busy
# machine (timing claims live in the benchmarks). No example database, so a run leaves no
# files in the tree.
EXAMPLES = int(os.environ.get("GATE_HYPOTHESIS_EXAMPLES", "300"))
settings.register_profile("gate", max_examples=EXAMPLES, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("gate")


@pytest.fixture
def centre(tmp_path: Path) -> Iterator[Centre]:
    """A centre whose repository publishes the issuer certificate and list ``main`` (uri
    :data:`URI`, 1024 entries, none revoked), served on loopback (``centre.server``), and a
    gate syncing from it (``centre.config``)."""
    centre = Centre(tmp_path)
    centre.revoke("--uri", URI, "--size", 1024, "--idx", 0, "--restore", name="main")
    with centre.serve() as server:
        centre.server = server  # type: ignore[attr-defined]
        centre.config = centre.gate_config(server)  # type: ignore[attr-defined]
        yield centre
