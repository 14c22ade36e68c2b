"""The model report's figures on hand-computed cases: KS and Gini, lift by decile, calibration, confusion, importance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sparkml_ops import evaluation as ev

Y = [0, 0, 0, 1, 0, 1, 1, 1]
S = [0.1, 0.2, 0.3, 0.35, 0.4, 0.6, 0.8, 0.9]


def test_ks_is_the_largest_gap_between_the_class_cdfs_and_gini_is_2auc_minus_1():
    out = ev.ks_gini(Y, S)
    # At >= 0.6: 3/4 positives, 0/4 negatives -> gap 0.75 (first reached going down; >= 0.35 ties it: 4/4 vs 1/4).
    assert out["ks"] == pytest.approx(0.75) and out["ks_score"] == 0.6
    assert out["gini"] == pytest.approx(2 * (15 / 16) - 1)


def test_lift_table_by_group_highest_scores_first():
    rows = ev.lift_table(Y, S, groups=4)
    assert [(r["rows"], r["positives"]) for r in rows] == [(2, 2), (2, 1), (2, 1), (2, 0)]
    assert [r["lift"] for r in rows] == [2.0, 1.0, 1.0, 0.0]
    assert [r["gain"] for r in rows] == [0.5, 0.75, 1.0, 1.0]
    assert (rows[0]["min_score"], rows[0]["max_score"]) == (0.8, 0.9)


def test_calibration_bins_hold_equal_counts():
    points = ev.calibration(Y, S, bins=2)
    assert points == [{"rows": 4, "mean_score": pytest.approx(0.2375), "observed_rate": 0.25},
                      {"rows": 4, "mean_score": pytest.approx(0.675), "observed_rate": 0.75}]


def test_confusion_at_a_threshold():
    assert ev.confusion(Y, S, 0.5) == {"threshold": 0.5, "tp": 3, "fp": 0, "tn": 4, "fn": 1}


def test_score_histogram_shares_sum_to_one_and_clip_to_the_unit_interval():
    hist = ev.score_histogram([-0.2, 0.05, 0.5, 1.0, 1.7], bins=4)
    assert hist["edges"] == [0.0, 0.25, 0.5, 0.75, 1.0] and hist["shares"] == [0.4, 0.0, 0.2, 0.4]


def test_curves_are_thinned_but_keep_their_ends():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 5000)
    curves = ev.curves(y, rng.random(5000), points=50)
    assert len(curves["roc"]["fpr"]) <= 50 and curves["roc"]["fpr"][0] == 0.0 and curves["roc"]["fpr"][-1] == 1.0


def test_permutation_importance_ranks_the_feature_the_score_uses():
    rng = np.random.default_rng(1)
    x = pd.DataFrame({"used": rng.random(400), "noise": rng.random(400)})
    y = (x["used"] > 0.5).astype(int)
    rows = ev.permutation_importance(lambda f: f["used"].to_numpy(), x, y, repeats=2)
    assert [r["feature"] for r in rows] == ["used", "noise"]
    assert rows[0]["importance"] > 0.3 and rows[1]["importance"] == 0.0
