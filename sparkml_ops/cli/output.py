"""Readable tables for people, JSON for scripts: the output of `sparkml-ops` commands and `fab` tasks."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any


def print_json(data: Any, stream=None) -> None:
    """Write ``data`` as indented JSON on stdout."""
    json.dump(data, stream or sys.stdout, indent=2, default=str, sort_keys=False)
    (stream or sys.stdout).write("\n")


def print_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], stream=None) -> None:
    """Write an aligned plain-text table on stdout (no borders, so it greps well)."""
    out = stream or sys.stdout
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    out.write("  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip() + "\n")
    for row in cells:
        out.write("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() + "\n")
