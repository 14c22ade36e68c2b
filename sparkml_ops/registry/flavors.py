"""How model objects become files and back: the flavor plug-in registry.

Built in: ``sklearn`` (joblib), ``pyfunc`` (any object with ``predict(pandas.DataFrame)``,
cloudpickled), ``sparkml`` (a Spark ML ``PipelineModel``, Spark's own writer) and ``sql_rules`` (a SQL
expression with named thresholds, :class:`~sparkml_ops.transforms.rules.RulesModel`, as JSON). A new
flavor is a :class:`Flavor` subclass passed to :func:`register_flavor`, or published by a
package under the ``sparkml_ops.flavors`` entry-point group; the registry core never changes.

Deserialisation (``loads``/``load_from``) is only ever called by the registry on bytes or
directories whose sha256 it has just verified against the manifest.
"""

from __future__ import annotations

import io
import pickle
from abc import ABC, abstractmethod
from importlib import metadata
from typing import Any, ClassVar

from sparkml_ops.errors import UsageError
from sparkml_ops.transforms.rules import RulesModel, params_of

ENTRY_POINT_GROUP = "sparkml_ops.flavors"


class Flavor(ABC):
    """A way of storing one kind of model; subclass :class:`BytesFlavor` or :class:`DirectoryFlavor`."""

    #: the name recorded in manifests (safe identifier)
    name: ClassVar[str]
    #: distributions whose versions go into the environment spec
    packages: ClassVar[tuple[str, ...]] = ()

    def check(self, model: Any) -> None:
        """Raise ``TypeError`` when ``model`` cannot be stored with this flavor."""

    def describe(self, model: Any) -> dict[str, Any]:
        """Flavor facts for the manifest (by default the model's class)."""
        return {"class": f"{type(model).__module__}.{type(model).__qualname__}"}


class BytesFlavor(Flavor):
    """A model serialised to one file, ``model/<file_name>``; supports verified-bytes broadcasting."""

    file_name: ClassVar[str]

    @abstractmethod
    def dumps(self, model: Any) -> bytes:
        """Serialise the model."""

    @abstractmethod
    def loads(self, data: bytes | bytearray) -> Any:
        """Deserialise verified bytes (``bytes``; a ``bytearray`` is accepted too)."""


class DirectoryFlavor(Flavor):
    """A model written as a directory tree by its own library (e.g. Spark ML writers)."""

    @abstractmethod
    def save_to(self, model: Any, uri: str) -> None:
        """Write the model to the (not yet existing) directory ``uri``."""

    @abstractmethod
    def load_from(self, uri: str) -> Any:
        """Read the model from the verified directory ``uri``."""


class SklearnFlavor(BytesFlavor):
    """scikit-learn estimators and pipelines, stored with joblib."""

    name = "sklearn"
    packages = ("scikit-learn", "joblib", "numpy", "scipy")
    file_name = "model.joblib"

    def check(self, model: Any) -> None:
        from sklearn.base import BaseEstimator

        if not isinstance(model, BaseEstimator):
            raise TypeError(f"flavor 'sklearn' needs a scikit-learn estimator or pipeline, got {type(model).__name__}")

    def dumps(self, model: Any) -> bytes:
        import joblib

        buf = io.BytesIO()
        joblib.dump(model, buf)
        return buf.getvalue()

    def loads(self, data: bytes) -> Any:
        import joblib

        return joblib.load(io.BytesIO(data))


class PyFuncFlavor(BytesFlavor):
    """Any Python object with ``predict(pandas.DataFrame)``, stored with cloudpickle (classes by value)."""

    name = "pyfunc"
    packages = ("cloudpickle",)
    file_name = "model.pkl"

    def check(self, model: Any) -> None:
        if not callable(getattr(model, "predict", None)):
            raise TypeError(f"flavor 'pyfunc' needs an object with a predict(pandas.DataFrame) method, "
                            f"got {type(model).__name__}")

    def dumps(self, model: Any) -> bytes:
        from pyspark import cloudpickle

        return cloudpickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)

    def loads(self, data: bytes) -> Any:
        return pickle.loads(data)


class SparkMLFlavor(DirectoryFlavor):
    """A Spark ML ``PipelineModel``, stored with Spark's own writer; loading needs an active SparkSession."""

    name = "sparkml"
    packages = ("pyspark",)

    def check(self, model: Any) -> None:
        from pyspark.ml import PipelineModel

        if not isinstance(model, PipelineModel):
            raise TypeError(f"flavor 'sparkml' needs a pyspark.ml.PipelineModel, got {type(model).__name__}")

    def describe(self, model: Any) -> dict[str, Any]:
        return {**super().describe(model), "stages": [type(s).__name__ for s in model.stages]}

    def save_to(self, model: Any, uri: str) -> None:
        model.write().save(uri)

    def load_from(self, uri: str) -> Any:
        from pyspark.ml import PipelineModel
        from pyspark.sql import SparkSession

        if SparkSession.getActiveSession() is None:
            raise UsageError(
                "loading a 'sparkml' model needs an active SparkSession: "
                "build one first (sparkml_ops.io.spark.build_session(settings))."
            )
        return PipelineModel.load(uri)


class RulesFlavor(BytesFlavor):
    """A rules model (SQL over feature columns, named thresholds), stored as JSON; nothing is unpickled."""

    name = "sql_rules"
    packages = ("pyspark",)
    file_name = "rules.json"

    def check(self, model: Any) -> None:
        if not isinstance(model, RulesModel):
            raise TypeError(f"flavor 'sql_rules' needs a sparkml_ops.transforms.rules.RulesModel, got {type(model).__name__}")

    def describe(self, model: Any) -> dict[str, Any]:
        return {**super().describe(model), **params_of(model)}

    def dumps(self, model: Any) -> bytes:
        return model.to_json()

    def loads(self, data: bytes | bytearray) -> Any:
        return RulesModel.from_json(data)


_FLAVORS: dict[str, Flavor] = {}


def register_flavor(flavor: Flavor, *, replace: bool = False) -> None:
    """Make ``flavor`` available by its name to publish and load.

    Raises:
        ValueError: another flavor already has that name (pass ``replace=True`` to override).
        TypeError: ``flavor`` is not a BytesFlavor or DirectoryFlavor instance.
    """
    if not isinstance(flavor, (BytesFlavor, DirectoryFlavor)):
        raise TypeError(f"a flavor must be a BytesFlavor or DirectoryFlavor instance, got {flavor!r}")
    if flavor.name in _FLAVORS and not replace:
        raise ValueError(f"flavor {flavor.name!r} is already registered")
    _FLAVORS[flavor.name] = flavor


def get_flavor(name: str) -> Flavor:
    """The flavor called ``name``, also looking at installed ``sparkml_ops.flavors`` entry points.

    Raises:
        UsageError: no such flavor; the message lists the known ones.
    """
    if name not in _FLAVORS:
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name == name:
                register_flavor(ep.load()())
    if name not in _FLAVORS:
        raise UsageError(
            f"unknown model flavor {name!r}; known flavors: {', '.join(sorted(_FLAVORS))}.",
            hint="Register a plug-in with sparkml_ops.registry.flavors.register_flavor(...) "
            f"or install a package exposing the '{ENTRY_POINT_GROUP}' entry point.",
        )
    return _FLAVORS[name]


def known_flavors() -> list[str]:
    """Names of the registered flavors."""
    return sorted(_FLAVORS)


for _builtin in (SklearnFlavor(), PyFuncFlavor(), SparkMLFlavor(), RulesFlavor()):
    register_flavor(_builtin)
