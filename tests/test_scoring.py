"""The scoring use-case on real Spark + Hive (Derby) + the local registry: exact rows, idempotence, errors."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from sparkml_ops.errors import DataValidationError, IntegrityError, ModelNotFoundError, RefusedError
from sparkml_ops.evaluation import score_baseline
from sparkml_ops.identifiers import parse_ref
from sparkml_ops.modelconfig import ModelConfig
from sparkml_ops.registry import Provenance, Signature, open_registry
from sparkml_ops.scoring import run_scoring

pytestmark = pytest.mark.spark

PROV = Provenance(user="tester", host="testhost")
FS = "t_scoring_fs"
D1, D2 = date(2026, 3, 1), date(2026, 3, 2)


def _config(**scoring) -> ModelConfig:
    return ModelConfig.model_validate({
        "name": "t_score_model", "feature_set": FS, "label_table": "ml_raw.labels",
        "estimator": {"class": "sklearn.linear_model.LogisticRegression"},
        "scoring": {"threshold": 0.5, **scoring},
    })


@pytest.fixture(scope="module")
def published(spark, local_settings):
    """A logistic regression on (f1, f2) published with lineage pointing at the FS feature table."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(7)
    X = rng.normal(size=(500, 2))
    y = (X[:, 0] + 0.5 * X[:, 1] + rng.normal(scale=0.5, size=500) > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    reg = open_registry(local_settings)
    mv = reg.publish(
        "t_score_model", model, flavor="sklearn", provenance=PROV,
        signature=Signature(inputs=[("f1", "double"), ("f2", "double")], outputs=[("score", "double")]),
        lineage={"feature_set": FS, "entity_keys": ["customer_id"]},
        extra={"baseline": score_baseline(model.predict_proba(X)[:, 1])},
    )
    reg.set_alias("t_score_model", "champion", mv.version, provenance=PROV)
    db = local_settings.hive.databases.features
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {db}")
    spark.sql(f"DROP TABLE IF EXISTS {db}.{FS}")
    spark.sql(f"CREATE TABLE {db}.{FS} (customer_id STRING, f1 DOUBLE, f2 DOUBLE) PARTITIONED BY (as_of_date STRING) STORED AS PARQUET")
    rows = [(f"c{i:03d}", float(X[i, 0]), float(X[i, 1]), day) for day in ("2026-03-01", "2026-03-02") for i in range(200)]
    spark.createDataFrame(rows, "customer_id string, f1 double, f2 double, as_of_date string").write.insertInto(f"{db}.{FS}")
    return model, X, mv


def _scores(spark, settings, day):
    return spark.sql(
        f"SELECT entity_key, entity_key_names, score, decision, threshold, model_version, run_id FROM {settings.hive.databases.scores}.scores "
        f"WHERE model_name = 't_score_model' AND score_date = '{day}'"
    ).collect()


def test_scores_match_the_model_exactly_with_decision_and_lineage_columns(spark, local_settings, published, caplog):
    model, X, mv = published
    with caplog.at_level("INFO", logger="sparkml_ops.scoring"):
        result = run_scoring(spark, local_settings, _config(), parse_ref("t_score_model@champion"), [D1], PROV)
    assert "in the JVM as a linear expression" in caplog.text  # a logistic regression needs no Python workers
    assert (result.rows_in, result.rows_out, result.model_version, result.exit_code) == (200, 200, mv.version, 0)
    rows = _scores(spark, local_settings, "2026-03-01")
    expected = model.predict_proba(X[:200])[:, 1]
    got = {r.entity_key: r for r in rows}
    assert len(got) == 200
    for i in range(200):
        row = got[f"c{i:03d}"]
        assert row.score == pytest.approx(expected[i], abs=1e-12)
        assert row.decision == int(expected[i] >= 0.5)
        assert (row.entity_key_names, row.threshold, row.model_version, row.run_id) == ("customer_id", 0.5, mv.version, result.run_id)
    marker = Path(result.markers[0].removeprefix("file:"))
    assert json.loads(marker.read_text())["run_id"] == result.run_id


def test_rerun_replaces_exactly_that_partition_and_records_runs(spark, local_settings, published):
    first = run_scoring(spark, local_settings, _config(), parse_ref("t_score_model@champion"), [D1, D2], PROV)
    second = run_scoring(spark, local_settings, _config(), parse_ref("t_score_model@champion"), [D2], PROV)
    d1 = _scores(spark, local_settings, "2026-03-01")
    d2 = _scores(spark, local_settings, "2026-03-02")
    assert len(d1) == 200 and {r.run_id for r in d1} == {first.run_id}
    assert len(d2) == 200 and {r.run_id for r in d2} == {second.run_id}
    runs = spark.sql(
        f"SELECT run_id, status, exit_code, rows_in, rows_out, model_version, start_date, end_date, run_user "
        f"FROM {local_settings.hive.databases.ops}.job_runs WHERE run_id IN ('{first.run_id}', '{second.run_id}') ORDER BY started_at"
    ).collect()
    assert [(r.status, r.exit_code, r.rows_in, r.rows_out, r.start_date, r.end_date, r.run_user) for r in runs] == [
        ("success", 0, 400, 400, "2026-03-01", "2026-03-02", "tester"),
        ("success", 0, 200, 200, "2026-03-02", "2026-03-02", "tester"),
    ]
    stats = spark.sql(
        f"SELECT score_date, rows, mean_score, psi, psi_status, quantiles FROM {local_settings.hive.databases.ops}.score_stats "
        f"WHERE run_id = '{second.run_id}'"
    ).collect()
    assert len(stats) == 1 and stats[0].rows == 200 and stats[0].psi < 0.1 and stats[0].psi_status == "ok"
    quantiles = json.loads(stats[0].quantiles)
    assert list(quantiles) == ["p01", "p05", "p25", "p50", "p75", "p95", "p99"]
    scores = np.array([r.score for r in d2])
    assert stats[0].mean_score == pytest.approx(scores.mean(), abs=1e-12)
    # From 2000 cells per date: between the written scores around each rank, give or take one cell.
    qs = [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99]
    low, high = np.quantile(scores, qs, method="lower") - 1 / 2000, np.quantile(scores, qs, method="higher") + 1 / 2000
    assert all(lo <= v <= hi for lo, v, hi in zip(low, quantiles.values(), high)), (low, quantiles, high)


def test_missing_feature_partition_fails_with_exit_3_and_writes_nothing(spark, local_settings, published):
    before = spark.sql(f"SELECT count(*) FROM {local_settings.hive.databases.scores}.scores").first()[0] if spark.catalog.tableExists(f"{local_settings.hive.databases.scores}.scores") else 0
    with pytest.raises(DataValidationError) as err:
        run_scoring(spark, local_settings, _config(), parse_ref("t_score_model@champion"), [D1, date(2026, 3, 5)], PROV)
    assert err.value.exit_code == 3
    assert str(err.value).startswith(
        f"feature table {local_settings.hive.databases.features}.{FS} has no partition as_of_date=2026-03-05; nothing was scored."
    )
    after = spark.sql(f"SELECT count(*) FROM {local_settings.hive.databases.scores}.scores").first()[0] if before else 0
    assert after == before
    failed = spark.sql(
        f"SELECT exit_code, message FROM {local_settings.hive.databases.ops}.job_runs WHERE status = 'failed' AND end_date = '2026-03-05'"
    ).collect()
    assert len(failed) == 1 and failed[0].exit_code == 3


def test_mistyped_feature_column_is_refused_before_any_work(spark, local_settings, published):
    db = local_settings.hive.databases.features
    spark.sql(f"DROP TABLE IF EXISTS {db}.t_scoring_bad")
    spark.sql(f"CREATE TABLE {db}.t_scoring_bad (customer_id STRING, f1 STRING) PARTITIONED BY (as_of_date STRING) STORED AS PARQUET")
    spark.sql(f"INSERT INTO {db}.t_scoring_bad PARTITION (as_of_date='2026-03-01') VALUES ('c1', 'x')")
    model, X, _ = published
    reg = open_registry(local_settings)
    mv = reg.publish("t_score_model", model, flavor="sklearn", provenance=PROV,
                     signature=Signature(inputs=[("f1", "double"), ("f2", "double")]),
                     lineage={"feature_set": "t_scoring_bad", "entity_keys": ["customer_id"]})
    with pytest.raises(DataValidationError) as err:
        run_scoring(spark, local_settings, _config(), parse_ref(f"t_score_model:{mv.version}"), [D1], PROV)
    assert str(err.value).startswith(
        f"feature table {db}.t_scoring_bad does not match the model's input signature: missing columns ['f2'], "
        "mistyped columns: f1 is string, model expects double. Present: ['as_of_date', 'customer_id', 'f1']."
    )


def test_drift_above_limit_fails_when_configured_but_keeps_scores(spark, local_settings, published):
    db = local_settings.hive.databases.features
    spark.sql(f"INSERT OVERWRITE TABLE {db}.{FS} PARTITION (as_of_date='2026-03-09') SELECT concat('c', id), 5.0D, 5.0D FROM range(100)")
    with pytest.raises(RefusedError) as err:
        run_scoring(spark, local_settings, _config(fail_on_drift=True), parse_ref("t_score_model@champion"), [date(2026, 3, 9)], PROV)
    assert err.value.exit_code == 7
    assert "score drift above psi_fail=0.25 for t_score_model:" in str(err.value)
    assert len(_scores(spark, local_settings, "2026-03-09")) == 100


def test_refused_drift_run_is_recorded_with_exit_7_its_row_counts_and_no_marker(spark, local_settings, published):
    db = local_settings.hive.databases.features
    spark.sql(f"INSERT OVERWRITE TABLE {db}.{FS} PARTITION (as_of_date='2026-03-10') SELECT concat('c', id), 5.0D, 5.0D FROM range(50)")
    with pytest.raises(RefusedError):
        run_scoring(spark, local_settings, _config(fail_on_drift=True), parse_ref("t_score_model@champion"), [date(2026, 3, 10)], PROV)
    runs = spark.sql(
        f"SELECT status, exit_code, model_name, rows_in, rows_out, message FROM {local_settings.hive.databases.ops}.job_runs "
        "WHERE job = 'score' AND start_date = '2026-03-10'"
    ).collect()
    assert [(r.status, r.exit_code, r.model_name, r.rows_in, r.rows_out) for r in runs] == [("failed", 7, "t_score_model", 50, 50)]
    assert runs[0].message.startswith("score drift above psi_fail=0.25 for t_score_model:")
    root = Path(spark.conf.get("spark.sql.warehouse.dir").removeprefix("file:"))
    partition = root / f"{local_settings.hive.databases.scores}.db" / "scores" / "score_date=2026-03-10" / "model_name=t_score_model"
    assert partition.is_dir() and not (partition / "_SUCCESS").exists()


def test_unknown_alias_and_tampered_artifact(spark, local_settings, published):
    with pytest.raises(ModelNotFoundError):
        run_scoring(spark, local_settings, _config(), parse_ref("t_score_model@nope"), [D1], PROV)
    model, _, _ = published
    reg = open_registry(local_settings)
    mv = reg.publish("t_score_model", model, flavor="sklearn", provenance=PROV,
                     signature=Signature(inputs=[("f1", "double"), ("f2", "double")]),
                     lineage={"feature_set": FS, "entity_keys": ["customer_id"]})
    root = Path(local_settings.registry.uri.removeprefix("file://"))
    victim = next(p for p in (root / "t_score_model" / str(mv.version) / "model").rglob("*") if p.is_file())
    victim.chmod(0o644)
    victim.write_bytes(victim.read_bytes()[:-1] + b"\x00")
    with pytest.raises(IntegrityError):
        run_scoring(spark, local_settings, _config(), parse_ref(f"t_score_model:{mv.version}"), [D1], PROV)


def test_spark_ml_pipeline_model_is_scored_in_the_jvm_with_the_same_output_schema(spark, local_settings, published):
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import VectorAssembler

    _, X, _ = published
    db = local_settings.hive.databases.features
    train = spark.createDataFrame([(float(a), float(b), float(a + 0.5 * b > 0)) for a, b in X], "f1 double, f2 double, label double")
    model = Pipeline(stages=[VectorAssembler(inputCols=["f1", "f2"], outputCol="features"), LogisticRegression(maxIter=20)]).fit(train)
    reg = open_registry(local_settings)
    mv = reg.publish("t_spark_model", model, flavor="sparkml", provenance=PROV,
                     signature=Signature(inputs=[("f1", "double"), ("f2", "double")], outputs=[("score", "double")]),
                     lineage={"feature_set": FS, "entity_keys": ["customer_id"]})
    config = _config().model_copy(update={"name": "t_spark_model"})
    result = run_scoring(spark, local_settings, config, parse_ref(f"t_spark_model:{mv.version}"), [D1, D2], PROV)
    assert (result.rows_in, result.rows_out, result.exit_code) == (400, 400, 0)
    expected = {r.customer_id: float(r.probability[1]) for r in
                model.transform(spark.table(f"{db}.{FS}").where("as_of_date = '2026-03-02'")).collect()}
    rows = spark.sql(f"SELECT entity_key, score, decision, model_version FROM {local_settings.hive.databases.scores}.scores "
                     "WHERE model_name = 't_spark_model' AND score_date = '2026-03-02'").collect()
    assert len(rows) == 200 and {r.entity_key for r in rows} == set(expected)
    for r in rows:
        assert r.score == pytest.approx(expected[r.entity_key], abs=1e-12)
        assert (r.decision, r.model_version) == (int(expected[r.entity_key] >= 0.5), mv.version)


def test_entity_key_is_the_key_itself_or_the_keys_joined_with_a_pipe(spark):
    from datetime import datetime

    from sparkml_ops.transforms.scoring import output_rows

    frame = spark.createDataFrame([("C1", 7, 0.9), (None, 8, 0.1)], "customer_id string, card int, score double")
    one = frame.transform(output_rows(["customer_id"], None, 1, "r", datetime(2026, 1, 1))).select("entity_key", "decision").collect()
    two = frame.transform(output_rows(["customer_id", "card"], 0.5, 1, "r", datetime(2026, 1, 1))).select("entity_key", "decision").collect()
    # A NULL key part is skipped, as Hive's concat_ws does; a single NULL key becomes '' either way.
    assert [tuple(r) for r in one] == [("C1", None), ("", None)]
    assert [tuple(r) for r in two] == [("C1|7", 1), ("8", 0)]


def test_scores_outside_zero_one_get_quantiles_of_their_own_range(spark, local_settings, published):
    """A model without predict_proba (a regressor) scores with predict: quantiles must not be clipped to [0, 1]."""
    from sklearn.linear_model import LinearRegression

    _, X, _ = published
    model = LinearRegression().fit(X, 10 * X[:, 0] + 3)  # scores roughly -27 .. 33
    mv = open_registry(local_settings).publish(
        "t_regressor", model, flavor="sklearn", provenance=PROV,
        signature=Signature(inputs=[("f1", "double"), ("f2", "double")], outputs=[("score", "double")]),
        lineage={"feature_set": FS, "entity_keys": ["customer_id"]})
    config = _config().model_copy(update={"name": "t_regressor"})
    result = run_scoring(spark, local_settings, config, parse_ref(f"t_regressor:{mv.version}"), [D1], PROV)
    scores = np.array([r.score for r in spark.sql(
        f"SELECT score FROM {local_settings.hive.databases.scores}.scores WHERE model_name = 't_regressor'").collect()])
    assert len(scores) == 200 and scores.min() < -5 and scores.max() > 5
    stats = spark.sql(f"SELECT quantiles FROM {local_settings.hive.databases.ops}.score_stats "
                      f"WHERE run_id = '{result.run_id}'").collect()
    got = list(json.loads(stats[0].quantiles).values())
    qs = [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99]
    low, high = np.quantile(scores, qs, method="lower"), np.quantile(scores, qs, method="higher")
    assert all(lo - 1e-9 <= v <= hi + 1e-9 for lo, v, hi in zip(low, got, high)), (low, got, high)
