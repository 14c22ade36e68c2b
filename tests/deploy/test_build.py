"""fab build: one immutable, checksummed build per commit (real git, pip and venv-pack)."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tarfile

import pytest

from sparkml_ops.deploy.build import build, dependency_closure
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


def test_the_wheelhouse_ships_the_kerberos_extra_for_a_secure_registry_on_the_edge_nodes(deploy_run, builds):
    with tarfile.open(load_stored_build(deploy_run.builds, builds[0]).tarball) as tar:
        wheels = {n.split("/")[-1].split("-")[0].lower() for n in tar.getnames() if n.startswith("wheelhouse/")}
    assert {"gssapi", "requests_gssapi", "decorator"} <= wheels


def test_dependency_closure_follows_the_projects_extras_but_not_those_of_its_dependencies():
    reqs = ['requests-gssapi>=1.2; extra == "kerberos"', 'hdfs>=2.7', 'pytest>=8; extra == "dev"']
    with_extra = dependency_closure(reqs, (), ("kerberos",))
    assert {"requests-gssapi", "gssapi", "decorator", "hdfs", "requests"} <= set(with_extra)
    assert "pytest" not in with_extra
    assert "requests-kerberos" not in with_extra  # hdfs[kerberos] is an extra of a dependency
    assert not {"requests-gssapi", "gssapi"} & set(dependency_closure(reqs, ()))


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


def _conf_archive(tarball) -> bytes:
    with tarfile.open(tarball) as tar:
        return tar.extractfile("conf.tar.gz").read()


def _archive_files(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def _committed_conf(repo, commit: str) -> dict[str, bytes]:
    """``conf/`` files of ``commit`` outside ``conf/private/``, keyed as inside the archive."""
    names = _git(repo, "ls-tree", "-r", "--name-only", commit, "conf").splitlines()
    return {
        name.removeprefix("conf/"): subprocess.run(["git", "-C", str(repo), "show", f"{commit}:{name}"],
                                                   check=True, capture_output=True).stdout
        for name in names if not name.startswith("conf/private/")
    }


def test_build_ships_the_committed_conf_as_an_archive_for_yarn_with_its_sha256_in_the_manifest(deploy_run, builds, checkout):
    stored = load_stored_build(deploy_run.builds, builds[0])
    data = _conf_archive(stored.tarball)
    assert hashlib.sha256(data).hexdigest() == stored.manifest.files["conf.tar.gz"]
    assert f"{stored.manifest.files['conf.tar.gz']}  conf.tar.gz" in tar_member(stored.tarball, "SHA256SUMS").splitlines()
    files = _archive_files(data)
    assert files == _committed_conf(checkout, stored.manifest.commit)
    assert {"base.yaml", "prod.yaml", "models/card_fraud.yaml"} <= set(files)
    with tarfile.open(stored.tarball) as tar:  # the same files as the release's conf/ directory
        assert files == {n: tar.extractfile(f"conf/{n}").read() for n in files}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        owners = {(m.uid, m.gid, m.uname, m.gname) for m in tar.getmembers()}
    assert owners == {(0, 0, "", "")}


def test_conf_archive_leaves_out_private_and_uncommitted_files_and_has_the_same_bytes_in_every_build(deploy_run, checkout, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    subprocess.run(["git", "clone", "-q", "--shared", str(checkout), str(first)], check=True)
    (first / "conf" / "private").mkdir()
    (first / "conf" / "private" / "secrets.yaml").write_text("hive:\n  jdbc_password: committed-by-mistake\n")
    _git(first, "add", "--force", "conf/private/secrets.yaml")
    _git(first, "commit", "-q", "-m", "a secret committed by mistake")
    subprocess.run(["git", "clone", "-q", "--shared", str(first), str(second)], check=True)
    (first / "conf" / "private" / "local.yaml").write_text("hive:\n  jdbc_password: git-ignored\n")
    (first / "conf" / "scratch.yaml").write_text("untracked: true\n")
    assert "conf/private/secrets.yaml" in _git(first, "ls-files", "conf")

    results = []
    for repo in (first, second):
        store = tmp_path / f"builds-{repo.name}"
        store.mkdir()
        (store / ".wheel-cache").symlink_to(deploy_run.builds / ".wheel-cache")
        results.append(build(deploy_run.settings("dev"), repo, store, user=repo.name).build)
    assert results[0].build_id == results[1].build_id
    assert results[0].manifest.files["conf.tar.gz"] == results[1].manifest.files["conf.tar.gz"]
    one, two = (_conf_archive(r.tarball) for r in results)
    assert one == two
    files = _archive_files(one)
    assert files == _committed_conf(first, results[0].manifest.commit)
    assert not any(n.startswith("private/") or n == "scratch.yaml" for n in files)
    with tarfile.open(results[0].tarball) as tar:
        assert not any(n.startswith("conf/private") or n == "conf/scratch.yaml" for n in tar.getnames())
