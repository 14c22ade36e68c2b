"""Feature specs: a YAML file (plus an optional user module) declaring a feature set, validated before Spark runs.

See docs/features.md for the format. Everything that can be checked without data is checked
here: unknown columns, bad windows or lags, duplicate names, aggregates over non-numeric
columns, ratios of unknown features, missing user functions. Each problem is one
:class:`~sparkml_ops.errors.FeatureSpecError` naming the file and the feature.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from sparkml_ops.config import Settings
from sparkml_ops.configfile import Frozen, YamlFile, import_user_module, key_problems, user_module_file
from sparkml_ops.errors import FeatureSpecError
from sparkml_ops.identifiers import check_hive_identifier, is_function_ref
from sparkml_ops.io.tables import is_numeric, normalize_type

DURATION_RE = re.compile(r"^(\d{1,5})([hd])$")
US_PER_HOUR = 3_600 * 1_000_000
LAYERS = ("raw", "features", "scores", "ops")
RESERVED = ("as_of_date", "label")
NUMERIC_FUNCS = {"sum", "mean", "min", "max", "stddev"}
FUNC_TYPES = {"count": "bigint", "count_distinct": "bigint", "approx_count_distinct": "bigint",
              "sum": "double", "mean": "double", "min": "double", "max": "double", "stddev": "double"}
SPEC_FILE = YamlFile(error=FeatureSpecError, empty_ok=False,
                     not_mapping="top level must be a mapping with name, entity_keys, sources, features.")


class _Derived(Frozen):
    name: str
    type: str
    expr: str | None = None
    python: str | None = None


class _Source(Frozen):
    table: str
    database: str = "raw"
    kind: Literal["events", "attributes"]
    columns: dict[str, str]
    time_column: str | None = None
    partition_column: str | None = None
    availability_lag: str | None = None
    derived: list[_Derived] = []


class _Feature(Frozen):
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


class _Spec(Frozen):
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


def spec_directory(settings: Settings) -> Path:
    """Where named specs live: ``features.spec_dir``, relative to the config directory unless absolute."""
    spec_dir = Path(settings.features.spec_dir).expanduser()
    return spec_dir if spec_dir.is_absolute() else (settings.conf_dir or Path("conf")) / spec_dir


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
    spec_dir = spec_directory(settings)
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
    raw = SPEC_FILE.read(path)
    try:
        model = _Spec.model_validate(raw)
    except ValidationError as exc:
        raise _pydantic_error(path, raw, exc) from exc
    return _build(path, model, settings)


def _pydantic_error(path: Path, raw: dict, exc: ValidationError) -> FeatureSpecError:
    problem = key_problems(exc)[0]
    loc = problem.loc
    feature = None
    if len(loc) >= 2 and loc[0] == "features" and loc[1].isdigit():
        item = (raw.get("features") or [])[int(loc[1])]
        number = f"#{int(loc[1]) + 1}"
        feature = (item.get("name") or item.get("column") or number) if isinstance(item, dict) else number
        problem = replace(problem, loc=loc[2:])
    return _error(path, f"{problem.describe()}.", feature)


def _load_function(path: Path, ref: str, feature: str) -> Callable[[], Any]:
    if not is_function_ref(ref):
        raise _error(path, f"python {ref!r} must be 'module:function' (module file next to the spec).", feature)
    module_name, _, func_name = ref.partition(":")
    module_path = user_module_file(path.parent, module_name)
    if not module_path.is_file():
        raise _error(path, f"user module {module_path} does not exist.", feature)
    try:
        module = import_user_module(module_name, path.parent)
    except Exception as exc:  # a user's module: report any failure with the file name
        raise _error(path, f"user module {module_path} failed to import: {type(exc).__name__}: {exc}.", feature) from exc
    func = getattr(module, func_name, None)
    if not callable(func):
        raise _error(path, f"user module {module_path} has no function {func_name!r}.", feature)
    return func


# Checkers: each returns the checked value or raises the spec error naming the file (and feature).

def _ident(path: Path, name: str, what: str, feature: str | None = None) -> str:
    try:
        return check_hive_identifier(name, what)
    except ValueError as exc:
        raise _error(path, f"{exc}.", feature) from exc


def _dtype(path: Path, text: str, feature: str | None) -> str:
    try:
        return normalize_type(text)
    except ValueError as exc:
        raise _error(path, f"{exc}.", feature) from exc


def _duration(path: Path, text: str, feature: str | None, what: str) -> int:
    try:
        return parse_duration_us(text)
    except ValueError as exc:
        raise _error(path, f"{what}: {exc}.", feature) from exc


def _build(path: Path, model: _Spec, settings: Settings) -> FeatureSpec:
    _ident(path, model.name, "feature set name")
    keys = [_ident(path, k, "entity key") for k in model.entity_keys]
    _ident(path, model.event_time, "event_time")
    sources, key_types = _sources(path, model, keys, settings)
    features = _features(path, model, keys, sources)
    return FeatureSpec(model.name, path, model.description, keys, model.event_time, sources, features, key_types)


def _sources(path: Path, model: _Spec, keys: list[str], settings: Settings) -> tuple[dict[str, SourceSpec], dict[str, str]]:
    """The checked sources, and the type of each entity key (the same in every source)."""
    sources: dict[str, SourceSpec] = {}
    key_types: dict[str, str] = {}
    for sname, src in model.sources.items():
        where = f"source '{sname}'"
        _ident(path, sname, "source name")
        columns = _declared_columns(path, where, src)
        key_types = _key_types(path, where, columns, key_types, keys)
        sources[sname] = _source(path, sname, src, columns, settings)
    return sources, key_types


def _declared_columns(path: Path, where: str, src: _Source) -> dict[str, str]:
    """``name -> normalized type`` of a source's declared columns."""
    return {_ident(path, c, "column", where): _dtype(path, t, where) for c, t in src.columns.items()}


