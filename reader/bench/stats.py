"""The one percentile every benchmark reports (nearest rank, no interpolation: the figure is
a sample that was actually measured)."""

from __future__ import annotations

from collections.abc import Sequence


def percentile(samples: Sequence[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
