"""Feature engineering: declarative specs, the feature build, point-in-time training sets, statistics.

The public API (other use-cases import only these names)::

    spec = load_feature_spec("card_fraud", settings)
    feature_columns(spec)                      # [(name, spark type), ...] in output order
    build_features(spark, settings, spec, dates=[date(2026, 1, 31)])
    training_set(spark, settings, spec, labels_table="ml_raw.fraud_labels", start=..., end=...)
    feature_table_name(settings, "card_fraud")  # where the build writes, partitioned by PARTITION_COLUMN
"""

from sparkml_ops.features.build import PARTITION as PARTITION_COLUMN
from sparkml_ops.features.build import BuildResult, build_features, feature_table, feature_table_name
from sparkml_ops.features.spec import Feature, FeatureSpec, SourceSpec, feature_columns, load_feature_spec
from sparkml_ops.features.stats import read_feature_stats, stats_table
from sparkml_ops.features.training import training_set

__all__ = [
    "PARTITION_COLUMN", "BuildResult", "Feature", "FeatureSpec", "SourceSpec", "build_features", "feature_columns",
    "feature_table", "feature_table_name", "load_feature_spec", "read_feature_stats", "stats_table", "training_set",
]
