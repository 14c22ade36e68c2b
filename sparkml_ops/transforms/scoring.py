"""Batch scoring as a DataFrame -> DataFrame transform (Arrow batches, one model per Python worker).

The driver hands over the *verified* serialized model bytes (a Spark broadcast) with their
sha256 and a ``loads`` function. Each Python worker re-checks the sha256, deserialises once and
keeps the object in a module-level cache for every later batch and task it runs (Spark reuses
Python workers), so a model is never deserialised per batch or per row.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark import Broadcast
    from pyspark.sql import DataFrame

SCORE_COLUMN = "score"

# Per-process cache: sha256 -> deserialised model. A worker process scores many batches and tasks.
_MODELS: dict[str, Any] = {}
_LOCK = threading.Lock()
# Counts real deserialisations in this process (read by tests and benchmarks through the worker log).
DESERIALISATIONS: list[int] = []


def _limit_native_threads() -> None:
    # Spark already runs one Python worker per core; letting OpenMP/BLAS start one thread per core
    # inside each worker oversubscribes the CPU (2 workers x 2 threads on 2 cores here).
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # threadpoolctl ships with scikit-learn; without it keep the defaults
        pass


def cached_model(blob: bytes | Callable[[], bytes], sha256: str, loads: Callable[[bytes], Any]) -> Any:
    """Return the model for ``sha256``, deserialising it at most once per process.

    Raises:
        ValueError: the bytes do not match ``sha256`` (never unpickled in that case).
    """
    model = _MODELS.get(sha256)
    if model is not None:
        return model
    with _LOCK:
        if sha256 not in _MODELS:
            data = blob() if callable(blob) else blob
            actual = hashlib.sha256(data).hexdigest()
            if actual != sha256:
                raise ValueError(f"model bytes on worker {os.getpid()} have sha256 {actual}, expected {sha256}; refusing to deserialise")
            _limit_native_threads()
            _MODELS[sha256] = loads(data)
            DESERIALISATIONS.append(os.getpid())
        return _MODELS[sha256]


def predict_scores(model: Any, features: "Any") -> "Any":
    """Positive-class probability for classifiers, else the model's ``predict`` output, as float64.

    A Spark ML model (``PipelineModel``) is run by Spark on the pandas rows, as batch scoring runs it.
    """
    import numpy as np

    if hasattr(model, "predict_proba"):
        proba = np.asarray(model.predict_proba(features))
        return proba[:, 1] if proba.ndim == 2 else proba
    if is_spark_model(model):
        return scores_in_spark(features, lambda keep: score_with_spark_model(model, keep))
    return np.asarray(model.predict(features), dtype="float64").reshape(-1)


def is_spark_model(model: Any) -> bool:
    """Whether ``model`` is a fitted Spark ML model (it transforms DataFrames in the JVM)."""
    return type(model).__module__.startswith("pyspark.ml") and callable(getattr(model, "transform", None))


ROW_COLUMN = "_sparkml_ops_row"  # keeps the pandas order through Spark


def scores_in_spark(rows: "Any", transform: Callable[[Sequence[str]], Callable[["DataFrame"], "DataFrame"]],
                    types: dict[str, str] | None = None) -> "Any":
    """The ``score`` column a Spark transform appends to pandas ``rows``, in their order (needs an active session).

    Args:
        rows: the input columns; pandas' NaN becomes SQL NULL, as it was in the table the rows came from.
        transform: given the columns to keep, the curried transform appending ``score``.
        types: Spark types to cast columns back to (e.g. the model's signature); others keep their pandas type.

    Raises:
        RuntimeError: there is no active SparkSession.
    """
    import numpy as np
    import pyarrow as pa
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    spark = SparkSession.getActiveSession()
    if spark is None:
        raise RuntimeError("this model is evaluated by Spark: start a SparkSession first")
    types = types or {}
    table = pa.Table.from_pandas(rows.reset_index(drop=True), preserve_index=False)
    table = table.append_column(ROW_COLUMN, pa.array(np.arange(len(rows), dtype="int64")))
    frame = spark.createDataFrame(table).select(
        ROW_COLUMN, *[F.col(n).cast(types[n]).alias(n) if n in types else F.col(n) for n in rows.columns])
    scored = frame.transform(transform([ROW_COLUMN])).orderBy(ROW_COLUMN).toArrow()
    return np.asarray(scored.column(SCORE_COLUMN).to_numpy(zero_copy_only=False), dtype="float64")


def score_with_model(
    broadcast: "Broadcast[bytes]",
    sha256: str,
    loads: Callable[[bytes], Any],
    feature_columns: Sequence[str],
    keep_columns: Sequence[str],
    score_type: str = "double",
) -> Callable[["DataFrame"], "DataFrame"]:
    """Curried transform: append a ``score`` column computed by the model, keep ``keep_columns``.

    Args:
        broadcast: Spark broadcast of the verified serialized model.
        sha256: checksum the worker verifies before deserialising.
        loads: the flavor's deserialiser (bytes -> model object).
        feature_columns: model inputs, in the order the model was trained on.
        keep_columns: columns passed through unchanged (entity keys, dates).
        score_type: ``double`` or ``float`` (float32 halves the output size).
    """
    features = list(feature_columns)
    keep = list(keep_columns)

    def _score(batches: Iterator["pa.RecordBatch"]) -> Iterator["pa.RecordBatch"]:
        import numpy as np
        import pyarrow as pa

        model = cached_model(lambda: broadcast.value, sha256, loads)
        out_type = pa.float32() if score_type == "float" else pa.float64()
        for batch in batches:
            if batch.num_rows == 0:
                continue
            frame = batch.select(features).to_pandas()
            scores = np.asarray(predict_scores(model, frame), dtype=out_type.to_pandas_dtype())
            arrays = [batch.column(name) for name in keep] + [pa.array(scores, type=out_type)]
            yield pa.RecordBatch.from_arrays(arrays, names=keep + [SCORE_COLUMN])

    def transform(df: "DataFrame") -> "DataFrame":
        from pyspark.sql.types import DoubleType, FloatType, StructField, StructType

        kept = [df.schema[name] for name in keep]
        out = StructType(kept + [StructField(SCORE_COLUMN, FloatType() if score_type == "float" else DoubleType(), False)])
        return df.select(*keep, *[c for c in features if c not in keep]).mapInArrow(_score, out)

    return transform


def _as_score(column: "Any", score_type: str) -> "Any":
    """``column`` cast to the configured score type and named ``score``."""
    return column.cast("float" if score_type == "float" else "double").alias(SCORE_COLUMN)


def score_with_spark_model(model: Any, keep_columns: Sequence[str], score_type: str = "double") -> Callable[["DataFrame"], "DataFrame"]:
    """Curried transform for a Spark ML ``PipelineModel``: keep ``keep_columns``, add ``score``.

    The score is the positive-class probability (``probability[1]``) of a classifier, or the
    ``prediction`` column of a regressor. The model runs in the JVM; no Python worker is involved.
    """
    keep = list(keep_columns)

    def transform(df: "DataFrame") -> "DataFrame":
        from pyspark.ml.functions import vector_to_array
        from pyspark.sql import functions as F

        out = model.transform(df)
        if "probability" in out.columns:
            score = vector_to_array(F.col("probability"))[1]
        else:
            score = F.col("prediction")
        return out.select(*keep, _as_score(score, score_type))

    return transform


def sql_score(sql: str, keep_columns: Sequence[str], score_type: str = "double") -> Callable[["DataFrame"], "DataFrame"]:
    """Curried transform: keep ``keep_columns`` and append ``score``, a Spark SQL expression over the row (JVM only)."""
    keep = list(keep_columns)

    def transform(df: "DataFrame") -> "DataFrame":
        from pyspark.sql import functions as F

        return df.select(*keep, _as_score(F.expr(sql), score_type))

    return transform


def output_rows(keys: Sequence[str], threshold: float | None, version: int, run_id: str,
                scored_at: datetime) -> Callable[["DataFrame"], "DataFrame"]:
    """Curried transform: entity keys + ``score`` -> the scores table's data columns (all but its partition columns).

    Args:
        keys: the entity key columns, joined with ``|`` into ``entity_key`` (a single key is used as is).
        threshold: the decision cut-off; ``None`` leaves ``decision`` and ``threshold`` NULL.
        version: the model version written to every row.
        run_id: the scoring run written to every row.
        scored_at: the run's UTC time (naive), written to every row.
    """
    names = list(keys)

    def transform(scored: "DataFrame") -> "DataFrame":
        from pyspark.sql import functions as F

        cut = F.lit(threshold).cast("double")
        strings = [F.col(k).cast("string") for k in names]
        # concat_ws copies every key; one key is used as is (coalesce keeps concat_ws's '' for NULL).
        key = F.coalesce(strings[0], F.lit("")) if len(strings) == 1 else F.concat_ws("|", *strings)
        return (
            scored.withColumn("entity_key", key)
            .withColumn("entity_key_names", F.lit("|".join(names)))
            .withColumn("score", F.col(SCORE_COLUMN).cast("double"))
            .withColumn("decision", F.when(cut.isNull(), F.lit(None)).otherwise((F.col(SCORE_COLUMN) >= cut).cast("int")))
            .withColumn("threshold", cut)
            .withColumn("model_version", F.lit(version).cast("int"))
            .withColumn("run_id", F.lit(run_id))
            .withColumn("scored_at", F.lit(scored_at).cast("timestamp"))
        )

    return transform


LINEAR_CLASSES = ("sklearn.linear_model._logistic.LogisticRegression",)


def linear_score_transform(model: Any, feature_columns: Sequence[str], keep_columns: Sequence[str],
                           score_type: str = "double") -> Callable[["DataFrame"], "DataFrame"] | None:
    """A JVM-only transform for a binary scikit-learn ``LogisticRegression``, or ``None`` for any other model.

    ``predict_proba[:, 1]`` of such a model is ``1 / (1 + exp(-(b + w . x)))``: Spark evaluates it
    in generated code, with no rows sent to Python. A NULL or NaN feature fails the task, as
    scikit-learn refuses NaN input on the Python path.
    """
    import numpy as np

    if f"{type(model).__module__}.{type(model).__qualname__}" not in LINEAR_CLASSES:
        return None
    coef = np.asarray(getattr(model, "coef_", np.empty((0, 0))), dtype="float64")
    if len(getattr(model, "classes_", ())) != 2 or coef.shape != (1, len(feature_columns)):
        return None
    names = list(getattr(model, "feature_names_in_", feature_columns))
    if sorted(names) != sorted(feature_columns):
        return None
    weights = dict(zip(names, coef[0].tolist()))
    intercept = float(np.asarray(model.intercept_).reshape(-1)[0])
    keep = list(keep_columns)

    def transform(df: "DataFrame") -> "DataFrame":
        from pyspark.sql import functions as F

        margin = F.lit(intercept)
        bad = F.lit(False)
        for name in feature_columns:
            col = F.col(name).cast("double")
            margin = margin + F.lit(weights[name]) * col
            bad = bad | col.isNull() | F.isnan(col)
        score = F.when(bad, F.raise_error(F.lit(f"a feature of {', '.join(feature_columns)} is NULL or NaN; "
                                                 "the model cannot score it")))
        score = score.otherwise(F.lit(1.0) / (F.lit(1.0) + F.exp(-margin)))
        return df.select(*keep, _as_score(score, score_type))

    return transform
