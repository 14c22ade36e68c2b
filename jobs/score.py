"""spark-submit entry point: `sparkml-ops score` with the same flags; exit codes as in the README."""

import sys

from sparkml_ops.cli import main

if __name__ == "__main__":
    sys.exit(main(["score", *sys.argv[1:]]))