def _key_types(path: Path, where: str, columns: Mapping[str, str], known: Mapping[str, str],
               keys: list[str]) -> dict[str, str]:
    """``known`` entity key types plus this source's: every key declared, and typed as in the other sources."""
    for key in keys:
        if key not in columns:
            raise _error(path, f"{where} does not declare entity key column '{key}'; declared: {', '.join(columns)}.")
        if known.get(key, columns[key]) != columns[key]:
            raise _error(path, f"{where}: entity key '{key}' is {columns[key]} but {known[key]} in another source.")
    return {**{key: columns[key] for key in keys}, **known}


def _source(path: Path, sname: str, src: _Source, declared: Mapping[str, str], settings: Settings) -> SourceSpec:
    """One source with its time columns, derived columns, table and availability lag checked."""
    where = f"source '{sname}'"
    columns = _with_partition_column(path, where, src, declared)
    derived = tuple(_derived(path, where, d, columns) for d in src.derived)
    database = getattr(settings.hive.databases, src.database) if src.database in LAYERS else src.database
    table = f"{_ident(path, database, 'database', where)}.{_ident(path, src.table, 'table', where)}"
    lag = src.availability_lag or settings.features.default_availability_lag
    lag_us = _duration(path, lag, None, f"{where} availability_lag")
    return SourceSpec(sname, table, src.kind, columns, src.time_column, src.partition_column, lag_us, derived)


def _with_partition_column(path: Path, where: str, src: _Source, declared: Mapping[str, str]) -> dict[str, str]:
    """The declared columns plus the day partition column; events sources need both time columns."""
    if src.kind == "events" and not src.time_column:
        raise _error(path, f"{where}: an events source needs time_column.")
    if src.kind == "events" and not src.partition_column:
        raise _error(path, f"{where}: an events source needs partition_column (the YYYY-MM-DD day partition).")
    if src.time_column and declared.get(src.time_column) != "timestamp":
        raise _error(path, f"{where}: time_column '{src.time_column}' must be a declared timestamp column, "
                     f"got {declared.get(src.time_column, 'undeclared')}.")
    if not src.partition_column:
        return dict(declared)
    _ident(path, src.partition_column, "partition_column", where)
    columns = {**declared, src.partition_column: declared.get(src.partition_column, "string")}
    if columns[src.partition_column] != "string":
        raise _error(path, f"{where}: partition_column '{src.partition_column}' must be a string YYYY-MM-DD.")
    return columns


