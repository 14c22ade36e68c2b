"""User-defined derived columns for conf/features/card_fraud.yaml.

A ``python: "card_fraud_features:<function>"`` derived column calls the function with no
arguments; it returns a Spark Column over the source's declared columns. Column expressions
run in the JVM, so no Python code is shipped to executors.
"""

from pyspark.sql import Column
from pyspark.sql import functions as F


def is_night() -> Column:
    """1 for transactions between 00:00 and 05:59 UTC, when card holders rarely shop."""
    return (F.hour("ts") < 6).cast("int")
