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


def regression_metrics(y_true: Any, predictions: Any) -> dict[str, float]:
    """RMSE, MAE and R² of predictions, with the row count and the label mean (NaN predictions count as errors)."""
    y = np.asarray(y_true, dtype="float64")
    p = np.asarray(predictions, dtype="float64")
    if not len(y):
        return {"rows": 0.0, "label_mean": math.nan, "rmse": math.nan, "mae": math.nan, "r2": math.nan}
    err = p - y
    total = float(np.sum((y - y.mean()) ** 2))
    return {
        "rows": float(len(y)),
        "label_mean": float(y.mean()),
        "rmse": float(np.sqrt(np.mean(err ** 2))),
        "mae": float(np.mean(np.abs(err))),
        "r2": float(1.0 - np.sum(err ** 2) / total) if total > 0 else math.nan,
    }


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


# ----------------------------------------------------------------------------- the model report's figures

def _labels_scores(y_true: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(y_true, dtype="int64"), np.asarray(scores, dtype="float64")


def _thin(values: np.ndarray, points: int) -> np.ndarray:
    """Indices of at most ``points`` evenly spread entries, first and last kept (curves for a chart, not for maths)."""
    if len(values) <= points:
        return np.arange(len(values))
    return np.unique(np.linspace(0, len(values) - 1, points).round().astype(int))


def curves(y_true: Any, scores: Any, points: int = 200) -> dict[str, dict[str, list[float]]]:
    """ROC (``fpr``, ``tpr``) and precision-recall (``recall``, ``precision``) curves, thinned to ``points`` each."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    y, s = _labels_scores(y_true, scores)
    fpr, tpr, _ = roc_curve(y, s)
    precision, recall, _ = precision_recall_curve(y, s)
    r, p = _thin(fpr, points), _thin(recall, points)
    return {"roc": {"fpr": fpr[r].tolist(), "tpr": tpr[r].tolist()},
            "pr": {"recall": recall[p].tolist(), "precision": precision[p].tolist()}}


def ks_gini(y_true: Any, scores: Any) -> dict[str, float]:
    """Kolmogorov-Smirnov statistic (max distance of the classes' score CDFs), the score where it is reached, Gini = 2 AUC - 1."""
    from sklearn.metrics import roc_auc_score, roc_curve

    y, s = _labels_scores(y_true, scores)
    fpr, tpr, thresholds = roc_curve(y, s)
    best = int(np.argmax(tpr - fpr))
    return {"ks": float(tpr[best] - fpr[best]), "ks_score": float(min(thresholds[best], 1.0)),
            "gini": float(2 * roc_auc_score(y, s) - 1)}


def lift_table(y_true: Any, scores: Any, groups: int = 10) -> list[dict[str, float]]:
    """Rows, positives, rate, lift and cumulative gain (share of all positives captured) per score decile, highest first."""
    y, s = _labels_scores(y_true, scores)
    order = np.argsort(-s, kind="stable")
    total_pos, base = max(int(y.sum()), 1), float(y.mean())
    rows, captured = [], 0
    for i, part in enumerate(np.array_split(order, groups), start=1):
        pos = int(y[part].sum())
        captured += pos
        rate = pos / len(part) if len(part) else math.nan
        rows.append({"decile": i, "rows": int(len(part)), "positives": pos, "rate": rate,
                     "lift": rate / base if base else math.nan, "gain": captured / total_pos,
                     "min_score": float(s[part].min()) if len(part) else math.nan,
                     "max_score": float(s[part].max()) if len(part) else math.nan})
    return rows


def calibration(y_true: Any, scores: Any, bins: int = 10) -> list[dict[str, float]]:
    """Mean predicted score and observed positive rate per equal-count score bin (the points of a reliability plot)."""
    y, s = _labels_scores(y_true, scores)
    order = np.argsort(s, kind="stable")
    return [{"rows": int(len(part)), "mean_score": float(s[part].mean()), "observed_rate": float(y[part].mean())}
            for part in np.array_split(order, bins) if len(part)]


def confusion(y_true: Any, scores: Any, threshold: float) -> dict[str, int | float]:
    """True/false positives and negatives when ``score >= threshold`` decides positive."""
    y, s = _labels_scores(y_true, scores)
    predicted = s >= threshold
    return {"threshold": float(threshold), "tp": int(np.sum(predicted & (y == 1))), "fp": int(np.sum(predicted & (y == 0))),
            "tn": int(np.sum(~predicted & (y == 0))), "fn": int(np.sum(~predicted & (y == 1)))}


def score_histogram(scores: Any, bins: int = 20, span: tuple[float, float] = (0.0, 1.0)) -> dict[str, list[float]]:
    """Shares of scores in ``bins`` equal-width bins over ``span`` (scores outside are clipped to the ends)."""
    s = np.clip(np.asarray(scores, dtype="float64"), *span)
    counts, edges = np.histogram(s, bins=bins, range=span)
    return {"edges": edges.tolist(), "shares": (counts / max(len(s), 1)).tolist()}


def permutation_importance(score: Any, features: Any, y_true: Any, repeats: int = 3, seed: int = 0,
                           task: str = "binary") -> list[dict[str, float]]:
    """Loss of quality when each feature's values are shuffled (mean and spread over ``repeats``), largest first.

    Quality is ROC AUC for a binary task and minus the RMSE for regression, so the importance of a
    regression feature is the RMSE it adds.

    Args:
        score: ``DataFrame -> scores``, the model's scoring function.
        features: the validation features (a pandas DataFrame, columns in signature order).
    """
    from sklearn.metrics import roc_auc_score

    def quality(y: Any, s: Any) -> float:
        return float(roc_auc_score(y, s)) if task == "binary" else -float(np.sqrt(np.mean((np.asarray(s) - y) ** 2)))

    y = np.asarray(y_true, dtype="int64" if task == "binary" else "float64")
    reference = quality(y, score(features))
    rng = np.random.default_rng(seed)
    out = []
    for name in features.columns:
        drops = []
        for _ in range(repeats):
            shuffled = features.copy()
            shuffled[name] = rng.permutation(shuffled[name].to_numpy())
            drops.append(reference - quality(y, score(shuffled)))
        out.append({"feature": name, "importance": float(np.mean(drops)), "std": float(np.std(drops))})
    return sorted(out, key=lambda r: -r["importance"])


# ----------------------------------------------------------------------------- per-feature drift baselines

NUMERIC_TYPES = frozenset({"tinyint", "smallint", "int", "bigint", "float", "double", "byte", "short", "integer", "long"})
INTEGER_TYPES = frozenset({"tinyint", "smallint", "int", "bigint", "byte", "short", "integer", "long"})
MAX_CATEGORIES = 10  # an integer feature with at most this many values in training is compared by category shares


def feature_baseline(values: Any, spark_type: str, bins: int = 10) -> dict[str, Any]:
    """One feature's drift baseline from its training values: kind, bins or categories with shares, null rate, min, max.

    Numeric features get quantile bin edges (a value's bin is the number of edges <= it, as for the score);
    strings, booleans and integers with at most ``MAX_CATEGORIES`` values get category shares. Shares are of
    the non-null values; the null rate is of all rows.
    """
    import pandas as pd

    column = pd.Series(values)
    present = column.dropna()
    out: dict[str, Any] = {"type": spark_type, "rows": int(len(column)),
                           "null_rate": (len(column) - len(present)) / len(column) if len(column) else 0.0}
    categorical = spark_type not in NUMERIC_TYPES or (spark_type in INTEGER_TYPES and present.nunique() <= MAX_CATEGORIES)
    if categorical:
        shares = present.value_counts(normalize=True).sort_index()
        keys = [v.item() if hasattr(v, "item") else v for v in shares.index]
        return {**out, "kind": "categorical", "categories": keys, "shares": [float(x) for x in shares]}
    x = present.to_numpy(dtype="float64")
    x = x[np.isfinite(x)]
    if not x.size:
        return {**out, "kind": "numeric", "edges": [], "shares": [], "min": None, "max": None}
    inner = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)[1:-1]))
    counts = np.bincount(np.searchsorted(inner, x, side="right"), minlength=len(inner) + 1)
    return {**out, "kind": "numeric", "edges": inner.tolist(), "shares": (counts / x.size).tolist(),
            "min": float(x.min()), "max": float(x.max())}


def feature_psi(baseline: dict[str, Any], counts: Sequence[int], other: int = 0) -> float | None:
    """PSI of one feature's current counts per bin (or category, then ``other`` unseen values) against its baseline.

    None when either side has no non-null value. Unseen categories form one more bin with a baseline share of 0.
    """
    expected = list(baseline.get("shares") or [])
    actual = [*counts, other] if baseline.get("kind") == "categorical" else list(counts)
    total = sum(actual)
    if not total or not expected:
        return None
    if baseline.get("kind") == "categorical":
        expected = [*expected, 0.0]
    return population_stability_index(expected, [c / total for c in actual])
