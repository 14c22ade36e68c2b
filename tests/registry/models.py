"""Small model classes importable by spawned worker processes."""

from __future__ import annotations

import pandas as pd


class Doubler:
    """A pyfunc model: predict returns twice the 'x' column."""

    def __init__(self, payload: bytes = b"") -> None:
        self.payload = payload

    def predict(self, df: pd.DataFrame) -> pd.Series:
        return df["x"] * 2
