"""The nightly chain's commands: ``train`` and ``score`` (the jobs in jobs/ run exactly these)."""

from __future__ import annotations

import argparse

from sparkml_ops.cli.output import print_json, print_table
from sparkml_ops.config import Settings
from sparkml_ops.entrypoint import add_date_options, dates_from_args, parse_iso_date, provenance_from_environment
from sparkml_ops.errors import UsageError
from sparkml_ops.identifiers import parse_ref
from sparkml_ops.io.spark import spark_session
from sparkml_ops.modelconfig import load_model_config


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``train`` and ``score``."""
    train = commands.add_parser("train", help="train, evaluate and register a new model version from conf/models/<model>.yaml")
    train.add_argument("model", help="model name (its config is <conf_dir>/models/<model>.yaml)")
    train.add_argument("--from", dest="date_from", required=True, help="first label date, YYYY-MM-DD")
    train.add_argument("--to", dest="date_to", required=True, help="last label date, YYYY-MM-DD (the last validation_days are validation)")
    train.add_argument("--dry-run", action="store_true", help="train and evaluate, print the gate decision, publish nothing")
    train.add_argument("--json", action="store_true", help="machine-readable output")
    train.set_defaults(handler=_train)

    score = commands.add_parser("score", help="score one date or a backfill range into the scores Hive table")
    score.add_argument("--model", required=True, help="NAME@ALIAS (e.g. card_fraud@champion) or NAME:VERSION")
    add_date_options(score)
    score.add_argument("--json", action="store_true", help="machine-readable output")
    score.set_defaults(handler=_score)


def _train(args: argparse.Namespace, settings: Settings) -> int:
    start, end = parse_iso_date(args.date_from, "--from"), parse_iso_date(args.date_to, "--to")
    if end < start:
        raise UsageError(f"--to {end} is before --from {start}.")
    from sparkml_ops.training import TrainingWindow, run_training  # imports sklearn and the feature layer: only when training

    config = load_model_config(settings.conf_dir, args.model)
    with spark_session(settings, app_name=f"sparkml-ops-train-{config.name}") as spark:
        result = run_training(spark, settings, config, TrainingWindow(start, end), provenance_from_environment(),
                              dry_run=args.dry_run)
    summary = {"run_id": result.run_id, "model": result.model_name, "version": result.version, "dry_run": result.dry_run,
               "metrics": result.metrics, "champion": result.gate.champion, "challenger": result.gate.challenger,
               "gate_reasons": result.gate.reasons}
    if args.json:
        print_json(summary)
    else:
        print_table(["metric", "validation"], [[k, f"{v:.4f}"] for k, v in result.metrics.items()])
        verdict = "would become" if result.dry_run else "is"
        print(f"\n{result.model_name}: version {result.version if result.version else '(dry run: not published)'}; "
              f"{verdict} champion: {'yes' if result.gate.champion else 'no'} ({'; '.join(result.gate.reasons)})")
    return 0


def _score(args: argparse.Namespace, settings: Settings) -> int:
    from sparkml_ops.scoring import run_scoring

    dates = dates_from_args(args)
    ref = parse_ref(args.model)  # the one parse of --model; everything below takes the ModelRef
    config = load_model_config(settings.conf_dir, ref.name)
    with spark_session(settings, app_name=f"sparkml-ops-score-{config.name}") as spark:
        result = run_scoring(spark, settings, config, ref, dates, provenance_from_environment())
    summary = {"run_id": result.run_id, "model": result.model_name, "version": result.model_version,
               "dates": result.dates, "table": result.table, "rows": result.rows_out, "psi": result.psi}
    if args.json:
        print_json(summary)
    else:
        print(f"scored {result.rows_out} rows with {result.model_name}:{result.model_version} into {result.table} "
              f"for {', '.join(result.dates)} (run {result.run_id})")
    return result.exit_code
