"""Publish, resolve, verify and load on both backends; integrity is checked before any deserialisation."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sparkml_ops.errors import (
    IntegrityError,
    ModelNotFoundError,
    RefusedError,
    UsageError,
)
from sparkml_ops.registry import Signature, get_flavor
from sparkml_ops.registry.flavors import BytesFlavor, register_flavor

from tests.registry.models import Doubler

SIG = Signature(inputs=[("amount", "double"), ("country", "string")], outputs=[("score", "double")])


def _sk_model():
    x = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 1.0], [3.0, 0.0]])
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(x, [0, 0, 1, 1])


def test_publish_writes_a_complete_rich_manifest(registry, prov):
    mv = registry.publish(
        "fraud", _sk_model(), flavor="sklearn", signature=SIG, params={"C": 1.0}, metrics={"auc": 0.91},
        lineage={"table": "ml_features.fraud", "from": "2026-01-01", "to": "2026-01-31", "rows": 4},
        tags={"team": "risk"}, description="first cut", provenance=prov, extra={"baseline": {"psi": 0.0}},
    )
    assert (mv.name, mv.version) == ("fraud", 1)
    m = mv.manifest
    assert m["flavor"] == "sklearn" and m["flavor_info"]["class"] == "sklearn.pipeline.Pipeline"
    assert m["created_by"] == {"user": "alice", "host": "edge01"}
    assert m["git"] == {"commit": "abc1234", "dirty": False} and m["build_id"] == "b-7"
    assert m["signature"]["inputs"] == [
        {"name": "amount", "type": "double", "pandas_dtype": "float64"},
        {"name": "country", "type": "string", "pandas_dtype": "object"},
    ]
    assert m["signature"]["outputs"] == [{"name": "score", "type": "double", "pandas_dtype": "float64"}]
    assert m["params"] == {"C": 1.0} and m["metrics"] == {"auc": 0.91} and m["tags"] == {"team": "risk"}
    assert m["lineage"]["rows"] == 4 and m["description"] == "first cut" and m["extra"] == {"baseline": {"psi": 0.0}}
    assert m["created_at"].endswith("Z")
    assert m["environment"]["packages"]["scikit-learn"] and m["environment"]["python"].startswith("3.")
    assert [f["path"] for f in m["files"]] == ["environment.json", "model/model.joblib"]
    # The stored manifest is plain JSON, identical to what publish returned.
    stored = json.loads(registry.storage.read_bytes("fraud/1/manifest.json"))
    assert stored == m


def test_versions_increase_and_resolve_by_number_and_alias(registry, prov):
    for _ in range(3):
        registry.publish("fraud", Doubler(), flavor="pyfunc", provenance=prov)
    registry.set_alias("fraud", "champion", 2, provenance=prov, reason="best auc")
    assert [v.version for v in registry.list_versions("fraud")] == [1, 2, 3]
    assert registry.resolve("fraud@champion").version == 2
    assert registry.resolve("fraud:3").version == 3
    loaded = registry.load("fraud@champion")
    assert loaded.version.ref == "fraud:2"
    assert loaded.model.predict(pd.DataFrame({"x": [1, 2]})).tolist() == [2, 4]


def test_sklearn_roundtrip_predicts_the_same(registry, prov):
    model = _sk_model()
    registry.publish("churn", model, flavor="sklearn", provenance=prov)
    x = np.array([[0.5, 1.0], [2.5, 0.0]])
    assert registry.load("churn:1").model.predict_proba(x).tolist() == model.predict_proba(x).tolist()


def test_verified_model_bytes_deserialise_with_the_public_flavor_helper(registry, prov):
    registry.publish("fraud", _sk_model(), flavor="sklearn", provenance=prov)
    name, data = registry.verified_model_bytes("fraud:1")
    assert name == "sklearn"
    model = get_flavor(name).loads(data)
    assert model.predict(np.array([[3.0, 0.0]])).tolist() == [1]


def test_unknown_model_version_and_alias_list_what_exists(registry, prov):
    registry.publish("fraud", Doubler(), flavor="pyfunc", provenance=prov)
    registry.set_alias("fraud", "challenger", 1, provenance=prov)
    root = registry.uri
    with pytest.raises(ModelNotFoundError) as exc:
        registry.resolve("churn:1")
    assert str(exc.value) == f"model 'churn' is not in the registry {root}; known models: fraud."
    with pytest.raises(ModelNotFoundError) as exc:
        registry.resolve("fraud:7")
    assert str(exc.value) == f"model 'fraud' has no version 7 in {root}; known versions: 1."
    with pytest.raises(ModelNotFoundError) as exc:
        registry.resolve("fraud@champion")
    assert exc.value.exit_code == 4
    assert str(exc.value) == (
        f"model 'fraud' has no alias 'champion' in {root}; known aliases: challenger. "
        "Set one with: sparkml-ops models alias fraud champion <version>"
    )


@pytest.mark.parametrize("bad", ["", "../etc", "a/b", "..", "Fraud", "1fraud", "_staging", "x" * 65, "fr aud"])
def test_unsafe_model_names_are_refused_before_touching_storage(registry, prov, bad):
    with pytest.raises(UsageError) as exc:
        registry.publish(bad, Doubler(), flavor="pyfunc", provenance=prov)
    assert str(exc.value) == (
        f"model name {bad!r} is invalid: use 1-64 characters: a lowercase letter, then lowercase letters, "
        "digits, '_' or '-' (e.g. 'fraud', 'churn_v2')."
    )
    assert registry.list_models() == []


@pytest.mark.parametrize("ref", ["fraud", "fraud:0", "fraud:-1", "fraud:x", "fraud@", "../x:1", "fraud@../a"])
def test_malformed_references_are_usage_errors(registry, ref):
    with pytest.raises(UsageError):
        registry.resolve(ref)


def test_corrupted_file_is_refused_before_unpickling(registry, prov, tmp_path):
    registry.publish("fraud", Doubler(), flavor="pyfunc", provenance=prov)
    marker = tmp_path / "pwned"

    class Exploit:  # unpickling this would run a shell command
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    registry.storage.write("fraud/1/model/model.pkl", pickle.dumps(Exploit()), overwrite=True)
    before = registry.storage.read_bytes("fraud/1/manifest.json")
    for action in (registry.load, registry.verified_model_bytes, registry.verify):
        with pytest.raises(IntegrityError) as exc:
            action("fraud:1")
        assert exc.value.exit_code == 5
        assert "fraud:1 in " in str(exc.value) and "is damaged: file model/model.pkl has size" in str(exc.value)
    assert not marker.exists()
    assert registry.storage.read_bytes("fraud/1/manifest.json") == before  # nothing changed


def test_missing_and_unlisted_files_are_integrity_errors(registry, prov):
    registry.publish("fraud", Doubler(), flavor="pyfunc", provenance=prov)
    registry.publish("fraud", Doubler(), flavor="pyfunc", provenance=prov)
    registry.storage.delete("fraud/1/environment.json")
    with pytest.raises(IntegrityError) as exc:
        registry.load("fraud:1")
    assert str(exc.value) == (
        f"fraud:1 in {registry.uri} is damaged: missing files: environment.json. Do not use this version."
    )
    registry.storage.write("fraud/2/model/extra.py", b"print('hi')")
    with pytest.raises(IntegrityError) as exc:
        registry.verify("fraud:2")
    assert "files not in the manifest: model/extra.py" in str(exc.value)


def test_unparsable_or_foreign_manifest_is_an_integrity_error(registry, prov):
    registry.publish("fraud", Doubler(), flavor="pyfunc", provenance=prov)
    registry.publish("fraud", Doubler(), flavor="pyfunc", provenance=prov)
    registry.storage.write("fraud/1/manifest.json", b"{not json", overwrite=True)
    with pytest.raises(IntegrityError) as exc:
        registry.resolve("fraud:1")
    assert str(exc.value).startswith(f"manifest {registry.uri}/fraud/1/manifest.json does not parse as JSON:")
    manifest = registry.resolve("fraud:2").manifest
    manifest["files"][0]["path"] = "../../../etc/passwd"
    registry.storage.write("fraud/2/manifest.json", json.dumps(manifest).encode(), overwrite=True)
    with pytest.raises(IntegrityError) as exc:
        registry.load("fraud:2")
    assert "files entry path '../../../etc/passwd' is not a safe relative path" in str(exc.value)


def test_alias_moves_are_atomic_and_recorded_in_history(registry, prov):
    for _ in range(2):
        registry.publish("fraud", Doubler(), flavor="pyfunc", provenance=prov)
    registry.set_alias("fraud", "champion", 1, provenance=prov, reason="first")
    record = registry.set_alias("fraud", "champion", 2, provenance=prov, reason="better auc")
    assert (record["from"], record["to"], record["user"]) == (1, 2, "alice")
    assert registry.aliases("fraud") == {"champion": 2}
    moves = [(e["alias"], e["from"], e["to"], e["reason"]) for e in registry.history("fraud") if e["event"] == "alias"]
    assert moves == [("champion", None, 1, "first"), ("champion", 1, 2, "better auc")]
    assert [e["version"] for e in registry.history("fraud") if e["event"] == "publish"] == [1, 2]
    # No temporary alias files are left behind.
    assert [e.name for e in registry.storage.list("fraud/_aliases")] == ["champion.json"]


def test_archive_keeps_the_version_and_guards_aliases(registry, prov):
    for _ in range(2):
        registry.publish("fraud", Doubler(), flavor="pyfunc", provenance=prov)
    registry.set_alias("fraud", "champion", 1, provenance=prov)
    with pytest.raises(RefusedError) as exc:
        registry.archive("fraud:1", provenance=prov)
    assert str(exc.value) == (
        "fraud:1 is the target of alias(es) champion; it cannot be archived. "
        "Move them first: sparkml-ops models alias fraud champion <version>"
    )
    registry.set_alias("fraud", "champion", 2, provenance=prov)
    assert registry.archive("fraud:1", provenance=prov, reason="superseded").archived
    assert [v.version for v in registry.list_versions("fraud", include_archived=False)] == [2]
    assert registry.load("fraud:1").version.archived  # still loadable by number
    with pytest.raises(RefusedError):
        registry.set_alias("fraud", "challenger", 1, provenance=prov)
    # Numbers are never reused, even after archiving the latest.
    assert registry.publish("fraud", Doubler(), flavor="pyfunc", provenance=prov).version == 3


def test_metadata_must_be_plain_json_without_secrets(registry, prov):
    with pytest.raises(ValueError, match="metrics must be plain JSON data"):
        registry.publish("fraud", Doubler(), flavor="pyfunc", provenance=prov, metrics={"auc": float("nan")})
    with pytest.raises(ValueError, match="params: key 'db_password' looks like a secret"):
        registry.publish("fraud", Doubler(), flavor="pyfunc", provenance=prov, params={"db_password": "x"})
    with pytest.raises(ValueError, match="unknown Spark type 'money'"):
        registry.publish("fraud", Doubler(), flavor="pyfunc", provenance=prov,
                         signature=Signature(inputs=[("amount", "money")]))
    with pytest.raises(TypeError, match="flavor 'sklearn' needs a scikit-learn estimator"):
        registry.publish("fraud", Doubler(), flavor="sklearn", provenance=prov)
    assert registry.list_models() == []
    assert registry.storage.list("_staging") == []  # failed publishes clean up after themselves


def test_unknown_flavor_lists_known_ones(registry, prov):
    with pytest.raises(UsageError, match=r"unknown model flavor 'onnx'; known flavors: .*pyfunc, sklearn, sparkml"):
        registry.publish("fraud", Doubler(), flavor="onnx", provenance=prov)


class _TextFlavor(BytesFlavor):
    """A plug-in flavor defined outside the registry core."""

    name = "test-text"
    file_name = "model.txt"

    def dumps(self, model):
        return model.encode()

    def loads(self, data):
        return data.decode()


def test_plugin_flavor_needs_no_core_change(registry, prov):
    register_flavor(_TextFlavor(), replace=True)
    mv = registry.publish("notes", "hello model", flavor="test-text", provenance=prov)
    assert [f["path"] for f in mv.manifest["files"]] == ["environment.json", "model/model.txt"]
    assert registry.load("notes:1").model == "hello model"


def test_signature_from_spark_schemas_keeps_spark_and_pandas_types():
    from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

    sig = Signature.from_spark(
        StructType([StructField("amount", DoubleType()), StructField("country", StringType()),
                    StructField("n_tx", LongType())]),
        StructType([StructField("score", DoubleType())]),
    )
    assert sig.to_dict() == {
        "inputs": [{"name": "amount", "type": "double", "pandas_dtype": "float64"},
                   {"name": "country", "type": "string", "pandas_dtype": "object"},
                   {"name": "n_tx", "type": "bigint", "pandas_dtype": "int64"}],
        "outputs": [{"name": "score", "type": "double", "pandas_dtype": "float64"}],
    }
    assert Signature.from_dict(sig.to_dict()) == Signature(
        inputs=[("amount", "double"), ("country", "string"), ("n_tx", "bigint")], outputs=[("score", "double")])