def _derived(path: Path, where: str, d: _Derived, columns: Mapping[str, str]) -> DerivedColumn:
    if bool(d.expr) == bool(d.python):
        raise _error(path, f"{where}: derived column '{d.name}' needs exactly one of expr or python.")
    _ident(path, d.name, "derived column", where)
    if d.name in columns:
        raise _error(path, f"{where}: derived column '{d.name}' clashes with a declared column.")
    func = _load_function(path, d.python, d.name) if d.python else None
    return DerivedColumn(d.name, _dtype(path, d.type, d.name), d.expr, func)


def _features(path: Path, model: _Spec, keys: list[str], sources: Mapping[str, SourceSpec]) -> tuple[Feature, ...]:
    """Every output feature in spec order; names must be identifiers, unique and not reserved."""
    reserved = {*keys, model.event_time, *RESERVED}
    features: dict[str, Feature] = {}
    for i, item in enumerate(model.features):
        label = item.name or item.column or f"#{i + 1}"
        # Lazily expanded, so each feature's name is checked before the next window is (as written).
        for feat in _item_features(path, item, label, sources, features):
            _ident(path, feat.name, "feature name", feat.name)
            if feat.name in features or feat.name in reserved:
                raise _error(path, "duplicate feature name (or clashes with an entity key, event_time, as_of_date or label).",
                             feat.name)
            features[feat.name] = feat
    return tuple(features.values())


def _item_features(path: Path, item: _Feature, label: str, sources: Mapping[str, SourceSpec],
                   defined: Mapping[str, Feature]) -> Iterable[Feature]:
    """The features one spec item declares (an aggregate declares one per function and window)."""
    if item.type == "ratio":
        return [_ratio(path, item, label, defined)]
    src = _item_source(path, item, label, sources)
    if item.type == "aggregate":
        return _aggregates(path, item, label, src)
    if item.type == "recency":
        return [Feature(item.name or f"{src.name}_days_since_last", "recency", "double", src.name,
                        description=item.description)]
    if not item.name or not item.sql or not item.dtype:
        raise _error(path, "an expression needs name, sql and dtype.", label)
    return [Feature(item.name, "expression", _dtype(path, item.dtype, label), src.name, sql=item.sql,
                    description=item.description)]


def _item_source(path: Path, item: _Feature, label: str, sources: Mapping[str, SourceSpec]) -> SourceSpec:
    """The source a feature reads, of the kind its type needs."""
    if not item.source or item.source not in sources:
        raise _error(path, f"unknown source {item.source!r}; declared sources: {', '.join(sources)}.", label)
    src = sources[item.source]
    want = "attributes" if item.type == "expression" else "events"
    if src.kind != want:
        raise _error(path, f"a {item.type} feature needs a source of kind {want}; '{src.name}' is {src.kind}.", label)
    return src


def _aggregates(path: Path, item: _Feature, label: str, src: SourceSpec) -> Iterator[Feature]:
    """One feature per window and function: ``<prefix>_<column>_<function>_<window>``."""
    _check_aggregate(path, item, label, src)
    prefix = item.prefix or src.name
    for window in item.windows:
        w_us = _duration(path, window, label, "window")
        if w_us <= 0:
            raise _error(path, f"window {window!r} must be positive.", label)
        for func in item.functions:
            name = "_".join(p for p in (prefix, item.column, func, window.strip()) if p)
            yield Feature(name, "aggregate", FUNC_TYPES[func], src.name, func, item.column, w_us,
                          item.where, description=item.description)


def _check_aggregate(path: Path, item: _Feature, label: str, src: SourceSpec) -> None:
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


def _ratio(path: Path, item: _Feature, label: str, defined: Mapping[str, Feature]) -> Feature:
    """A ratio of two numeric features defined above it."""
    if not item.name or not item.numerator or not item.denominator:
        raise _error(path, "a ratio needs name, numerator and denominator.", label)
    for ref in (item.numerator, item.denominator):
        if ref not in defined:
            raise _error(path, f"ratio refers to unknown feature '{ref}' (define it above the ratio).", label)
        if not is_numeric(defined[ref].dtype):
            raise _error(path, f"ratio needs numeric features; '{ref}' is {defined[ref].dtype}.", label)
    return Feature(item.name, "ratio", "double", numerator=item.numerator, denominator=item.denominator,
                   description=item.description)


def feature_columns(spec: FeatureSpec) -> list[tuple[str, str]]:
    """``(feature column, Spark simple type)`` in output order: identical in feature tables and training sets."""
    return [(f.name, f.dtype) for f in spec.features]
