"""The model registry: publish, resolve, verify, load, alias, archive and gc model versions.

Layout under the registry root (every path built here from validated names and integers,
never from manifest content)::

    <root>/<model>/<version>/manifest.json      immutable version directory, appears whole by one rename
    <root>/<model>/<version>/environment.json   Python and package versions it was built with
    <root>/<model>/<version>/model/...          the flavor's files
    <root>/<model>/_aliases/<alias>.json        current target of each alias, replaced atomically
    <root>/<model>/_history/<utc>-<id>.json     append-only event log (publish, alias, archive, import)
    <root>/<model>/_archived/<version>.json     archive markers (archived versions are kept)
    <root>/_staging/<model>.<utc>.<id>/         publishes and imports in flight; `models gc` removes abandoned ones
    <root>/_staging/<model>.<utc>.<id>.history  the history entry of one, renamed into _history once it is claimed
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal

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
from sparkml_ops.identifiers import ModelRef, check_name, parse_ref
from sparkml_ops.io.storage import Storage, join, local_scratch, open_storage, safe_relpath
from sparkml_ops.registry import manifest as mf
from sparkml_ops.registry.flavors import BytesFlavor, DirectoryFlavor, Flavor, get_flavor
from sparkml_ops.registry.manifest import Provenance, Signature

log = logging.getLogger(__name__)

STAGING = "_staging"
ALIASES = "_aliases"
HISTORY = "_history"
ARCHIVED = "_archived"
HASH_BATCH = 8 * 1024 * 1024  # bytes handed to the hashing thread at once (see _Digest.of)
MAX_CLAIM_ATTEMPTS = 1000
STAGING_THREADS = 4  # background writes of one version at once (a model, environment.json, a few evaluation files)


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


class _Digest:
    """sha256 and size of the chunks that pass through :meth:`over`."""

    def __init__(self) -> None:
        self.sha256 = hashlib.sha256()
        self.size = 0

    def over(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Yield ``chunks`` unchanged, hashing and counting them on the way."""
        for chunk in chunks:
            self.sha256.update(chunk)
            self.size += len(chunk)
            yield chunk

    @classmethod
    def of(cls, chunks: Iterable[bytes]) -> dict:
        """``{"size", "sha256"}`` of all of ``chunks``, hashed on a second thread while the next ones arrive.

        Reading a 500 MB artifact and hashing it one after the other cost the sum of both; socket reads and
        ``sha256.update`` on large buffers both release the GIL, so they overlap. Small reads are batched
        into ``HASH_BATCH`` bytes per hand-off, and at most one batch waits, which bounds the memory held.
        """
        digest, batch, held = cls(), [], 0
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(lambda: None)
            for chunk in chunks:
                batch.append(chunk)
                held += len(chunk)
                if held >= HASH_BATCH:
                    pending.result()
                    pending = pool.submit(digest._update, batch)
                    batch, held = [], 0
            pending.result()
        digest._update(batch)
        return {"size": digest.size, "sha256": digest.sha256.hexdigest()}

    def _update(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            self.sha256.update(chunk)
            self.size += len(chunk)


# Files that name their own version (a report): made from the version being claimed, see Staging.commit.
Rendered = Callable[["ModelVersion"], Mapping[str, bytes]]


class _PendingEntry:
    """The history entry of a commit, written under a staging name while the version is claimed, then renamed in.

    Closing an HDFS file can wait ~0.4 s for the DataNode's block report (docs/benchmarks.md), and a rename
    costs the NameNode alone: written on a second thread beside the manifest and renamed into ``_history``
    after the version's rename, the entry's wait is off the publish's path. Its staging name is under
    ``_staging/``, where no reader looks and ``gc`` removes what a killed publisher leaves.
    """

    def __init__(self, registry: ModelRegistry, name: str, path: str, pool: ThreadPoolExecutor) -> None:
        self._registry, self._name, self._path, self._pool = registry, name, path, pool
        self._file = ""  # its name in _history, stamped with its record's time
        self._written: Future | None = None

    def prepare(self, event: dict) -> None:
        """(Re)write the entry of ``event`` under the staging name, on the pool's thread."""
        self._settle()
        self._file, record = self._registry._history_entry(self._name, event)
        self._written = self._pool.submit(self._registry.storage.write, self._path, _dumps(record), overwrite=True)

    def publish(self, ref: str) -> None:
        """Rename the entry into the history once the version is claimed; a failure is logged, not raised."""
        try:
            self._settle(raising=True)
            self._registry.storage.rename_noreplace(self._path, join(self._name, HISTORY, self._file))
        except SparkMLOpsError as exc:  # the version is published and complete; do not report failure
            log.warning("%s published, but its history entry could not be written: %s", ref, exc)
            self.discard()

    def discard(self) -> None:
        """Remove the staged entry of a commit that claimed nothing (best effort: ``gc`` removes what is left)."""
        if self._written is None:
            return
        self._settle()
        self._written = None
        try:
            self._registry.storage.delete(self._path)
        except SparkMLOpsError as exc:
            log.warning("could not remove %s/%s (%s); `sparkml-ops models gc` will",
                        self._registry.uri, self._path, exc)

    def _settle(self, *, raising: bool = False) -> None:
        """Wait for the write in flight; its failure is raised only if asked (a rewrite or a delete follows)."""
        if self._written is None:
            return
        try:
            self._written.result()
        except SparkMLOpsError:
            if raising:
                raise


class Staging:
    """The files of one version in the making, in a private directory under ``_staging/``.

    Made by :meth:`ModelRegistry.stage`: write every file, then :meth:`commit` them as a new version.
    """

    def __init__(self, registry: ModelRegistry, name: str, path: str, pool: ThreadPoolExecutor) -> None:
        self.name = name
        self.path = path  # relative to the registry root
        self.committed: ModelVersion | None = None
        self._registry = registry
        self._open = True  # until committed or until the stage() block ends
        self._pool = pool  # of the stage() block, which waits for it before discarding anything
        self._writing: list[Future] = []  # writes started by write_in_background, awaited by commit

    def _check_open(self) -> None:
        if not self._open:
            done = f"committed as {self.committed.ref}" if self.committed else "discarded"
            raise ValueError(f"staging {self.path} is already {done}; open a new one with stage()")

    def write(self, path: str, data: bytes | Iterable[bytes]) -> dict:
        """Write one file of the version, hashing it on the way.

        Args:
            path: the file's path inside the version, as the manifest lists it (e.g. ``model/model.pkl``).
            data: the whole content, or an iterable of chunks (streamed, never held in memory).

        Returns:
            Its manifest entry: ``{"path", "size", "sha256"}``.

        Raises:
            ValueError: ``path`` is not a safe relative path, or is the manifest's own name; or the staging is closed.
        """
        target, storage = self._target(path), self._registry.storage
        if isinstance(data, (bytes, bytearray, memoryview)):
            # Hash on a second thread while the bytes travel (hashlib releases the GIL on large buffers).
            with ThreadPoolExecutor(max_workers=1) as pool:
                digest = pool.submit(lambda: hashlib.sha256(data).hexdigest())
                storage.write(target, data)
                return {"path": path, "size": memoryview(data).nbytes, "sha256": digest.result()}
        digest = _Digest()
        storage.write(target, digest.over(data))
        return {"path": path, "size": digest.size, "sha256": digest.sha256.hexdigest()}

    def write_in_background(self, path: str, data: bytes | bytearray | memoryview) -> dict:
        """Start writing one file of the version on a staging thread; return its manifest entry once hashed here.

        :meth:`commit` writes the manifest and the history entry while such writes finish, then waits for
        them before the claiming rename (raising the first failure): closing an HDFS file can wait ~0.4 s for
        the DataNode's block report (docs/benchmarks.md), and those waits then overlap the upload. A mutable
        buffer is copied first, so what is stored is what was hashed even if the caller reuses it.

        Raises:
            ValueError: as :meth:`write`.
        """
        target = self._target(path)
        data = data if isinstance(data, bytes) else bytes(data)
        self._writing.append(self._pool.submit(self._registry.storage.write, target, data))
        return {"path": path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}

    def _target(self, path: str) -> str:
        self._check_open()
        if safe_relpath(path) == mf.MANIFEST:
            raise ValueError(f"{mf.MANIFEST} is written by commit(), not staged")
        return join(self.path, path)

    def commit(self, body: dict, provenance: Provenance, *, event: Literal["publish", "import"] = "publish",
               event_extra: dict | None = None, rendered: Rendered | None = None) -> ModelVersion:
        """Publish the staged files as the next version, by one atomic rename; a lost race takes the next number.

        Args:
            body: the manifest without ``name`` and ``version``; its ``files`` must list exactly the staged files.
            provenance: who publishes, for the history entry.
            event: the history event, with ``event_extra`` added to its record.
            rendered: files that name the version (e.g. a report): called with the version being claimed
                (its manifest lists the other files) and written, hashed and listed before the rename;
                called again if a lost race moves to the next number.

        Raises:
            IntegrityError: the staged files differ from ``body['files']``; nothing was published.
            SparkMLOpsError: a write started by :meth:`write_in_background` failed (its error); nothing was published.
            ConflictError: no version number could be claimed after many attempts.
            ValueError: the staging is already committed or discarded.
        """
        self._check_open()
        reg = self._registry
        draft = mf.ManifestDraft(body)

        def event_of(version: int) -> dict:
            return {"event": event, "version": version, **(event_extra or {}), **provenance.who()}

        with ThreadPoolExecutor(max_workers=1) as pool:
            entry = _PendingEntry(reg, self.name, f"{self.path}.history", pool)
            try:
                for _ in range(MAX_CLAIM_ATTEMPTS):
                    mv = self._claim(draft, rendered, entry, event_of)
                    if mv is None:
                        continue  # another publisher claimed this number first: take the next one
                    self.committed, self._open = mv, False
                    entry.publish(mv.ref)
                    log.info("published %s to %s", mv.ref, reg.uri, extra={"model": self.name, "version": mv.version})
                    return mv
            finally:
                if self.committed is None:
                    entry.discard()
        raise ConflictError(
            f"could not claim a version number for {self.name!r} in {reg.uri} after {MAX_CLAIM_ATTEMPTS} attempts.",
            hint="Too many concurrent publishers; retrying is safe.",
        )

    def _claim(self, draft: mf.ManifestDraft, rendered: Rendered | None, entry: _PendingEntry,
               event_of: Callable[[int], dict]) -> ModelVersion | None:
        """Try to publish the staging as the next free number; None when another publisher took it first.

        The history entry naming that number is written on a second thread while the manifest is, and both
        while the background writes finish; the staged files are checked once all have landed.
        """
        reg = self._registry
        version = reg._next_version(self.name)
        entry.prepare(event_of(version))
        manifest = draft.render(self.name, version)
        if rendered is not None:
            manifest = self._with_rendered(manifest, rendered)
        reg.storage.write(join(self.path, mf.MANIFEST), mf.dumps(manifest), overwrite=True)
        self._land(manifest["files"])
        try:
            reg.storage.rename_noreplace(self.path, join(self.name, str(version)))
        except PathExistsError:
            return None
        return ModelVersion(self.name, version, manifest)

    def _with_rendered(self, manifest: dict, rendered: Rendered) -> dict:
        """``manifest`` with the files ``rendered`` makes for its version written and listed (replacing a lost race's)."""
        made = rendered(ModelVersion(self.name, manifest["version"], manifest))
        listed = {f["path"] for f in manifest["files"]}
        entries = []
        for path, data in made.items():
            if path in listed or safe_relpath(path) == mf.MANIFEST:
                raise ValueError(f"rendered file {path!r} is already staged or is the manifest")
            self._registry.storage.write(join(self.path, path), data, overwrite=True)
            entries.append({"path": path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
        return {**manifest, "files": sorted([*manifest["files"], *entries], key=lambda f: f["path"])}

    def _land(self, files: list[dict]) -> None:
        """Wait for the background writes, check the staged files against ``files``, make the model's directories."""
        while self._writing:
            self._writing.pop(0).result()
        self._check_staged(files)
        self._registry.storage.makedirs(join(self.name, HISTORY))  # the renames of the version and its entry need both

    def _check_staged(self, files: list[dict]) -> None:
        stored = dict(self._registry.storage.walk_files(self.path))
        stored.pop(mf.MANIFEST, None)
        expected = {f["path"]: f["size"] for f in files}
        if stored != expected:
            raise IntegrityError(
                f"staged files of {self.name!r} in {self._registry.uri}/{self.path} do not match what was written "
                f"(expected {sorted(expected)}, found {sorted(stored)}); nothing was published."
            )


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
        self, name: str, model: Any, *, flavor: str, provenance: Provenance,
        # params: more than six on purpose: the manifest's descriptive fields, one optional keyword-only
        # argument each, named as in manifest.json, so a call reads like the manifest it writes.
        signature: Signature | None = None,
        params: dict | None = None, metrics: dict | None = None, lineage: dict | None = None,
        tags: dict[str, str] | None = None, description: str = "", extra: dict | None = None,
        files: Mapping[str, bytes] | None = None, rendered: Rendered | None = None,
    ) -> ModelVersion:
        """Store ``model`` as the next version of ``name`` and return it.

        Files are written through :meth:`stage`, checked, and made visible by one atomic rename to
        ``<name>/<next version>``; a lost race retries with the next number.

        ``files`` are more files of the version (e.g. ``evaluation/summary.json``), by path inside it;
        ``rendered`` makes files that name the version (see :meth:`Staging.commit`). Both are listed
        in the manifest and checksummed like the model; read them back with :meth:`read_file`.

        Raises:
            UsageError: bad name or unknown flavor.
            TypeError, ValueError: the model does not fit the flavor, metadata is not plain JSON, or a file
                path is unsafe or taken by the model's own files.
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
        body["environment"] = mf.environment_spec(fl.packages)
        env_bytes = json.dumps(body["environment"], indent=2, sort_keys=True).encode()
        # Every file known as bytes is written in the background, so the small files' closes (~0.4 s each,
        # docs/benchmarks.md) and commit's manifest and history entry overlap the model's upload.
        with self.stage(name) as staging:
            entries = [staging.write_in_background(mf.ENVIRONMENT, env_bytes), *self._stage_model(fl, model, staging)]
            entries += _stage_more(staging, entries, files or {})
            return staging.commit({**body, "files": sorted(entries, key=lambda f: f["path"])}, provenance,
                                  rendered=rendered)

    @contextmanager
    def stage(self, name: str) -> Iterator[Staging]:
        """A private staging directory for the next version of ``name``, as a context manager.

        Write the files with :meth:`Staging.write` or :meth:`Staging.write_in_background`, then publish
        them with :meth:`Staging.commit`. Leaving the block without a commit, or by an exception, waits
        for the background writes and removes the directory; what a killed process leaves behind,
        :meth:`gc` removes.

        Raises:
            UsageError: bad name.
        """
        check_name(name)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        path = join(STAGING, f"{name}.{stamp}.{uuid.uuid4().hex[:12]}")
        self.storage.makedirs(path)
        pool = ThreadPoolExecutor(max_workers=STAGING_THREADS)
        staging = Staging(self, name, path, pool)
        try:
            yield staging
        finally:
            # No write may still be running into a directory about to be removed.
            pool.shutdown(wait=True, cancel_futures=True)
            if staging.committed is None:
                staging._open = False
                self._discard(staging.path)

    def _discard(self, staging: str) -> None:
        try:
            self.storage.delete(staging, recursive=True)
        except Exception:  # the original error matters more; gc removes what is left
            log.warning("could not remove staging directory %s/%s; `sparkml-ops models gc` will", self.uri, staging)

    def _stage_model(self, fl: Flavor, model: Any, staging: Staging) -> list[dict]:
        if isinstance(fl, BytesFlavor):
            return [staging.write_in_background(f"{mf.MODEL_DIR}/{fl.file_name}", fl.dumps(model))]
        assert isinstance(fl, DirectoryFlavor)
        model_dir = join(staging.path, mf.MODEL_DIR)
        uri = self.storage.spark_uri(model_dir)
        if uri is None:  # the storage is not reachable by Spark: write locally, then upload through the interface
            with local_scratch() as scratch:
                fl.save_to(model, scratch.spark_uri(mf.MODEL_DIR))
                return [staging.write(f"{mf.MODEL_DIR}/{rel}", scratch.read_chunks(join(mf.MODEL_DIR, rel)))
                        for rel, _ in scratch.walk_files(mf.MODEL_DIR)]
        fl.save_to(model, uri)
        # The library wrote the files itself: hash them as stored.
        return [{"path": f"{mf.MODEL_DIR}/{rel}", **_Digest.of(self.storage.read_chunks(join(model_dir, rel)))}
                for rel, _ in self.storage.walk_files(model_dir)]

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

    def resolve(self, ref: ModelRef | str) -> ModelVersion:
        """The version a reference points at (manifest parsed, files not yet verified).

        Args:
            ref: a :class:`ModelRef`; a ``NAME:VERSION`` or ``NAME@ALIAS`` string is parsed here, for library callers.

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

    def _version(self, ref: ModelRef | str | ModelVersion) -> ModelVersion:
        return ref if isinstance(ref, ModelVersion) else self.resolve(ref)

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

    def verify(self, ref: ModelRef | str | ModelVersion) -> ModelVersion:
        """Re-hash every file of a version against its manifest; also refuse files the manifest does not list.

        Raises:
            IntegrityError: a file is missing, has another size or sha256, or is not in the manifest.
        """
        mv = self._version(ref)
        self.check_files(mv)
        for entry in mv.manifest["files"]:
            self._verified_bytes(mv, entry, keep=False)
        return mv

    def check_files(self, mv: ModelVersion) -> None:
        """Refuse a version whose stored files are not exactly those its manifest lists (names only, no hashing).

        Raises:
            IntegrityError: a listed file is missing, or a stored file is not in the manifest.
        """
        stored = dict(self.storage.walk_files(_version_dir(mv)))
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

    def manifest_bytes(self, mv: ModelVersion) -> bytes:
        """The manifest of ``mv`` exactly as stored (what an export carries and hashes)."""
        return self.storage.read_bytes(_version_dir(mv, mf.MANIFEST))

    def file_chunks(self, mv: ModelVersion, path: str) -> Iterator[bytes]:
        """Stream one file of ``mv`` as stored, unverified: the caller checks it against the manifest entry."""
        return self.storage.read_chunks(_version_dir(mv, path))

    def read_file(self, ref: ModelRef | str | ModelVersion, path: str) -> bytes:
        """One file of a version (e.g. ``evaluation/summary.json``), returned only if its size and sha256 match the manifest.

        Raises:
            NotFoundError: the manifest lists no such file (e.g. a version trained before it was stored).
            IntegrityError: the stored file is missing or differs from the manifest.
        """
        mv = self._version(ref)
        entry = next((f for f in mv.manifest["files"] if f["path"] == path), None)
        if entry is None:
            raise NotFoundError(f"{mv.ref} in {self.uri} has no file {path!r}; its files: "
                                f"{', '.join(f['path'] for f in mv.manifest['files'])}.")
        return self._verified_bytes(mv, entry, keep=True)

    def _verified_bytes(self, mv: ModelVersion, entry: dict, *, keep: bool) -> bytes | None:
        """Read one listed file and hash it; its bytes (``keep``) are returned only if size and sha256 match.

        Kept files are received whole into one allocation, then hashed: measured on 500 MB, that beat hashing
        on a second thread while filling a pre-zeroed buffer, whose zeroing nothing could overlap.
        """
        path = _version_dir(mv, entry["path"])
        data = None
        try:
            if keep:
                data = self.storage.read_upto(path, entry["size"] + 1)  # one byte more shows a longer file
                got = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            else:
                got = _Digest.of(self.file_chunks(mv, entry["path"]))
        except NotFoundError as exc:
            raise IntegrityError(f"{mv.ref} in {self.uri} is damaged: file {entry['path']} is missing.",
                                 hint="Do not use this version.") from exc
        size, hexdigest = got["size"], got["sha256"]
        if data is not None and size > entry["size"]:
            size = getattr(self.storage.status(path), "size", size)
        if size != entry["size"] or hexdigest != entry["sha256"]:
            raise IntegrityError(
                f"{mv.ref} in {self.uri} is damaged: file {entry['path']} has size {size} and sha256 "
                f"{hexdigest}, the manifest records size {entry['size']} and sha256 {entry['sha256']}.",
                hint="Do not use this version.",
            )
        return data

    def verified_model_bytes(self, ref: ModelRef | str | ModelVersion) -> tuple[str, bytes]:
        """(flavor name, verified serialised bytes) of a single-file flavor, for broadcasting to workers.

        Deserialise with ``get_flavor(name).loads(data)``.

        Raises:
            UsageError: the version's flavor is stored as a directory (e.g. ``sparkml``).
            IntegrityError: see :meth:`verify`.
        """
        name, payload = self._verified_payload(ref)
        return name, bytes(payload)

    def _verified_payload(self, ref: ModelRef | str | ModelVersion) -> tuple[str, bytes]:
        mv = self._version(ref)
        fl = get_flavor(mv.flavor)
        if not isinstance(fl, BytesFlavor):
            raise UsageError(f"{mv.ref} has flavor {fl.name!r}, which is a directory, not serialised bytes; "
                             f"use load() instead.")
        model_path = f"{mf.MODEL_DIR}/{fl.file_name}"
        if model_path not in {f["path"] for f in mv.manifest["files"]}:
            raise IntegrityError(f"{mv.ref} in {self.uri} is damaged: its manifest lists no {model_path}.")
        self.check_files(mv)
        payload = b""
        for entry in mv.manifest["files"]:
            blob = self._verified_bytes(mv, entry, keep=entry["path"] == model_path)
            if blob is not None:
                payload = blob
        return fl.name, payload

    def load(self, ref: ModelRef | str | ModelVersion) -> LoadedModel:
        """Verify every file of a version, then deserialise it with its flavor.

        Raises:
            ModelNotFoundError, UsageError: see :meth:`resolve`.
            IntegrityError: a checksum does not match; nothing was deserialised.
        """
        mv = self._version(ref)
        fl = get_flavor(mv.flavor)
        if isinstance(fl, BytesFlavor):
            _, payload = self._verified_payload(mv)  # the bytes as received: no extra copy of a large artifact
            return LoadedModel(mv, fl.loads(payload))
        uri = self.storage.spark_uri(_version_dir(mv, mf.MODEL_DIR))
        if uri is not None:
            # Read by their own library from the registry itself (on a cluster, by the executors), so
            # the tree is hashed in place just before; version directories are immutable.
            self.verify(mv)
            return LoadedModel(mv, fl.load_from(uri))
        self.check_files(mv)
        with local_scratch() as scratch:
            # Hash while copying to a private local directory; the library reads only verified copies.
            for entry in mv.manifest["files"]:
                self._verified_copy(mv, entry, scratch)
            return LoadedModel(mv, fl.load_from(scratch.spark_uri(mf.MODEL_DIR)))

    def _verified_copy(self, mv: ModelVersion, entry: dict, scratch: Storage) -> None:
        digest = _Digest()
        scratch.write(entry["path"], digest.over(self.file_chunks(mv, entry["path"])))
        if digest.sha256.hexdigest() != entry["sha256"]:
            raise IntegrityError(
                f"{mv.ref} in {self.uri} is damaged: file {entry['path']} has sha256 {digest.sha256.hexdigest()}, "
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

    def archive(self, ref: ModelRef | str, *, provenance: Provenance, reason: str = "") -> ModelVersion:
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
        file, record = self._history_entry(name, event)
        self.storage.write(join(name, HISTORY, file), _dumps(record))
        return record

    @staticmethod
    def _history_entry(name: str, event: dict) -> tuple[str, dict]:
        """(file name in ``_history``, record) of one event, stamped now; the name sorts by time."""
        at = datetime.now(UTC)
        record = {"at": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "model": name, **event}
        return f"{at.strftime('%Y%m%dT%H%M%S%fZ')}-{uuid.uuid4().hex[:8]}.json", record

    def gc(self, older_than_hours: float) -> list[str]:
        """Remove staging directories, staged history entries and temporary alias files older than ``older_than_hours``.

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


def _stage_more(staging: Staging, staged: list[dict], files: Mapping[str, bytes]) -> list[dict]:
    """Stage the caller's extra files of a version; none may replace a file already staged (the model's own)."""
    taken = {f["path"] for f in staged}
    clash = sorted(p for p in files if p in taken)
    if clash:
        raise ValueError(f"files {clash} are the model's own files of the version; store extra files under another path")
    return [staging.write_in_background(path, data) for path, data in files.items()]


def _dumps(record: dict) -> bytes:
    """A history record as stored."""
    return json.dumps(record, sort_keys=True).encode()


def _version_dir(mv: ModelVersion, *parts: str) -> str:
    """Root-relative path of ``mv``'s directory, or of ``parts`` inside it."""
    return join(mv.name, str(mv.version), *parts)
