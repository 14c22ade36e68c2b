"""Rules models: thresholds checked up front, stored as canonical JSON, the same numbers in the JVM and on pandas rows."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sparkml_ops.registry import ModelRegistry, Provenance, Signature
from sparkml_ops.io.storage import LocalStorage
from sparkml_ops.transforms.rules import RulesModel

RULE = "LEAST(1.0, 0.5 * CAST(coalesce(spend, 0) > {spike} AS DOUBLE) + 0.5 * CAST(coalesce(foreign_tx, 0) >= {abroad} AS DOUBLE))"
INPUTS = (("spend", "double"), ("foreign_tx", "bigint"))


def _model() -> RulesModel:
    return RulesModel(RULE, {"spike": 2.5, "abroad": 1}, INPUTS)


def test_thresholds_fill_the_placeholders_as_double_literals():
    assert _model().sql() == ("LEAST(1.0, 0.5 * CAST(coalesce(spend, 0) > CAST(2.5 AS DOUBLE) AS DOUBLE) "
                              "+ 0.5 * CAST(coalesce(foreign_tx, 0) >= CAST(1.0 AS DOUBLE) AS DOUBLE))")


@pytest.mark.parametrize("thresholds, message", [
    ({"spike": 2.5}, "the expression uses {abroad} but thresholds define only spike"),
    ({"spike": 2.5, "abroad": 1, "unused": 3}, "thresholds unused are not used in the expression (write them as {name})"),
    ({"spike": math.inf, "abroad": 1}, "threshold spike must be a finite number, got inf"),
    ({"spike": "high", "abroad": 1}, "threshold spike must be a finite number, got 'high'"),
])
def test_a_threshold_that_is_missing_unused_or_not_a_number_is_refused(thresholds, message):
    with pytest.raises(ValueError) as err:
        RulesModel(RULE, thresholds, INPUTS)
    assert str(err.value) == message


def test_stored_form_is_canonical_json_and_reads_back_equal():
    data = _model().to_json()
    assert data == RulesModel(RULE, {"abroad": 1.0, "spike": 2.5}, INPUTS).to_json()
    assert RulesModel.from_json(data) == _model()
    with pytest.raises(ValueError, match="not a rules model of format 1"):
        RulesModel.from_json(b'{"format": 7}')


def test_the_registry_stores_a_rules_model_as_json_and_loads_it_verified(tmp_path):
    registry = ModelRegistry(LocalStorage(tmp_path))
    mv = registry.publish("rule_model", _model(), flavor="sql_rules", provenance=Provenance(user="u", host="h"),
                          signature=Signature(inputs=list(INPUTS)))
    assert [f["path"] for f in mv.manifest["files"]] == ["environment.json", "model/rules.json"]
    assert mv.manifest["flavor_info"]["thresholds"] == {"abroad": 1.0, "spike": 2.5}
    assert mv.manifest["flavor_info"]["sql"] == _model().sql()
    assert registry.load(mv).model == _model()
    with pytest.raises(TypeError, match="flavor 'sql_rules' needs a sparkml_ops.transforms.rules.RulesModel"):
        registry.publish("rule_model", object(), flavor="sql_rules", provenance=Provenance(user="u", host="h"))


@pytest.mark.spark
def test_batch_transform_and_pandas_predict_give_the_same_scores_with_nulls_as_sql_nulls(spark):
    rows = [("a", 3.0, 0), ("b", 1.0, 2), ("c", None, 5), ("d", 9.0, None), ("e", None, None)]
    frame = spark.createDataFrame(rows, "customer_id string, spend double, foreign_tx bigint")
    scored = {r.customer_id: r.score for r in frame.transform(_model().score_transform(["customer_id"])).collect()}
    assert scored == {"a": 0.5, "b": 0.5, "c": 0.5, "d": 0.5, "e": 0.0}
    pdf = pd.DataFrame({"spend": [3.0, 1.0, np.nan, 9.0, np.nan], "foreign_tx": [0, 2, 5, np.nan, np.nan]})
    assert _model().predict(pdf).tolist() == [0.5, 0.5, 0.5, 0.5, 0.0]


@pytest.mark.spark
def test_an_expression_without_coalesce_scores_null_features_as_null(spark):
    model = RulesModel("CAST(spend > {spike} AS DOUBLE)", {"spike": 2.0}, (("spend", "double"),))
    scores = model.predict(pd.DataFrame({"spend": [3.0, np.nan, 1.0]}))
    assert scores[0] == 1.0 and math.isnan(scores[1]) and scores[2] == 0.0
