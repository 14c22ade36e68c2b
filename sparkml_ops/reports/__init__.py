"""Self-contained HTML reports: the model report of a version and the monitoring report of a model over time.

Pages are Jinja2 templates (package data under ``templates/``) with matplotlib SVG charts inlined: a report
is one file that opens without any network access (no CDN, no web fonts, no scripts). Rendering is pure:
callers pass plain data read from the registry and the ops tables, and get HTML text back.
"""

from sparkml_ops.reports.model import ModelReportData, render_model_report
from sparkml_ops.reports.monitor import MonitorData, render_monitor_report

__all__ = ["ModelReportData", "MonitorData", "render_model_report", "render_monitor_report"]
