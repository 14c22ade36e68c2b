"""The manifest of a model version: what a regulator or a new colleague needs, as plain JSON.

The manifest's ``files`` list (path, size, sha256 of every file of the version) is the source
of truth for integrity: loads and ``models verify`` check stored bytes against it.
"""

from __future__ import annotations

import json
import platform
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

from sparkml_ops.errors import IntegrityError
from sparkml_ops.io.storage import safe_relpath

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ENVIRONMENT = "environment.json"
MODEL_DIR = "model"
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_SECRET_KEY = re.compile(r"password|secret|token|credential|keytab", re.IGNORECASE)
# Packages whose versions go into every environment spec; flavors add their own.
BASE_PACKAGES = ("sparkml-ops", "numpy", "pandas", "pyarrow", "pyspark", "scikit-learn", "joblib")

# Spark simple type -> the pandas dtype the same column has after Arrow conversion.
SPARK_TO_PANDAS = {
    "string": "object", "binary": "object", "boolean": "bool",
    "tinyint": "int8", "byte": "int8", "smallint": "int16", "short": "int16",
    "int": "int32", "integer": "int32", "bigint": "int64", "long": "int64",
    "float": "float32", "double": "float64",
    "date": "object", "timestamp": "datetime64[ns]", "timestamp_ntz": "datetime64[ns]",
}
_DECIMAL = re.compile(r"^decimal\(\d{1,2},\d{1,2}\)$")
_ARRAY = re.compile(r"^array<(.+)>$")


def pandas_dtype(spark_type: str) -> str:
    """The pandas dtype of a Spark simple type string (``double`` -> ``float64``).

    Raises:
        ValueError: not a Spark simple type string.
    """
    t = spark_type.strip().lower()
    if t in SPARK_TO_PANDAS:
        return SPARK_TO_PANDAS[t]
    if _DECIMAL.match(t) or (_ARRAY.match(t) and pandas_dtype(_ARRAY.match(t).group(1))):
        return "object"
    raise ValueError(
        f"unknown Spark type {spark_type!r}: use a simple type string such as "
        f"{', '.join(sorted(SPARK_TO_PANDAS))}, decimal(p,s) or array<type>"
    )


@dataclass(frozen=True)
class Signature:
    """Input columns and output schema of a model, as (name, Spark simple type) pairs."""

    inputs: list[tuple[str, str]] | tuple[tuple[str, str], ...]
    outputs: list[tuple[str, str]] | tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict[str, list[dict[str, str]]]:
        """Manifest form: each column with its Spark type and pandas dtype.

        Raises:
            ValueError: a column is not a (name, type) pair, a name repeats, or a type is unknown.
        """
        out = {}
        for key, cols in (("inputs", self.inputs), ("outputs", self.outputs)):
            rows, seen = [], set()
            for col in cols:
                if not (isinstance(col, (tuple, list)) and len(col) == 2 and all(isinstance(c, str) for c in col)):
                    raise ValueError(f"signature {key}: each column must be a (name, spark_type) pair, got {col!r}")
                name, spark_type = col
                if not name or name in seen:
                    raise ValueError(f"signature {key}: column name {name!r} is empty or repeated")
                seen.add(name)
                rows.append({"name": name, "type": spark_type.strip().lower(), "pandas_dtype": pandas_dtype(spark_type)})
            out[key] = rows
        return out

    @classmethod
    def from_spark(cls, inputs, outputs=None) -> Signature:
        """Build from Spark ``StructType`` schemas (e.g. ``df.select(features).schema``)."""
        def cols(schema):
            return [(f.name, f.dataType.simpleString()) for f in (schema.fields if schema is not None else [])]

        return cls(inputs=cols(inputs), outputs=cols(outputs))

    @classmethod
    def from_dict(cls, data: dict | None) -> Signature:
        """Inverse of :meth:`to_dict`: the one parser of a manifest's ``signature`` (``None`` gives an empty one).

        Columns are ``{"name", "type"}`` objects as written by :meth:`to_dict`, or ``[name, type]`` pairs.
        """
        def cols(items) -> list[tuple[str, str]]:
            return [(c["name"], c["type"]) if isinstance(c, dict) else (c[0], c[1]) for c in items or []]

        data = data or {}
        return cls(inputs=cols(data.get("inputs")), outputs=cols(data.get("outputs")))


