"""The README's first command, stage by stage, on the shared local session: data -> ... -> query."""

from __future__ import annotations

from datetime import date

import pytest

from sparkml_ops.quickstart import QuickstartOptions, run_chain
from sparkml_ops.registry import Provenance, open_registry

pytestmark = pytest.mark.spark


def test_whole_chain_scores_every_customer_with_the_trained_model_and_records_lineage(spark, local_settings):
    prov = Provenance(user="quickstart-test", host="ci", git_commit="0123abc", build_id="0.1.0+0123abc")
    report = run_chain(spark, local_settings, prov, QuickstartOptions(today=date(2026, 5, 1), customers=200, tx_per_day=300,
                                                                 history_days=60))

    steps = dict(report.steps)
    assert steps["demo data"] == "18000 transactions 2026-03-02..2026-04-30 in ml_raw.card_transactions"
    assert steps["features"] == "200 rows as of 2026-05-01 in ml_features.card_fraud"
    assert steps["score"].startswith("200 rows by card_fraud:")
    assert len(report.sample_rows) == 10
    scores = [row[1] for row in report.sample_rows]
    assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)

    registry = open_registry(local_settings)
    version = registry.resolve(report.model_ref)
    manifest = version.manifest
    assert manifest["created_by"]["user"] == "quickstart-test"
    assert manifest["git"]["commit"] == "0123abc" and manifest["build_id"] == "0.1.0+0123abc"
    lineage = manifest["lineage"]
    assert lineage["feature_set"] == "card_fraud" and lineage["label_table"] == "ml_raw.fraud_labels"
    assert lineage["train_dates"] == {"start": "2026-04-01", "end": "2026-04-16"}
    assert lineage["validation_dates"] == {"start": "2026-04-17", "end": "2026-04-30"}
    assert lineage["rows"]["train"] > 0 and lineage["rows"]["validation"] > 0
    assert 0.0 < manifest["metrics"]["roc_auc"] <= 1.0
    assert len(manifest["extra"]["baseline"]["proportions"]) >= 2

    rows = spark.sql(
        "SELECT count(*) AS n, count(DISTINCT entity_key) AS k, min(model_version) AS v FROM ml_scores.scores "
        "WHERE model_name = 'card_fraud' AND score_date = '2026-05-01'"
    ).first()
    assert (rows.n, rows.k, rows.v) == (200, 200, version.version)
    runs = {r.job: r.status for r in spark.sql("SELECT job, status FROM ml_ops.job_runs WHERE run_user = 'quickstart-test'").collect()}
    assert runs == {"train": "success", "score": "success"}
