"""The public staging API: files written and hashed in a private directory, committed whole or not at all."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest

from sparkml_ops.errors import IntegrityError, PathExistsError
from sparkml_ops.registry import Provenance

from tests.registry.models import Doubler


def test_staged_files_commit_as_the_next_version_with_a_history_event(registry, prov):
    src = registry.publish("fraud", Doubler(), flavor="pyfunc", provenance=prov)
    with registry.stage("fraud") as staging:
        files = [staging.write(f["path"], registry.file_chunks(src, f["path"])) for f in src.manifest["files"]]
        assert files == src.manifest["files"]  # hashed while written, chunk by chunk
        body = {k: v for k, v in src.manifest.items() if k not in ("name", "version")}
        mv = staging.commit(body, prov, event="import", event_extra={"source_version": 1})
    assert mv.ref == "fraud:2" and staging.committed == mv
    assert registry.load(mv).model.predict(pd.DataFrame({"x": [2]})).tolist() == [4]
    assert [(e["event"], e.get("source_version")) for e in registry.history("fraud")] == [("publish", None), ("import", 1)]
    assert registry.storage.list("_staging") == []


def test_write_returns_the_manifest_entry_of_bytes(registry):
    with registry.stage("fraud") as staging:
        assert staging.write("model/a.bin", b"abc") == {
            "path": "model/a.bin", "size": 3, "sha256": hashlib.sha256(b"abc").hexdigest()}
        with pytest.raises(ValueError, match="manifest.json is written by commit"):
            staging.write("manifest.json", b"{}")
        with pytest.raises(ValueError, match="must be relative"):
            staging.write("../escape", b"x")


def test_leaving_the_block_without_commit_or_by_an_exception_removes_the_staging_directory(registry):
    with registry.stage("fraud") as staging:
        staging.write("model/a.bin", b"abc")
        assert registry.storage.exists(staging.path)
    assert registry.storage.list("_staging") == []
    with pytest.raises(RuntimeError, match="boom"), registry.stage("fraud") as staging:
        staging.write("model/a.bin", b"abc")
        raise RuntimeError("boom")
    assert registry.storage.list("_staging") == [] and registry.list_models() == []


def test_commit_refuses_staged_files_that_differ_from_the_body(registry, prov):
    with pytest.raises(IntegrityError, match=r"do not match what was written \(expected \['model/a.bin', "
                                             r"'model/b.bin'\], found \['model/a.bin'\]\); nothing was published"):
        with registry.stage("fraud") as staging:
            entry = staging.write("model/a.bin", b"abc")
            staging.commit({"files": [entry, {**entry, "path": "model/b.bin"}]}, prov)
    assert registry.list_models() == [] and registry.storage.list("_staging") == []


def test_a_committed_or_discarded_staging_takes_no_more_files(registry, prov):
    with registry.stage("fraud") as staging:
        staging.commit({"files": [staging.write("model/a.bin", b"abc")]}, prov)
        with pytest.raises(ValueError, match=r"is already committed as fraud:1; open a new one with stage\(\)"):
            staging.write("model/b.bin", b"late")
    with registry.stage("fraud") as staging:
        pass
    with pytest.raises(ValueError, match="is already discarded"):
        staging.commit({"files": []}, prov)
    assert registry.version_numbers("fraud") == [1] and registry.storage.list("_staging") == []


def test_a_lost_race_records_only_the_version_claimed_and_leaves_no_staged_entry(registry, prov):
    rival = Provenance(user="bob", host="edge02")
    registry.publish("fraud", Doubler(), flavor="pyfunc", provenance=rival)

    def report(mv):
        if mv.version == 2:  # another publisher takes this number after our history entry was staged for it
            registry.publish("fraud", Doubler(), flavor="pyfunc", provenance=rival)
        return {"report.html": mv.ref.encode()}

    mv = registry.publish("fraud", Doubler(), flavor="pyfunc", provenance=prov, rendered=report)
    assert mv.version == 3
    assert [(e["event"], e["version"], e["user"]) for e in registry.history("fraud")] == [
        ("publish", 1, "bob"), ("publish", 2, "bob"), ("publish", 3, "alice")]
    assert registry.storage.list("_staging") == []


def test_a_commit_that_claims_no_version_leaves_no_staged_history_entry(registry, prov):
    with pytest.raises(ValueError, match="rendered file 'model/model.pkl' is already staged or is the manifest"):
        registry.publish("fraud", Doubler(), flavor="pyfunc", provenance=prov,
                         rendered=lambda mv: {"model/model.pkl": b"x"})
    assert registry.version_numbers("fraud") == [] and registry.storage.list("fraud/_history") == []
    assert registry.storage.list("_staging") == []


def test_background_writes_store_what_was_hashed_and_a_failed_one_publishes_nothing(registry, prov):
    buf = bytearray(b"abc")
    with registry.stage("fraud") as staging:
        entry = staging.write_in_background("model/a.bin", buf)
        buf[:] = b"xyz"  # the caller reuses its buffer while the write may still run
        assert entry == {"path": "model/a.bin", "size": 3, "sha256": hashlib.sha256(b"abc").hexdigest()}
        mv = staging.commit({"files": [entry]}, prov)
    assert registry.read_file(mv, "model/a.bin") == b"abc"
    with pytest.raises(PathExistsError, match=r"model/a\.bin: already exists"):
        with registry.stage("fraud") as staging:
            entry = staging.write("model/a.bin", b"abc")
            staging.write_in_background("model/a.bin", b"abc")  # fails on its thread; commit raises it
            staging.commit({"files": [entry]}, prov)
    assert registry.version_numbers("fraud") == [1] and registry.storage.list("_staging") == []
    assert [e["version"] for e in registry.history("fraud")] == [1]
