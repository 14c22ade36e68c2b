"""Export a version to a tar and import it into another registry (across firewalls, by file or SSH pipe).

Tar layout, in this order so it can be streamed: ``manifest.json`` (as stored), ``export.json``
(source registry, name, version, who, when, sha256 of the manifest), then every file of the
manifest under its manifest path. Import hashes each member while copying it to a staging
directory and publishes only when every file matches; nothing outside the manifest is accepted.

Both go through the registry's public API only (:meth:`ModelRegistry.stage` and the read methods).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import time
from collections.abc import Iterator
from typing import BinaryIO

from sparkml_ops.errors import IntegrityError
from sparkml_ops.identifiers import ModelRef
from sparkml_ops.io.storage import CHUNK, atomic_output, open_input
from sparkml_ops.registry import manifest as mf
from sparkml_ops.registry.core import ModelRegistry, ModelVersion, Staging
from sparkml_ops.registry.manifest import Provenance

EXPORT = "export.json"
MAX_META_BYTES = 16 * 1024 * 1024


class _HashingReader:
    """File-like view over storage chunks that hashes what tarfile reads."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._chunk = memoryview(b"")
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        if not self._chunk:
            self._chunk = memoryview(next(self._chunks, b""))
        take = len(self._chunk) if n < 0 else min(n, len(self._chunk))
        out, self._chunk = self._chunk[:take], self._chunk[take:]
        self.digest.update(out)
        self.size += take
        return bytes(out)


def export_version(registry: ModelRegistry, ref: ModelRef | str, target: str | os.PathLike | BinaryIO, *,
                   provenance: Provenance | None = None) -> ModelVersion:
    """Write one version as a tar to a local path (atomically) or a binary file object.

    Args:
        registry: the source registry.
        ref: the version to export (a string is parsed as in :meth:`ModelRegistry.resolve`).
        target: a path, written to a temporary file and renamed into place only on success, or a file object.
        provenance: who exports, recorded in ``export.json``.

    Raises:
        ModelNotFoundError, UsageError: see :meth:`ModelRegistry.resolve`.
        IntegrityError: a stored file does not match the manifest (a path target is then not created).
    """
    mv = registry.resolve(ref)
    registry.check_files(mv)
    raw = registry.manifest_bytes(mv)
    record = {
        "source_registry": registry.uri, "name": mv.name, "version": mv.version, "exported_at": mf.utc_now(),
        "exported_by": provenance.who() if provenance else None,
        "manifest_sha256": hashlib.sha256(raw).hexdigest(),
    }
    with atomic_output(target) as out, tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        tar.copybufsize = CHUNK
        _add_bytes(tar, mf.MANIFEST, raw)
        _add_bytes(tar, EXPORT, json.dumps(record, indent=2, sort_keys=True).encode())
        for entry in mv.manifest["files"]:
            _add_file(tar, registry, mv, entry)
    return mv


def _add_file(tar: tarfile.TarFile, registry: ModelRegistry, mv: ModelVersion, entry: dict) -> None:
    reader = _HashingReader(registry.file_chunks(mv, entry["path"]))
    try:
        tar.addfile(_info(entry["path"], entry["size"]), reader)
    except OSError as exc:  # tarfile: the stored file is shorter than the manifest says
        raise IntegrityError(f"{mv.ref} in {registry.uri} is damaged: file {entry['path']}: {exc}; "
                             f"export aborted.", hint="Do not use this version.") from exc
    if reader.digest.hexdigest() != entry["sha256"] or reader.read(1):
        raise IntegrityError(f"{mv.ref} in {registry.uri} is damaged: file {entry['path']} does not match "
                             f"its manifest sha256; export aborted.", hint="Do not use this version.")


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, int(time.time())
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_info(name, len(data)), io.BytesIO(data))


