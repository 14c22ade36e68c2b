"""``fab build``: one immutable, checksummed build from one git commit.

A build holds the project wheel, an offline wheelhouse of its dependency closure (pinned to
the versions of the building environment), a packed Python environment for YARN
(venv-pack), the job files, the config (never ``conf/private``) as a directory and as
``conf.tar.gz`` for ``spark-submit --archives``, the smoke-test job and a manifest with the
sha256 of every file. It is stored as ``<builds_dir>/<id>/<id>.tar``.
Packages listed in ``deploy.exclude_packages`` (pyspark and py4j by default: edge nodes
have the Hadoop distribution's Spark client) are left out; the project's ``kerberos`` extra is in.
"""

from __future__ import annotations

import configparser
import gzip
import json
import logging
import shutil
import subprocess
import sys
import tarfile
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from sparkml_ops.config import Settings
from sparkml_ops.deploy.manifest import (
    CHECKSUMS,
    MANIFEST,
    BuildManifest,
    StoredBuild,
    build_id_for,
    checksum_tree,
    load_stored_build,
    sha256_file,
    sha256sums_text,
)
from sparkml_ops.errors import EnvironmentCheckError, RefusedError, SparkMLOpsError
from sparkml_ops.jvm import build_jar

log = logging.getLogger(__name__)
# The smoke-test job is an entry point (it exits with a code), so it lives with the fab tasks.
SMOKE_JOB = "deploy/smoke_job.py"
# The release's conf/ packed for spark-submit --archives (YARN ships archives, not directories).
CONF_ARCHIVE = "conf.tar.gz"
# One build serves every environment, and a secure cluster's registry needs gssapi on the edge node
# (fab status, fab promote-model) and in the packed env: the extra is always shipped.
BUILD_EXTRAS = ("kerberos",)


@dataclass(frozen=True)
class BuildResult:
    """A build in the store; ``reused`` when the same commit had been built already."""

    build: StoredBuild
    reused: bool
    seconds: float


def _git(project: Path, *args: str) -> str:
    try:
        out = subprocess.run(["git", "-C", str(project), *args], check=True, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise EnvironmentCheckError("git is not installed: a build is identified by its git commit.") from exc
    except subprocess.CalledProcessError as exc:
        raise EnvironmentCheckError(f"{project}: git {' '.join(args)} failed: {exc.stderr.strip()}") from exc
    return out.stdout.rstrip("\n")  # keep leading spaces: porcelain status columns


def _run(cmd: list[str], what: str, cwd: Path | None = None) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    if proc.returncode != 0:
        tail = "\n  ".join((proc.stderr or proc.stdout).strip().splitlines()[-10:])
        raise EnvironmentCheckError(f"build step '{what}' failed (exit {proc.returncode}):\n  {tail}")


def dependency_closure(requirements: list[str], exclude: tuple[str, ...],
                       extras: tuple[str, ...] = ()) -> dict[str, str]:
    """``{name: version}`` of the installed distributions ``requirements`` need, transitively.

    Versions are those of this (tested) environment, so a build pins what was tested. ``extras`` are
    extras of ``requirements`` themselves (the project's), not of their dependencies.

    Raises:
        EnvironmentCheckError: a requirement is not installed here.
    """
    skip = {canonicalize_name(n) for n in exclude}
    found: dict[str, str] = {}
    todo = [(Requirement(r), ("", *extras)) for r in requirements]
    while todo:
        req, wanted_extras = todo.pop()
        name = canonicalize_name(req.name)
        if name in found or name in skip or not _applies(req, wanted_extras):
            continue
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError as exc:
            raise EnvironmentCheckError(
                f"dependency {req} is not installed in the building environment {sys.prefix}.",
                hint="Run scripts/setup --dev, then build again.",
            ) from exc
        found[name] = dist.version
        todo.extend((Requirement(r), ("",)) for r in (dist.requires or []))
    return dict(sorted(found.items()))


def _applies(req: Requirement, extras: tuple[str, ...]) -> bool:
    """Whether ``req`` applies here with one of ``extras`` requested (``""``: none)."""
    return req.marker is None or any(req.marker.evaluate({"extra": extra}) for extra in extras)


def _wheel_requirements(wheel: Path) -> list[str]:
    import zipfile

    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        text = zf.read(meta).decode()
    return [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Requires-Dist:")]


def _fill_wheelhouse(pins: dict[str, str], wheelhouse: Path, cache: Path) -> None:
    """Wheels for every pin, from a local cache when present, else ``pip wheel`` (pip's cache)."""
    cache.mkdir(parents=True, exist_ok=True)
    missing = []
    for name, version in pins.items():
        prefix = f"{name.replace('-', '_')}-{version}-".lower()
        hits = [p for p in cache.glob("*.whl") if p.name.lower().startswith(prefix)]
        if hits:
            shutil.copy2(hits[0], wheelhouse / hits[0].name)
        else:
            missing.append(f"{name}=={version}")
    if missing:
        log.info("build: fetching %d wheels: %s", len(missing), ", ".join(missing))
        _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(cache), *missing], "pip wheel")
        _fill_wheelhouse(pins, wheelhouse, cache)


