"""``python -m sparkml_ops.cli``: same as the ``sparkml-ops`` console script."""

from sparkml_ops.cli import run

run()
