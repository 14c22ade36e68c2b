"""The reports open in a real headless Chromium, offline: every chart drawn, no console error, no request but the file."""

from __future__ import annotations

from pathlib import Path

from sparkml_ops.reports import ModelReportData, MonitorData, render_model_report, render_monitor_report

from tests.reports import samples
from tests.reports.browser import open_report

MODEL_CHARTS = {"roc-pr", "gain", "calibration", "scores", "importance"}
MONITOR_CHARTS = {"volume", "score-quantiles", "score-psi", "feature-psi", "feature-nulls"}
HISTORY = [{"event": "publish", "version": 1, "at": "2026-04-01T00:00:00Z", "user": "ana"},
           {"event": "alias", "alias": "champion", "from": None, "to": 1, "at": "2026-04-01T00:00:01Z", "user": "ana",
            "reason": "training run train-0"}]


def assert_opens_offline(html: str, tmp_path: Path, name: str, charts: set[str]) -> None:
    """The page renders from file:// with every chart non-empty, no console error and no request besides itself."""
    page = tmp_path / f"{name}.html"
    page.write_text(html, encoding="utf-8")
    opened = open_report(page, tmp_path / "profile", name)
    assert set(opened.charts) == charts
    for chart, (width, height, elements) in opened.charts.items():
        assert width > 200 and height > 100 and elements > 10, chart
    assert opened.console_errors == []
    assert opened.requests == [page.resolve().as_uri()]
    assert opened.screenshot.stat().st_size > 10_000


def test_model_report_draws_every_chart_offline(tmp_path):
    html = render_model_report(ModelReportData(samples.manifest(), samples.summary(samples.scored_rows()), HISTORY))
    assert_opens_offline(html, tmp_path, "model-report", MODEL_CHARTS)



def test_a_regression_model_report_shows_errors_and_importance_and_no_classification_charts(tmp_path):
    summary = samples.regression_summary()
    html = render_model_report(ModelReportData(samples.manifest(), summary, HISTORY))
    assert_opens_offline(html, tmp_path, "regression-report", {"scores", "importance"})
    assert "RMSE added when shuffled" in html and "Prediction distributions, training vs validation</h" in html
    for absent in ("ROC and precision-recall", "Lift and gain by decile", "Confusion matrices", "KS statistic"):
        assert absent not in html, absent
    for name in ("rmse", "mae", "r2"):
        assert f"<tr><td>{name}</td>" in html, name
    importance = {r["feature"]: r["importance"] for r in summary["validation"]["importance"]}
    assert importance["amount"] > 1.0 and abs(importance["count_7d"]) < 1e-9  # the score reads amount only

def test_model_report_has_the_contents_validators_expect_and_escapes_free_text():
    html = render_model_report(ModelReportData(samples.manifest(), samples.summary(samples.scored_rows()), HISTORY))
    for heading in ("Headline metrics on the validation window", "ROC and precision-recall", "Lift and gain by decile",
                    "Calibration", "Score distributions, training vs validation", "Confusion matrices",
                    "Permutation importance on validation", "Training data: per-feature summaries (training split)", "Model card",
                    "Alias history so far", "Population"):
        assert f"{heading}</h" in html, heading
    assert "champion fraud:1" in html and "KS statistic <strong>" in html and "Gini <strong>" in html
    assert "not for &lt;new&gt; customers &amp; co" in html  # model config text is escaped, never markup
    assert "fraud-analytics" in html and "risk tier</dt><dd>2</dd>" in html
    # Namespaces name, they do not fetch; nothing else may point outside the file.
    assert "<script" not in html and "http" not in html.replace("http://www.w3.org/", "").replace("http-equiv", "")


def test_monitor_report_draws_every_chart_offline(tmp_path):
    rows = samples.monitor_rows()
    data = MonitorData("fraud", "2026-04-01", "2026-04-30", rows["score_stats"], rows["feature_drift"], rows["runs"],
                       rows["events"], {"psi_warn": 0.1, "psi_fail": 0.25, "feature_psi_warn": 0.1, "feature_psi_fail": 0.25},
                       {1: 1500, 2: 1600})
    html = render_monitor_report(data)
    assert_opens_offline(html, tmp_path, "monitor-report", MONITOR_CHARTS)
    assert "champion -&gt; v2" in html and "v2 scores" in html  # the alias move and the new version are marked
    assert "score-failed" in html and "status-failed" in html


def test_monitor_report_of_a_range_without_scores_says_so(tmp_path):
    html = render_monitor_report(MonitorData("fraud", "2025-01-01", "2025-01-31", [], [], []))
    assert "No scores in this range" in html and "no run recorded" in html
