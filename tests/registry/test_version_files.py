"""Extra files of a version (evaluation data, a report): staged, checksummed, listed, and read back verified."""

from __future__ import annotations

import hashlib

import pytest

from sparkml_ops.errors import IntegrityError, NotFoundError

from tests.registry.models import Doubler


def test_extra_and_rendered_files_are_listed_checksummed_and_read_back(registry, prov):
    def report(mv):
        return {"report.html": f"<h1>{mv.ref}</h1><p>{len(mv.manifest['files'])} files</p>".encode()}

    mv = registry.publish("fraud", Doubler(), flavor="pyfunc", provenance=prov,
                          files={"evaluation/summary.json": b'{"ks": 0.4}'}, rendered=report)
    entries = {f["path"]: f for f in mv.manifest["files"]}
    assert sorted(entries) == ["environment.json", "evaluation/summary.json", "model/model.pkl", "report.html"]
    assert entries["evaluation/summary.json"]["sha256"] == hashlib.sha256(b'{"ks": 0.4}').hexdigest()
    assert registry.read_file(mv, "evaluation/summary.json") == b'{"ks": 0.4}'
    # The report names the version it was committed as, and saw the files listed before it.
    assert registry.read_file("fraud:1", "report.html") == b"<h1>fraud:1</h1><p>3 files</p>"
    assert registry.verify(mv) == mv


def test_a_lost_race_renders_the_file_again_for_the_next_number(registry, prov):
    registry.publish("fraud", Doubler(), flavor="pyfunc", provenance=prov)
    seen = []

    def report(mv):
        if not seen:  # another publisher takes this number while we render
            registry.publish("fraud", Doubler(), flavor="pyfunc", provenance=prov)
        seen.append(mv.version)
        return {"report.html": mv.ref.encode()}

    mv = registry.publish("fraud", Doubler(), flavor="pyfunc", provenance=prov, rendered=report)
    assert (seen, mv.version, registry.read_file(mv, "report.html")) == ([2, 3], 3, b"fraud:3")
    registry.verify(mv)


def test_read_file_refuses_unlisted_and_tampered_files(registry, prov):
    mv = registry.publish("fraud", Doubler(), flavor="pyfunc", provenance=prov, files={"evaluation/summary.json": b"{}"})
    with pytest.raises(NotFoundError, match=r"^fraud:1 in .* has no file 'evaluation/validation.parquet'; its files: "
                                            r"environment.json, evaluation/summary.json, model/model.pkl\.$"):
        registry.read_file(mv, "evaluation/validation.parquet")
    registry.storage.write("fraud/1/evaluation/summary.json", b"{1}", overwrite=True)
    with pytest.raises(IntegrityError, match="file evaluation/summary.json has size 3"):
        registry.read_file(mv, "evaluation/summary.json")


def test_extra_files_cannot_replace_the_models_own_or_escape_the_version(registry, prov):
    with pytest.raises(ValueError, match=r"files \['model/model.pkl'\] are the model's own files"):
        registry.publish("fraud", Doubler(), flavor="pyfunc", provenance=prov, files={"model/model.pkl": b"x"})
    with pytest.raises(ValueError, match="must be relative"):
        registry.publish("fraud", Doubler(), flavor="pyfunc", provenance=prov, files={"../x": b"x"})
    assert registry.list_models() == [] and registry.storage.list("_staging") == []
