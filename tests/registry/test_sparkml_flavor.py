"""Spark ML PipelineModel: stored with Spark's own writer inside the version, checksummed, loaded back."""

from __future__ import annotations

import pytest

from sparkml_ops.errors import IntegrityError, UsageError

pytestmark = pytest.mark.spark


@pytest.fixture
def pipeline_model(spark):
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import VectorAssembler

    df = spark.createDataFrame([(0.0, 1.0, 0.0), (1.0, 0.0, 0.0), (2.0, 1.0, 1.0), (3.0, 0.0, 1.0)],
                               ["amount", "age", "label"])
    stages = [VectorAssembler(inputCols=["amount", "age"], outputCol="features"), LogisticRegression(maxIter=5)]
    return Pipeline(stages=stages).fit(df), df


def test_pipeline_model_roundtrip_with_every_file_checksummed(registry, prov, pipeline_model):
    model, df = pipeline_model
    mv = registry.publish("spark_fraud", model, flavor="sparkml", provenance=prov)
    paths = [f["path"] for f in mv.manifest["files"]]
    assert any(p.startswith("model/metadata/part-00000") for p in paths) and any(p.startswith("model/stages/1_") for p in paths)
    assert mv.manifest["flavor_info"]["stages"] == ["VectorAssembler", "LogisticRegressionModel"]
    loaded = registry.load("spark_fraud:1").model
    expected = [r.prediction for r in model.transform(df).collect()]
    assert [r.prediction for r in loaded.transform(df).collect()] == expected
    with pytest.raises(UsageError, match="has flavor 'sparkml', which is a directory"):
        registry.verified_model_bytes("spark_fraud:1")


def test_damaged_spark_model_is_refused_before_spark_reads_it(registry, prov, pipeline_model):
    model, _ = pipeline_model
    mv = registry.publish("spark_fraud", model, flavor="sparkml", provenance=prov)
    meta = next(f["path"] for f in mv.manifest["files"] if f["path"].startswith("model/metadata/part-00000"))
    registry.storage.write(f"spark_fraud/1/{meta}", b'{"class":"evil"}', overwrite=True)
    with pytest.raises(IntegrityError, match=f"spark_fraud:1 in .* is damaged: file {meta} has "):
        registry.load("spark_fraud:1")


@pytest.mark.cluster
def test_spark_reads_and_writes_hdfs_directly_when_hdfs_uri_is_set(cluster, tmp_path, prov, pipeline_model):
    from sparkml_ops.io.storage import open_storage
    from sparkml_ops.registry import ModelRegistry

    from tests.registry.backends import registry_settings

    settings = registry_settings("hdfs", tmp_path, cluster).model_copy(update={"hdfs_uri": cluster["namenode_uri"]})
    registry = ModelRegistry(open_storage(settings))
    assert registry.storage.spark_uri("x") == f"{cluster['namenode_uri']}{registry.storage.root}/x"
    model, df = pipeline_model
    registry.publish("spark_fraud", model, flavor="sparkml", provenance=prov)
    loaded = registry.load("spark_fraud:1").model
    assert [r.prediction for r in loaded.transform(df).collect()] == [r.prediction for r in model.transform(df).collect()]