def _pack_env(wheelhouse: Path, project_wheel: Path, output: Path, work: Path) -> None:
    """A relocatable virtualenv with everything installed offline, packed for ``--archives``."""
    try:
        import venv_pack
    except ImportError as exc:
        raise EnvironmentCheckError("venv-pack is missing: run scripts/setup --dev (fab build needs the dev extra).") from exc
    venv = work / "packed-env"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], "create venv")
    wheels = sorted(str(p) for p in wheelhouse.glob("*.whl")) + [str(project_wheel)]
    _run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q", "--no-index",
          "--no-deps", "--no-compile", *wheels], "install packed env")
    venv_pack.pack(prefix=str(venv), output=str(output), compress_level=1, force=True)
    output.chmod(0o644)  # venv-pack writes 0600; YARN containers run as another user


def _tar(src: Path, out: Path, mtime: int, *, gzip_level: int | None = None) -> None:
    """A deterministic tarball of ``src``'s contents: sorted entries, fixed owner, time and modes.

    With ``gzip_level`` it is gzipped with an empty name and a zero time in the gzip header, so
    equal contents give equal bytes.
    """

    def norm(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = mtime
        info.mode = 0o755 if info.isdir() or info.mode & 0o111 else 0o644
        return info

    with out.open("wb") as raw, ExitStack() as stack:
        fh = raw if gzip_level is None else stack.enter_context(
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=gzip_level, mtime=0))
        with tarfile.open(fileobj=fh, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for path in sorted(src.rglob("*")):
                tar.add(path, arcname=path.relative_to(src).as_posix(), recursive=False, filter=norm)


@dataclass(frozen=True)
class _Source:
    """What a build is made from: a commit, plus the tree of its uncommitted tracked changes for a dirty build."""

    commit: str
    dirty_tree: str | None = None
    snapshot: str | None = None  # the `git stash create` commit holding those changes

    @property
    def rev(self) -> str:
        return self.snapshot or self.commit


def build(settings: Settings, project: Path, builds_dir: Path, *, user: str, allow_dirty: bool = False,
          now: datetime | None = None) -> BuildResult:
    """Build the project at ``project``'s HEAD (plus, with ``allow_dirty``, uncommitted tracked changes).

    Raises:
        RefusedError: the working tree has uncommitted changes and ``allow_dirty`` is false.
        EnvironmentCheckError: git, pip or venv-pack failed.
    """
    started = datetime.now(UTC)
    source = _source(project, allow_dirty)
    with tempfile.TemporaryDirectory(prefix="sparkml-ops-build-") as tmp:
        work = Path(tmp)
        src, version = _checkout(project, source, work)
        build_id = build_id_for(version, source.commit, source.dirty_tree)
        # Provenance read by sparkml_ops.entrypoint.provenance_from_environment on the edge nodes.
        (src / "sparkml_ops" / "_build_info.json").write_text(json.dumps(
            {"build_id": build_id, "git_commit": source.commit, "git_dirty": source.dirty_tree is not None}) + "\n")
        if (builds_dir / build_id / MANIFEST).is_file():
            log.info("build: %s already built; reusing it (builds are immutable)", build_id)
            return BuildResult(load_stored_build(builds_dir, build_id), True, 0.0)
        stage = _stage(settings, src, work, builds_dir)
        mtime = int(_git(project, "log", "-1", "--format=%ct", source.commit))
        _add_conf_archive_and_smoke_job(stage, src, source.commit, mtime)
        manifest = BuildManifest(
            build_id=build_id, version=version, commit=source.commit, dirty=source.dirty_tree is not None,
            built_by=user, built_at=(now or started).isoformat(timespec="seconds"), python=sys.version.split()[0],
            excluded_packages=tuple(settings.deploy.exclude_packages), files=checksum_tree(stage),
        )
        final = _store(stage, manifest, builds_dir, mtime)
    log.info("build: %s ready (%s, %.1f MB)", build_id, final, tarball_size(final / f"{build_id}.tar") / 1e6)
    return BuildResult(load_stored_build(builds_dir, build_id), False, (datetime.now(UTC) - started).total_seconds())


def _source(project: Path, allow_dirty: bool) -> _Source:
    """HEAD, or with ``allow_dirty`` a snapshot of its uncommitted tracked changes (refused without it)."""
    commit = _git(project, "rev-parse", "HEAD")
    changed = _git(project, "status", "--porcelain", "--untracked-files=no")
    if not changed:
        return _Source(commit)
    if not allow_dirty:
        files = ", ".join(line[3:] for line in changed.splitlines()[:10])
        raise RefusedError(
            f"{project}: uncommitted changes to tracked files ({files}); a build must come from a commit.",
            hint="Commit them, or build anyway with: fab build --allow-dirty (the build is marked dirty and "
            "cannot be promoted to prod).",
        )
    # `git stash create` snapshots the tracked changes as a commit without touching the tree.
    snapshot = _git(project, "stash", "create")
    return _Source(commit, _git(project, "rev-parse", f"{snapshot}^{{tree}}"), snapshot)


def _checkout(project: Path, source: _Source, work: Path) -> tuple[Path, str]:
    """The source files of ``source`` (``git archive``: never untracked files) under ``work``, and their version."""
    src = work / "src"
    src.mkdir()
    archive = work / "src.tar"
    _git(project, "archive", "--format=tar", "-o", str(archive), source.rev)
    with tarfile.open(archive) as tar:
        tar.extractall(src, filter="data")
    cfg = configparser.ConfigParser()
    cfg.read(src / "setup.cfg")
    return src, cfg.get("metadata", "version", fallback="0.0.0")


def _stage(settings: Settings, src: Path, work: Path, builds_dir: Path) -> Path:
    """A staging directory with the project wheel, its wheelhouse, the packed env, and the jobs and conf folders."""
    stage = work / "stage"
    (stage / "wheelhouse").mkdir(parents=True)
    build_jar(src / "sparkml_ops" / "jvm")  # git-ignored, so compiled here: the wheel and the packed env carry it
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(stage), str(src)],
         "build project wheel")
    project_wheel = next(stage.glob("*.whl"))
    pins = dependency_closure(_wheel_requirements(project_wheel), settings.deploy.exclude_packages, BUILD_EXTRAS)
    _fill_wheelhouse(pins, stage / "wheelhouse", builds_dir / ".wheel-cache")
    _pack_env(stage / "wheelhouse", project_wheel, stage / "env.tar.gz", work)
    for folder in ("jobs", "conf"):
        if (src / folder).is_dir():
            shutil.copytree(src / folder, stage / folder, ignore=shutil.ignore_patterns("private"))
    return stage


