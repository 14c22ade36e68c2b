"""The monitoring report of one model over a date range, from the ops tables' rows (never from the scores)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sparkml_ops.reports import charts
from sparkml_ops.reports.pages import render, trusted


@dataclass(frozen=True)
class MonitorData:
    """The rows a monitoring report is drawn from, each a plain mapping of its table's columns.

    ``score_stats``: ``ml_ops.score_stats`` rows (the latest run per date); ``feature_drift``: ``ml_ops.feature_drift``
    rows (same runs); ``runs``: ``ml_ops.job_runs`` rows of the model; ``events``: the registry's alias moves and
    publishes; ``limits``: the PSI limits in force (``psi_warn``, ``psi_fail``, ``feature_psi_warn``, ``feature_psi_fail``).
    """

    model: str
    start: str
    end: str
    score_stats: Sequence[Mapping[str, Any]]
    feature_drift: Sequence[Mapping[str, Any]]
    runs: Sequence[Mapping[str, Any]]
    events: Sequence[Mapping[str, Any]] = field(default_factory=tuple)
    limits: Mapping[str, float] = field(default_factory=dict)
    training_rows: Mapping[int, int] = field(default_factory=dict)  # version -> training rows, for the population line


def render_monitor_report(data: MonitorData) -> str:
    """The monitoring report as one self-contained HTML page."""
    days = sorted({r["score_date"] for r in data.score_stats})
    stats = {r["score_date"]: r for r in data.score_stats}
    marks = _marks(data.events, data.score_stats)
    figures = {}
    if days:
        figures = _figures(data, days, stats, marks)
    features, psi_grid, null_grid = _feature_grids(data.feature_drift, days)
    return render("monitor.html", d=data, days=days, stats=[stats[d] for d in days], marks=marks,
                  charts={k: trusted(v) for k, v in figures.items()},
                  heat=trusted(charts.heatmap("feature-psi", "Per-feature PSI", days, features, psi_grid,
                                              (max(0.5, data.limits.get("feature_psi_fail", 0.25) * 2), "PSI")))
                  if features else None,
                  nulls=trusted(charts.heatmap("feature-nulls", "Null rate per feature", days, features, null_grid,
                                               (_top(null_grid, 0.05), "share of rows null"))) if features else None,
                  drifted=_drifted(data.feature_drift), runs=sorted(data.runs, key=lambda r: str(r.get("started_at"))))


def _figures(data: MonitorData, days: list[str], stats: Mapping[str, Mapping[str, Any]],
             marks: list[tuple[str, str]]) -> dict[str, str]:
    q = {d: json.loads(stats[d].get("quantiles") or "{}") for d in days}
    volume = {"rows scored": [stats[d]["rows"] for d in days]}
    trained = {stats[d]["model_version"]: data.training_rows.get(stats[d]["model_version"]) for d in days}
    if any(v for v in trained.values()):
        volume["training rows of the version"] = [trained[stats[d]["model_version"]] for d in days]
    limits = {k: v for k, v in data.limits.items() if k in ("psi_warn", "psi_fail")}
    return {
        "volume": charts.series("volume", "Volume: rows scored per date (the population)", days, volume, marks),
        "scores": charts.band("score-quantiles", "Score mean and quantiles", days,
                              {**{k: [q[d].get(k) for d in days] for k in ("p05", "p50", "p95")},
                               "mean": [stats[d].get("mean_score") for d in days]}, marks),
        "psi": charts.series("score-psi", "Score PSI against the training baseline", days,
                             {"score PSI": [stats[d].get("psi") for d in days]}, marks, limits),
    }


def _feature_grids(rows: Sequence[Mapping[str, Any]], days: list[str]) -> tuple[list[str], list[list], list[list]]:
    """Features (most drifted first) and their PSI and null-rate grids over ``days``."""
    by = {(r["feature"], r["score_date"]): r for r in rows}
    worst: dict[str, float] = {}
    for r in rows:
        worst[r["feature"]] = max(worst.get(r["feature"], 0.0), r.get("psi") or 0.0)
    features = sorted(worst, key=lambda f: (-worst[f], f))
    psi = [[(by.get((f, d)) or {}).get("psi") for d in days] for f in features]
    nulls = [[(by.get((f, d)) or {}).get("null_rate") for d in days] for f in features]
    return features, psi, nulls


def _drifted(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Feature-dates whose drift status is warn or fail, worst first."""
    bad = [r for r in rows if r.get("psi_status") in ("warn", "fail")]
    return sorted(bad, key=lambda r: (-(r.get("psi") or 0.0), r["score_date"], r["feature"]))


def _marks(events: Sequence[Mapping[str, Any]], stats: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(date, label) of alias moves, and of the first date each model version scored."""
    out = [(str(e.get("at", ""))[:10], f"{e.get('alias')} -> v{e.get('to')}") for e in events if e.get("event") == "alias"]
    first: dict[int, str] = {}
    for r in sorted(stats, key=lambda r: r["score_date"]):
        first.setdefault(r["model_version"], r["score_date"])
    out += [(day, f"v{v} scores") for v, day in first.items()]
    return sorted(set(out))


def _top(grid: list[list], floor: float) -> float:
    """The colour scale's top: the largest value (a little above), at least ``floor``, so small rates stay visible."""
    return max([floor] + [1.2 * v for row in grid for v in row if v is not None])
