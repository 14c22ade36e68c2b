"""Registry settings for the two storage backends used by the registry and storage tests."""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import urlsplit

from sparkml_ops.config import RegistrySettings

BACKENDS = ("local", "hdfs")


def registry_settings(backend: str, tmp_path: Path, cluster: dict | None) -> RegistrySettings:
    """A fresh, empty registry root on ``backend`` (local: under tmp_path; hdfs: a unique dir on the test cluster)."""
    if backend == "local":
        return RegistrySettings(uri=(tmp_path / f"registry-{uuid.uuid4().hex[:6]}").as_uri())
    assert cluster is not None
    web = urlsplit(cluster["webhdfs_url"])
    root = f"/tmp/sparkml-ops-tests/{uuid.uuid4().hex}"
    return RegistrySettings(
        uri=f"webhdfs://{web.hostname}:{web.port}{root}",
        auth={"method": "simple", "user": cluster["hdfs_user"]},
        timeout_s=30,
    )
