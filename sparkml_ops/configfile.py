"""Config files and the user code beside them: one YAML reader, one pydantic error translation, one module loader.

Settings (``conf/*.yaml``), model configs (``conf/models/*.yaml``) and feature specs
(``conf/features/*.yaml``) are all a YAML mapping validated by a :class:`Frozen` pydantic model.
Each caller keeps its own wording (its error class, how it names the file, how it joins several
problems); what a malformed file or an invalid key *is* is decided here, once.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from sparkml_ops.errors import ConfigError

# Set on modules this loader executed from a file, so a later load of another file under the same
# name may replace them; a module imported any other way (stdlib, installed) is never replaced.
_USER_MODULE_MARK = "__sparkml_ops_user_module__"


class Frozen(BaseModel):
    """Base of every config model: unknown keys are errors and instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def rule(test: Callable[[Any], bool], message: str) -> AfterValidator:
    """A field validator for ``Annotated[str, rule(...)]``: values failing ``test`` are rejected with ``message``."""

    def validate(value: Any) -> Any:
        if not test(value):
            raise ValueError(message)
        return value

    return AfterValidator(validate)


@dataclass(frozen=True)
class YamlFile:
    """How one kind of config file reports an unreadable or malformed file.

    Attributes:
        error: the exception class raised (its exit code is the caller's contract).
        not_mapping: message when the top level is not a mapping; ``{type}`` is the type found.
        malformed_hint: advice appended to a malformed-YAML error.
        empty_ok: an empty file reads as ``{}``; otherwise it is "not a mapping".
    """

    error: type[ConfigError] = ConfigError
    not_mapping: str = "top level must be a mapping, got {type}."
    malformed_hint: str | None = None
    empty_ok: bool = True

    def read(self, path: Path) -> dict[str, Any]:
        """The top-level mapping of the YAML file ``path``.

        Raises:
            ConfigError: (``self.error``) unreadable file, malformed YAML as ``path:line:col``, or not a mapping.
        """
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
            problem = getattr(exc, "problem", None) or str(exc)
            raise self.error(f"{where}: malformed YAML: {problem}.", hint=self.malformed_hint) from exc
        except OSError as exc:
            raise self.error(f"{path}: cannot read: {exc.strerror}.") from exc
        if data is None and self.empty_ok:
            return {}
        if not isinstance(data, dict):
            raise self.error(f"{path}: " + self.not_mapping.format(type=type(data).__name__))
        return data


@dataclass(frozen=True)
class KeyProblem:
    """One pydantic validation error, as the key it concerns and what is wrong with it."""

    kind: Literal["unknown", "missing", "bad"]
    loc: tuple[str, ...]
    value: Any
    reason: str

    @property
    def key(self) -> str:
        """The dotted key, e.g. ``registry.uri``."""
        return ".".join(self.loc)

    def describe(self, shown: str | None = None) -> str:
        """``unknown key 'x'``, ``missing required key 'x'`` or ``key 'x' has bad value V: reason``.

        Args:
            shown: how to show the bad value (e.g. ``***`` for a secret); default: its ``repr``.
        """
        if self.kind == "unknown":
            return f"unknown key '{self.key}'"
        if self.kind == "missing":
            return f"missing required key '{self.key}'"
        return f"key '{self.key}' has bad value {repr(self.value) if shown is None else shown}: {self.reason}"


def key_problems(exc: ValidationError) -> list[KeyProblem]:
    """The errors of a pydantic validation, in pydantic's order."""
    kinds = {"extra_forbidden": "unknown", "missing": "missing"}
    return [KeyProblem(kinds.get(err["type"], "bad"), tuple(str(p) for p in err["loc"]), err.get("input"), err["msg"])
            for err in exc.errors()]


def user_module_file(directory: Path, name: str) -> Path:
    """The file that holds user module ``name`` in ``directory``: ``<directory>/<name>.py``."""
    return directory / f"{name}.py"


def import_user_module(name: str, directory: Path | None = None) -> ModuleType:
    """Import module ``name``, looking in ``directory`` first: the one way user code is loaded.

    Feature functions (beside the spec) and estimator factories (beside the model config) both
    come through here. The file ``<directory>/<name>.py`` is run once per process under its plain
    name and stays in ``sys.modules``, as a plain import would leave it: objects built from it
    pickle by reference (``name.Class``), so wherever they are unpickled ``name`` must be
    importable. A module that is not such a file (a package, a dotted name, an installed module)
    is imported normally; in both cases ``directory`` is first on ``sys.path`` meanwhile, so user
    code can import what lies beside it.

    Raises:
        ImportError: no such module, or ``name`` already belongs to another module (stdlib, an
            installed package) that a file of the same name must not shadow.
        Exception: whatever the module's own code raises.
    """
    path = user_module_file(directory, name) if directory is not None and "." not in name else None
    if path is None or not path.is_file():
        with _first_on_path(directory):
            return importlib.import_module(name)
    path = path.resolve()
    loaded = sys.modules.get(name)
    if loaded is not None and _file_of(loaded) == path:
        return loaded
    if loaded is None or not getattr(loaded, _USER_MODULE_MARK, False):
        other = _origin(name)
        if other is not None and other != str(path):
            raise ImportError(f"module name {name!r} is taken by {other}; rename {path}")
    return _run_file(name, path)


def _file_of(module: ModuleType) -> Path | None:
    file = getattr(module, "__file__", None)
    return Path(file).resolve() if file else None


def _origin(name: str) -> str | None:
    """The file (or kind) of module ``name`` as Python imports it without this loader; None if there is none."""
    loaded = sys.modules.get(name)
    if loaded is not None:
        file = _file_of(loaded)
        return str(file) if file else "an already imported module"
    spec = importlib.util.find_spec(name)
    if spec is None:
        return None
    return str(Path(spec.origin).resolve()) if spec.has_location and spec.origin else "a built-in module or package"


def _run_file(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    setattr(module, _USER_MODULE_MARK, True)
    sys.modules[name] = module
    try:
        with _first_on_path(path.parent):
            spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]  # a half-run module must not be found by the next import
        raise
    return module


@contextmanager
def _first_on_path(directory: Path | None) -> Iterator[None]:
    entry = str(directory) if directory is not None else None
    added = entry is not None and entry not in sys.path
    if added:
        sys.path.insert(0, entry)
    try:
        yield
    finally:
        if added:
            sys.path.remove(entry)
