"""The reproduction record's comparisons: each change named exactly, one sentence each."""

from __future__ import annotations

from pathlib import Path

from sparkml_ops.lineage import (
    config_as_used,
    config_changes,
    files_record,
    input_changes,
    module_changes,
    package_changes,
    seeds,
    spec_changes,
)
from sparkml_ops.modelconfig import load_model_config

CONF = Path(__file__).resolve().parents[1] / "conf"


def _partition(ds: str, rows: int = 10, files: int = 1, fingerprint: str = "f") -> dict:
    return {"table": "ml_raw.tx", "partition": {"ds": ds}, "directory": f"/w/tx/ds={ds}", "rows": rows,
            "files": files, "bytes": 100 * files, "fingerprint": fingerprint}


def test_spec_files_removed_new_and_changed_are_named():
    recorded = {"name": "fs", **files_record({"fs.yaml": b"a", "udf.py": b"x", "old.py": b"o"})}
    changes = spec_changes(recorded, {"fs.yaml": b"b", "udf.py": b"x", "new.py": b"n"})
    sha_a, sha_b = recorded["files"][0]["sha256"][:12], files_record({"fs.yaml": b"b"})["files"][0]["sha256"][:12]
    assert changes == ["feature spec fs: old.py was removed", "feature spec fs: new.py is new",
                       f"feature spec fs: fs.yaml changed (sha256 {sha_a} -> {sha_b})"]
    assert spec_changes(recorded, {"fs.yaml": b"a", "udf.py": b"x", "old.py": b"o"}) == []


def test_config_keys_that_change_the_fit_are_told_apart_from_the_others():
    config = load_model_config(CONF, "card_fraud")
    changed = config.model_copy(update={
        "training": config.training.model_copy(update={"validation_days": 7}),
        "scoring": config.scoring.model_copy(update={"psi_warn": 0.2}), "description": "new words"})
    training, other = config_changes(config_as_used(config), changed)
    assert training == ["model config card_fraud: training.validation_days was 14, is 7"]
    assert other == ['model config card_fraud: description was "Probability that a card holder has a fraudulent '
                     'transaction the next day", is "new words"', "model config card_fraud: scoring.psi_warn was 0.1, is 0.2"]
    assert config_changes(config_as_used(config), config) == ([], [])


def test_only_the_estimator_module_of_a_config_is_compared_by_content():
    recorded = files_record({"m.yaml": b"name: m  # a comment", "m_estimator.py": b"def build(): ..."})
    assert module_changes("m", recorded, {"m.yaml": b"name: m", "m_estimator.py": b"def build(): ..."}) == []
    assert module_changes("m", recorded, {"m.yaml": b"name: m"}) == ["model config m: m_estimator.py was removed"]


def test_partitions_gone_new_rewritten_or_grown_are_named_with_their_numbers():
    then = [_partition("2026-04-01"), _partition("2026-04-02"), _partition("2026-04-03"), _partition("2026-04-04")]
    now = [_partition("2026-04-01"), _partition("2026-04-02", fingerprint="g"),
           _partition("2026-04-03", rows=12, files=2, fingerprint="h"), _partition("2026-04-05", rows=7)]
    assert input_changes(then, now) == [
        "ml_raw.tx partition ds=2026-04-04 was read by training and is gone",
        "ml_raw.tx partition ds=2026-04-05 is new: training would read it today (7 rows)",
        "ml_raw.tx partition ds=2026-04-02 changed since training: rows 10 -> 10, files 1 -> 1, bytes 100 -> 100 "
        "(rewritten: file names or times differ)",
        "ml_raw.tx partition ds=2026-04-03 changed since training: rows 10 -> 12, files 1 -> 2, bytes 100 -> 200",
    ]
    assert input_changes(then, then) == []


def test_package_versions_removed_added_and_changed():
    assert package_changes(["a==1", "b==2", "c==3"], ["b==2", "c==4", "d==1"]) == [
        "package a 1 is no longer installed", "package d 1 was not installed at training", "package c was 3, is 4"]


def test_seeds_are_the_sampling_seed_and_the_estimators_seed_parameters():
    from sklearn.ensemble import HistGradientBoostingClassifier

    config = load_model_config(CONF, "card_fraud")
    assert seeds(config, HistGradientBoostingClassifier(random_state=42)) == {
        "training.seed": 42, "estimator.random_state": 42}
