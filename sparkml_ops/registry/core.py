"""The model registry: publish, resolve, verify, load, alias, archive and gc model versions.

Layout under the registry root (every path built here from validated names and integers,
never from manifest content)::

    <root>/<model>/<version>/manifest.json      immutable version directory, appears whole by one rename
    <root>/<model>/<version>/environment.json   Python and package versions it was built with
    <root>/<model>/<version>/model/...          the flavor's files
    <root>/<model>/_aliases/<alias>.json        current target of each alias, replaced atomically
    <root>/<model>/_history/<utc>-<id>.json     append-only event log (publish, alias, archive, import)
    <root>/<model>/_archived/<version>.json     archive markers (archived versions are kept)
    <root>/_staging/<model>.<utc>.<id>/         in-flight publishes; `models gc` removes abandoned ones
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sparkml_ops.config import Settings
from sparkml_ops.errors import (
    ConflictError,
    DataValidationError,
    IntegrityError,
    ModelNotFoundError,
    NotFoundError,
    PathExistsError,
    RefusedError,
    SparkMLOpsError,
    UsageError,
)
from sparkml_ops.io.storage import Storage, join, local_scratch, open_storage
from sparkml_ops.registry import manifest as mf
from sparkml_ops.registry.flavors import BytesFlavor, DirectoryFlavor, Flavor, get_flavor
from sparkml_ops.registry.manifest import Provenance, Signature
from sparkml_ops.registry.refs import ModelRef, check_name, parse_ref

log = logging.getLogger(__name__)

STAGING = "_staging"
ALIASES = "_aliases"
HISTORY = "_history"
ARCHIVED = "_archived"
MAX_CLAIM_ATTEMPTS = 1000


@dataclass(frozen=True)
class ModelVersion:
    """One published version: its name, number, parsed manifest and whether it is archived."""

    name: str
    version: int
    manifest: dict = field(repr=False)
    archived: bool = False

    @property
    def ref(self) -> str:
        """``NAME:VERSION``."""
        return f"{self.name}:{self.version}"

    @property
    def flavor(self) -> str:
        """The flavor name from the manifest."""
        return self.manifest["flavor"]

    @property
    def created_at(self) -> str:
        """Creation time (UTC ISO-8601) from the manifest."""
        return self.manifest["created_at"]

    @property
    def signature(self) -> Signature:
        """The model's input and output columns from its manifest (empty when it recorded none)."""
        return Signature.from_dict(self.manifest.get("signature"))

    def input_columns(self) -> list[tuple[str, str]]:
        """The model's input columns and Spark types, in training order.

        Raises:
            DataValidationError: the manifest records no inputs, so the model cannot be fed from a table.
        """
        inputs = list(self.signature.inputs)
        if not inputs:
            raise DataValidationError(f"model {self.name}:{self.version} has no input signature in its manifest")
        return inputs


@dataclass(frozen=True)
class LoadedModel:
    """A verified, deserialised model and the version it came from."""

    version: ModelVersion
    model: Any


def open_registry(settings: Settings) -> ModelRegistry:
    """The registry configured by ``settings.registry`` (backend chosen by the URI scheme)."""
    return ModelRegistry(open_storage(settings.registry))


