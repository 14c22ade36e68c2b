"""Report inputs made from small synthetic data with the real evaluation functions (no Spark)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from sparkml_ops import evaluation as ev

FEATURES = ("amount", "count_7d", "segment")


def scored_rows(n: int = 600, seed: int = 1) -> pd.DataFrame:
    """Labels, scores that rank them well, and three features (one categorical)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(int)
    score = np.clip(0.15 + 0.5 * y + rng.normal(0, 0.2, n), 0, 1)
    return pd.DataFrame({"label": y, "score": score, "amount": rng.lognormal(3, 1, n) * (1 + y),
                         "count_7d": rng.poisson(4, n).astype(float), "segment": rng.choice(["mass", "affluent", "private"], n)})


def summary(rows: pd.DataFrame) -> dict:
    """An ``evaluation/summary.json`` as a training run writes it."""
    y, s = rows["label"], rows["score"]
    baseline = {n: ev.feature_baseline(rows[n], "string" if n == "segment" else "double") for n in FEATURES}

    def score_fn(x: pd.DataFrame) -> np.ndarray:
        return np.clip(x["amount"].to_numpy() / 100, 0, 1)

    return json.loads(json.dumps({
        "format": 1, "model": "fraud", "run_id": "train-1", "lower_is_better": ["brier", "log_loss"],
        "metrics": ev.classification_metrics(y, s, (0.3, 0.5)),
        "validation": {**ev.curves(y, s), **ev.ks_gini(y, s), "lift": ev.lift_table(y, s), "calibration": ev.calibration(y, s),
                       "confusion": [ev.confusion(y, s, t) for t in (0.3, 0.5)],
                       "importance": ev.permutation_importance(score_fn, rows[["amount", "count_7d"]], y)},
        "scores": {"train": ev.score_histogram(s * 0.9), "validation": ev.score_histogram(s)},
        "data": {},
        "features": {n: {"type": b["type"], "kind": b["kind"], "null_rate": b["null_rate"], "min": b.get("min"), "max": b.get("max"),
                         **({"mean": 1.0, "p25": 0.5, "p50": 1.0, "p75": 2.0} if b["kind"] == "numeric"
                            else {"categories": dict(zip(b["categories"], b["shares"]))})} for n, b in baseline.items()},
        "champion": {"ref": "fraud:1", "metrics": {"roc_auc": 0.7, "ks": 0.3}, "comparable": True},
        "gate": {"challenger": True, "champion": True, "reasons": ["roc_auc 0.8 beats the champion's 0.7"]},
        "card": {"intended_use": "rank card holders for review", "limitations": "not for <new> customers & co",
                 "description": "fraud propensity", "thresholds": [0.3, 0.5], "decision_threshold": 0.5},
    }))


def manifest(version: int = 2) -> dict:
    """A manifest of the fields the report reads."""
    return {"name": "fraud", "version": version, "format_version": 1, "flavor": "sklearn", "created_at": "2026-05-01T00:00:00Z",
            "created_by": {"user": "ana", "host": "edge1"}, "git": {"commit": "0123abc", "dirty": False}, "build_id": "0.1.0+0123abc",
            "description": "fraud propensity", "tags": {"team": "fraud-analytics", "risk_tier": "2"},
            "lineage": {"feature_set": "card_fraud", "feature_table": "ml_features.card_fraud", "label_table": "ml_raw.fraud_labels",
                        "date_range": {"start": "2026-04-01", "end": "2026-04-30"},
                        "train_dates": {"start": "2026-04-01", "end": "2026-04-16"},
                        "validation_dates": {"start": "2026-04-17", "end": "2026-04-30"},
                        "rows": {"total": 600, "train": 400, "validation": 200, "train_positives": 80, "validation_positives": 40},
                        "sampled_fraction": 1.0}}


def monitor_rows(days: int = 30, features: tuple[str, ...] = ("amount", "count_7d", "segment")) -> dict:
    """``score_stats``, ``feature_drift`` and ``job_runs`` rows of a model over ``days`` dates, drifting from day 20 on."""
    import datetime as dt

    start = dt.date(2026, 4, 1)
    stats, drift, runs = [], [], []
    for i in range(days):
        day = (start + dt.timedelta(days=i)).isoformat()
        version = 1 if i < 15 else 2
        shift = 0.0 if i < 20 else 0.05 * (i - 19)
        run = f"score-{day}"
        stats.append({"run_id": run, "model_name": "fraud", "model_version": version, "rows": 2000 + 10 * i,
                      "mean_score": 0.05 + shift / 4, "psi": 0.01 + shift, "psi_status": "ok" if shift < 0.1 else "warn",
                      "quantiles": json.dumps({"p01": 0.001, "p05": 0.002, "p25": 0.01, "p50": 0.03 + shift / 5, "p75": 0.06,
                                               "p95": 0.2 + shift / 3, "p99": 0.6}),
                      "computed_at": dt.datetime(2026, 5, 1, 0, 0, i), "score_date": day})
        for j, name in enumerate(features):
            psi = 0.005 * j + (shift * (j + 1) if name != "segment" else 0.0)
            drift.append({"run_id": run, "model_name": "fraud", "model_version": version, "feature": name, "kind": "numeric",
                          "rows": 2000 + 10 * i, "baseline_rows": 1500, "null_rate": 0.01 * j, "baseline_null_rate": 0.01 * j,
                          "out_of_range": int(shift * 100), "psi": psi,
                          "psi_status": "fail" if psi > 0.25 else "warn" if psi > 0.1 else "ok", "score_date": day})
        runs.append({"run_id": run, "job": "score", "status": "success", "exit_code": 0, "model_ref": "fraud@champion",
                     "model_version": version, "start_date": day, "end_date": day, "rows_in": 2000, "rows_out": 2000,
                     "duration_s": 42.0, "run_user": "etl", "run_host": "edge1", "started_at": dt.datetime(2026, 5, 1, 1, i),
                     "message": "{}"})
    runs.append({**runs[-1], "run_id": "score-failed", "status": "failed", "exit_code": 3, "message": "missing partition"})
    events = [{"event": "alias", "alias": "champion", "from": 1, "to": 2, "at": "2026-04-16T06:00:00.000000Z", "user": "ana"}]
    return {"score_stats": stats, "feature_drift": drift, "runs": runs, "events": events}


def regression_summary(n: int = 400, seed: int = 2) -> dict:
    """An ``evaluation/summary.json`` of a regression model (task ``regression``: errors, no curves)."""
    rng = np.random.default_rng(seed)
    rows = scored_rows(n, seed)
    y = rows["amount"].to_numpy()
    pred = y * 0.9 + rng.normal(0, 5, n)
    binary = summary(rows)
    return json.loads(json.dumps({
        **binary, "task": "regression", "lower_is_better": ["rmse", "mae"],
        "metrics": ev.regression_metrics(y, pred),
        "validation": {"importance": ev.permutation_importance(lambda x: x["amount"].to_numpy() * 0.9, rows[["amount", "count_7d"]],
                                                               y, task="regression")},
        "scores": {"train": ev.score_histogram(pred * 0.95, span=(0.0, float(pred.max()))),
                   "validation": ev.score_histogram(pred, span=(0.0, float(pred.max())))},
        "champion": None,
    }))
