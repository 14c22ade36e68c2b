"""Model references for registry callers; the rules themselves live in :mod:`sparkml_ops.identifiers`."""

from sparkml_ops.identifiers import NAME_RE, NAME_RULE, ModelRef, check_name, parse_ref

__all__ = ["NAME_RE", "NAME_RULE", "ModelRef", "check_name", "parse_ref"]