class ModelRegistry:
    """A filesystem model registry on one :class:`~sparkml_ops.io.storage.Storage`."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    @property
    def uri(self) -> str:
        """The registry root as a URI (no credentials)."""
        return self.storage.uri

    # ------------------------------------------------------------------ publish

    def publish(
        self,
        name: str,
        model: Any,
        *,
        flavor: str,
        provenance: Provenance,
        signature: Signature | None = None,
        params: dict | None = None,
        metrics: dict | None = None,
        lineage: dict | None = None,
        tags: dict[str, str] | None = None,
        description: str = "",
        extra: dict | None = None,
    ) -> ModelVersion:
        """Store ``model`` as the next version of ``name`` and return it.

        Files are written to a private staging directory, checked, and then made visible by one
        atomic rename to ``<name>/<next version>``; a lost race retries with the next number.

        Raises:
            UsageError: bad name or unknown flavor.
            TypeError, ValueError: the model does not fit the flavor, or metadata is not plain JSON.
            ConflictError: no version number could be claimed after many attempts.
        """
        check_name(name)
        fl = get_flavor(flavor)
        fl.check(model)
        if not isinstance(provenance, Provenance):
            raise TypeError(f"provenance must be a Provenance, got {type(provenance).__name__}")
        if tags is not None and not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
            raise ValueError("tags must map strings to strings")
        body = {
            "format_version": mf.FORMAT_VERSION,
            "flavor": fl.name,
            "flavor_info": fl.describe(model),
            "created_at": mf.utc_now(),
            "created_by": provenance.who(),
            "git": {"commit": provenance.git_commit, "dirty": bool(provenance.git_dirty)},
            "build_id": provenance.build_id,
            "signature": signature.to_dict() if signature is not None else None,
            "params": mf.checked_json(dict(params or {}), "params"),
            "metrics": mf.checked_json(dict(metrics or {}), "metrics"),
            "lineage": mf.checked_json(dict(lineage or {}), "lineage"),
            "tags": mf.checked_json(dict(tags or {}), "tags"),
            "description": str(description),
            "extra": mf.checked_json(dict(extra or {}), "extra"),
        }
        staging = self._new_staging(name)
        try:
            files = self._stage_model(fl, model, staging)
            body["environment"] = mf.environment_spec(fl.packages)
            env_bytes = json.dumps(body["environment"], indent=2, sort_keys=True).encode()
            files.append(self._stage_bytes(staging, mf.ENVIRONMENT, env_bytes))
            body["files"] = sorted(files, key=lambda f: f["path"])
            return self._commit(name, staging, body, provenance, event="publish")
        except BaseException:
            self._discard(staging)
            raise

    def _new_staging(self, name: str) -> str:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        staging = join(STAGING, f"{name}.{stamp}.{uuid.uuid4().hex[:12]}")
        self.storage.makedirs(staging)
        return staging

    def _discard(self, staging: str) -> None:
        try:
            self.storage.delete(staging, recursive=True)
        except Exception:  # the original error matters more; gc removes what is left
            log.warning("could not remove staging directory %s/%s; `sparkml-ops models gc` will", self.uri, staging)

    def _stage_bytes(self, staging: str, path: str, data: bytes) -> dict:
        # Hash on a second thread while the bytes travel (hashlib releases the GIL on large buffers).
        with ThreadPoolExecutor(max_workers=1) as pool:
            digest = pool.submit(lambda: hashlib.sha256(data).hexdigest())
            self.storage.write(join(staging, path), data)
            return {"path": path, "size": len(data), "sha256": digest.result()}

    def _stage_model(self, fl: Flavor, model: Any, staging: str) -> list[dict]:
        if isinstance(fl, BytesFlavor):
            return [self._stage_bytes(staging, f"{mf.MODEL_DIR}/{fl.file_name}", fl.dumps(model))]
        assert isinstance(fl, DirectoryFlavor)
        uri = self.storage.spark_uri(join(staging, mf.MODEL_DIR))
        if uri is not None:
            fl.save_to(model, uri)
        else:  # the storage is not reachable by Spark: write locally, then upload through the interface
            with local_scratch() as scratch:
                fl.save_to(model, scratch.spark_uri(mf.MODEL_DIR))
                for rel, _ in scratch.walk_files(mf.MODEL_DIR):
                    self.storage.write(join(staging, mf.MODEL_DIR, rel), scratch.read_chunks(join(mf.MODEL_DIR, rel)))
        # The library wrote the files itself: hash them as stored.
        return [self._hash_file(join(staging, mf.MODEL_DIR), rel, f"{mf.MODEL_DIR}/{rel}")
                for rel, _ in self.storage.walk_files(join(staging, mf.MODEL_DIR))]

    def _hash_file(self, base: str, rel: str, record_path: str) -> dict:
        digest, size = hashlib.sha256(), 0
        for chunk in self.storage.read_chunks(join(base, rel)):
            digest.update(chunk)
            size += len(chunk)
        return {"path": record_path, "size": size, "sha256": digest.hexdigest()}

    def _commit(self, name: str, staging: str, body: dict, provenance: Provenance, *, event: str,
                event_extra: dict | None = None) -> ModelVersion:
        """Check the staged files against ``body['files']``, then claim a version number by rename."""
        stored = dict(self.storage.walk_files(staging))
        stored.pop(mf.MANIFEST, None)
        expected = {f["path"]: f["size"] for f in body["files"]}
        if stored != expected:
            raise IntegrityError(
                f"staged files of {name!r} in {self.uri}/{staging} do not match what was written "
                f"(expected {sorted(expected)}, found {sorted(stored)}); nothing was published."
            )
        self.storage.makedirs(name)
        draft = mf.ManifestDraft(body)
        for _ in range(MAX_CLAIM_ATTEMPTS):
            version = self._next_version(name)
            manifest = draft.render(name, version)
            self.storage.write(join(staging, mf.MANIFEST), mf.dumps(manifest), overwrite=True)
            try:
                self.storage.rename_noreplace(staging, join(name, str(version)))
            except PathExistsError:
                continue  # another publisher claimed this number first: take the next one
            mv = ModelVersion(name, version, manifest)
            try:
                self._record(name, {"event": event, "version": version, **(event_extra or {}), **provenance.who()})
            except SparkMLOpsError as exc:  # the version is published and complete; do not report failure
                log.warning("%s published, but its history entry could not be written: %s", mv.ref, exc)
            log.info("published %s to %s", mv.ref, self.uri, extra={"model": name, "version": version})
            return mv
        raise ConflictError(
            f"could not claim a version number for {name!r} in {self.uri} after {MAX_CLAIM_ATTEMPTS} attempts.",
            hint="Too many concurrent publishers; retrying is safe.",
        )

    def _next_version(self, name: str) -> int:
        numbers = [int(e.name) for e in self.storage.list(name) if e.is_dir and e.name.isdigit()]
        return max(numbers, default=0) + 1

    # ------------------------------------------------------------------ read side

    def list_models(self) -> list[str]:
        """Names of all models in the registry, sorted."""
        return [e.name for e in self.storage.list("") if e.is_dir and not e.name.startswith(("_", "."))]

    def version_numbers(self, name: str) -> list[int]:
        """Published version numbers of ``name`` (archived included), ascending; [] for an unknown model."""
        check_name(name)
        return sorted(int(e.name) for e in self.storage.list(name) if e.is_dir and e.name.isdigit())

    def list_versions(self, name: str, *, include_archived: bool = True) -> list[ModelVersion]:
        """All versions of ``name`` with their manifests, ascending.

        Raises:
            ModelNotFoundError: the model does not exist.
        """
        numbers = self.version_numbers(name)
        if not numbers:
            raise self._unknown_model(name)
        archived = self.archived_versions(name)
        out = [ModelVersion(name, n, self._read_manifest(name, n), n in archived) for n in numbers]
        return [v for v in out if include_archived or not v.archived]

    def archived_versions(self, name: str) -> set[int]:
        """Numbers of the archived versions of ``name``."""
        return {int(e.name[:-5]) for e in self.storage.list(join(name, ARCHIVED))
                if e.name.endswith(".json") and e.name[:-5].isdigit()}

    def aliases(self, name: str) -> dict[str, int]:
        """Current alias -> version of ``name``."""
        check_name(name)
        out = {}
        for entry in self.storage.list(join(name, ALIASES)):
            if entry.name.endswith(".json") and not entry.name.startswith("."):
                out[entry.name[:-5]] = self._read_alias(name, entry.name[:-5])["version"]
        return out

    def history(self, name: str) -> list[dict]:
        """The append-only event log of ``name``, oldest first.

        Raises:
            ModelNotFoundError: the model does not exist.
        """
        if not self.version_numbers(name):
            raise self._unknown_model(name)
        events = []
        for entry in self.storage.list(join(name, HISTORY)):
            if entry.name.endswith(".json"):
                events.append(json.loads(self.storage.read_bytes(join(name, HISTORY, entry.name))))
        return events

    def resolve(self, ref: str | ModelRef) -> ModelVersion:
        """The version ``NAME:VERSION`` or ``NAME@ALIAS`` points at (manifest parsed, files not yet verified).

        Raises:
            UsageError: malformed reference.
            ModelNotFoundError: unknown model, version or alias; the message lists what exists.
            IntegrityError: the manifest does not parse or does not belong to this directory.
        """
        r = parse_ref(ref) if isinstance(ref, str) else ref
        numbers = self.version_numbers(r.name)
        if not numbers:
            raise self._unknown_model(r.name)
        if r.alias is not None:
            known = self.aliases(r.name)
            if r.alias not in known:
                raise ModelNotFoundError(
                    f"model {r.name!r} has no alias {r.alias!r} in {self.uri}; known aliases: "
                    f"{', '.join(sorted(known)) or 'none'}.",
                    hint=f"Set one with: sparkml-ops models alias {r.name} {r.alias} <version>",
                )
            version = known[r.alias]
        else:
            version = r.version
        if version not in numbers:
            raise ModelNotFoundError(
                f"model {r.name!r} has no version {version} in {self.uri}; known versions: "
                f"{', '.join(map(str, numbers))}."
            )
        return ModelVersion(r.name, version, self._read_manifest(r.name, version),
                            version in self.archived_versions(r.name))

    def _unknown_model(self, name: str) -> ModelNotFoundError:
        known = self.list_models()
        return ModelNotFoundError(
            f"model {name!r} is not in the registry {self.uri}; known models: {', '.join(known) or 'none'}."
        )

    def _read_manifest(self, name: str, version: int) -> dict:
        where = f"{self.uri}/{name}/{version}/{mf.MANIFEST}"
        try:
            data = self.storage.read_bytes(join(name, str(version), mf.MANIFEST))
        except NotFoundError as exc:
            raise IntegrityError(f"manifest {where} is missing.", hint="Do not use this version.") from exc
        manifest = mf.parse(data, where)
        if manifest["name"] != name or manifest["version"] != version:
            raise IntegrityError(
                f"manifest {where} describes {manifest['name']}:{manifest['version']}, not {name}:{version}.",
                hint="Do not use this version.",
            )
        return manifest

    # ------------------------------------------------------------------ verify and load

    def verify(self, ref: str | ModelRef | ModelVersion) -> ModelVersion:
        """Re-hash every file of a version against its manifest; also refuse files the manifest does not list.

        Raises:
            IntegrityError: a file is missing, has another size or sha256, or is not in the manifest.
        """
        mv = ref if isinstance(ref, ModelVersion) else self.resolve(ref)
        self._check_listing(mv)
        for entry in mv.manifest["files"]:
            self._verified_bytes(mv, entry, keep=False)
        return mv

    def _check_listing(self, mv: ModelVersion) -> None:
        base = join(mv.name, str(mv.version))
        stored = dict(self.storage.walk_files(base))
        stored.pop(mf.MANIFEST, None)
        listed = {f["path"]: f["size"] for f in mv.manifest["files"]}
        missing = sorted(set(listed) - set(stored))
        unlisted = sorted(set(stored) - set(listed))
        if missing or unlisted:
            what = "; ".join(filter(None, [
                missing and f"missing files: {', '.join(missing)}",
                unlisted and f"files not in the manifest: {', '.join(unlisted)}",
            ]))
            raise IntegrityError(f"{mv.ref} in {self.uri} is damaged: {what}.", hint="Do not use this version.")

    def _verified_bytes(self, mv: ModelVersion, entry: dict, *, keep: bool) -> bytearray | None:
        """Read one listed file while hashing it; bytes are returned only if size and sha256 match."""
        path = join(mv.name, str(mv.version), entry["path"])
        digest, size = hashlib.sha256(), 0
        buffer = bytearray(entry["size"]) if keep else None
        try:
            if buffer is not None:
                for piece in self.storage.read_into(path, memoryview(buffer)):
                    digest.update(piece)
                    size += len(piece)
            else:
                for chunk in self.storage.read_chunks(path):
                    digest.update(chunk)
                    size += len(chunk)
        except NotFoundError as exc:
            raise IntegrityError(f"{mv.ref} in {self.uri} is damaged: file {entry['path']} is missing.",
                                 hint="Do not use this version.") from exc
        hexdigest = digest.hexdigest()
        if buffer is not None and size > entry["size"]:  # read_into stops one byte past the expected end
            size = getattr(self.storage.status(path), "size", size)
        if size != entry["size"] or hexdigest != entry["sha256"]:
            raise IntegrityError(
                f"{mv.ref} in {self.uri} is damaged: file {entry['path']} has size {size} and sha256 "
                f"{hexdigest}, the manifest records size {entry['size']} and sha256 {entry['sha256']}.",
                hint="Do not use this version.",
            )
        return buffer

    def verified_model_bytes(self, ref: str | ModelRef | ModelVersion) -> tuple[str, bytes]:
        """(flavor name, verified serialised bytes) of a single-file flavor, for broadcasting to workers.

        Deserialise with ``get_flavor(name).loads(data)``.

        Raises:
            UsageError: the version's flavor is stored as a directory (e.g. ``sparkml``).
            IntegrityError: see :meth:`verify`.
        """
        name, payload = self._verified_payload(ref)
        return name, bytes(payload)

    def _verified_payload(self, ref: str | ModelRef | ModelVersion) -> tuple[str, bytearray]:
        mv = ref if isinstance(ref, ModelVersion) else self.resolve(ref)
        fl = get_flavor(mv.flavor)
        if not isinstance(fl, BytesFlavor):
            raise UsageError(f"{mv.ref} has flavor {fl.name!r}, which is a directory, not serialised bytes; "
                             f"use load() instead.")
        model_path = f"{mf.MODEL_DIR}/{fl.file_name}"
        if model_path not in {f["path"] for f in mv.manifest["files"]}:
            raise IntegrityError(f"{mv.ref} in {self.uri} is damaged: its manifest lists no {model_path}.")
        self._check_listing(mv)
        payload = bytearray()
        for entry in mv.manifest["files"]:
            blob = self._verified_bytes(mv, entry, keep=entry["path"] == model_path)
            if blob is not None:
                payload = blob
        return fl.name, payload

    def load(self, ref: str | ModelRef | ModelVersion) -> LoadedModel:
        """Verify every file of a version, then deserialise it with its flavor.

        Raises:
            ModelNotFoundError, UsageError: see :meth:`resolve`.
            IntegrityError: a checksum does not match; nothing was deserialised.
        """
        mv = ref if isinstance(ref, ModelVersion) else self.resolve(ref)
        fl = get_flavor(mv.flavor)
        if isinstance(fl, BytesFlavor):
            _, payload = self._verified_payload(mv)  # a bytearray: no extra copy of a large artifact
            return LoadedModel(mv, fl.loads(payload))
        uri = self.storage.spark_uri(join(mv.name, str(mv.version), mf.MODEL_DIR))
        if uri is not None:
            # Read by their own library from the registry itself (on a cluster, by the executors), so
            # the tree is hashed in place just before; version directories are immutable.
            self.verify(mv)
            return LoadedModel(mv, fl.load_from(uri))
        self._check_listing(mv)
        with local_scratch() as scratch:
            # Hash while copying to a private local directory; the library reads only verified copies.
            for entry in mv.manifest["files"]:
                self._verified_copy(mv, entry, scratch)
            return LoadedModel(mv, fl.load_from(scratch.spark_uri(mf.MODEL_DIR)))

    def _verified_copy(self, mv: ModelVersion, entry: dict, scratch: Storage) -> None:
        digest = hashlib.sha256()

        def hashed():
            for chunk in self.storage.read_chunks(join(mv.name, str(mv.version), entry["path"])):
                digest.update(chunk)
                yield chunk

        scratch.write(entry["path"], hashed())
        if digest.hexdigest() != entry["sha256"]:
            raise IntegrityError(
                f"{mv.ref} in {self.uri} is damaged: file {entry['path']} has sha256 {digest.hexdigest()}, "
                f"the manifest records {entry['sha256']}.", hint="Do not use this version.")

    # ------------------------------------------------------------------ aliases and lifecycle

    def _read_alias(self, name: str, alias: str) -> dict:
        path = join(name, ALIASES, f"{alias}.json")
        try:
            record = json.loads(self.storage.read_bytes(path))
            int(record["version"])
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"alias file {self.uri}/{path} is unreadable: {exc}.",
                                 hint=f"Set it again with: sparkml-ops models alias {name} {alias} <version>") from exc
        return record

    def set_alias(self, name: str, alias: str, version: int, *, provenance: Provenance, reason: str = "") -> dict:
        """Point ``alias`` at ``version`` atomically and append the move to the history.

        Returns:
            The history record: alias, from (previous version or None), to, who, when, reason.

        Raises:
            ModelNotFoundError: unknown model or version.
            RefusedError: the version is archived.
        """
        check_name(name)
        check_name(alias, "alias")
        if isinstance(version, bool) or not isinstance(version, int):
            raise UsageError(f"alias version must be an integer, got {version!r}.")
        mv = self.resolve(ModelRef(name, version=version))
        if mv.archived:
            raise RefusedError(f"{mv.ref} is archived; an alias cannot point at an archived version.")
        previous = self.aliases(name).get(alias)
        tmp = join(name, ALIASES, self.storage.unique_name(".tmp-"))
        record = {"alias": alias, "version": version, "set_at": mf.utc_now(), **provenance.who()}
        self.storage.write(tmp, json.dumps(record, sort_keys=True).encode())
        try:
            self.storage.replace(tmp, join(name, ALIASES, f"{alias}.json"))
        except BaseException:
            self.storage.delete(tmp)
            raise
        event = {"event": "alias", "alias": alias, "from": previous, "to": version, "reason": reason,
                 **provenance.who()}
        return self._record(name, event)

    def archive(self, ref: str | ModelRef, *, provenance: Provenance, reason: str = "") -> ModelVersion:
        """Mark a version archived: kept and loadable by number, hidden from default listings, never re-aliased.

        Raises:
            RefusedError: an alias still points at it; move the alias first.
        """
        mv = self.resolve(ref)
        if mv.archived:
            return mv
        pointing = sorted(a for a, v in self.aliases(mv.name).items() if v == mv.version)
        if pointing:
            raise RefusedError(
                f"{mv.ref} is the target of alias(es) {', '.join(pointing)}; it cannot be archived.",
                hint=f"Move them first: sparkml-ops models alias {mv.name} {pointing[0]} <version>",
            )
        marker = {"version": mv.version, "archived_at": mf.utc_now(), "reason": reason, **provenance.who()}
        try:
            self.storage.write(join(mv.name, ARCHIVED, f"{mv.version}.json"), json.dumps(marker).encode())
        except PathExistsError:
            return ModelVersion(mv.name, mv.version, mv.manifest, True)
        self._record(mv.name, {"event": "archive", "version": mv.version, "reason": reason, **provenance.who()})
        return ModelVersion(mv.name, mv.version, mv.manifest, True)

    def _record(self, name: str, event: dict) -> dict:
        """Append one event to the history: a new file per event, so writers never rewrite each other."""
        at = datetime.now(UTC)
        record = {"at": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "model": name, **event}
        file = f"{at.strftime('%Y%m%dT%H%M%S%fZ')}-{uuid.uuid4().hex[:8]}.json"
        self.storage.write(join(name, HISTORY, file), json.dumps(record, sort_keys=True).encode())
        return record

    def gc(self, older_than_hours: float) -> list[str]:
        """Remove staging directories and temporary alias files older than ``older_than_hours``.

        Publishes still running are younger than any sane threshold; use 0 only when none are.

        Returns:
            The removed paths, relative to the registry root.
        """
        if older_than_hours < 0:
            raise UsageError(f"--older-than-hours must be 0 or more, got {older_than_hours}.")
        cutoff = time.time() - older_than_hours * 3600
        removed = []
        candidates = [(join(STAGING, e.name), e) for e in self.storage.list(STAGING)]
        for model in self.list_models():
            candidates += [(join(model, ALIASES, e.name), e) for e in self.storage.list(join(model, ALIASES))
                           if e.name.startswith(".tmp-")]
        for path, entry in candidates:
            if entry.mtime <= cutoff and self.storage.delete(path, recursive=True):
                removed.append(path)
                log.info("gc removed %s/%s", self.uri, path)
        return removed

    # ------------------------------------------------------------------ export / import

    def export(self, ref: str | ModelRef, target, *, provenance: Provenance | None = None) -> ModelVersion:
        """Write one version as a tar (manifest, export record, files) to a path or binary file object."""
        from sparkml_ops.registry.transfer import export_version

        return export_version(self, self.resolve(ref), target, provenance)

    def import_(self, source, *, provenance: Provenance, name: str | None = None) -> ModelVersion:
        """Verify a tar written by :meth:`export` and publish it as a new version, recording where it came from."""
        from sparkml_ops.registry.transfer import import_version

        return import_version(self, source, provenance, name)
