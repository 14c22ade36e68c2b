"""Build manifests: what a build is made of, with a sha256 for every file."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sparkml_ops.errors import IntegrityError, NotFoundError, UsageError

MANIFEST = "manifest.json"
CHECKSUMS = "SHA256SUMS"  # the same checksums in sha256sum -c format, for checking on edge nodes
BUILD_ID_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,127}$")


@dataclass(frozen=True)
class BuildManifest:
    """Identity and contents of one immutable build."""

    build_id: str
    version: str
    commit: str
    dirty: bool
    built_by: str
    built_at: str
    python: str
    excluded_packages: tuple[str, ...]
    files: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str) -> BuildManifest:
        try:
            data = json.loads(text)
            data["excluded_packages"] = tuple(data.get("excluded_packages", ()))
            return cls(**data)
        except (ValueError, TypeError) as exc:
            raise IntegrityError(f"{where}: unreadable build manifest ({exc}).", hint="Rebuild with: fab build") from exc


def build_id_for(version: str, commit: str, dirty_tree: str | None) -> str:
    """``<version>-g<commit12>``; a dirty build adds ``-dirty-<tree12>`` so equal content gives equal ids."""
    base = f"{version}-g{commit[:12]}"
    return f"{base}-dirty-{dirty_tree[:12]}" if dirty_tree else base


def validate_build_id(build_id: str) -> str:
    """Refuse ids that could escape a directory or break a shell command."""
    if not BUILD_ID_RE.match(build_id or "") or ".." in build_id:
        raise UsageError(f"build id {build_id!r} is invalid: expected e.g. 0.1.0-g1a2b3c4d5e6f (see: fab build).")
    return build_id


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def checksum_tree(root: Path) -> dict[str, str]:
    """sha256 of every regular file under ``root``, keyed by POSIX relative path."""
    return {
        p.relative_to(root).as_posix(): sha256_file(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in (MANIFEST, CHECKSUMS)
    }


def sha256sums_text(files: dict[str, str]) -> str:
    return "".join(f"{digest}  {name}\n" for name, digest in sorted(files.items()))


@dataclass(frozen=True)
class StoredBuild:
    """A finished build in the local build store: its manifest and its tarball."""

    manifest: BuildManifest
    tarball: Path
    tarball_sha256: str

    @property
    def build_id(self) -> str:
        return self.manifest.build_id


def load_stored_build(builds_dir: Path, build_id: str, verify: bool = True) -> StoredBuild:
    """Load a build from the store and (by default) check its tarball against the recorded sha256.

    Raises:
        NotFoundError: no such build.
        IntegrityError: the tarball's bytes changed since it was built.
    """
    validate_build_id(build_id)
    folder = builds_dir / build_id
    if not (folder / MANIFEST).is_file():
        known = sorted(p.name for p in builds_dir.iterdir() if (p / MANIFEST).is_file()) if builds_dir.is_dir() else []
        raise NotFoundError(
            f"build {build_id!r} is not in the build store {builds_dir}; known builds: {', '.join(known) or 'none'}.",
            hint="Create it with: fab build",
        )
    manifest = BuildManifest.from_json((folder / MANIFEST).read_text(), str(folder / MANIFEST))
    tarball = folder / f"{build_id}.tar"
    recorded = (folder / f"{build_id}.tar.sha256").read_text().split()[0]
    if verify and sha256_file(tarball) != recorded:
        raise IntegrityError(
            f"{tarball}: sha256 differs from the one recorded at build time; the build was modified.",
            hint="Do not deploy it; rebuild from the same commit with: fab build",
        )
    return StoredBuild(manifest, tarball, recorded)


def latest_build(builds_dir: Path) -> str:
    """Id of the most recently built build in the store."""
    folders = [p for p in builds_dir.iterdir() if (p / MANIFEST).is_file()] if builds_dir.is_dir() else []
    if not folders:
        raise NotFoundError(f"the build store {builds_dir} is empty.", hint="Create a build with: fab build")
    return max(folders, key=lambda p: (p / MANIFEST).stat().st_mtime).name
