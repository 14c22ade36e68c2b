"""A rules model: one Spark SQL expression over feature columns, with named thresholds, evaluated in the JVM.

A team's first model can be a rule (``sql before ML``): a heuristic score written by the people who
know the business, registered (flavor ``sql_rules``), gated and scored like any other model. Thresholds
are named numbers, written ``{name}`` in the expression, so they are reviewed, recorded in the
manifest and tuned without touching the SQL::

    RulesModel("LEAST(1.0, 0.6 * CAST(tx_amount_mean_1d_vs_90d > {spike} AS DOUBLE) + ...)",
               {"spike": 3.0}, inputs=(("tx_amount_mean_1d_vs_90d", "double"), ...))

Batch scoring appends ``CAST(<expression> AS DOUBLE) AS score`` to the feature rows (no Python worker);
:meth:`RulesModel.predict` runs the same expression on pandas rows through the active Spark session, so
the gate and the evaluation see exactly the numbers batch scoring writes.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sparkml_ops.transforms.scoring import scores_in_spark, sql_score

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from pyspark.sql import DataFrame

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
FORMAT = 1


@dataclass(frozen=True)
class RulesModel:
    """A SQL expression over ``inputs`` (name, Spark type) with ``{name}`` placeholders filled from ``thresholds``.

    Raises:
        ValueError: a placeholder has no threshold, a threshold is not used, or is not a finite number.
    """

    expression: str
    thresholds: Mapping[str, float] = field(default_factory=dict)
    inputs: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.expression, str) or not self.expression.strip():
            raise ValueError("a rules model needs a non-empty SQL expression")
        used = set(PLACEHOLDER.findall(self.expression))
        missing = sorted(used - set(self.thresholds))
        unused = sorted(set(self.thresholds) - used)
        if missing:
            raise ValueError(f"the expression uses {', '.join('{' + m + '}' for m in missing)} but thresholds "
                             f"define only {', '.join(sorted(self.thresholds)) or 'nothing'}")
        if unused:
            raise ValueError(f"thresholds {', '.join(unused)} are not used in the expression (write them as {{name}})")
        for name, value in self.thresholds.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"threshold {name} must be a finite number, got {value!r}")
        object.__setattr__(self, "thresholds", {k: float(v) for k, v in sorted(self.thresholds.items())})
        object.__setattr__(self, "inputs", tuple((str(n), str(t)) for n, t in self.inputs))

    def sql(self) -> str:
        """The expression with every ``{name}`` replaced by its threshold, as a DOUBLE literal."""
        return PLACEHOLDER.sub(lambda m: f"CAST({self.thresholds[m.group(1)]!r} AS DOUBLE)", self.expression)

    def to_json(self) -> bytes:
        """The stored form (``model/rules.json``): canonical JSON, so equal rules give equal bytes."""
        body = {"format": FORMAT, "expression": self.expression, "thresholds": dict(self.thresholds),
                "inputs": [list(c) for c in self.inputs]}
        return (json.dumps(body, indent=2, sort_keys=True, allow_nan=False) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes | bytearray) -> RulesModel:
        """Inverse of :meth:`to_json`.

        Raises:
            ValueError: not the stored form of a rules model.
        """
        body = json.loads(bytes(data).decode("utf-8"))
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise ValueError(f"not a rules model of format {FORMAT}: {str(body)[:80]}")
        return cls(body["expression"], body.get("thresholds") or {}, tuple(tuple(c) for c in body.get("inputs") or ()))

    def score_transform(self, keep_columns: Sequence[str], score_type: str = "double") -> Callable[["DataFrame"], "DataFrame"]:
        """Curried transform: keep ``keep_columns`` and append ``score``, computed by the JVM."""
        return sql_score(self.sql(), keep_columns, score_type)

    def predict(self, rows: "pd.DataFrame") -> "np.ndarray":
        """Scores of pandas rows, by the same Spark SQL batch scoring runs (needs an active SparkSession).

        The columns are cast back to the signature's Spark types first, and pandas' NaN is SQL's NULL,
        as it was in the feature table the rows came from.

        Raises:
            RuntimeError: there is no active SparkSession.
        """
        names = [n for n, _ in self.inputs] or list(rows.columns)
        return scores_in_spark(rows[names], lambda keep: sql_score(self.sql(), keep), dict(self.inputs))


def params_of(model: RulesModel) -> dict[str, Any]:
    """What a manifest records of a rules model: the expression, its thresholds and the SQL that runs."""
    return {"expression": model.expression, "thresholds": dict(model.thresholds), "sql": model.sql()}
