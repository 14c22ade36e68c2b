"""Registry fixtures: one fresh registry per test on each backend (HDFS via the real test cluster)."""

from __future__ import annotations

import pytest

from sparkml_ops.registry import ModelRegistry, Provenance
from sparkml_ops.io.storage import open_storage

from tests.registry.backends import registry_settings


@pytest.fixture(params=["local", pytest.param("hdfs", marks=pytest.mark.cluster)])
def backend(request) -> str:
    """Each test runs on local disk and on HDFS (WebHDFS of the scripts/cluster cluster)."""
    return request.param


@pytest.fixture
def reg_settings(backend, tmp_path, request):
    """RegistrySettings of a fresh empty registry on the current backend."""
    cluster = request.getfixturevalue("cluster") if backend == "hdfs" else None
    settings = registry_settings(backend, tmp_path, cluster)
    yield settings
    if backend == "hdfs":  # tmp_path cleans up after local registries; HDFS needs it done
        storage = open_storage(settings)
        storage.client.delete(storage.root, recursive=True)


@pytest.fixture
def registry(reg_settings) -> ModelRegistry:
    """A fresh, empty registry."""
    return ModelRegistry(open_storage(reg_settings))


@pytest.fixture
def prov() -> Provenance:
    """Provenance of the test user."""
    return Provenance(user="alice", host="edge01", git_commit="abc1234", git_dirty=False, build_id="b-7")
