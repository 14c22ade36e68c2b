"""The scoring transform: exact scores, checksum refusal, one deserialisation per Python worker."""

from __future__ import annotations

import hashlib
import pickle

import numpy as np
import pytest

from sparkml_ops.transforms.scoring import cached_model, predict_scores, score_with_model

pytestmark = pytest.mark.spark


class LinearScorer:
    """A python-function model: score = 0.1 * a + 0.01 * b. Unpickling appends the worker pid to a log file."""

    def __init__(self, log_path: str) -> None:
        self.log_path = log_path

    def predict(self, frame):
        return 0.1 * frame["a"].to_numpy() + 0.01 * frame["b"].to_numpy()

    def __setstate__(self, state):
        import os

        self.__dict__.update(state)
        with open(self.log_path, "a") as fh:
            fh.write(f"{os.getpid()}\n")


def test_transform_scores_every_row_exactly_and_keeps_key_columns(spark, tmp_path):
    model = LinearScorer(str(tmp_path / "unpickled.log"))
    blob = pickle.dumps(model)
    rows = [(f"c{i}", "2026-01-01", float(i), float(2 * i)) for i in range(100)]
    df = spark.createDataFrame(rows, "customer_id string, as_of_date string, a double, b double").repartition(4)
    bc = spark.sparkContext.broadcast(blob)
    out = df.transform(score_with_model(bc, hashlib.sha256(blob).hexdigest(), pickle.loads, ["a", "b"], ["customer_id", "as_of_date"]))
    assert out.columns == ["customer_id", "as_of_date", "score"]
    got = {r.customer_id: r.score for r in out.collect()}
    assert len(got) == 100
    for i in range(100):
        assert got[f"c{i}"] == pytest.approx(0.1 * i + 0.02 * i)


def test_model_is_deserialised_once_per_python_worker_not_per_batch(spark, tmp_path):
    log_path = tmp_path / "unpickled.log"
    blob = pickle.dumps(LinearScorer(str(log_path)))
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "50")
    try:
        df = spark.range(0, 20_000, numPartitions=8).selectExpr("cast(id as string) as k", "cast(id as double) as a", "1.0D as b")
        bc = spark.sparkContext.broadcast(blob)
        out = df.transform(score_with_model(bc, hashlib.sha256(blob).hexdigest(), pickle.loads, ["a", "b"], ["k"]))
        assert out.count() == 20_000  # 8 tasks x 50 batches of 50 rows
    finally:
        spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")
    pids = log_path.read_text().split()
    # local[2]: at most 2 concurrent workers; each unpickled the model once, whatever the batch count.
    assert 1 <= len(pids) <= 2
    assert len(set(pids)) == len(pids)


def test_bytes_not_matching_their_checksum_are_never_unpickled(tmp_path):
    log_path = tmp_path / "unpickled.log"
    blob = pickle.dumps(LinearScorer(str(log_path)))
    with pytest.raises(ValueError, match="refusing to deserialise"):
        cached_model(blob, hashlib.sha256(b"other bytes").hexdigest(), pickle.loads)
    assert not log_path.exists()


def test_predict_scores_uses_positive_class_probability_of_classifiers():
    from sklearn.linear_model import LogisticRegression

    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    clf = LogisticRegression().fit(X, [0, 0, 1, 1])
    np.testing.assert_allclose(predict_scores(clf, X), clf.predict_proba(X)[:, 1])


def test_logistic_regression_runs_in_the_jvm_with_sklearns_probabilities(spark):
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    from sparkml_ops.transforms.scoring import linear_score_transform

    rng = np.random.default_rng(3)
    X = pd.DataFrame(rng.normal(scale=3.0, size=(400, 3)), columns=["b", "a", "c"])  # trained in another column order
    y = (X["a"] - 2 * X["b"] + rng.normal(size=400) > 0).astype(int)
    model = LogisticRegression(C=0.5).fit(X, y)
    df = spark.createDataFrame([(f"c{i}", *map(float, X.loc[i, ["a", "b", "c"]])) for i in range(400)], "id string, a double, b double, c double")
    out = df.transform(linear_score_transform(model, ["a", "b", "c"], ["id"]))
    assert "PythonUDF" not in out._jdf.queryExecution().executedPlan().toString() and out.columns == ["id", "score"]
    expected = model.predict_proba(X)[:, 1]
    got = {r.id: r.score for r in out.collect()}
    assert all(got[f"c{i}"] == pytest.approx(expected[i], rel=1e-12, abs=1e-15) for i in range(400))
    # Anything else keeps the Python path: trees, multiclass, a signature that does not match.
    assert linear_score_transform(HistGradientBoostingClassifier(max_iter=5).fit(X, y), ["a", "b", "c"], ["id"]) is None
    assert linear_score_transform(LogisticRegression().fit(X, rng.integers(0, 3, 400)), ["a", "b", "c"], ["id"]) is None
    assert linear_score_transform(model, ["a", "b", "d"], ["id"]) is None
    with_null = spark.createDataFrame([("x", 1.0, None, 0.0)], "id string, a double, b double, c double")
    with pytest.raises(Exception, match="a feature of a, b, c is NULL or NaN; the model cannot score it"):
        with_null.transform(linear_score_transform(model, ["a", "b", "c"], ["id"])).collect()
