"""Model names, alias names and the two reference forms: ``NAME:VERSION`` and ``NAME@ALIAS``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sparkml_ops.errors import UsageError

# Lowercase first letter: cannot start with '_' or '.' (reserved for registry bookkeeping such as
# `_aliases`, `_staging`) nor be a number (version directories); no '/', '..' or empty by construction.
NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
NAME_RULE = "1-64 characters: a lowercase letter, then lowercase letters, digits, '_' or '-'"


def check_name(name: str, what: str = "model name") -> str:
    """Return ``name`` if it is a safe model or alias name.

    Raises:
        UsageError: the name is empty, too long, or has characters outside the safe set.
    """
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise UsageError(f"{what} {name!r} is invalid: use {NAME_RULE} (e.g. 'fraud', 'churn_v2').")
    return name


@dataclass(frozen=True)
class ModelRef:
    """A parsed reference: exactly one of ``version`` and ``alias`` is set."""

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
        if not re.fullmatch(r"[1-9][0-9]{0,8}", version):
            raise UsageError(f"model reference {ref!r}: version must be a positive integer, e.g. '{name}:3'.")
        return ModelRef(name, version=int(version))
    raise UsageError(
        f"model reference {ref!r} names no version or alias: use NAME:VERSION (e.g. '{ref}:3') "
        f"or NAME@ALIAS (e.g. '{ref}@champion')."
    )
