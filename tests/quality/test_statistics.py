"""The building blocks of run statistics: histogram bins (exact at the edges, as Spark's
comparisons are), the population stability index, and the text rendering."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from quality.statistics import (
    bucket_counts,
    histogram_edges,
    population_stability_index,
    render_statistics,
    sparkline,
)


def by_comparison(values: np.ndarray[Any, Any], edges: list[float]) -> list[int]:
    """Bin counts by the definition: edges[i] <= v < edges[i + 1], the outer bins open."""
    lows = [-math.inf, *edges[1:-1]]
    highs = [*edges[1:-1], math.inf]
    return [int(((values >= lo) & (values < hi)).sum()) for lo, hi in zip(lows, highs, strict=True)]


@pytest.mark.parametrize("seed", range(40))
def test_bins_follow_the_edges_exactly_even_for_values_on_an_edge(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.normal(rng.uniform(-1e3, 1e3), rng.uniform(1e-3, 1e3), 2_000).round(int(rng.integers(0, 4)))
    # Edges inside the values' range (values fall outside, in the open outer bins) or at its ends.
    low, high = (values.min(), values.max()) if seed % 2 else (np.quantile(values, 0.1), np.quantile(values, 0.9))
    edges = histogram_edges(float(low), float(high), int(rng.integers(2, 20)))
    probes = np.concatenate([values, edges, np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf)])
    assert bucket_counts(probes, edges) == by_comparison(probes, edges)


def test_a_constant_feature_has_all_its_values_in_the_last_bin() -> None:
    edges = histogram_edges(5.0, 5.0, 4)
    assert edges == [5.0] * 5
    assert bucket_counts(np.array([5.0, 5.0, 5.0]), edges) == [0, 0, 0, 3]
    assert bucket_counts(np.array([4.0, 6.0]), edges) == [1, 0, 0, 1]  # against a constant previous run


def test_the_population_stability_index() -> None:
    assert population_stability_index([10, 20, 30], [20, 40, 60]) == 0.0  # same shares
    expected, actual = [50, 50], [90, 10]
    psi = (0.9 - 0.5) * math.log(0.9 / 0.5) + (0.1 - 0.5) * math.log(0.1 / 0.5)
    assert population_stability_index(expected, actual) == pytest.approx(psi)
    # An empty bin counts as a share of 1e-4, not zero: the index stays finite.
    assert population_stability_index([100, 0], [0, 100]) == pytest.approx(2 * (1 - 1e-4) * math.log(1 / 1e-4))
    assert population_stability_index([0, 0], [1, 2]) is None
    assert population_stability_index([1, 2], [1, 2, 3]) is None


def test_statistics_render_as_a_table_with_sparklines() -> None:
    assert sparkline([0, 1, 4, 8]) == " ▁▄█"
    text = render_statistics(
        {
            "spend": {
                "null_fraction": 0.25,
                "distinct": 1234,
                "min": 0.0,
                "max": 19280.5,
                "mean": 291.5,
                "stddev": 322.0,
                "psi": 0.31,
                "drift": True,
                "histogram": {"edges": [0, 1, 2], "counts": [3, 1]},
            },
            "segment": {"null_fraction": None, "distinct": 3},
        }
    )
    header, spend, segment = text.splitlines()
    assert header.split() == [
        "feature",
        "nulls",
        "distinct",
        "min",
        "max",
        "mean",
        "stddev",
        "psi",
        "drift",
        "histogram",
    ]
    assert spend.split() == ["spend", "25.0%", "1,234", "0", "19,280", "291.5", "322", "0.310", "YES", "█▃"]
    assert segment.split() == ["segment", "-", "3", "-", "-", "-", "-", "-", "-"]
