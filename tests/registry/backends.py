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
    return RegistrySettings(uri=f"webhdfs://{web.hostname}:{web.port}{root}", auth=cluster_auth(cluster), timeout_s=30)


def cluster_auth(cluster: dict, who: str = "job") -> dict:
    """registry.auth of the test cluster's framework user: its keytab on the secure cluster, else simple auth.

    ``who`` picks the principal on the secure cluster: ``job`` (svc-sparkml, owner of the registry),
    ``other`` (analyst, no rights on it) or ``short`` (tickets of a few minutes).
    """
    if cluster.get("security") == "kerberos":
        return {"method": "kerberos", "principal": cluster[f"{who}_principal"], "keytab": cluster[f"{who}_keytab"]}
    return {"method": "simple", "user": cluster["hdfs_user"] if who == "job" else f"{who}-user"}
