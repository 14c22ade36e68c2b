"""Charts of the HTML reports, drawn by matplotlib's SVG backend and inlined (no network, no fonts: text is paths).

Each function takes plain data and returns one ``<svg>`` element as a string. Figures are made with the
object API (``Figure``), never pyplot, so no global backend or figure registry is touched.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.figure import Figure

# One palette for every report: colour-blind safe (Okabe-Ito), ours first, the champion second.
COLORS = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
STYLE = {"svg.fonttype": "path", "font.size": 9, "axes.spines.top": False, "axes.spines.right": False,
         "axes.grid": True, "grid.alpha": 0.3, "figure.dpi": 72}
_XML_HEADER = re.compile(r"^.*?(?=<svg)", re.DOTALL)


@contextmanager
def figure(chart_id: str, width: float = 5.2, height: float = 3.4) -> Iterator[tuple[Figure, list[str]]]:
    """A figure whose SVG ends up in the returned one-element list; ``chart_id`` keeps its element ids unique in a page."""
    out: list[str] = []
    # A salt per chart: matplotlib derives the ids of clip paths and markers from it, and several SVGs share one page.
    with rc_context({**STYLE, "svg.hashsalt": chart_id}):
        fig = Figure(figsize=(width, height), layout="constrained")
        yield fig, out
        buffer = io.StringIO()
        # No metadata block: it holds a creation date (reports of the same data should be identical) and RDF namespaces.
        fig.savefig(buffer, format="svg", metadata={"Creator": None, "Date": None, "Format": None, "Type": None})
    svg = _XML_HEADER.sub("", buffer.getvalue(), count=1)
    out.append(svg.replace("<svg ", f'<svg data-chart="{chart_id}" role="img" ', 1))


def roc_pr(chart_id: str, mine: dict[str, Any], label: str) -> str:
    """ROC and precision-recall curves side by side."""
    with figure(chart_id, width=8.4, height=3.4) as (fig, out):
        roc, pr = fig.subplots(1, 2)
        roc.plot(mine["roc"]["fpr"], mine["roc"]["tpr"], color=COLORS[0], label=label)
        roc.plot([0, 1], [0, 1], color="grey", linestyle=":", label="chance")
        _labels(roc, "ROC curve", "false positive rate", "true positive rate")
        roc.legend(loc="lower right")
        pr.plot(mine["pr"]["recall"], mine["pr"]["precision"], color=COLORS[0], label=label)
        _labels(pr, "Precision-recall curve", "recall", "precision")
        pr.set_ylim(0, 1.02)
    return out[0]


def gain(chart_id: str, lift: Sequence[dict[str, Any]]) -> str:
    """Cumulative gain by decile: the share of all positives captured in the top deciles."""
    with figure(chart_id) as (fig, out):
        ax = fig.subplots()
        deciles = [0] + [r["decile"] * 10 for r in lift]
        ax.plot(deciles, [0] + [r["gain"] * 100 for r in lift], marker="o", color=COLORS[0], label="model")
        ax.plot([0, 100], [0, 100], color="grey", linestyle=":", label="random")
        _labels(ax, "Cumulative gain", "% of rows, highest scores first", "% of positives captured")
        ax.legend(loc="lower right")
    return out[0]


def calibration(chart_id: str, points: Sequence[dict[str, Any]]) -> str:
    """Reliability plot: observed positive rate against mean predicted score per score bin."""
    with figure(chart_id) as (fig, out):
        ax = fig.subplots()
        top = max([p["mean_score"] for p in points] + [p["observed_rate"] for p in points] + [0.01]) * 1.1
        ax.plot([0, top], [0, top], color="grey", linestyle=":", label="perfectly calibrated")
        ax.plot([p["mean_score"] for p in points], [p["observed_rate"] for p in points], marker="o", color=COLORS[0],
                label="model (equal-count bins)")
        _labels(ax, "Calibration", "mean predicted score", "observed positive rate")
        ax.legend(loc="upper left")
    return out[0]


def score_distributions(chart_id: str, histograms: dict[str, dict[str, list[float]]]) -> str:
    """Score histograms (shares per bin) of several samples, overlaid as steps."""
    with figure(chart_id) as (fig, out):
        ax = fig.subplots()
        for i, (name, hist) in enumerate(histograms.items()):
            ax.stairs([s * 100 for s in hist["shares"]], hist["edges"], color=COLORS[i % len(COLORS)], label=name,
                      linewidth=1.6)
        _labels(ax, "Score distribution", "score", "% of rows")
        ax.legend(loc="upper right")
    return out[0]


def importance(chart_id: str, rows: Sequence[dict[str, Any]], axis: str = "ROC AUC drop when shuffled",
               top: int = 20) -> str:
    """Horizontal bars of permutation importance (what shuffling a feature costs), largest on top, with its spread."""
    shown = list(rows[:top])[::-1]
    with figure(chart_id, height=max(2.4, 0.22 * len(shown) + 1.0)) as (fig, out):
        ax = fig.subplots()
        ax.barh([r["feature"] for r in shown], [r["importance"] for r in shown], xerr=[r["std"] for r in shown],
                color=COLORS[0])
        _labels(ax, f"Permutation importance (top {len(shown)})", axis, "")
    return out[0]


def series(chart_id: str, title: str, x: Sequence[str], lines: dict[str, Sequence[float | None]],
           marks: Sequence[tuple[str, str]] = (), limits: dict[str, float] | None = None) -> str:
    """Values over dates, one line per entry of ``lines``; ``marks`` are (date, label) events, ``limits`` horizontal lines."""
    with figure(chart_id, width=8.4, height=3.0) as (fig, out):
        ax = fig.subplots()
        for i, (name, ys) in enumerate(lines.items()):
            ax.plot(range(len(x)), [float("nan") if y is None else y for y in ys], marker="." if len(x) < 60 else None,
                    color=COLORS[i % len(COLORS)], label=name)
        for j, (name, value) in enumerate((limits or {}).items()):
            ax.axhline(value, color=COLORS[3 + j], linestyle="--", linewidth=1, label=name)
        _marks(ax, x, marks)
        _date_axis(ax, x)
        _labels(ax, title, "", "")
        ax.legend(loc="upper left", fontsize=7, ncols=min(4, len(lines) + len(limits or {})))
    return out[0]


def band(chart_id: str, title: str, x: Sequence[str], quantiles: dict[str, Sequence[float | None]],
         marks: Sequence[tuple[str, str]] = ()) -> str:
    """A median line within a p05..p95 band, and the mean, over dates (``quantiles``: p05, p50, p95, mean)."""
    low, mid, high, mean = (quantiles[k] for k in ("p05", "p50", "p95", "mean"))

    def nums(ys: Sequence[float | None]) -> list[float]:
        return [float("nan") if y is None else y for y in ys]

    with figure(chart_id, width=8.4, height=3.0) as (fig, out):
        ax = fig.subplots()
        positions = list(range(len(x)))
        ax.fill_between(positions, nums(low), nums(high), color=COLORS[0], alpha=0.2, label="p05..p95")
        ax.plot(positions, nums(mid), color=COLORS[0], label="median")
        ax.plot(positions, nums(mean), color=COLORS[1], linestyle="--", label="mean")
        _marks(ax, x, marks)
        _date_axis(ax, x)
        _labels(ax, title, "", "score")
        ax.legend(loc="upper left", fontsize=7, ncols=3)
    return out[0]


def heatmap(chart_id: str, title: str, x: Sequence[str], rows: Sequence[str], values: Sequence[Sequence[float | None]],
            scale: tuple[float, str]) -> str:
    """A rows x dates heat map (missing values blank) with a colour bar from 0 to ``scale`` = (top, unit)."""
    import numpy as np

    vmax, unit = scale
    grid = np.array([[np.nan if v is None else v for v in row] for row in values], dtype="float64").reshape(len(rows), len(x))
    with figure(chart_id, width=8.4, height=max(2.4, 0.2 * len(rows) + 1.4)) as (fig, out):
        ax = fig.subplots()
        image = ax.imshow(grid, aspect="auto", cmap="YlOrRd", vmin=0, vmax=vmax, interpolation="nearest")
        ax.set_yticks(range(len(rows)), rows, fontsize=6)
        ax.grid(False)
        _date_axis(ax, x)
        fig.colorbar(image, ax=ax, label=unit, shrink=0.8)
        _labels(ax, title, "", "")
    return out[0]


def _labels(ax: Axes, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_title(title, loc="left", fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)


def _date_axis(ax: Axes, x: Sequence[str]) -> None:
    """At most ~12 date labels, whatever the number of dates."""
    step = max(1, len(x) // 12)
    ticks = list(range(0, len(x), step))
    ax.set_xticks(ticks, [x[i] for i in ticks], rotation=30, ha="right", fontsize=7)


def _marks(ax: Axes, x: Sequence[str], marks: Sequence[tuple[str, str]]) -> None:
    """Vertical lines at event dates (alias moves, new versions), labelled at the top of the axes."""
    index = {d: i for i, d in enumerate(x)}
    for day, text in marks:
        if day in index:
            ax.axvline(index[day], color="#555555", linestyle=":", linewidth=1)
            ax.annotate(text, (index[day], 1.0), xycoords=("data", "axes fraction"), fontsize=6, rotation=90,
                        va="top", ha="right", color="#555555")
