"""The registry's storage: one small interface, a local-disk backend and an HDFS (WebHDFS/HttpFS) backend.

Every path given to a :class:`Storage` is relative to its root and is checked by
:func:`safe_relpath`, so nothing can be read or written outside the root. Backend
failures are translated here, at the I/O boundary, into sparkml-ops errors:
missing path -> :class:`NotFoundError`, existing rename target -> :class:`PathExistsError`,
refused access -> :class:`PermissionDeniedError`, unreachable NameNode/DataNode -> :class:`RemoteError`,
refused Kerberos credentials -> :class:`AuthenticationError` (see :mod:`sparkml_ops.io.kerberos`).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import posixpath
import shutil
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from sparkml_ops.config import RegistrySettings
from sparkml_ops.errors import (
    AuthenticationError,
    ConfigError,
    NotFoundError,
    PathExistsError,
    PermissionDeniedError,
    RemoteError,
)

CHUNK = 4 * 1024 * 1024

@dataclass(frozen=True)
class Entry:
    """One child of a directory: its name, whether it is a directory, size and modification time (UTC epoch s)."""

    name: str
    is_dir: bool
    size: int
    mtime: float


def safe_relpath(path: str) -> str:
    """Normalise a root-relative POSIX path and refuse anything that could escape the root.

    Raises:
        ValueError: the path is empty, absolute, or has ``..``/``.``/empty segments or a backslash.
    """
    if not isinstance(path, str) or not path:
        raise ValueError(f"storage path must be a non-empty relative path, got {path!r}")
    parts = path.split("/")
    if path.startswith("/") or "\\" in path or "\x00" in path or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"storage path {path!r} must be relative to the root without '.', '..' or empty segments")
    return path


def join(*parts: str) -> str:
    """Join root-relative path segments."""
    return "/".join(p.strip("/") for p in parts if p)


class Storage(ABC):
    """What the model registry needs from a filesystem; paths are root-relative (see :func:`safe_relpath`)."""

    #: the root as a URI without credentials, for messages and manifests
    uri: str

    @abstractmethod
    def status(self, path: str) -> Entry | None:
        """The entry at ``path``, or None when it does not exist."""

    def exists(self, path: str) -> bool:
        """Whether ``path`` exists."""
        return self.status(path) is not None

    @abstractmethod
    def list(self, path: str) -> list[Entry]:
        """Children of the directory ``path``, sorted by name; ``[]`` when it does not exist."""

    @abstractmethod
    def makedirs(self, path: str) -> None:
        """Create ``path`` and its parents (no error when it exists)."""

    @abstractmethod
    def write(self, path: str, data: bytes | BinaryIO | Iterable[bytes], overwrite: bool = False) -> None:
        """Write a file from bytes, a binary file object or an iterable of chunks (parents are created)."""

    @abstractmethod
    def read_chunks(self, path: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        """Stream the file's bytes; the file is opened before the first chunk is yielded.

        Raises:
            NotFoundError: the file does not exist.
        """

    def read_bytes(self, path: str) -> bytes:
        """The whole file (for small files: manifests, aliases)."""
        return b"".join(self.read_chunks(path))

    @abstractmethod
    def read_upto(self, path: str, limit: int) -> bytes:
        """At most ``limit`` bytes of the file, received into one allocation (for loading a whole artifact).

        A caller expecting ``n`` bytes asks for ``n + 1``, so a longer file shows without reading all of it.

        Raises:
            NotFoundError: the file does not exist.
        """

    @abstractmethod
    def rename_noreplace(self, src: str, dst: str) -> None:
        """Atomically rename ``src`` to ``dst``; the parent of ``dst`` must exist.

        Raises:
            PathExistsError: ``dst`` exists (another writer won); nothing was changed.
        """

    @abstractmethod
    def replace(self, src: str, dst: str) -> None:
        """Atomically rename the file ``src`` over ``dst`` (readers see the old or the new file, never a mix)."""

    @abstractmethod
    def delete(self, path: str, recursive: bool = False) -> bool:
        """Delete ``path``; False when it did not exist."""

    @abstractmethod
    def spark_uri(self, path: str) -> str | None:
        """A URI for ``path`` that Spark's Hadoop filesystem layer can read and write, or None if there is none."""

    def walk_files(self, path: str) -> list[tuple[str, int]]:
        """All files under the directory ``path``: (path relative to ``path``, size), sorted."""
        out: list[tuple[str, int]] = []
        stack = [""]
        while stack:
            rel = stack.pop()
            for entry in self.list(join(path, rel)):
                child = join(rel, entry.name)
                if entry.is_dir:
                    stack.append(child)
                else:
                    out.append((child, entry.size))
        return sorted(out)

    def upload_dir(self, local_dir: Path, path: str) -> None:
        """Copy every file of a local directory tree to ``path``."""
        for local in sorted(p for p in local_dir.rglob("*") if p.is_file()):
            with local.open("rb") as fh:
                self.write(join(path, local.relative_to(local_dir).as_posix()), fh)

    def unique_name(self, prefix: str) -> str:
        """A name no other writer will pick (for staging and temporary files)."""
        return f"{prefix}{uuid.uuid4().hex}"


