"""spark-submit entry point: `sparkml-ops train` with the same flags; exit codes as in the README."""

import sys
from pathlib import Path

try:
    import sparkml_ops  # noqa: F401  (installed package, e.g. the release's venv or a venv-pack archive)
except ImportError:  # run from a checkout: the package sits next to jobs/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sparkml_ops.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
