"""Metrics and drift arithmetic on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sparkml_ops.evaluation import (
    classification_metrics,
    histogram_quantiles,
    population_stability_index,
    score_baseline,
)


def test_metrics_on_a_perfectly_ranked_set():
    m = classification_metrics([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], thresholds=(0.5, 0.85))
    assert m["roc_auc"] == 1.0
    assert m["pr_auc"] == 1.0
    assert m["brier"] == pytest.approx((0.01 + 0.04 + 0.04 + 0.01) / 4)
    assert m["log_loss"] == pytest.approx(-(math.log(0.9) + math.log(0.8) + math.log(0.8) + math.log(0.9)) / 4)
    assert m["precision@0.5"] == 1.0 and m["recall@0.5"] == 1.0
    assert m["precision@0.85"] == 1.0 and m["recall@0.85"] == 0.5
    assert m["base_rate"] == 0.5


def test_auc_is_nan_not_half_when_one_class_only():
    m = classification_metrics([0, 0, 0], [0.1, 0.2, 0.3])
    assert math.isnan(m["roc_auc"]) and math.isnan(m["pr_auc"])
    assert math.isnan(m["recall@0.5"])


def test_baseline_bins_hold_equal_shares_and_psi_of_same_distribution_is_zero():
    scores = [i / 1000 for i in range(1000)]
    base = score_baseline(scores, bins=10)
    assert len(base["edges"]) == 9
    assert base["proportions"] == pytest.approx([0.1] * 10)
    assert population_stability_index(base["proportions"], base["proportions"]) == 0.0


def test_psi_of_a_known_shift():
    expected = [0.5, 0.5]
    actual = [0.9, 0.1]
    assert population_stability_index(expected, actual) == pytest.approx(0.4 * math.log(1.8) + (-0.4) * math.log(0.2))
    assert population_stability_index([0.5, 0.5], [1.0, 0.0]) == pytest.approx(0.5 * math.log(2) + (1e-4 - 0.5) * math.log(1e-4 / 0.5))


def test_psi_rejects_mismatched_bins():
    with pytest.raises(ValueError, match="bin counts differ: expected 2, actual 3"):
        population_stability_index([0.5, 0.5], [0.3, 0.3, 0.4])


@pytest.mark.parametrize("dist", ["uniform", "beta", "ties"])
def test_histogram_quantiles_are_within_one_cell_of_the_exact_ones(dist):
    rng = np.random.default_rng(3)
    scores = {"uniform": rng.uniform(size=100_000), "beta": rng.beta(0.3, 8, size=100_000),
              "ties": rng.choice([0.1, 0.42, 0.9], size=10_000, p=[0.7, 0.2, 0.1])}[dist]
    cells = 2000
    counts = dict(zip(*np.unique(np.minimum(np.floor(scores * cells), cells - 1).astype(int), return_counts=True)))
    qs = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
    got = histogram_quantiles({int(k): int(v) for k, v in counts.items()}, cells, qs)
    assert np.allclose(got, np.quantile(scores, qs), atol=1 / cells)
    assert histogram_quantiles({}, cells, qs) == []
