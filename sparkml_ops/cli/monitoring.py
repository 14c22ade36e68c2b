"""The ``report`` and ``monitor`` command groups: the monitoring report, the missing-run check (and ``models report``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sparkml_ops.cli.output import print_json, print_table
from sparkml_ops.config import Settings
from sparkml_ops.entrypoint import parse_iso_date
from sparkml_ops.io.spark import spark_session

CHECK_EPILOG = """exit codes: 0 a successful score run covers the date; 10 none does (a missing_run alert was sent);
2 usage or configuration; 6 the metastore is unreachable. See README.md "Alerts"."""


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``report monitor`` and ``monitor check``."""
    report = commands.add_parser("report", help="HTML reports: the monitoring report of a model over time")
    cmds = report.add_subparsers(title="report commands", dest="report_command", metavar="COMMAND", required=True)
    p = cmds.add_parser("monitor", help="volume, score and feature drift, null rates and runs of a model over score dates",
                        description="One self-contained HTML file built from ml_ops.score_stats, feature_drift and job_runs "
                                    "(never from the scores).")
    p.add_argument("name", help="model name")
    p.add_argument("--from", dest="date_from", required=True, help="first score date, YYYY-MM-DD")
    p.add_argument("--to", dest="date_to", required=True, help="last score date, YYYY-MM-DD")
    p.add_argument("--out", help="the HTML file to write (default: monitor-<name>-<from>-<to>.html); - for stdout")
    p.set_defaults(handler=_monitor_report)

    monitor = commands.add_parser("monitor", help="checks for schedulers' sensor tasks")
    cmds = monitor.add_subparsers(title="monitor commands", dest="monitor_command", metavar="COMMAND", required=True)
    p = cmds.add_parser("check", help="is there a successful score run of a model for a date? (exit 10 and an alert if not)",
                        epilog=CHECK_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="model name")
    p.add_argument("--date", required=True, help="the score date, YYYY-MM-DD (the scheduler's logical date)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_check)


def write_html(html: str, out: str) -> str:
    """Write a report to ``out`` ('-' is stdout); returns where it went."""
    if out == "-":
        sys.stdout.write(html)
        return "stdout"
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return str(path.resolve())


def _monitor_report(args: argparse.Namespace, settings: Settings) -> int:
    from sparkml_ops.monitoring import monitor_report

    start, end = parse_iso_date(args.date_from, "--from"), parse_iso_date(args.date_to, "--to")
    with spark_session(settings, app_name=f"sparkml-ops-report-{args.name}") as spark:
        report = monitor_report(spark, settings, args.name, start, end)
    where = write_html(report.html, args.out or f"monitor-{args.name}-{start}-{end}.html")
    if where != "stdout":
        print(f"{report.title} written to {where}")
    return 0


def _check(args: argparse.Namespace, settings: Settings) -> int:
    from sparkml_ops.monitoring import check_run

    day = parse_iso_date(args.date, "--date")
    with spark_session(settings, app_name=f"sparkml-ops-check-{args.name}") as spark:
        result = check_run(spark, settings, args.name, day)
    if args.json:
        print_json({"model": result.model, "date": result.day, "found": result.found, "exit_code": result.exit_code,
                    "runs": [{k: r.get(k) for k in ("run_id", "status", "exit_code", "model_version", "started_at")}
                             for r in result.runs],
                    "alert": None if result.alert is None else {"id": result.alert.alert.alert_id,
                                                                "channels": dict(result.alert.channels)}})
        return result.exit_code
    print(f"{result.model} {result.day}: " + ("a successful score run covers it" if result.found
                                              else "NO successful score run (missing_run alert raised)"))
    if result.runs:
        print_table(["run_id", "status", "exit", "version", "started_at"],
                    [[r.get("run_id"), r.get("status"), r.get("exit_code"), r.get("model_version"), r.get("started_at")]
                     for r in result.runs])
    return result.exit_code
