"""Every identifier rule of sparkml-ops, in one place: model and alias names, references, Hive, env and Python names, run ids.

Strings from the command line, config files and manifests are parsed here once, at the edge;
the rest of the package passes the typed results (:class:`ModelRef`) or the checked strings on.
No other module keeps a copy of these patterns.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sparkml_ops.errors import UsageError

# Model and alias names. A lowercase first letter: cannot start with '_' or '.' (reserved for
# registry bookkeeping such as `_aliases`, `_staging`) nor be a number (version directories);
# no '/', '..' or empty by construction, so a name is always one safe path segment.
NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
NAME_RULE = "1-64 characters: a lowercase letter, then lowercase letters, digits, '_' or '-'"
VERSION_RE = re.compile(r"^[1-9][0-9]{0,8}$")

# Hive databases, tables and columns: what Spark accepts unquoted and every metastore stores as is.
HIVE_IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
HIVE_RULE = "letters, digits, _; not starting with a digit"
TABLE_NAME_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]{0,127}\.)?[A-Za-z_][A-Za-z0-9_]{0,127}$")

# Environment names: the stem of conf/<env>.yaml.
ENV_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")

# Python code named in config files: a class by dotted path, a user function as module:function.
CLASS_PATH_RE = re.compile(r"^[A-Za-z_][\w.]*\.[A-Za-z_]\w*$")
FUNCTION_REF_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def is_name(value: object) -> bool:
    """True when ``value`` is a valid model or alias name."""
    return isinstance(value, str) and NAME_RE.fullmatch(value) is not None


def check_name(name: str, what: str = "model name") -> str:
    """Return ``name`` if it is a safe model or alias name.

    Raises:
        UsageError: the name is empty, too long, or has characters outside the safe set.
    """
    if not is_name(name):
        raise UsageError(f"{what} {name!r} is invalid: use {NAME_RULE} (e.g. 'fraud', 'churn_v2').")
    return name


def check_project_name(name: str) -> str:
    """Return ``name`` if a new model project may use it: a model name that is also a Hive and a Python name.

    ``new-model NAME`` names a feature table and an estimator module after the model, so '-' is refused.

    Raises:
        UsageError: the name breaks one of the three rules.
    """
    check_name(name)
    if "-" in name:
        raise UsageError(f"model name {name!r} cannot start a new model project: its feature table and module are "
                         f"named after it, so use '_' instead of '-' (e.g. {name.replace('-', '_')!r}).")
    return name


def is_hive_identifier(value: object) -> bool:
    """True when ``value`` is a Hive identifier (database, table or column)."""
    return isinstance(value, str) and HIVE_IDENTIFIER_RE.fullmatch(value) is not None


def check_hive_identifier(name: str, what: str = "name") -> str:
    """Return ``name`` if it is a Hive identifier.

    Raises:
        ValueError: it is not; callers turn this into the error of their layer (spec, config).
    """
    if not is_hive_identifier(name):
        raise ValueError(f"{what} {name!r} is not a Hive identifier ({HIVE_RULE})")
    return name


def is_table_name(value: object) -> bool:
    """True when ``value`` is ``table`` or ``database.table``, both parts Hive identifiers."""
    return isinstance(value, str) and TABLE_NAME_RE.fullmatch(value) is not None


def qualified(database: str, table: str) -> str:
    """``database.table`` after checking both parts are identifiers (``ValueError`` otherwise)."""
    return f"{check_hive_identifier(database, 'database')}.{check_hive_identifier(table, 'table')}"


def is_env_name(value: object) -> bool:
    """True when ``value`` can name an environment (``conf/<env>.yaml``)."""
    return isinstance(value, str) and ENV_NAME_RE.fullmatch(value) is not None


def is_class_path(value: object) -> bool:
    """True when ``value`` is a dotted class path such as ``sklearn.linear_model.LogisticRegression``."""
    return isinstance(value, str) and CLASS_PATH_RE.fullmatch(value) is not None


def is_function_ref(value: object) -> bool:
    """True when ``value`` names a function as ``module:function`` (the module may be dotted)."""
    return isinstance(value, str) and FUNCTION_REF_RE.fullmatch(value) is not None


@dataclass(frozen=True)
class ModelRef:
    """A parsed model reference: exactly one of ``version`` and ``alias`` is set."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        return f"{self.name}:{self.version}" if self.version is not None else f"{self.name}@{self.alias}"


def parse_ref(ref: str) -> ModelRef:
    """Parse ``NAME:VERSION`` or ``NAME@ALIAS``.

    Raises:
        UsageError: the reference has neither form, a bad name, or a version that is not a positive integer.
    """
    if not isinstance(ref, str):
        raise UsageError(f"model reference must be a string like 'fraud:3' or 'fraud@champion', got {ref!r}.")
    if "@" in ref:
        name, _, alias = ref.partition("@")
        return ModelRef(check_name(name), alias=check_name(alias, "alias"))
    if ":" in ref:
        name, _, version = ref.partition(":")
        check_name(name)
        if not VERSION_RE.fullmatch(version):
            raise UsageError(f"model reference {ref!r}: version must be a positive integer, e.g. '{name}:3'.")
        return ModelRef(name, version=int(version))
    raise UsageError(
        f"model reference {ref!r} names no version or alias: use NAME:VERSION (e.g. '{ref}:3') "
        f"or NAME@ALIAS (e.g. '{ref}@champion')."
    )


def parse_version_ref(ref: str) -> ModelRef:
    """Parse ``NAME:VERSION`` only: what must travel between registries (an alias means something else there).

    Raises:
        UsageError: not a valid ``NAME:VERSION`` (the same rules the registry applies).
    """
    # A bare name or an alias is refused with the one form that is valid here (parse_ref would suggest an alias).
    parsed = parse_ref(ref) if isinstance(ref, str) and (":" in ref or "@" in ref) else None
    if parsed is None or parsed.version is None:
        example = parsed.name if parsed else (ref if is_name(ref) else "fraud")
        raise UsageError(f"model reference {ref!r} is invalid: use NAME:VERSION, e.g. {example}:3.")
    return parsed


def new_run_id(job: str) -> str:
    """Sortable, unique run id: ``<job>-<UTC timestamp>-<random>``."""
    return f"{job}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