@dataclass(frozen=True)
class Provenance:
    """Who did something, from where, with which code; built by entry points, never from the environment here."""

    user: str
    host: str
    git_commit: str | None = None
    git_dirty: bool = False
    build_id: str | None = None

    def __post_init__(self) -> None:
        for key in ("user", "host"):
            value = getattr(self, key)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"Provenance.{key} must be a non-empty string, got {value!r}")
        if self.git_commit is not None and not re.fullmatch(r"[0-9a-f]{7,64}", self.git_commit):
            raise ValueError(f"Provenance.git_commit must be a hex commit id, got {self.git_commit!r}")

    def who(self) -> dict[str, Any]:
        """The short form recorded in history entries."""
        return {"user": self.user, "host": self.host}

    def to_dict(self) -> dict[str, Any]:
        """Every field, for manifests."""
        return {"user": self.user, "host": self.host, "git_commit": self.git_commit,
                "git_dirty": bool(self.git_dirty), "build_id": self.build_id}


def utc_now() -> str:
    """Current UTC time as ISO-8601 with a ``Z`` suffix."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def package_versions(names: tuple[str, ...]) -> dict[str, str | None]:
    """Installed versions of ``names`` (None when not installed)."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def environment_spec(extra_packages: tuple[str, ...] = ()) -> dict[str, Any]:
    """The environment a model was built in: Python, platform and package versions."""
    names = tuple(dict.fromkeys(BASE_PACKAGES + tuple(extra_packages)))
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "packages": package_versions(names),
    }


def checked_json(value: Any, what: str) -> Any:
    """Return ``value`` if it is strict JSON (no NaN) without secret-looking keys.

    Raises:
        ValueError: names the field and the problem.
    """
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be plain JSON data (str, number, bool, None, list, dict; no NaN): {exc}") from exc
    _no_secret_keys(value, what)
    return value


def _no_secret_keys(value: Any, what: str) -> None:
    if isinstance(value, dict):
        for key, sub in value.items():
            if _SECRET_KEY.search(str(key)):
                raise ValueError(f"{what}: key {key!r} looks like a secret; manifests are readable by everyone")
            _no_secret_keys(sub, f"{what}.{key}")
    elif isinstance(value, list):
        for sub in value:
            _no_secret_keys(sub, what)


def dumps(manifest: dict) -> bytes:
    """Manifest bytes as stored: sorted, indented UTF-8 JSON (diff- and grep-friendly)."""
    return (json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False) + "\n").encode("utf-8")


def parse(data: bytes, where: str) -> dict:
    """Parse and check stored manifest bytes.

    Raises:
        IntegrityError: not JSON, or required fields missing or malformed; ``where`` names the file.
    """
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise IntegrityError(f"manifest {where} does not parse as JSON: {exc}.", hint="Do not use this version.") from exc
    problem = _problem(manifest)
    if problem:
        raise IntegrityError(f"manifest {where} is invalid: {problem}.", hint="Do not use this version.")
    return manifest


def _problem(m: Any) -> str | None:
    if not isinstance(m, dict):
        return "top level is not an object"
    if m.get("format_version") != FORMAT_VERSION:
        return f"format_version is {m.get('format_version')!r}, expected {FORMAT_VERSION}"
    for key, typ in (("name", str), ("version", int), ("flavor", str), ("files", list), ("created_at", str)):
        if not isinstance(m.get(key), typ) or isinstance(m.get(key), bool):
            return f"field {key!r} is missing or not a {typ.__name__}"
    seen = set()
    for f in m["files"]:
        if not isinstance(f, dict) or set(f) != {"path", "size", "sha256"}:
            return f"files entry {f!r} must have exactly path, size and sha256"
        try:
            safe_relpath(f["path"])
        except ValueError:
            return f"files entry path {f['path']!r} is not a safe relative path"
        if f["path"] == MANIFEST or f["path"] in seen:
            return f"files entry path {f['path']!r} is repeated or names the manifest itself"
        seen.add(f["path"])
        if not isinstance(f["size"], int) or isinstance(f["size"], bool) or f["size"] < 0:
            return f"files entry {f['path']!r} has a bad size {f['size']!r}"
        if not isinstance(f["sha256"], str) or not SHA256_RE.match(f["sha256"]):
            return f"files entry {f['path']!r} has a bad sha256 {f['sha256']!r}"
    return None


@dataclass
class ManifestDraft:
    """Everything of a manifest except the version number, which is claimed at publish time."""

    body: dict[str, Any] = field(default_factory=dict)

    def render(self, name: str, version: int) -> dict[str, Any]:
        """The complete manifest for ``name`` version ``version``."""
        return {**self.body, "name": name, "version": version}
