"""Spec validation happens before Spark: each mistake is one error naming the file and the feature."""

from __future__ import annotations

from pathlib import Path

import pytest

from sparkml_ops.errors import FeatureSpecError
from sparkml_ops.features import feature_columns, load_feature_spec

from tests.features.conftest import SPEC

GOOD = SPEC.format(name="s", tx="tx", cust="cust")


def _load(tmp_path: Path, settings, text: str):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path, lambda: load_feature_spec(path, settings)


def test_demo_spec_declares_windows_ratios_recency_and_attributes(local_settings):
    spec = load_feature_spec("card_fraud", local_settings)
    cols = feature_columns(spec)
    assert (spec.name, spec.entity_keys, spec.event_time) == ("card_fraud", ["customer_id"], "event_time")
    assert spec.sources["tx"].table == "ml_raw.card_transactions"
    assert spec.sources["customers"].table == "ml_raw.customers"
    assert cols[:3] == [("tx_amount_count_1d", "bigint"), ("tx_amount_sum_1d", "double"), ("tx_amount_mean_1d", "double")]
    assert {n for n, _ in cols} >= {"tx_amount_stddev_90d", "tx_merchant_id_count_distinct_30d", "tx_is_night_sum_7d",
                                    "tx_amount_mean_1d_vs_90d", "tx_days_since_last", "customer_is_private"}
    assert len(cols) == 43
    assert spec.sources["tx"].derived[2].function is not None  # the user module was imported and checked


def test_feature_columns_follow_spec_order(tmp_path, local_settings):
    _, load = _load(tmp_path, local_settings, GOOD)
    assert feature_columns(load()) == [
        ("tx_amount_count_1d", "bigint"), ("tx_amount_sum_1d", "double"), ("tx_amount_mean_1d", "double"),
        ("tx_amount_min_1d", "double"), ("tx_amount_max_1d", "double"),
        ("tx_amount_count_3d", "bigint"), ("tx_amount_sum_3d", "double"), ("tx_amount_mean_3d", "double"),
        ("tx_amount_min_3d", "double"), ("tx_amount_max_3d", "double"),
        ("tx_merchant_id_count_distinct_3d", "bigint"), ("amount_sum_1d_vs_3d", "double"),
        ("days_since_last", "double"), ("credit_limit_k", "double"),
    ]


@pytest.mark.parametrize("old, new, message", [
    ("column: amount, functions: [count, sum", "column: amout, functions: [count, sum",
     "feature 'amout': unknown column 'amout' in source 'tx'; columns: customer_id, ts, amount, merchant_id, ds."),
    ("windows: [1d, 3d]", "windows: [1d, 7x]",
     "feature 'amount': window: bad duration '7x': use <n>d or <n>h, e.g. 7d or 12h."),
    ("windows: [1d, 3d]", "windows: [1d, 1d]", "feature 'amount': duplicate windows ['1d', '1d']."),
    ("column: merchant_id, functions: [count_distinct]", "column: merchant_id, functions: [sum]",
     "feature 'merchant_id': function 'sum' needs a numeric column; 'merchant_id' is string."),
    ("functions: [count_distinct]", "functions: [median]",
     "feature 'merchant_id': unknown function 'median'; known: count, count_distinct, approx_count_distinct, sum, mean, min, max, stddev."),
    ("name: days_since_last", "name: tx_amount_sum_1d",
     "feature 'tx_amount_sum_1d': duplicate feature name (or clashes with an entity key, event_time, as_of_date or label)."),
    ("numerator: tx_amount_sum_1d", "numerator: tx_amount_sum_2d",
     "feature 'amount_sum_1d_vs_3d': ratio refers to unknown feature 'tx_amount_sum_2d' (define it above the ratio)."),
    ("source: cust, sql", "source: tx, sql",
     "feature 'credit_limit_k': a expression feature needs a source of kind attributes; 'tx' is events."),
    ("dtype: double", "dtype: money", "feature 'credit_limit_k': unknown column type 'money'; use one of "
     "bigint, binary, boolean, date, double, float, int, smallint, string, timestamp, tinyint or decimal(p,s)."),
    ("type: recency, name", "type: recency, windws: [1d], name", "feature 'days_since_last': unknown key 'windws'."),
    ("availability_lag: 1d", "availability_lag: one day",
     "source 'tx' availability_lag: bad duration 'one day': use <n>d or <n>h, e.g. 7d or 12h."),
    ("ts: timestamp, amount", "ts: string, amount",
     "source 'tx': time_column 'ts' must be a declared timestamp column, got string."),
    ("columns: {customer_id: string, ts", "columns: {client: string, ts",
     "source 'tx' does not declare entity key column 'customer_id'; declared: client, ts, amount, merchant_id."),
])
def test_spec_mistakes_name_the_file_and_the_feature(tmp_path, local_settings, old, new, message):
    assert old in GOOD
    path, load = _load(tmp_path, local_settings, GOOD.replace(old, new, 1))
    with pytest.raises(FeatureSpecError) as err:
        load()
    assert str(err.value) == f"{path}: {message}"
    assert err.value.exit_code == 2


def test_malformed_yaml_names_line_and_column(tmp_path, local_settings):
    path, load = _load(tmp_path, local_settings, "name: x\nentity_keys: [a\n")
    with pytest.raises(FeatureSpecError, match=rf"^{path}:3:1: malformed YAML: "):
        load()


def test_unknown_spec_name_lists_the_available_specs(local_settings):
    with pytest.raises(FeatureSpecError) as err:
        load_feature_spec("card_frod", local_settings)
    spec_dir = local_settings.conf_dir / "features"
    assert str(err.value) == (f"no feature spec named 'card_frod': {spec_dir / 'card_frod.yaml'} does not exist; "
                              f"{spec_dir} has card_fraud. Pass a spec name from that list or a path to a .yaml file.")


def test_user_function_must_exist(tmp_path, local_settings):
    (tmp_path / "flags.py").write_text("def other():\n    return None\n")
    text = GOOD.replace("    columns: {customer_id: string, ts: timestamp, amount: double, merchant_id: string}\n",
                        "    columns: {customer_id: string, ts: timestamp, amount: double, merchant_id: string}\n"
                        "    derived: [{name: night, python: 'flags:is_night', type: int}]\n", 1)
    path, load = _load(tmp_path, local_settings, text)
    with pytest.raises(FeatureSpecError) as err:
        load()
    assert str(err.value) == f"{path}: feature 'night': user module {tmp_path / 'flags.py'} has no function 'is_night'."
