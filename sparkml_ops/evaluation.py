"""Model evaluation and score-drift arithmetic (pure functions over arrays; no I/O)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

PSI_EPSILON = 1e-4  # floor for empty bins, so ln(p/q) stays finite
# The quantiles monitoring reports for features and scores (named p01 .. p99 in the stats tables).
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


def classification_metrics(y_true: Any, scores: Any, thresholds: Sequence[float] = (0.5,)) -> dict[str, float]:
    """ROC AUC, PR AUC (average precision), log loss, Brier score, base rate, precision/recall at thresholds.

    AUCs are NaN when the labels hold one class only (they are undefined, not 0.5).
    """
    from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

    y = np.asarray(y_true, dtype="int64")
    s = np.clip(np.asarray(scores, dtype="float64"), 1e-15, 1 - 1e-15)
    both = len(np.unique(y)) == 2
    out = {
        "rows": float(len(y)),
        "positives": float(y.sum()),
        "base_rate": float(y.mean()) if len(y) else math.nan,
        "roc_auc": float(roc_auc_score(y, s)) if both else math.nan,
        "pr_auc": float(average_precision_score(y, s)) if both else math.nan,
        "log_loss": float(log_loss(y, s, labels=[0, 1])) if len(y) else math.nan,
        "brier": float(brier_score_loss(y, s)) if len(y) else math.nan,
    }
    for t in thresholds:
        predicted = s >= t
        tp = float(np.sum(predicted & (y == 1)))
        out[f"precision@{t:g}"] = tp / float(predicted.sum()) if predicted.any() else math.nan
        out[f"recall@{t:g}"] = tp / float(y.sum()) if y.any() else math.nan
    return out


def score_baseline(scores: Any, bins: int = 10) -> dict[str, list[float]]:
    """Quantile bin edges and the share of scores per bin: the drift baseline stored with a model."""
    s = np.asarray(scores, dtype="float64")
    if s.size == 0:
        raise ValueError("cannot build a score baseline from no scores")
    inner = np.unique(np.quantile(s, np.linspace(0, 1, bins + 1)[1:-1]))
    counts = np.bincount(np.searchsorted(inner, s, side="right"), minlength=len(inner) + 1)
    return {"edges": [float(e) for e in inner], "proportions": [float(c) / s.size for c in counts]}


def population_stability_index(expected: Sequence[float], actual: Sequence[float]) -> float:
    """PSI = sum((a - e) * ln(a / e)) over bins, with empty bins floored at 1e-4.

    Rule of thumb: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 major shift.
    """
    if len(expected) != len(actual):
        raise ValueError(f"bin counts differ: expected {len(expected)}, actual {len(actual)}")
    e = np.maximum(np.asarray(expected, dtype="float64"), PSI_EPSILON)
    a = np.maximum(np.asarray(actual, dtype="float64"), PSI_EPSILON)
    return float(np.sum((a - e) * np.log(a / e)))


def histogram_quantiles(counts: dict[int, int], cells: int, quantiles: Sequence[float]) -> list[float]:
    """Quantiles of scores in [0, 1] from their counts per cell ``floor(score * cells)``.

    Linear within a cell, so each value is within one cell width (``1 / cells``) of the
    exact empirical quantile. Empty ``counts`` give an empty list.
    """
    total = sum(counts.values())
    if not total:
        return []
    order = sorted(counts)
    cumulative = np.cumsum([counts[c] for c in order])
    out = []
    for q in quantiles:
        rank = q * total
        i = min(int(np.searchsorted(cumulative, rank, side="left")), len(order) - 1)
        before = cumulative[i - 1] if i else 0
        share = (rank - before) / counts[order[i]] if counts[order[i]] else 0.0
        out.append(float((order[i] + min(max(share, 0.0), 1.0)) / cells))
    return out
