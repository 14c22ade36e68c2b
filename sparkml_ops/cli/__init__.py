"""The ``sparkml-ops`` console script: parse, load config once, call one library function."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence

from sparkml_ops import __version__
from sparkml_ops.cli import admin, features, jobs, lifecycle, models, monitoring
from sparkml_ops.entrypoint import add_global_options, guarded, settings_from_args

# Each module adds its command group; a new group is one import and one entry here.
GROUPS = (admin, models, jobs, features, lifecycle, monitoring)

EPILOG = """exit codes: 0 ok, 1 unexpected error (bug), 2 usage or configuration, 3 data validation,
4 not found, 5 integrity (checksum), 6 remote system unreachable, 7 refused by a gate,
8 conflict with a concurrent writer, 9 authentication (Kerberos), 10 missing run (monitor check),
11 inputs changed and 12 not reproduced (models reproduce), 130 interrupted. See README.md."""


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with one sub-command per use-case."""
    parser = argparse.ArgumentParser(
        prog="sparkml-ops",
        description="Batch ML on Hadoop/Spark: versioned model artifacts, feature, training and scoring jobs.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"sparkml-ops {__version__}")
    add_global_options(parser)
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    for group in GROUPS:
        group.register(commands)
    for leaf in _leaf_parsers(parser):
        # Accept the global options after the command too: `spark-submit jobs/score.py --env prod ...`
        # becomes `sparkml-ops score --env prod ...`.
        add_global_options(leaf, on_subcommand=True)
    return parser


def _leaf_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    leaves = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                leaves.extend(_leaf_parsers(sub) or [sub])
    return leaves


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run the CLI and return its exit code (never calls ``sys.exit`` itself)."""
    environ = os.environ if environ is None else environ
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return 2
    return guarded(lambda: args.handler(args, settings_from_args(args, environ)))


def run() -> None:
    """Console-script entry: exit with :func:`main`'s code."""
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader (`| head`) went away: not our failure. Point stdout at devnull so the
        # interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    sys.exit(code)
