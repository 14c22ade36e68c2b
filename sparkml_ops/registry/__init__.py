"""The model registry: versioned, immutable, checksummed model artifacts on HDFS or local disk.

See docs/registry.md for the on-disk layout, the manifest and the guarantees.
"""

from sparkml_ops.identifiers import ModelRef, parse_ref
from sparkml_ops.registry.core import LoadedModel, ModelRegistry, ModelVersion, Staging, open_registry
from sparkml_ops.registry.flavors import Flavor, get_flavor, register_flavor
from sparkml_ops.registry.manifest import Provenance, Signature
from sparkml_ops.registry.transfer import export_version, import_version

__all__ = [
    "Flavor", "LoadedModel", "ModelRef", "ModelRegistry", "ModelVersion", "Provenance", "Signature", "Staging",
    "export_version", "get_flavor", "import_version", "open_registry", "parse_ref", "register_flavor",
]
