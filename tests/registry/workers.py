"""Functions run in separate (spawned) processes by the concurrency and SIGKILL tests."""

from __future__ import annotations

from sparkml_ops.config import RegistrySettings
from sparkml_ops.io.storage import open_storage
from sparkml_ops.registry import ModelRegistry, Provenance

from tests.registry.models import Doubler


def publish_after_barrier(settings: dict, index: int, barrier, results) -> None:
    """Wait for every publisher, then publish one small pyfunc model tagged with ``index``."""
    reg = ModelRegistry(open_storage(RegistrySettings.model_validate(settings)))
    prov = Provenance(user=f"worker{index}", host="test")
    barrier.wait()
    mv = reg.publish("fraud", Doubler(), flavor="pyfunc", provenance=prov, tags={"worker": str(index)})
    results.put((index, mv.version))


def publish_big(settings: dict, size_mb: int) -> None:
    """Publish a model with a ``size_mb`` MB payload (slow enough to be killed mid-way)."""
    reg = ModelRegistry(open_storage(RegistrySettings.model_validate(settings)))
    reg.publish("big", Doubler(b"\x01" * (size_mb * 1024 * 1024)), flavor="pyfunc",
                provenance=Provenance(user="victim", host="test"))
