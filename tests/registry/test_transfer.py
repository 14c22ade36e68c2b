"""Export/import across registries: files, manifest and checksums travel; tampering is refused."""

from __future__ import annotations

import io
import json
import tarfile

import pandas as pd
import pytest

from sparkml_ops.errors import IntegrityError
from sparkml_ops.io.storage import LocalStorage
from sparkml_ops.registry import ModelRegistry, Provenance, export_version, import_version

from tests.registry.models import Doubler

OPS = Provenance(user="bob", host="prod-edge")


@pytest.fixture
def target(tmp_path) -> ModelRegistry:
    """A second registry, standing for the other side of a firewall."""
    return ModelRegistry(LocalStorage(tmp_path / "prod-registry"))


def _members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar}


def _data_offset(data: bytes, name: str) -> int:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getmember(name).offset_data


def _flip(data: bytes) -> bytes:
    """The same bytes with one bit changed in the middle."""
    i = len(data) // 2
    return data[:i] + bytes([data[i] ^ 1]) + data[i + 1:]


def _tar(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_export_import_roundtrip_records_provenance(registry, target, prov, tmp_path):
    registry.publish("fraud", Doubler(), flavor="pyfunc", provenance=prov, metrics={"auc": 0.9})
    src = registry.publish("fraud", Doubler(), flavor="pyfunc", provenance=prov, metrics={"auc": 0.93})
    path = tmp_path / "fraud-2.tar"
    export_version(registry, "fraud:2", str(path), provenance=prov)
    assert list(_members(path.read_bytes())) == ["manifest.json", "export.json", "environment.json", "model/model.pkl"]

    mv = import_version(target, str(path), provenance=OPS)
    assert mv.ref == "fraud:1"  # the next number of the target registry
    m = mv.manifest
    assert m["imported_from"]["registry"] == registry.uri
    assert (m["imported_from"]["name"], m["imported_from"]["version"]) == ("fraud", 2)
    assert m["imported_from"]["exported_by"] == {"user": "alice", "host": "edge01"}
    assert m["imported_by"]["user"] == "bob"
    assert m["files"] == src.manifest["files"] and m["metrics"] == {"auc": 0.93}
    assert m["created_by"] == src.manifest["created_by"]  # who built it originally is kept
    assert target.load("fraud:1").model.predict(pd.DataFrame({"x": [3]})).tolist() == [6]
    assert [e["event"] for e in target.history("fraud")] == ["import"]


def test_import_of_a_tampered_file_publishes_nothing(registry, target, prov):
    registry.publish("fraud", Doubler(), flavor="pyfunc", provenance=prov)
    buf = io.BytesIO()
    export_version(registry, "fraud:1", buf)
    members = _members(buf.getvalue())
    members["model/model.pkl"] = _flip(members["model/model.pkl"])  # same size, different bytes
    with pytest.raises(IntegrityError) as exc:
        import_version(target, io.BytesIO(_tar(list(members.items()))), provenance=OPS)
    assert str(exc.value) == (
        "the input stream: file model/model.pkl does not match its manifest sha256; nothing was imported. "
        "Export it again from the source registry."
    )
    assert target.list_models() == [] and target.storage.list("_staging") == []


@pytest.mark.parametrize("extra", ["../../evil.sh", "model/extra.py", "/etc/cron.d/x"])
def test_import_refuses_members_outside_the_manifest(registry, target, prov, extra):
    registry.publish("fraud", Doubler(), flavor="pyfunc", provenance=prov)
    buf = io.BytesIO()
    export_version(registry, "fraud:1", buf)
    members = list(_members(buf.getvalue()).items()) + [(extra, b"#!/bin/sh\n")]
    with pytest.raises(IntegrityError, match="unexpected tar member"):
        import_version(target, io.BytesIO(_tar(members)), provenance=OPS)
    assert target.list_models() == [] and target.storage.list("_staging") == []


def test_import_refuses_incomplete_or_non_export_archives(registry, target, prov, tmp_path):
    registry.publish("fraud", Doubler(), flavor="pyfunc", provenance=prov)
    buf = io.BytesIO()
    export_version(registry, "fraud:1", buf)
    members = _members(buf.getvalue())
    del members["environment.json"]
    with pytest.raises(IntegrityError, match="is incomplete: missing environment.json; nothing was imported"):
        import_version(target, io.BytesIO(_tar(list(members.items()))), provenance=OPS)
    with pytest.raises(IntegrityError, match="expected manifest.json as the next member, found 'hello.txt'"):
        import_version(target, io.BytesIO(_tar([("hello.txt", b"hi")])), provenance=OPS)
    with pytest.raises(IntegrityError, match="is truncated or corrupt|not a tar archive|not a readable"):
        import_version(target, io.BytesIO(buf.getvalue()[: _data_offset(buf.getvalue(), "model/model.pkl") + 10]),
                       provenance=OPS)
    assert target.list_models() == [] and target.storage.list("_staging") == []


def test_export_of_a_damaged_version_writes_no_file(registry, prov, tmp_path):
    registry.publish("fraud", Doubler(), flavor="pyfunc", provenance=prov)
    data = registry.storage.read_bytes("fraud/1/model/model.pkl")
    registry.storage.write("fraud/1/model/model.pkl", _flip(data), overwrite=True)
    path = tmp_path / "out.tar"
    with pytest.raises(IntegrityError, match="file model/model.pkl does not match its manifest sha256"):
        export_version(registry, "fraud:1", str(path))
    assert list(tmp_path.glob("*.tar*")) == [] and list(tmp_path.glob(".out.tar*")) == []
    json.loads(registry.storage.read_bytes("fraud/1/manifest.json"))  # untouched