def open_storage(registry: RegistrySettings) -> Storage:
    """The backend for ``registry.uri``: ``file://`` -> local disk, ``webhdfs://``/``swebhdfs://`` -> HDFS.

    Raises:
        ConfigError: the URI scheme or form is not supported.
    """
    parts = urlsplit(registry.uri)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ConfigError(
                f"key 'registry.uri' must be file:///absolute/path, got {registry.uri!r}."
            )
        return LocalStorage(Path(unquote(parts.path)))
    if parts.scheme in ("webhdfs", "swebhdfs"):
        if not parts.hostname or not parts.path.startswith("/"):
            raise ConfigError(
                f"key 'registry.uri' must be webhdfs://namenode:port/absolute/path, got {registry.uri!r}."
            )
        return HdfsStorage.from_settings(registry)
    raise ConfigError(
        f"key 'registry.uri' must be a file://, webhdfs:// or swebhdfs:// URI, got {registry.uri!r}."
    )


# --------------------------------------------------------------------------- local disk

_RENAME_NOREPLACE = 1
_AT_FDCWD = -100


def _renameat2_noreplace(src: str, dst: str) -> bool:
    """Linux renameat2(RENAME_NOREPLACE); False when the C library lacks it (caller falls back)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL):  # kernel or filesystem without the flag
        return False
    raise OSError(err, os.strerror(err), dst)


class LocalStorage(Storage):
    """The embedded default: a directory on local disk."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.uri = root.as_uri()

    def _p(self, path: str) -> Path:
        return self.root / safe_relpath(path)

    def _open_inside(self, path: str, what: str) -> BinaryIO:
        """Open a file for reading, refusing symlinks that lead outside the root."""
        target = self._p(path)
        with self._errors(what, path):
            if target.is_dir():
                raise NotFoundError(f"{self.uri}/{path}: is a directory, not a file.")
            real, root = os.path.realpath(target), os.path.realpath(self.root)
            if os.path.commonpath([real, root]) != root:
                raise PermissionDeniedError(f"{self.uri}/{path}: is a link to {real}, outside the registry root; "
                                            f"refusing to read it.")
            return open(real, "rb", buffering=0)  # noqa: SIM115 - the caller closes it

    @contextlib.contextmanager
    def _errors(self, what: str, path: str) -> Iterator[None]:
        try:
            yield
        except FileNotFoundError as exc:
            raise NotFoundError(f"{self.uri}/{path}: does not exist ({what}).") from exc
        except PermissionError as exc:
            raise PermissionDeniedError(
                f"{self.uri}/{path}: permission denied ({what}).",
                hint="Check the owner and mode of the registry directory, or point registry.uri elsewhere.",
            ) from exc

    def status(self, path: str) -> Entry | None:
        with self._errors("stat", path):
            try:
                st = self._p(path).stat()
            except FileNotFoundError:
                return None
        return Entry(path.rsplit("/", 1)[-1], os.path.isdir(self._p(path)), st.st_size, st.st_mtime)

    def list(self, path: str) -> list[Entry]:
        base = self._p(path) if path else self.root
        with self._errors("list", path):
            try:
                entries = list(os.scandir(base))
            except (FileNotFoundError, NotADirectoryError):
                return []
            out = []
            for e in entries:
                try:
                    st = e.stat(follow_symlinks=False)
                except FileNotFoundError:  # removed while listing (gc, a concurrent rename)
                    continue
                out.append(Entry(e.name, e.is_dir(follow_symlinks=False), st.st_size, st.st_mtime))
        return sorted(out, key=lambda e: e.name)

    def makedirs(self, path: str) -> None:
        with self._errors("mkdir", path):
            (self._p(path) if path else self.root).mkdir(parents=True, exist_ok=True)

    def write(self, path: str, data: bytes | BinaryIO | Iterable[bytes], overwrite: bool = False) -> None:
        target = self._p(path)
        with self._errors("write", path):
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                fh = target.open("wb" if overwrite else "xb")
            except FileExistsError as exc:
                raise PathExistsError(f"{self.uri}/{path}: already exists.") from exc
            with fh:
                if isinstance(data, (bytes, bytearray, memoryview)):
                    fh.write(data)
                elif hasattr(data, "read"):
                    shutil.copyfileobj(data, fh, CHUNK)
                else:
                    for chunk in data:
                        fh.write(chunk)
                fh.flush()
                # Durable before it can become visible through a rename.
                os.fsync(fh.fileno())

    def read_chunks(self, path: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        return self._iter(self._open_inside(path, "read"), chunk_size)

    def read_upto(self, path: str, limit: int) -> bytes:
        with self._open_inside(path, "read") as fh:
            return fh.read(limit)

    @staticmethod
    def _iter(fh: BinaryIO, chunk_size: int) -> Iterator[bytes]:
        with fh:
            while chunk := fh.read(chunk_size):
                yield chunk

    def rename_noreplace(self, src: str, dst: str) -> None:
        s, d = str(self._p(src)), str(self._p(dst))
        with self._errors("rename", src):
            try:
                if not _renameat2_noreplace(s, d):
                    # Fallback: rename(2) refuses a non-empty target directory, and registry
                    # directories are never empty, so a lost race still fails here.
                    if os.path.lexists(d):
                        raise FileExistsError(errno.EEXIST, "exists", d)
                    os.rename(s, d)
            except (FileExistsError, OSError) as exc:
                if isinstance(exc, (FileNotFoundError, PermissionError)):
                    raise
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    raise PathExistsError(f"{self.uri}/{dst}: already exists.") from exc
                raise

    def replace(self, src: str, dst: str) -> None:
        with self._errors("rename", src):
            os.replace(self._p(src), self._p(dst))

    def delete(self, path: str, recursive: bool = False) -> bool:
        target = self._p(path)
        with self._errors("delete", path):
            if not os.path.lexists(target):
                return False
            if target.is_dir() and not target.is_symlink():
                if recursive:
                    shutil.rmtree(target)
                else:
                    target.rmdir()
            else:
                target.unlink()
        return True

    def spark_uri(self, path: str) -> str:
        return (self._p(path) if path else self.root).as_uri()


# --------------------------------------------------------------------------- HDFS over WebHDFS / HttpFS


class HdfsStorage(Storage):
    """A directory on HDFS, reached through WebHDFS or HttpFS with the ``hdfs`` package."""

    def __init__(self, client, root: str, uri: str, hdfs_uri: str | None = None, identity: str = "") -> None:
        self.client = client
        self.root = root.rstrip("/") or "/"
        self.uri = uri
        #: who the NameNode sees (principal and keytab/cache, token or user name), for error messages
        self.identity = identity
        # Spark's bundled Hadoop client cannot speak WebHDFS, so Spark gets the RPC address if configured.
        self._hdfs_uri = hdfs_uri

    @classmethod
    def from_settings(cls, registry: RegistrySettings) -> HdfsStorage:
        """Build the client for ``registry.uri`` with ``registry.auth`` (none, simple user, Kerberos)."""
        parts = urlsplit(registry.uri)
        http = "https" if parts.scheme == "swebhdfs" else "http"
        port = parts.port or (9871 if http == "https" else 9870)
        url = f"{http}://{parts.hostname}:{port}"
        auth = registry.auth
        if auth.method == "kerberos":
            client, identity = _kerberos_client(url, registry)
        else:
            from hdfs import InsecureClient

            if auth.method == "simple" and not auth.user:
                raise ConfigError("registry.auth.method 'simple' needs registry.auth.user (the HDFS user name).")
            client = InsecureClient(url, user=auth.user, timeout=registry.timeout_s)
            identity = f"HDFS user {auth.user}" if auth.user else "no authentication"
        root = unquote(parts.path).rstrip("/") or "/"
        shown = f"{parts.scheme}://{parts.hostname}:{port}{root}"
        return cls(client, root, shown, registry.hdfs_uri, identity)

    def _abs(self, path: str, *, root_ok: bool = False) -> str:
        """Absolute HDFS path; only listing/stat/mkdir may name the root itself (``""``)."""
        if root_ok and path == "":
            return self.root
        return posixpath.join(self.root, safe_relpath(path))

    @contextlib.contextmanager
    def _errors(self, what: str, path: str) -> Iterator[None]:
        import requests
        from hdfs.util import HdfsError

        where = f"{self.uri}/{path}" if path else self.uri
        try:
            yield
        except _SPNEGO_ERRORS as exc:
            raise AuthenticationError(
                f"the NameNode of {self.uri} refused the Kerberos credentials of {self.identity} "
                f"while trying to {what} {where}: {_short(exc)}.",
                hint="Check that the ticket is for this cluster's realm and that the clocks agree; "
                     "'sparkml-ops doctor' runs the same login step by step.",
            ) from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise RemoteError(
                f"HDFS unreachable while trying to {what} {where}: {type(exc).__name__}: {_short(exc)}.",
                hint="Check that the NameNode and DataNodes are up and reachable from this host; retrying later is safe.",
            ) from exc
        except HdfsError as exc:
            kind = getattr(exc, "exception", None) or ""
            # The NameNode's message can carry its Java stack trace after the first line: not for users.
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else kind
            if kind == "FileNotFoundException":
                raise NotFoundError(f"{where}: does not exist ({what}).") from exc
            if kind == "FileAlreadyExistsException":
                raise PathExistsError(f"{where}: already exists ({what}).") from exc
            if "Authentication failure" in text or "Authentication required" in text:
                raise AuthenticationError(
                    f"the NameNode of {self.uri} did not accept {self.identity} while trying to {what} {where}: {text}",
                    hint="Check registry.auth (method, principal, keytab); 'sparkml-ops doctor' shows each step.",
                ) from exc
            if kind in ("AccessControlException", "SecurityException"):
                raise PermissionDeniedError(
                    f"{where}: permission denied ({what}): {text} (as {self.identity}).",
                    hint="Ask the owner of the registry root for access (HDFS permissions or ACLs), "
                         "or use the registry's service principal in registry.auth.",
                ) from exc
            raise RemoteError(f"HDFS refused to {what} {where}: {kind or 'error'}: {text}") from exc

    def status(self, path: str) -> Entry | None:
        with self._errors("stat", path):
            st = self.client.status(self._abs(path, root_ok=True), strict=False)
        if st is None:
            return None
        return Entry(path.rsplit("/", 1)[-1], st["type"] == "DIRECTORY", st["length"], st["modificationTime"] / 1000)

    def list(self, path: str) -> list[Entry]:
        with self._errors("list", path):
            try:
                items = self.client.list(self._abs(path, root_ok=True), status=True)
            except Exception as exc:  # a missing directory lists as empty
                if getattr(exc, "exception", None) == "FileNotFoundException":
                    return []
                raise
        return sorted(
            (Entry(n, s["type"] == "DIRECTORY", s["length"], s["modificationTime"] / 1000) for n, s in items),
            key=lambda e: e.name,
        )

    def makedirs(self, path: str) -> None:
        with self._errors("mkdir", path):
            self.client.makedirs(self._abs(path, root_ok=True))

    def write(self, path: str, data: bytes | BinaryIO | Iterable[bytes], overwrite: bool = False) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)) and not hasattr(data, "read"):
            data = iter(data)
        with self._errors("write", path):
            self.client.write(self._abs(path), data=data, overwrite=overwrite)

    def read_chunks(self, path: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        with self._errors("read", path):
            ctx = self.client.read(self._abs(path), chunk_size=chunk_size)
            chunks = ctx.__enter__()
        return self._iter(ctx, chunks, path)

    def read_upto(self, path: str, limit: int) -> bytes:
        # The NameNode caps the length; one read() lets http.client allocate the bytes once and receive
        # straight into them (a pre-zeroed buffer cost a fifth of a 500 MB load, docs/benchmarks.md).
        with self._errors("read", path), self.client.read(self._abs(path), length=limit) as reader:
            return reader.read()

    def _iter(self, ctx, chunks: Iterator[bytes], path: str) -> Iterator[bytes]:
        try:
            with self._errors("read", path):
                yield from chunks
        finally:
            ctx.__exit__(None, None, None)

    def rename_noreplace(self, src: str, dst: str) -> None:
        with self._errors("rename", src):
            # WebHDFS RENAME with renameoptions is HDFS rename2: it fails when the target exists,
            # instead of the legacy rename that would move the source *into* an existing directory.
            # The hdfs package exposes only the legacy form, hence the raw endpoint.
            res = self.client._rename(self._abs(src), destination=self._abs(dst), renameoptions="NONE")
        if not res.content.strip():
            return  # rename2 answers with an empty body: the NameNode honoured renameoptions
        # A {"boolean": ...} body means a gateway (HttpFS) ran the legacy rename instead.
        if not res.json().get("boolean"):
            raise PathExistsError(f"{self.uri}/{dst}: already exists (rename).")
        nested = join(dst, src.rsplit("/", 1)[-1])
        if self.exists(nested):
            # A gateway that ignored renameoptions (legacy semantics) moved us into the winner: undo.
            with self._errors("rename", nested):
                self.client._rename(self._abs(nested), destination=self._abs(src), renameoptions="NONE")
            raise PathExistsError(f"{self.uri}/{dst}: already exists (rename).")

    def replace(self, src: str, dst: str) -> None:
        with self._errors("rename", src):
            self.client._rename(self._abs(src), destination=self._abs(dst), renameoptions="OVERWRITE")

    def delete(self, path: str, recursive: bool = False) -> bool:
        with self._errors("delete", path):
            return bool(self.client.delete(self._abs(path), recursive=recursive))

    def spark_uri(self, path: str) -> str | None:
        return self._hdfs_uri + self._abs(path, root_ok=True) if self._hdfs_uri else None


def _kerberos_client(url: str, registry: RegistrySettings):
    """A WebHDFS client that authenticates with Kerberos, and the identity it uses (for messages).

    Inside a Spark application holding an HDFS delegation token (YARN cluster mode, where no Kerberos
    ticket exists) the token is used; otherwise SPNEGO with a keytab login or the user's ticket cache.
    """
    import requests
    from hdfs import Client, TokenClient

    from sparkml_ops.io.kerberos import KerberosLogin, SpnegoAuth, spark_delegation_token

    token = spark_delegation_token()
    if token:
        return TokenClient(url, token, timeout=registry.timeout_s), "the HDFS delegation token of this Spark application"
    auth = registry.auth
    login = KerberosLogin(auth.principal, auth.keytab, auth.ccache)
    session = requests.Session()
    session.auth = SpnegoAuth(login)
    return Client(url, timeout=registry.timeout_s, session=session), login.describe


def check_kerberos(registry: RegistrySettings) -> list[tuple[str, str]]:
    """Step by step, what ``sparkml-ops doctor`` reports about the registry's Kerberos set-up.

    Keytab readable (and holding the principal), a login works, WebHDFS answers with SPNEGO, and the
    ticket's lifetime. Stops at the first failing step by raising its error.

    Raises:
        AuthenticationError, KdcUnreachableError: a credential step failed (the message says which).
        RemoteError, PermissionDeniedError: WebHDFS did not answer, or refused the registry root.
    """
    import datetime
    import time

    from sparkml_ops.io.kerberos import KerberosLogin, keytab_principals

    auth = registry.auth
    checks = []
    if auth.keytab:
        checks.append(("kerberos keytab", f"{auth.keytab}: readable, holds {', '.join(keytab_principals(auth.keytab))}"))
    login = KerberosLogin(auth.principal, auth.keytab, auth.ccache)
    ticket = login.ticket()
    source = "keytab login into a private in-memory cache" if auth.keytab else f"ticket from {ticket.cache}"
    checks.append(("kerberos login", f"{ticket.principal} ({source})"))
    until = datetime.datetime.fromtimestamp(ticket.expires_at, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    renew = ", renewed from the keytab at 1/4 left" if auth.keytab else ", not renewable here: kinit again before then"
    checks.append(("kerberos ticket", f"valid for {int(ticket.expires_at - time.time())} s, until {until}{renew}"))
    storage = open_storage(registry)
    exists = storage.status("") is not None
    checks.append(("webhdfs spnego", f"{storage.uri} answered as {storage.identity}" + ("" if exists else " (root not created yet)")))
    return checks


def _spnego_errors() -> tuple[type[BaseException], ...]:
    try:
        from requests_gssapi.exceptions import SPNEGOExchangeError
    except ImportError:  # Kerberos support not installed: no such errors can happen
        return ()
    return (SPNEGOExchangeError,)


_SPNEGO_ERRORS = _spnego_errors()


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "..."


# --------------------------------------------------------------------------- local files given by the user


@contextlib.contextmanager
def local_scratch() -> Iterator[LocalStorage]:
    """A private temporary directory on local disk (removed afterwards), as a :class:`LocalStorage`."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="sparkml-ops-") as tmp:
        yield LocalStorage(Path(tmp))


@contextlib.contextmanager
def atomic_output(target: str | os.PathLike | BinaryIO) -> Iterator[BinaryIO]:
    """A binary stream for ``target``: a path is written to a temporary sibling and renamed into place
    only on success (no half-written file on error); a file object is used as is.

    Raises:
        PermissionDeniedError, NotFoundError: the path's directory is not writable or does not exist.
    """
    if hasattr(target, "write"):
        yield target  # type: ignore[misc]
        return
    path = Path(target)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        fh = tmp.open("xb")
    except FileNotFoundError as exc:
        raise NotFoundError(f"{path.parent}: directory does not exist.") from exc
    except PermissionError as exc:
        raise PermissionDeniedError(f"{path}: permission denied.") from exc
    try:
        with fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def open_input(source: str | os.PathLike | BinaryIO) -> Iterator[BinaryIO]:
    """A binary stream for ``source``: a path is opened (and closed after), a file object used as is.

    Raises:
        NotFoundError: the path does not exist.
        PermissionDeniedError: it cannot be read.
    """
    if hasattr(source, "read"):
        yield source  # type: ignore[misc]
        return
    try:
        fh = open(source, "rb")  # noqa: SIM115 - closed by the with below
    except (FileNotFoundError, IsADirectoryError) as exc:
        raise NotFoundError(f"{source}: no such file.") from exc
    except PermissionError as exc:
        raise PermissionDeniedError(f"{source}: permission denied.") from exc
    with fh:
        yield fh
