"""The lifecycle commands: ``new-model``, ``trace``, ``status`` and ``models reproduce``."""

from __future__ import annotations

import argparse

from sparkml_ops.cli.output import print_json, print_table
from sparkml_ops.config import Settings
from sparkml_ops.errors import EXIT_NOT_FOUND


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``new-model``, ``trace`` and ``status``."""
    from sparkml_ops.lifecycle.scaffold import TEMPLATES

    new = commands.add_parser(
        "new-model", help="start a model the approved way: config, feature spec, test and schedules from templates",
        description="Write conf/models/NAME.yaml, a feature spec (or reuse one), an optional estimator module, "
                    "tests/models/test_NAME.py and schedules/NAME/ (cron, Airflow). Never overwrites a file. "
                    "Exit codes: 2 invalid name or template, 4 unknown feature set, 8 a file exists (nothing written).")
    new.add_argument("name", help="model name: lowercase letters, digits and '_' (also the feature table and module name)")
    new.add_argument("--template", choices=TEMPLATES, default="binary",
                     help="binary (default): a classifier; regression; sparkml: a Spark ML pipeline; rules: a SQL expression")
    new.add_argument("--feature-set", metavar="SPEC", help="reuse this existing feature spec instead of generating one")
    new.add_argument("--estimator-module", action="store_true",
                     help="binary/regression: build the estimator in conf/models/NAME_estimator.py (sparkml always does)")
    new.add_argument("--json", action="store_true", help="machine-readable output")
    new.set_defaults(handler=_new_model)
    register_trace(commands)


def _new_model(args: argparse.Namespace, settings: Settings) -> int:
    from sparkml_ops.entrypoint import provenance_from_environment
    from sparkml_ops.lifecycle.scaffold import NewModel, new_model

    owner = provenance_from_environment().user
    done = new_model(settings, NewModel(args.name, args.template, args.feature_set, args.estimator_module, owner))
    if args.json:
        print_json({"model": args.name, "template": args.template, "root": str(done.root),
                    "files": [str(f) for f in done.files], "next": list(done.next_steps)})
        return 0
    print(f"new {args.template} model {args.name} in {done.root}:")
    for path in done.files:
        print(f"  {path.relative_to(done.root) if path.is_relative_to(done.root) else path}")
    print("\nnext:")
    for step in done.next_steps:
        print(f"  {step}")
    return 0


def register_trace(commands: argparse._SubParsersAction) -> None:
    """Add ``trace`` and ``status``."""
    tr = commands.add_parser(
        "trace", help="from a score (or a run) to its run record, model version, manifest, commit and deployment",
        description="Follow a scored row, or a run, through ml_ops.job_runs, the registry and the HDFS copy of the "
                    "deployment audit trail of this environment (--env). States what it cannot find. Exit 0 when "
                    "the chain is complete, 4 when a link is missing (the output says which).")
    tr.add_argument("--model", help="model name of the scored row")
    tr.add_argument("--date", help="score date of the row, YYYY-MM-DD")
    tr.add_argument("--entity", help="entity key of the row (composite keys joined with '|', as in ml_scores.scores)")
    tr.add_argument("--run", dest="run_id", help="a run id (ml_ops.job_runs.run_id) instead of, or with, a row")
    tr.add_argument("--json", action="store_true", help="machine-readable output")
    tr.set_defaults(handler=_trace)

    st = commands.add_parser(
        "status", help="what is in this environment (--env), who put it there and when: releases and model aliases",
        description="From the registry and the HDFS copy of the deployment audit trail only: no SSH, no Spark.")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    st.set_defaults(handler=_status)


def _trace(args: argparse.Namespace, settings: Settings) -> int:
    from sparkml_ops.entrypoint import parse_iso_date
    from sparkml_ops.identifiers import check_name
    from sparkml_ops.io.spark import spark_session
    from sparkml_ops.lifecycle.trace import TraceQuery, trace

    query = TraceQuery(check_name(args.model) if args.model else None,
                       parse_iso_date(args.date, "--date") if args.date else None, args.entity, args.run_id)
    with spark_session(settings, app_name="sparkml-ops-trace") as spark:
        found = trace(spark, settings, query)
    if args.json:
        print_json(found.as_dict())
    else:
        _print_trace(found)
    return EXIT_NOT_FOUND if found.gaps else 0


def _print_trace(found) -> None:
    data = found.as_dict()
    model = data["model"] or {}
    manifest = model.get("manifest") or {}
    sections = [
        ("scored row", data["score"]),
        ("run record", data["run"]),
        ("model version", {k: v for k, v in model.items() if k != "manifest"} or None),
        ("manifest", manifest or None),
        ("training run", data["training_run"]),
        (f"deployment in {data['env']}", data["deployment"]),
    ]
    for title, values in sections:
        print(f"== {title}")
        if values:
            print_table(["field", "value"], [[k, _cell(v)] for k, v in values.items()])
        else:
            print("  (not found)")
        print()
    print("== not found" if data["gaps"] else "== complete: every link of the chain was found")
    for gap in data["gaps"]:
        print(f"  - {gap}")


def _cell(value) -> str:
    import json

    return json.dumps(value, default=str, sort_keys=True) if isinstance(value, (dict, list)) else str(value)


def _status(args: argparse.Namespace, settings: Settings) -> int:
    from sparkml_ops.lifecycle.trace import environment_status

    status = environment_status(settings)
    if args.json:
        print_json(status.as_dict())
        return 0
    print(f"== releases in {status.env} (HDFS audit copy)")
    print_table(["host", "build", "since", "by", "action", "change", "approvals", "commit"],
                [[r["host"], r["build"], r["since"], r["by"], r["action"], r["change_id"] or "",
                  ",".join(r["approvals"]), (r["commit"] or "")[:12]] for r in status.releases])
    print(f"\n== models in {status.env} (registry)")
    print_table(["model", "alias", "version", "since", "set by", "reason", "trained by", "build"],
                [[m["model"], m["alias"], m["version"], m["since"], m["by"], m["reason"] or "", m["created_by"],
                  m["build_id"] or ""] for m in status.models])
    for gap in status.gaps:
        print(f"\nnot found: {gap}")
    return 0


def register_reproduce(models: argparse._SubParsersAction) -> None:
    """Add ``models reproduce`` to the ``models`` group."""
    p = models.add_parser(
        "reproduce", help="retrain a version from its recorded inputs in a scratch directory and compare",
        description="Check the version's recorded spec, config and source partitions against today, retrain it into "
                    "a scratch registry, compare predictions on its validation rows and metrics, and write "
                    "reproduce.json for auditors. Exit codes: 0 identical or equivalent, 11 inputs changed "
                    "(nothing retrained; --force runs anyway), 12 different, 4 unknown version.")
    p.add_argument("ref", help="NAME:VERSION, e.g. card_fraud:3")
    p.add_argument("--force", action="store_true", help="retrain even when inputs changed; the report is marked forced")
    p.add_argument("--register", action="store_true", help="also publish the result as a new version (no alias)")
    p.add_argument("--out", help="scratch directory root (default: <state_dir>/reproduce)")
    p.add_argument("--tolerance", type=float, default=None,
                   help="largest absolute score and metric difference still 'equivalent' (default 1e-9)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_reproduce)


def _reproduce(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from sparkml_ops.entrypoint import provenance_from_environment
    from sparkml_ops.identifiers import parse_version_ref
    from sparkml_ops.io.spark import spark_session
    from sparkml_ops.lifecycle.reproduce import DEFAULT_TOLERANCE, ReproduceRequest, reproduce

    request = ReproduceRequest(parse_version_ref(args.ref), args.force, args.register,
                               Path(args.out).resolve() if args.out else None,
                               DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance)
    with spark_session(settings, app_name=f"sparkml-ops-reproduce-{request.ref.name}") as spark:
        report = reproduce(spark, settings, request, provenance_from_environment())
    body = report.body
    if args.json:
        print_json(body)
        return report.exit_code
    predictions = body.get("predictions") or {}
    print(f"{body['ref']}: {report.verdict.upper()}{' (FORCED: inputs changed)' if body['forced'] else ''}")
    print(f"  validation rows ({predictions.get('source')}): {predictions.get('rows')}, differing "
          f"{predictions.get('rows_differing')}, max |score difference| {predictions.get('max_abs_diff')}")
    print_table(["metric", "registered", "reproduced", "equal"],
                [[m["name"], m["registered"], m["reproduced"], "yes" if m["equal"] else "NO"] for m in body["metrics"]])
    for line in body["changed"]:
        print(f"  changed: {line}")
    for line in body["notes"]:
        print(f"  note: {line}")
    print(f"report: {report.path}")
    return report.exit_code
