"""fab build: one immutable, checksummed build per commit (real git, pip and venv-pack)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tarfile

import pytest

from sparkml_ops.deploy.build import build
from sparkml_ops.deploy.manifest import load_stored_build
from sparkml_ops.errors import IntegrityError, NotFoundError, RefusedError
from tests.deploy.conftest import _git


def test_same_commit_gives_the_same_build_id_and_reuses_the_build(deploy_run, builds, checkout):
    again = build(deploy_run.settings("dev"), checkout, deploy_run.builds, user="someone-else")
    assert again.reused is True
    assert again.build.build_id == builds[1]
    assert builds[0] != builds[1]
    head = _git(checkout, "rev-parse", "HEAD")
    assert builds[1] == f"0.1.0-g{head[:12]}"


def test_manifest_has_the_sha256_of_every_file_and_who_built_it(deploy_run, builds):
    stored = load_stored_build(deploy_run.builds, builds[0])
    m = stored.manifest
    assert (m.built_by, m.dirty, m.excluded_packages) == ("builder", False, ("pyspark", "py4j"))
    with tarfile.open(stored.tarball) as tar:
        members = {i.name: i for i in tar.getmembers() if i.isfile()}
        for name, digest in m.files.items():
            assert hashlib.sha256(tar.extractfile(members[name]).read()).hexdigest() == digest, name
        names = set(members)
    assert set(m.files) | {"manifest.json", "SHA256SUMS"} == names
    wheels = {n.split("/")[-1].split("-")[0].lower() for n in names if n.startswith("wheelhouse/")}
    assert {"pandas", "pyarrow", "scikit_learn", "pydantic"} <= wheels
    assert not wheels & {"pyspark", "py4j"}
    assert "env.tar.gz" in names and "smoke.py" in names
    assert any(n.startswith("sparkml_ops-0.1.0-") and n.endswith(".whl") for n in names)
    assert not any(n.startswith("conf/private") for n in names)
    assert json.loads(tar_member(stored.tarball, "manifest.json"))["build_id"] == builds[0]


def tar_member(path, name):
    with tarfile.open(path) as tar:
        return tar.extractfile(name).read().decode()


def test_project_wheel_carries_the_build_id_for_provenance(deploy_run, builds):
    import io
    import zipfile

    stored = load_stored_build(deploy_run.builds, builds[0])
    with tarfile.open(stored.tarball) as tar:
        wheel = next(m for m in tar.getmembers() if m.name.startswith("sparkml_ops-") and m.name.endswith(".whl"))
        data = tar.extractfile(wheel).read()
    info = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("sparkml_ops/_build_info.json"))
    assert info["build_id"] == builds[0] and info["git_dirty"] is False


def test_dirty_tree_is_refused_unless_allowed_and_then_marked(deploy_run, builds, checkout, tmp_path):
    dirty = tmp_path / "dirty"
    subprocess.run(["git", "clone", "-q", "--shared", str(checkout), str(dirty)], check=True)
    (dirty / "setup.cfg").write_text((dirty / "setup.cfg").read_text() + "\n# local edit\n")
    with pytest.raises(RefusedError) as exc:
        build(deploy_run.settings("dev"), dirty, deploy_run.builds, user="builder")
    assert exc.value.message == (
        f"{dirty}: uncommitted changes to tracked files (setup.cfg); a build must come from a commit."
    )
    assert exc.value.exit_code == 7
    marked = build(deploy_run.settings("dev"), dirty, deploy_run.builds, user="builder", allow_dirty=True).build
    assert marked.manifest.dirty is True
    assert marked.build_id.startswith(f"{builds[1]}-dirty-")


def test_a_tampered_build_is_refused_before_it_leaves_the_machine(deploy_run, builds, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(deploy_run.builds / builds[0], store / builds[0])
    tarball = store / builds[0] / f"{builds[0]}.tar"
    with tarball.open("r+b") as fh:
        fh.seek(4096)
        byte = fh.read(1)
        fh.seek(4096)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(IntegrityError, match="sha256 differs from the one recorded at build time"):
        load_stored_build(store, builds[0])


def test_unknown_build_names_the_known_ones(deploy_run, builds):
    with pytest.raises(NotFoundError) as exc:
        load_stored_build(deploy_run.builds, "0.1.0-gdeadbeef0000")
    assert builds[0] in exc.value.message and exc.value.hint == "Create it with: fab build"
