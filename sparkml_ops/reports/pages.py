"""The Jinja2 environment of the reports: package templates, autoescaping, number formats."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup


def number(value: Any, digits: int = 4) -> str:
    """A metric for a table: ``digits`` decimals, thousands separators for counts, an em dash when missing."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def significant(value: Any, digits: int = 3) -> str:
    """A score or threshold with ``digits`` significant digits (scores of rare events are small), an em dash when missing."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{float(value):.{digits}g}"


def percent(value: Any, digits: int = 2) -> str:
    """A share as a percentage, an em dash when missing."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{100 * float(value):.{digits}f}%"


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The one template environment (templates and the stylesheet are read from the installed package)."""
    env = Environment(loader=PackageLoader("sparkml_ops.reports", "templates"),
                      autoescape=select_autoescape(["html"]), undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = number
    env.filters["pct"] = percent
    env.filters["sig"] = significant
    return env


def render(template: str, **context: Any) -> str:
    """Render one page; the stylesheet is inlined, charts (SVG from matplotlib) are passed as trusted markup."""
    env = environment()
    css = env.loader.get_source(env, "report.css")[0]
    return env.get_template(template).render(css=Markup(css), **context)


def trusted(svg: str) -> Markup:
    """A chart made by matplotlib, inserted as is."""
    return Markup(svg)