def _add_conf_archive_and_smoke_job(stage: Path, src: Path, commit: str, mtime: int) -> None:
    """``conf.tar.gz`` (deterministic: the commit time as every mtime) and the smoke-test job, in the stage."""
    if (stage / "conf").is_dir():
        _tar(stage / "conf", stage / CONF_ARCHIVE, mtime, gzip_level=6)
    if not (src / SMOKE_JOB).is_file():
        raise EnvironmentCheckError(f"{SMOKE_JOB} is missing in commit {commit[:12]}: cannot build a smoke test.")
    shutil.copy2(src / SMOKE_JOB, stage / "smoke.py")


def _store(stage: Path, manifest: BuildManifest, builds_dir: Path, mtime: int) -> Path:
    """Write the manifest and checksums, tar the stage and publish it in the store atomically; returns its folder."""
    (stage / MANIFEST).write_text(manifest.to_json())
    (stage / CHECKSUMS).write_text(sha256sums_text({**manifest.files, MANIFEST: sha256_file(stage / MANIFEST)}))
    builds_dir.mkdir(parents=True, exist_ok=True)
    build_id = manifest.build_id
    out = Path(tempfile.mkdtemp(prefix=f".tmp-{build_id}-", dir=builds_dir))
    tarball = out / f"{build_id}.tar"
    _tar(stage, tarball, mtime)
    (out / f"{build_id}.tar.sha256").write_text(f"{sha256_file(tarball)}  {tarball.name}\n")
    shutil.copy2(stage / MANIFEST, out / MANIFEST)
    final = builds_dir / build_id
    out.chmod(0o755)
    out.rename(final)  # atomic publish: a build is either complete in the store or absent
    return final


def tarball_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError as exc:
        raise SparkMLOpsError(f"{path}: build tarball missing after build ({exc}).") from exc
