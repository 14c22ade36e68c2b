"""spark-submit entry point: compute a feature set for --date or --from/--to (as `sparkml-ops features build`).
    spark-submit jobs/build_features.py card_fraud --date 2026-01-31 [--env prod]

Exit codes as in the README: 0 ok, 2 bad spec/flags/config, 3 bad data (nothing written), 4 missing table.
"""
import argparse
import os
import sys
from pathlib import Path

try:
    import sparkml_ops  # noqa: F401  (installed package)
except ImportError:  # run from a checkout: the package sits next to jobs/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sparkml_ops.cli.features import add_build_options
from sparkml_ops.entrypoint import add_global_options, dates_from_args, early_logging, guarded, settings_from_args
from sparkml_ops.features import build_features, load_feature_spec
from sparkml_ops.io.spark import spark_session


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="build_features.py", description=__doc__.splitlines()[0])
    add_global_options(parser)
    add_build_options(parser)
    args = parser.parse_args(argv)
    early_logging(args, os.environ)

    def body() -> int:
        settings = settings_from_args(args)
        dates = dates_from_args(args)
        spec = load_feature_spec(args.spec, settings)  # validated before Spark starts
        with spark_session(settings, app_name=f"sparkml-ops-features-{spec.name}") as spark:
            return build_features(spark, settings, spec, dates, compute_stats=not args.no_stats).exit_code

    return guarded(body)


if __name__ == "__main__":
    sys.exit(main())
