"""Commands about the environment itself: config, doctor, init, sql."""

from __future__ import annotations

import argparse

from sparkml_ops import admin
from sparkml_ops.quickstart import MODEL, QuickstartOptions, run_quickstart
from sparkml_ops.cli.output import print_json, print_table
from sparkml_ops.config import Settings
from sparkml_ops.entrypoint import provenance_from_environment


def register(commands: argparse._SubParsersAction) -> None:
    """Add the ``config``, ``doctor``, ``init`` and ``sql`` commands."""
    config = commands.add_parser("config", help="show the effective configuration")
    config_cmds = config.add_subparsers(title="config commands", dest="config_command", metavar="COMMAND", required=True)
    show = config_cmds.add_parser("show", help="print the merged config (secrets masked) and where it came from")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(handler=_config_show)

    doctor = commands.add_parser(
        "doctor", help="check Java, Python packages, config and the registry's Kerberos login; "
                       "exit 2 if Java is missing, 9 (6: KDC unreachable) if Kerberos fails")
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    doctor.set_defaults(handler=_doctor)

    init = commands.add_parser("init", help="create the state directory and Hive databases of this environment")
    init.set_defaults(handler=_init)

    quick = commands.add_parser("quickstart", help="run the whole chain on the embedded default and show the result")
    quick.add_argument("--model", default=MODEL, help=f"the model config to run (default {MODEL}; e.g. one from new-model)")
    quick.set_defaults(handler=_quickstart)

    sql = commands.add_parser("sql", help="run one Spark SQL statement on this environment's metastore")
    sql.add_argument("query", help="the SQL statement, e.g. \"SHOW TABLES IN ml_scores\"")
    sql.add_argument("--limit", type=int, default=100, help="at most this many rows are fetched (default 100)")
    sql.add_argument("--json", action="store_true", help="machine-readable output")
    sql.set_defaults(handler=_sql)


def _config_show(args: argparse.Namespace, settings: Settings) -> int:
    data = settings.public_dict()
    if args.json:
        print_json(data)
    else:
        rows = sorted(_flatten(data).items())
        print_table(["key", "value"], rows)
    return 0


def _flatten(data: dict, prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and key != "conf":
            flat.update(_flatten(value, path + "."))
        elif isinstance(value, dict):
            flat.update({f"{path}.{k}": v for k, v in value.items()} or {path: "{}"})
        else:
            flat[path] = value
    return flat


def _doctor(args: argparse.Namespace, settings: Settings) -> int:
    report = admin.doctor(settings)
    if args.json:
        print_json(dict(report.checks))
    else:
        print_table(["check", "result"], report.checks)
    return 0


def _init(args: argparse.Namespace, settings: Settings) -> int:
    names = admin.init_environment(settings)
    print(f"environment '{settings.env}': state in {settings.state_dir}; Hive databases ready: {', '.join(names)}")
    return 0


def _sql(args: argparse.Namespace, settings: Settings) -> int:
    if args.limit < 1:
        from sparkml_ops.errors import UsageError

        raise UsageError(f"--limit must be at least 1, got {args.limit}.")
    result = admin.run_query(settings, args.query, args.limit)
    if args.json:
        print_json([dict(zip(result.columns, row)) for row in result.rows])
    else:
        print_table(result.columns, result.rows)
        if result.truncated:
            print(f"(first {args.limit} rows; raise --limit to see more)")
    return 0


def _quickstart(args: argparse.Namespace, settings: Settings) -> int:
    report = run_quickstart(settings, provenance_from_environment(), QuickstartOptions(model=args.model))
    print_table(["step", "result"], report.steps)
    print(f"\nTop scores in the Hive view (model {report.model_ref}):\n")
    print_table(report.sample_columns, report.sample_rows)
    print()
    print_table(["what", "where"], report.locations)
    return 0
