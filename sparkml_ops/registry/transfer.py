"""Export a version to a tar and import it into another registry (across firewalls, by file or SSH pipe).

Tar layout, in this order so it can be streamed: ``manifest.json`` (as stored), ``export.json``
(source registry, name, version, who, when, sha256 of the manifest), then every file of the
manifest under its manifest path. Import hashes each member while copying it to a staging
directory and publishes only when every file matches; nothing outside the manifest is accepted.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, BinaryIO

from sparkml_ops.errors import IntegrityError
from sparkml_ops.io.storage import CHUNK, atomic_output, join, open_input
from sparkml_ops.registry import manifest as mf
from sparkml_ops.registry.manifest import Provenance
from sparkml_ops.registry.refs import check_name

if TYPE_CHECKING:
    from sparkml_ops.registry.core import ModelRegistry, ModelVersion

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


def export_version(reg: ModelRegistry, mv: ModelVersion, target: str | BinaryIO,
                   provenance: Provenance | None) -> ModelVersion:
    """Write ``mv`` as a tar to a local path (atomically) or a binary file object.

    Raises:
        IntegrityError: a stored file does not match the manifest (a path target is then not created).
    """
    reg._check_listing(mv)
    raw = reg.storage.read_bytes(join(mv.name, str(mv.version), mf.MANIFEST))
    record = {
        "source_registry": reg.uri, "name": mv.name, "version": mv.version, "exported_at": mf.utc_now(),
        "exported_by": provenance.who() if provenance else None,
        "manifest_sha256": hashlib.sha256(raw).hexdigest(),
    }
    with atomic_output(target) as out, tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        tar.copybufsize = CHUNK
        _add_bytes(tar, mf.MANIFEST, raw)
        _add_bytes(tar, EXPORT, json.dumps(record, indent=2, sort_keys=True).encode())
        for entry in mv.manifest["files"]:
            reader = _HashingReader(reg.storage.read_chunks(join(mv.name, str(mv.version), entry["path"])))
            try:
                tar.addfile(_info(entry["path"], entry["size"]), reader)
            except OSError as exc:  # tarfile: the stored file is shorter than the manifest says
                raise IntegrityError(f"{mv.ref} in {reg.uri} is damaged: file {entry['path']}: {exc}; "
                                     f"export aborted.", hint="Do not use this version.") from exc
            if reader.digest.hexdigest() != entry["sha256"] or reader.read(1):
                raise IntegrityError(f"{mv.ref} in {reg.uri} is damaged: file {entry['path']} does not match "
                                     f"its manifest sha256; export aborted.", hint="Do not use this version.")
    return mv


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, int(time.time())
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    import io

    tar.addfile(_info(name, len(data)), io.BytesIO(data))


def import_version(reg: ModelRegistry, source: str | BinaryIO, provenance: Provenance,
                   name: str | None) -> ModelVersion:
    """Verify a tar from :func:`export_version` and publish it as the next version of its model.

    Raises:
        IntegrityError: the tar is not an export, has unexpected members, or a file fails its checksum.
    """
    with open_input(source) as fh:
        try:
            tar = tarfile.open(fileobj=fh, mode="r|*")
        except tarfile.TarError as exc:
            raise IntegrityError(f"{_where(source)} is not a tar archive: {exc}.") from exc
        with tar:
            tar.copybufsize = CHUNK
            return _import_members(reg, tar, source, provenance, name)


def _where(source) -> str:
    return repr(source) if isinstance(source, str) else "the input stream"


def _import_members(reg: ModelRegistry, tar: tarfile.TarFile, source, provenance: Provenance,
                    name: str | None) -> ModelVersion:
    where = _where(source)
    try:
        members = iter(tar)
        manifest_raw = _meta(tar, next(members, None), mf.MANIFEST, where)
        manifest = mf.parse(manifest_raw, f"{mf.MANIFEST} in {where}")
        export = json.loads(_meta(tar, next(members, None), EXPORT, where))
    except (tarfile.TarError, ValueError) as exc:
        raise IntegrityError(f"{where} is not a readable model export: {exc}.") from exc
    target = check_name(name or manifest["name"])
    expected = {f["path"]: f for f in manifest["files"]}
    staging = reg._new_staging(target)
    try:
        seen = set()
        for member in members:
            entry = expected.get(member.name)
            if entry is None or not member.isreg() or member.name in seen or member.size != entry["size"]:
                raise IntegrityError(f"{where}: unexpected tar member {member.name!r} (not a file listed once in "
                                     f"its manifest with that size); nothing was imported.")
            seen.add(member.name)
            digest = hashlib.sha256()
            reg.storage.write(join(staging, member.name), _hashed(tar.extractfile(member), digest))
            if digest.hexdigest() != entry["sha256"]:
                raise IntegrityError(f"{where}: file {member.name} does not match its manifest sha256; "
                                     f"nothing was imported.", hint="Export it again from the source registry.")
        if seen != set(expected):
            raise IntegrityError(f"{where} is incomplete: missing {', '.join(sorted(set(expected) - seen))}; "
                                 f"nothing was imported.")
        body = {k: v for k, v in manifest.items() if k not in ("name", "version")}
        body["imported_from"] = {
            "registry": export.get("source_registry"), "name": manifest["name"], "version": manifest["version"],
            "exported_at": export.get("exported_at"), "exported_by": export.get("exported_by"),
            "manifest_sha256": hashlib.sha256(manifest_raw).hexdigest(),
        }
        body["imported_at"] = mf.utc_now()
        body["imported_by"] = provenance.to_dict()
        return reg._commit(target, staging, body, provenance, event="import", event_extra={
            "source_registry": export.get("source_registry"), "source_version": manifest["version"]})
    except tarfile.TarError as exc:
        reg._discard(staging)
        raise IntegrityError(f"{where} is truncated or corrupt: {exc}; nothing was imported.") from exc
    except BaseException:
        reg._discard(staging)
        raise


def _meta(tar: tarfile.TarFile, member: tarfile.TarInfo | None, expected: str, where: str) -> bytes:
    if member is None or member.name != expected or not member.isreg() or member.size > MAX_META_BYTES:
        raise IntegrityError(f"{where} is not a model export: expected {expected} as the next member, "
                             f"found {member.name if member else 'end of archive'!r}.")
    return tar.extractfile(member).read()


def _hashed(fh: BinaryIO, digest) -> Iterator[bytes]:
    while chunk := fh.read(4 * 1024 * 1024):
        digest.update(chunk)
        yield chunk
