"""Commands ``demo-data`` (synthetic input tables) and ``features build|validate|stats``."""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta, timezone

from sparkml_ops.cli.output import print_json, print_table
from sparkml_ops.config import Settings
from sparkml_ops.entrypoint import add_date_options, dates_from_args, parse_iso_date
from sparkml_ops.errors import NotFoundError, UsageError
from sparkml_ops.io.spark import spark_session


def add_demo_options(parser: argparse.ArgumentParser) -> None:
    """Size and seed flags of the demo data generator."""
    parser.add_argument("--start", help="first day, YYYY-MM-DD (default: --days days before today, UTC)")
    parser.add_argument("--days", type=int, default=100, help="number of days (default 100)")
    parser.add_argument("--customers", type=int, default=2_000, help="number of customers (default 2000)")
    parser.add_argument("--tx-per-day", type=int, default=5_000, help="transactions per day (default 5000)")
    parser.add_argument("--seed", type=int, default=42, help="random seed; same seed, same data (default 42)")


def demo_args(args: argparse.Namespace) -> dict:
    """Keyword arguments of :func:`sparkml_ops.demo.demo_params` from the flags."""
    for name in ("days", "customers", "tx_per_day"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}.")
    start = (parse_iso_date(args.start, "--start") if args.start
             else datetime.now(timezone.utc).date() - timedelta(days=args.days))
    return {"start": start, "days": args.days, "customers": args.customers, "tx_per_day": args.tx_per_day, "seed": args.seed}


def add_build_options(parser: argparse.ArgumentParser) -> None:
    """Flags of the feature build."""
    parser.add_argument("spec", help="feature spec name (<conf_dir>/features/<name>.yaml) or path to a .yaml file")
    add_date_options(parser)
    parser.add_argument("--no-stats", action="store_true", help="skip the feature statistics of this run")
    parser.add_argument("--rebuild-state", action="store_true",
                        help="recompute the stored daily tiles of every source day these dates read (late data)")


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``demo-data`` and ``features``."""
    demo = commands.add_parser("demo-data", help="write synthetic card transactions, customers and fraud labels to Hive")
    add_demo_options(demo)
    demo.set_defaults(handler=_demo)

    features = commands.add_parser("features", help="build, check and inspect feature sets (conf/features/*.yaml)")
    cmds = features.add_subparsers(title="features commands", dest="features_command", metavar="COMMAND", required=True)
    build = cmds.add_parser("build", help="compute a feature set for --date or --from/--to into its Hive table")
    add_build_options(build)
    build.add_argument("--json", action="store_true", help="machine-readable output")
    build.set_defaults(handler=_build)

    validate = cmds.add_parser("validate", help="check a feature spec without Spark and list its feature columns")
    validate.add_argument("spec", help="feature spec name or path")
    validate.add_argument("--json", action="store_true", help="machine-readable output")
    validate.set_defaults(handler=_validate)

    stats = cmds.add_parser("stats", help="show the stored statistics of one build date")
    stats.add_argument("spec", help="feature spec name or path")
    stats.add_argument("--date", required=True, help="as-of date, YYYY-MM-DD")
    stats.add_argument("--json", action="store_true", help="machine-readable output")
    stats.set_defaults(handler=_stats)


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from sparkml_ops.demo import demo_params, generate_demo_data

    params = demo_params(**demo_args(args))  # before Spark: bad sizes cost no session
    with spark_session(settings, app_name="sparkml-ops-demo-data") as spark:
        result = generate_demo_data(spark, settings, params)
    print(f"{result.transactions} transactions {result.start}..{result.end} in {result.transactions_table}; "
          f"labels in {result.labels_table}; {result.customers} customers in {result.customers_table}")
    return 0


def _build(args: argparse.Namespace, settings: Settings) -> int:
    from sparkml_ops.features import build_features, load_feature_spec

    dates = dates_from_args(args)
    spec = load_feature_spec(args.spec, settings)  # before Spark: a bad spec costs no cluster time
    with spark_session(settings, app_name=f"sparkml-ops-features-{spec.name}") as spark:
        result = build_features(spark, settings, spec, dates, compute_stats=not args.no_stats,
                                rebuild_state=args.rebuild_state)
    if args.json:
        print_json({"feature_set": result.feature_set, "table": result.table, "rows_per_date": result.rows_per_date,
                    "stats_table": result.stats_table, "state_rebuilt": result.state_rebuilt,
                    "state_raw": result.state_raw, "rollups_read": result.rollups_read,
                    "rollups_built": result.rollups_built})
    else:
        print_table(["as_of_date", "rows"], sorted(result.rows_per_date.items()))
        print(f"\n{len(result.features)} features of {result.feature_set} in {result.table}"
              + (f"; statistics in {result.stats_table}" if result.stats_table else ""))
    return 0


def _validate(args: argparse.Namespace, settings: Settings) -> int:
    from sparkml_ops.features.spec import feature_columns, load_feature_spec

    spec = load_feature_spec(args.spec, settings)
    if args.json:
        print_json({"name": spec.name, "path": str(spec.path), "entity_keys": spec.entity_keys,
                    "sources": {n: s.table for n, s in spec.sources.items()},
                    "features": [{"name": n, "type": t} for n, t in feature_columns(spec)]})
    else:
        print_table(["feature", "type", "kind", "source"], [[f.name, f.dtype, f.kind, f.source or ""] for f in spec.features])
        print(f"\n{spec.path}: OK, {len(spec.features)} features of {spec.name} keyed by {', '.join(spec.entity_keys)}")
    return 0


def _stats(args: argparse.Namespace, settings: Settings) -> int:
    from sparkml_ops.features import load_feature_spec, read_feature_stats

    day = parse_iso_date(args.date, "--date")
    spec = load_feature_spec(args.spec, settings)
    with spark_session(settings, app_name="sparkml-ops-feature-stats") as spark:
        rows = read_feature_stats(spark, settings, spec.name, day.isoformat())
    if not rows:
        raise NotFoundError(f"no statistics of feature set {spec.name} for {day}.",
                            hint=f"Build it first: sparkml-ops features build {spec.name} --date {day}")
    if args.json:
        print_json(rows)
    else:
        cols = ["feature", "row_count", "null_count", "mean", "stddev", "min", "p50", "max"]
        print_table(cols, [[_fmt(r[c]) for c in cols] for r in rows])
    return 0


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else ("" if value is None else str(value))