def import_version(registry: ModelRegistry, source: str | os.PathLike | BinaryIO, *, provenance: Provenance,
                   name: str | None = None) -> ModelVersion:
    """Verify a tar from :func:`export_version` and publish it as the next version of its model.

    Args:
        registry: the target registry.
        source: a path or a binary file object (e.g. stdin), read as a stream.
        provenance: who imports, recorded in the manifest (``imported_by``) and the history.
        name: publish under this model name instead of the exported one.

    Raises:
        UsageError: ``name`` (or the exported name) is not a valid model name.
        IntegrityError: the tar is not an export, has unexpected members, or a file fails its checksum.
    """
    where = repr(source) if isinstance(source, str) else "the input stream"
    with open_input(source) as fh:
        try:
            tar = tarfile.open(fileobj=fh, mode="r|*")
        except tarfile.TarError as exc:
            raise IntegrityError(f"{where} is not a tar archive: {exc}.") from exc
        with tar:
            tar.copybufsize = CHUNK
            return _import_members(registry, tar, where, provenance, name)


def _import_members(registry: ModelRegistry, tar: tarfile.TarFile, where: str, provenance: Provenance,
                    name: str | None) -> ModelVersion:
    members = iter(tar)
    try:
        manifest_raw = _meta(tar, next(members, None), mf.MANIFEST, where)
        manifest = mf.parse(manifest_raw, f"{mf.MANIFEST} in {where}")
        export = json.loads(_meta(tar, next(members, None), EXPORT, where))
    except (tarfile.TarError, ValueError) as exc:
        raise IntegrityError(f"{where} is not a readable model export: {exc}.") from exc
    try:
        with registry.stage(name or manifest["name"]) as staging:
            _stage_members(staging, tar, members, manifest["files"], where)
            body = {k: v for k, v in manifest.items() if k not in ("name", "version")}
            body["imported_from"] = {
                "registry": export.get("source_registry"), "name": manifest["name"], "version": manifest["version"],
                "exported_at": export.get("exported_at"), "exported_by": export.get("exported_by"),
                "manifest_sha256": hashlib.sha256(manifest_raw).hexdigest(),
            }
            body["imported_at"] = mf.utc_now()
            body["imported_by"] = provenance.to_dict()
            return staging.commit(body, provenance, event="import", event_extra={
                "source_registry": export.get("source_registry"), "source_version": manifest["version"]})
    except tarfile.TarError as exc:
        raise IntegrityError(f"{where} is truncated or corrupt: {exc}; nothing was imported.") from exc


def _stage_members(staging: Staging, tar: tarfile.TarFile, members: Iterator[tarfile.TarInfo], files: list[dict],
                   where: str) -> None:
    """Copy the remaining members to ``staging``: each one a regular file listed once in ``files``, size and sha256."""
    expected = {f["path"]: f for f in files}
    seen = set()
    for member in members:
        entry = expected.get(member.name)
        if entry is None or not member.isreg() or member.name in seen or member.size != entry["size"]:
            raise IntegrityError(f"{where}: unexpected tar member {member.name!r} (not a file listed once in "
                                 f"its manifest with that size); nothing was imported.")
        seen.add(member.name)
        fh = tar.extractfile(member)
        if staging.write(member.name, iter(lambda: fh.read(CHUNK), b""))["sha256"] != entry["sha256"]:
            raise IntegrityError(f"{where}: file {member.name} does not match its manifest sha256; "
                                 f"nothing was imported.", hint="Export it again from the source registry.")
    if seen != set(expected):
        raise IntegrityError(f"{where} is incomplete: missing {', '.join(sorted(set(expected) - seen))}; "
                             f"nothing was imported.")


def _meta(tar: tarfile.TarFile, member: tarfile.TarInfo | None, expected: str, where: str) -> bytes:
    if member is None or member.name != expected or not member.isreg() or member.size > MAX_META_BYTES:
        raise IntegrityError(f"{where} is not a model export: expected {expected} as the next member, "
                             f"found {member.name if member else 'end of archive'!r}.")
    return tar.extractfile(member).read()
