"""The model report of one registry version: validation figures, training data and the model card."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sparkml_ops.reports import charts
from sparkml_ops.reports.pages import render, trusted

# Headline metrics in the order a validator reads them; the rest of the metrics follow.
HEADLINE = ("roc_auc", "gini", "ks", "pr_auc", "log_loss", "brier", "rmse", "mae", "r2", "base_rate", "rows", "positives")
COUNTS = ("rows", "positives")


@dataclass(frozen=True)
class ModelReportData:
    """What the model report is made of: the version's manifest, its ``evaluation/summary.json``, the model's history."""

    manifest: Mapping[str, Any]
    summary: Mapping[str, Any]
    history: Sequence[Mapping[str, Any]] = field(default_factory=tuple)


def render_model_report(data: ModelReportData) -> str:
    """The model report as one self-contained HTML page."""
    m, s = data.manifest, data.summary
    ref = f"{m['name']}:{m['version']}"
    validation, binary = s["validation"], s.get("task", "binary") == "binary"
    figures = {
        "scores": charts.score_distributions("scores", {"training": s["scores"]["train"],
                                                        "validation": s["scores"]["validation"]}),
        "importance": charts.importance("importance", validation["importance"],
                                        "ROC AUC drop when shuffled" if binary else "RMSE added when shuffled"),
    }
    if binary:  # a regression has no curves, lift, calibration or confusion matrices
        figures.update(roc_pr=charts.roc_pr("roc-pr", validation, ref), gain=charts.gain("gain", validation["lift"]),
                       calibration=charts.calibration("calibration", validation["calibration"]))
    return render("model.html", ref=ref, m=m, s=s, lineage=m.get("lineage") or {}, binary=binary,
                  charts={k: trusted(v) for k, v in figures.items()}, metrics=headline_metrics(s),
                  card=model_card(m, s), aliases=alias_history(data.history), population=population(m, s))


def headline_metrics(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rows of the headline table: metric, this version, the champion on the same window, which is better."""
    mine = {**summary.get("metrics", {}), **{k: summary["validation"][k] for k in ("ks", "gini") if k in summary["validation"]}}
    champion = (summary.get("champion") or {}).get("metrics") or {}
    lower = set(summary.get("lower_is_better") or ())  # the training run says which metrics improve downwards
    names = [n for n in HEADLINE if n in mine] + sorted(n for n in mine if n not in HEADLINE)
    rows = []
    for name in names:
        a, b = mine.get(name), champion.get(name)
        if name in COUNTS:
            a, b = (int(v) if isinstance(v, float) and v.is_integer() else v for v in (a, b))
        better = None
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and name not in (*COUNTS, "base_rate"):
            better = (a < b) if name in lower else (a > b)
        rows.append({"name": name, "mine": a, "champion": b, "better": better})
    return rows


def model_card(manifest: Mapping[str, Any], summary: Mapping[str, Any]) -> dict[str, Any]:
    """The model card's fields: who owns the model, what it is for, where its data came from, what it cannot do."""
    tags = manifest.get("tags") or {}
    card = summary.get("card") or {}
    lineage = manifest.get("lineage") or {}
    git = manifest.get("git") or {}
    return {
        "description": manifest.get("description") or card.get("description") or "",
        "owner": tags.get("owner") or tags.get("team") or "not tagged (tags.owner)",
        "risk_tier": tags.get("risk_tier") or "not tagged (tags.risk_tier)",
        "intended_use": card.get("intended_use") or "not stated (intended_use in the model config)",
        "limitations": card.get("limitations") or "none recorded (limitations in the model config)",
        "feature_set": lineage.get("feature_set", "—"),
        "spec_hash": lineage.get("feature_spec_sha256") or lineage.get("spec_hash") or "not recorded",
        "config_hash": lineage.get("model_config_sha256") or "not recorded",
        "git": f"{git.get('commit') or 'unknown'}{' (dirty tree)' if git.get('dirty') else ''}",
        "build_id": manifest.get("build_id") or "none (not a deployed build)",
        "label_table": lineage.get("label_table", "—"),
        "partitions": _partitions(lineage, ((manifest.get("extra") or {}).get("reproduction") or {}).get("inputs")),
        "created": f"{manifest.get('created_at', '')} by {(manifest.get('created_by') or {}).get('user', '?')}"
                   f"@{(manifest.get('created_by') or {}).get('host', '?')}",
        "tags": dict(tags),
    }


def _partitions(lineage: Mapping[str, Any], inputs: Sequence[Mapping[str, Any]] | None) -> list[str]:
    """The partitions the training read, per table (from the run's reproduction record), else its label dates."""
    if not inputs:
        dates = lineage.get("date_range") or {}
        return [f"label dates {dates.get('start', '?')}..{dates.get('end', '?')} of {lineage.get('label_table', '?')}"]
    tables: dict[str, list[Mapping[str, Any]]] = {}
    for p in inputs:
        tables.setdefault(str(p.get("table")), []).append(p)
    out = []
    for table, parts in tables.items():
        specs = sorted(",".join(f"{k}={v}" for k, v in (p.get("partition") or {}).items()) for p in parts)
        span = f"{specs[0]} .. {specs[-1]}" if specs and specs[0] else "unpartitioned"
        out.append(f"{table}: {len(parts)} partition(s) {span}, {sum(int(p.get('rows') or 0) for p in parts):,} rows")
    return out


def alias_history(history: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The alias moves and publishes so far, oldest first."""
    return [{"at": e.get("at", ""), "event": e.get("event", ""), "alias": e.get("alias", ""),
             "from": e.get("from"), "to": e.get("to", e.get("version")), "user": e.get("user", ""), "reason": e.get("reason", "")}
            for e in history if e.get("event") in ("alias", "publish", "archive", "import")]


def population(manifest: Mapping[str, Any], summary: Mapping[str, Any]) -> dict[str, Any]:
    """Who the model was trained on: row counts and base rates per split, and the population rule in force."""
    lineage = manifest.get("lineage") or {}
    rows = lineage.get("rows") or {}
    def rate(pos: str, n: str) -> float | None:
        return rows[pos] / rows[n] if rows.get(n) else None
    return {"rows": rows, "train_rate": rate("train_positives", "train"),
            "validation_rate": rate("validation_positives", "validation"),
            "sampled": lineage.get("sampled_fraction"), "population": lineage.get("population") or "every label row"}
