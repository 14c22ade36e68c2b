"""spark-submit entry point: write the synthetic demo tables (as `sparkml-ops demo-data`).
    spark-submit jobs/demo_data.py --start 2026-01-01 --days 100 --customers 200000 --tx-per-day 200000

Exit codes as in the README: 0 ok, 2 bad flags or config.
"""
import argparse
import os
import sys
from pathlib import Path

try:
    import sparkml_ops  # noqa: F401  (installed package)
except ImportError:  # run from a checkout: the package sits next to jobs/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sparkml_ops.cli.features import add_demo_options, demo_args
from sparkml_ops.demo import generate_demo_data
from sparkml_ops.entrypoint import add_global_options, early_logging, guarded, settings_from_args
from sparkml_ops.io.spark import spark_session


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo_data.py", description=__doc__.splitlines()[0])
    add_global_options(parser)
    add_demo_options(parser)
    args = parser.parse_args(argv)
    early_logging(args, os.environ)

    def body() -> int:
        settings = settings_from_args(args)
        kwargs = demo_args(args)
        with spark_session(settings, app_name="sparkml-ops-demo-data") as spark:
            return generate_demo_data(spark, settings, **kwargs).exit_code

    return guarded(body)


if __name__ == "__main__":
    sys.exit(main())
