"""Feature specs: a YAML file (plus an optional user module) declaring a feature set, validated before Spark runs.

See docs/features.md for the format. Everything that can be checked without data is checked
here: unknown columns, bad windows or lags, duplicate names, aggregates over non-numeric
columns, ratios of unknown features, missing user functions. Each problem is one
:class:`~sparkml_ops.errors.FeatureSpecError` naming the file and the feature.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sparkml_ops.config import Settings
from sparkml_ops.errors import FeatureSpecError
from sparkml_ops.io.tables import check_identifier, is_numeric, normalize_type

DURATION_RE = re.compile(r"^(\d{1,5})([hd])$")
US_PER_HOUR = 3_600 * 1_000_000
LAYERS = ("raw", "features", "scores", "ops")
RESERVED = ("as_of_date", "label")
NUMERIC_FUNCS = {"sum", "mean", "min", "max", "stddev"}
FUNC_TYPES = {"count": "bigint", "count_distinct": "bigint", "approx_count_distinct": "bigint",
              "sum": "double", "mean": "double", "min": "double", "max": "double", "stddev": "double"}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Derived(_Model):
    name: str
    type: str
    expr: str | None = None
    python: str | None = None


class _Source(_Model):
    table: str
    database: str = "raw"
    kind: Literal["events", "attributes"]
    columns: dict[str, str]
    time_column: str | None = None
    partition_column: str | None = None
    availability_lag: str | None = None
    derived: list[_Derived] = []


class _Feature(_Model):
    type: Literal["aggregate", "ratio", "recency", "expression"]
    name: str | None = None
    source: str | None = None
    column: str | None = None
    functions: list[str] = []
    windows: list[str] = []
    where: str | None = None
    prefix: str | None = None
    numerator: str | None = None
    denominator: str | None = None
    sql: str | None = None
    dtype: str | None = None
    description: str = ""


class _Spec(_Model):
    name: str
    description: str = ""
    entity_keys: list[str] = Field(min_length=1)
    event_time: str = "event_time"
    sources: dict[str, _Source] = Field(min_length=1)
    features: list[_Feature] = Field(min_length=1)


@dataclass(frozen=True)
class DerivedColumn:
    """A row-level column added to a source before aggregation: SQL ``expr`` or a user ``function``."""

    name: str
    type: str
    expr: str | None = None
    function: Callable[[], Any] | None = None


@dataclass(frozen=True)
class SourceSpec:
    """One input table of a feature set, with its table name resolved from the settings."""

    name: str
    table: str
    kind: str
    columns: dict[str, str]
    time_column: str | None
    partition_column: str | None
    lag_us: int
    derived: tuple[DerivedColumn, ...] = ()

    def row_columns(self) -> dict[str, str]:
        """Declared plus derived columns, name -> type."""
        return {**self.columns, **{d.name: d.type for d in self.derived}}


@dataclass(frozen=True)
class Feature:
    """One output column of the feature set."""

    name: str
    kind: str  # aggregate | ratio | recency | expression
    dtype: str
    source: str | None = None
    func: str | None = None
    column: str | None = None
    window_us: int | None = None
    where: str | None = None
    numerator: str | None = None
    denominator: str | None = None
    sql: str | None = None
    description: str = ""


@dataclass(frozen=True)
class FeatureSpec:
    """A validated feature set."""

    name: str
    path: Path
    description: str
    entity_keys: list[str]
    event_time: str
    sources: dict[str, SourceSpec]
    features: tuple[Feature, ...]
    key_types: dict[str, str] = field(default_factory=dict)

    def features_of(self, source: str, kind: str) -> list[Feature]:
        """The features of one kind computed from one source."""
        return [f for f in self.features if f.source == source and f.kind == kind]

    def max_window_us(self, source: str) -> int:
        """The largest window over ``source`` (recency looks back as far as it)."""
        windows = [f.window_us for f in self.features if f.source == source and f.window_us]
        return max(windows, default=90 * 24 * US_PER_HOUR)

    def error(self, message: str, feature: str | None = None) -> FeatureSpecError:
        """A spec error naming this file (and the feature)."""
        return _error(self.path, message, feature)


def _error(path: Path, message: str, feature: str | None = None) -> FeatureSpecError:
    where = f"{path}: feature '{feature}'" if feature else str(path)
    return FeatureSpecError(f"{where}: {message}")


def parse_duration_us(text: str) -> int:
    """``'7d'`` -> microseconds; ``ValueError`` for anything but ``<n>h`` or ``<n>d``."""
    match = DURATION_RE.match(str(text).strip())
    if not match:
        raise ValueError(f"bad duration {text!r}: use <n>d or <n>h, e.g. 7d or 12h")
    n = int(match.group(1))
    return n * US_PER_HOUR * (24 if match.group(2) == "d" else 1)


def resolve_spec_path(path_or_name: str | Path, settings: Settings) -> Path:
    """A spec file path: an existing path as given, else ``<conf_dir>/<features.spec_dir>/<name>.yaml``.

    Raises:
        FeatureSpecError: no such file; the message lists the available specs.
    """
    text = str(path_or_name)
    candidate = Path(text).expanduser()
    if candidate.suffix in (".yaml", ".yml") or "/" in text:
        if candidate.is_file():
            return candidate.resolve()
        raise FeatureSpecError(f"feature spec file {candidate} does not exist.")
    spec_dir = Path(settings.features.spec_dir).expanduser()
    if not spec_dir.is_absolute():
        spec_dir = (settings.conf_dir or Path("conf")) / spec_dir
    path = spec_dir / f"{text}.yaml"
    if path.is_file():
        return path.resolve()
    known = sorted(p.stem for p in spec_dir.glob("*.yaml")) if spec_dir.is_dir() else []
    raise FeatureSpecError(
        f"no feature spec named {text!r}: {path} does not exist; {spec_dir} has {', '.join(known) or 'no specs'}.",
        hint="Pass a spec name from that list or a path to a .yaml file.",
    )


def load_feature_spec(path_or_name: str | Path, settings: Settings) -> FeatureSpec:
    """Load and validate a feature spec, before any Spark work.

    Args:
        path_or_name: a ``.yaml`` path, or a name looked up in ``features.spec_dir``.
        settings: resolve source databases (``raw`` -> ``hive.databases.raw``) and the default lag.

    Raises:
        FeatureSpecError: (exit code 2) naming the file and the feature.
    """
    path = resolve_spec_path(path_or_name, settings)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise FeatureSpecError(f"{where}: malformed YAML: {getattr(exc, 'problem', None) or exc}.") from exc
    if not isinstance(raw, dict):
        raise _error(path, "top level must be a mapping with name, entity_keys, sources, features.")
    try:
        model = _Spec.model_validate(raw)
    except ValidationError as exc:
        raise _pydantic_error(path, raw, exc) from exc
    return _build(path, model, settings)


def _pydantic_error(path: Path, raw: dict, exc: ValidationError) -> FeatureSpecError:
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"]]
    feature = None
    if len(loc) >= 2 and loc[0] == "features" and loc[1].isdigit():
        item = (raw.get("features") or [])[int(loc[1])]
        feature = (item.get("name") or item.get("column") or f"#{int(loc[1]) + 1}") if isinstance(item, dict) else f"#{int(loc[1]) + 1}"
        loc = loc[2:]
    key = ".".join(loc)
    if err["type"] == "extra_forbidden":
        msg = f"unknown key '{key}'."
    elif err["type"] == "missing":
        msg = f"missing required key '{key}'."
    else:
        msg = f"key '{key}' has bad value {err.get('input')!r}: {err['msg']}."
    return _error(path, msg, feature)


def _load_function(path: Path, ref: str, feature: str) -> Callable[[], Any]:
    module_name, sep, func_name = ref.partition(":")
    if not sep or not module_name or not func_name:
        raise _error(path, f"python {ref!r} must be 'module:function' (module file next to the spec).", feature)
    module_path = path.parent / f"{module_name}.py"
    if not module_path.is_file():
        raise _error(path, f"user module {module_path} does not exist.", feature)
    spec = importlib.util.spec_from_file_location(f"sparkml_ops_user_features.{module_name}", module_path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # a user's module: report any failure with the file name
        raise _error(path, f"user module {module_path} failed to import: {type(exc).__name__}: {exc}.", feature) from exc
    func = getattr(module, func_name, None)
    if not callable(func):
        raise _error(path, f"user module {module_path} has no function {func_name!r}.", feature)
    return func


def _build(path: Path, model: _Spec, settings: Settings) -> FeatureSpec:
    def ident(name: str, what: str, feature: str | None = None) -> str:
        try:
            return check_identifier(name, what)
        except ValueError as exc:
            raise _error(path, f"{exc}.", feature) from exc

    def dtype(text: str, feature: str | None) -> str:
        try:
            return normalize_type(text)
        except ValueError as exc:
            raise _error(path, f"{exc}.", feature) from exc

    def duration(text: str, feature: str | None, what: str) -> int:
        try:
            return parse_duration_us(text)
        except ValueError as exc:
            raise _error(path, f"{what}: {exc}.", feature) from exc

    ident(model.name, "feature set name")
    keys = [ident(k, "entity key") for k in model.entity_keys]
    ident(model.event_time, "event_time")
    sources: dict[str, SourceSpec] = {}
    key_types: dict[str, str] = {}
    for sname, src in model.sources.items():
        where = f"source '{sname}'"
        ident(sname, "source name")
        columns = {ident(c, "column", where): dtype(t, where) for c, t in src.columns.items()}
        for key in keys:
            if key not in columns:
                raise _error(path, f"{where} does not declare entity key column '{key}'; declared: {', '.join(columns)}.")
            if key_types.setdefault(key, columns[key]) != columns[key]:
                raise _error(path, f"{where}: entity key '{key}' is {columns[key]} but {key_types[key]} in another source.")
        if src.kind == "events" and not src.time_column:
            raise _error(path, f"{where}: an events source needs time_column.")
        if src.kind == "events" and not src.partition_column:
            raise _error(path, f"{where}: an events source needs partition_column (the YYYY-MM-DD day partition).")
        if src.time_column and columns.get(src.time_column) != "timestamp":
            raise _error(path, f"{where}: time_column '{src.time_column}' must be a declared timestamp column, "
                         f"got {columns.get(src.time_column, 'undeclared')}.")
        if src.partition_column:
            ident(src.partition_column, "partition_column", where)
            columns.setdefault(src.partition_column, "string")
            if columns[src.partition_column] != "string":
                raise _error(path, f"{where}: partition_column '{src.partition_column}' must be a string YYYY-MM-DD.")
        derived = []
        for d in src.derived:
            if bool(d.expr) == bool(d.python):
                raise _error(path, f"{where}: derived column '{d.name}' needs exactly one of expr or python.")
            ident(d.name, "derived column", where)
            if d.name in columns:
                raise _error(path, f"{where}: derived column '{d.name}' clashes with a declared column.")
            func = _load_function(path, d.python, d.name) if d.python else None
            derived.append(DerivedColumn(d.name, dtype(d.type, d.name), d.expr, func))
        database = getattr(settings.hive.databases, src.database) if src.database in LAYERS else src.database
        table = f"{ident(database, 'database', where)}.{ident(src.table, 'table', where)}"
        lag = src.availability_lag or settings.features.default_availability_lag
        sources[sname] = SourceSpec(sname, table, src.kind, columns, src.time_column, src.partition_column,
                                    duration(lag, None, f"{where} availability_lag"), tuple(derived))

    features: list[Feature] = []
    seen: dict[str, str] = {}

    def add(feat: Feature) -> None:
        ident(feat.name, "feature name", feat.name)
        if feat.name in seen or feat.name in keys or feat.name in (model.event_time, *RESERVED):
            raise _error(path, "duplicate feature name (or clashes with an entity key, event_time, as_of_date or label).", feat.name)
        seen[feat.name] = feat.dtype
        features.append(feat)

    for i, item in enumerate(model.features):
        label = item.name or item.column or f"#{i + 1}"
        if item.type in ("aggregate", "recency", "expression"):
            if not item.source or item.source not in sources:
                raise _error(path, f"unknown source {item.source!r}; declared sources: {', '.join(sources)}.", label)
            src = sources[item.source]
            want = "attributes" if item.type == "expression" else "events"
            if src.kind != want:
                raise _error(path, f"a {item.type} feature needs a source of kind {want}; '{src.name}' is {src.kind}.", label)
        if item.type == "aggregate":
            row_cols = src.row_columns()
            if item.column is not None and item.column not in row_cols:
                raise _error(path, f"unknown column '{item.column}' in source '{src.name}'; columns: {', '.join(row_cols)}.", label)
            if not item.functions or not item.windows:
                raise _error(path, "an aggregate needs functions and windows.", label)
            if len(set(item.windows)) != len(item.windows):
                raise _error(path, f"duplicate windows {item.windows}.", label)
            for func in item.functions:
                if func not in FUNC_TYPES:
                    raise _error(path, f"unknown function '{func}'; known: {', '.join(FUNC_TYPES)}.", label)
                if item.column is None and func != "count":
                    raise _error(path, f"function '{func}' needs a column.", label)
                if func in NUMERIC_FUNCS and not is_numeric(row_cols[item.column]):
                    raise _error(path, f"function '{func}' needs a numeric column; '{item.column}' is {row_cols[item.column]}.", label)
            prefix = item.prefix or src.name
            for window in item.windows:
                w_us = duration(window, label, "window")
                if w_us <= 0:
                    raise _error(path, f"window {window!r} must be positive.", label)
                for func in item.functions:
                    name = "_".join(p for p in (prefix, item.column, func, window.strip()) if p)
                    add(Feature(name, "aggregate", FUNC_TYPES[func], src.name, func, item.column, w_us,
                                item.where, description=item.description))
        elif item.type == "recency":
            add(Feature(item.name or f"{src.name}_days_since_last", "recency", "double", src.name,
                        description=item.description))
        elif item.type == "expression":
            if not item.name or not item.sql or not item.dtype:
                raise _error(path, "an expression needs name, sql and dtype.", label)
            add(Feature(item.name, "expression", dtype(item.dtype, label), src.name, sql=item.sql,
                        description=item.description))
        else:
            if not item.name or not item.numerator or not item.denominator:
                raise _error(path, "a ratio needs name, numerator and denominator.", label)
            for ref in (item.numerator, item.denominator):
                if ref not in seen:
                    raise _error(path, f"ratio refers to unknown feature '{ref}' (define it above the ratio).", label)
                if not is_numeric(seen[ref]):
                    raise _error(path, f"ratio needs numeric features; '{ref}' is {seen[ref]}.", label)
            add(Feature(item.name, "ratio", "double", numerator=item.numerator, denominator=item.denominator,
                        description=item.description))
    return FeatureSpec(model.name, path, model.description, keys, model.event_time, sources, tuple(features), key_types)


def feature_columns(spec: FeatureSpec) -> list[tuple[str, str]]:
    """``(feature column, Spark simple type)`` in output order: identical in feature tables and training sets."""
    return [(f.name, f.dtype) for f in spec.features]
