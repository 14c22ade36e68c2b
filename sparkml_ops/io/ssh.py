"""SSH to edge nodes: the only code in sparkml-ops that opens SSH connections.

Fabric's ``Connection`` accepts unknown host keys by default (``AutoAddPolicy``; fabric
issues #1804, #2071, #2138). Every connection made here, gateways and ``ProxyJump`` hops
included, is switched to :class:`StrictHostKeys` (a ``RejectPolicy``) with host keys from one
known_hosts file, and always has a connect timeout. ``~/.ssh/config`` (or a configured file)
is honoured for host names, users, ports, identity files and ``ProxyJump``.
"""

from __future__ import annotations

import shlex
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import paramiko
from fabric import Config, Connection

from sparkml_ops.config import DeploySettings, SshHost
from sparkml_ops.errors import HostKeyError, RemoteError, SparkMLOpsError

T = TypeVar("T")
R = TypeVar("R")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class SshOptions:
    """How connections are made; built once from :class:`DeploySettings`."""

    known_hosts: Path | None
    ssh_config: Path | None
    identity_file: Path | None
    connect_timeout_s: float
    command_timeout_s: float

    @classmethod
    def from_settings(cls, deploy: DeploySettings) -> SshOptions:
        """Resolve the SSH files of an environment (``None`` means the user's defaults)."""

        def path(value: str | None) -> Path | None:
            return Path(value).expanduser() if value else None

        return cls(
            known_hosts=path(deploy.known_hosts),
            ssh_config=path(deploy.ssh_config),
            identity_file=path(deploy.identity_file),
            connect_timeout_s=deploy.connect_timeout_s,
            command_timeout_s=deploy.command_timeout_s,
        )


def _fingerprint(key: paramiko.PKey) -> str:
    return key.fingerprint  # "SHA256:..." like ssh-keygen -l


def _verify_hint(hostname: str, port: int, known_hosts: str) -> str:
    target = f"-p {port} {hostname}" if port != 22 else hostname
    return (
        f"Verify the key out of band (ask the host's administrator to run 'ssh-keygen -lf "
        f"/etc/ssh/ssh_host_ed25519_key.pub' and compare with 'ssh-keyscan {target} | ssh-keygen -lf -'), "
        f"then add it: ssh-keyscan {target} >> {known_hosts}"
    )


class StrictHostKeys(paramiko.RejectPolicy):
    """Refuse hosts absent from known_hosts, with a message that says how to verify and add the key."""

    def __init__(self, known_hosts: str) -> None:
        self.known_hosts = known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        host, port = _split_known_host(hostname)
        raise HostKeyError(
            f"SSH host key of {hostname} is unknown ({key.get_name()} {_fingerprint(key)}): "
            f"it is not in {self.known_hosts}; connection refused.",
            hint=_verify_hint(host, port, self.known_hosts),
        )


def _split_known_host(name: str) -> tuple[str, int]:
    # paramiko names non-22 ports "[host]:port" as known_hosts does.
    if name.startswith("[") and "]:" in name:
        host, port = name[1:].split("]:", 1)
        return host, int(port)
    return name, 22


def _harden(conn: Connection, opts: SshOptions) -> None:
    """Strict host keys and timeouts on ``conn`` and every gateway in front of it."""
    known = opts.known_hosts
    if known is None:
        files = conn.ssh_config.get("userknownhostsfile")
        first = files.split()[0] if isinstance(files, str) else (files[0] if files else None)
        known = Path(first or "~/.ssh/known_hosts").expanduser()
    client = conn.client
    client._system_host_keys.clear()  # nothing trusted but the configured file
    client._host_keys.clear()
    if known.is_file():
        client.load_system_host_keys(str(known))
    elif opts.known_hosts is not None:
        raise HostKeyError(
            f"known_hosts file {known} (deploy.known_hosts) does not exist: no host can be verified.",
            hint="Create it with the verified keys of the bastion and edge nodes (ssh-keyscan HOST >> FILE).",
        )
    client.set_missing_host_key_policy(StrictHostKeys(str(known)))
    if not conn.connect_timeout:
        conn.connect_timeout = max(1, int(round(opts.connect_timeout_s)))
    conn.connect_kwargs.setdefault("banner_timeout", opts.connect_timeout_s)
    conn.connect_kwargs.setdefault("auth_timeout", opts.connect_timeout_s)
    if isinstance(conn.gateway, Connection):
        _harden(conn.gateway, opts)


def _connection(target: SshHost, opts: SshOptions, gateway: Connection | None) -> Connection:
    overrides: dict = {"timeouts": {"connect": max(1, int(round(opts.connect_timeout_s)))}, "load_ssh_configs": True}
    if opts.identity_file:
        # In the config, not the constructor, so ProxyJump hops Fabric creates inherit it.
        overrides["connect_kwargs"] = {"key_filename": [str(opts.identity_file)], "look_for_keys": False}
    config = Config(overrides=overrides, runtime_ssh_path=str(opts.ssh_config) if opts.ssh_config else None)
    if opts.ssh_config and not opts.ssh_config.is_file():
        raise RemoteError(f"ssh config {opts.ssh_config} (deploy.ssh_config) does not exist.")
    conn = Connection(target.host, user=target.user, port=target.port, config=config, gateway=gateway)
    _harden(conn, opts)
    return conn


@dataclass(frozen=True)
class RunResult:
    """What a remote command printed and returned."""

    stdout: str
    stderr: str
    exited: int


class RemoteHost:
    """One open SSH connection to an edge node (through its gateway, if any)."""

    def __init__(self, name: str, conn: Connection, opts: SshOptions) -> None:
        self.name = name
        self._conn = conn
        self._opts = opts

    def run(self, command: str, *, check: bool = True, timeout: float | None = None, stdin: str | None = None) -> RunResult:
        """Run a shell command on the host.

        Raises:
            RemoteError: the connection failed, the command timed out, or (with ``check``) exited non-zero.
        """
        import io

        try:
            res = self._conn.run(
                command, hide=True, warn=True, in_stream=io.StringIO(stdin) if stdin is not None else False,
                timeout=timeout or self._opts.command_timeout_s,
            )
        except SparkMLOpsError:
            raise
        except Exception as exc:  # invoke/paramiko/socket failures all mean the host is not usable now
            raise RemoteError(f"{self.name}: remote command failed to run ({type(exc).__name__}: {exc}): {command[:200]}") from exc
        result = RunResult(res.stdout, res.stderr, res.exited)
        if check and res.exited != 0:
            raise self.failure(command, result)
        return result

    def failure(self, command: str, result: RunResult) -> RemoteError:
        """The error of ``command`` having exited non-zero: host, exit status, the last lines it printed."""
        tail = (result.stderr or result.stdout).strip().splitlines()[-8:]
        return RemoteError(f"{self.name}: command exited {result.exited}: {command[:200]}\n  " + "\n  ".join(tail))

    def reconnect(self) -> None:
        """Drop and reopen the connection (same host-key policy and gateway), e.g. after a dropped session.

        Raises:
            RemoteError: the host cannot be reached again.
        """
        try:
            self._conn.close()
            self._conn.open()
        except Exception as exc:
            raise RemoteError(f"{self.name}: reconnect failed ({type(exc).__name__}: {exc}).") from exc

    def upload(self, local: Path, remote: str, progress: Callable[[int], None] | None = None) -> int:
        """Copy ``local`` to ``remote`` over SFTP, resuming a partial copy already there.

        Returns:
            The number of bytes sent in this call (0 when the remote copy was already complete).

        Raises:
            RemoteError: the connection dropped; calling again resumes where it stopped.
        """
        size = local.stat().st_size
        try:
            sftp = self._conn.sftp()
            try:
                offset = sftp.stat(remote).st_size or 0
            except FileNotFoundError:
                offset = 0
            if offset > size:
                offset = 0
            sent = 0
            with local.open("rb") as src, sftp.open(remote, "r+b" if offset else "wb") as dst:
                dst.set_pipelined(True)
                src.seek(offset)
                dst.seek(offset)
                while chunk := src.read(_CHUNK):
                    dst.write(chunk)
                    sent += len(chunk)
                    if progress:
                        progress(len(chunk))
            return sent
        except SparkMLOpsError:
            raise
        except Exception as exc:
            raise RemoteError(
                f"{self.name}: upload of {local.name} to {remote} interrupted ({type(exc).__name__}: {exc}).",
                hint="Run the same command again: the upload resumes and nothing was switched.",
            ) from exc

    def open_session(self, command: str) -> paramiko.Channel:
        """Start ``command`` on a raw channel, for streaming between hosts."""
        try:
            chan = self._conn.client.get_transport().open_session(timeout=self._opts.connect_timeout_s)
            chan.exec_command(command)
            return chan
        except Exception as exc:
            raise RemoteError(f"{self.name}: cannot start {command[:200]} ({type(exc).__name__}: {exc}).") from exc

    def close(self) -> None:
        """Close this connection and its gateway."""
        gateway = self._conn.gateway
        self._conn.close()
        if isinstance(gateway, Connection):
            gateway.close()


def connect(target: SshHost, opts: SshOptions, bastion: SshHost | None = None) -> RemoteHost:
    """Open a strict, timed SSH connection to ``target``, jumping through ``bastion`` when given.

    Without ``bastion``, a ``ProxyJump`` in the SSH config is honoured (its hops are hardened too).

    Raises:
        HostKeyError: a host key (target or gateway) is unknown or changed.
        RemoteError: unreachable, timed out, or authentication failed.
    """
    gateway = _connection(bastion, opts, None) if bastion else None
    conn = _connection(target, opts, gateway)
    label = f"{target.host}" + (f" via {bastion.host}" if bastion else "")
    try:
        conn.open()
    except HostKeyError:
        conn.close()
        raise
    except paramiko.BadHostKeyException as exc:
        conn.close()
        known = str(opts.known_hosts or "~/.ssh/known_hosts")
        host, port = _split_known_host(exc.hostname)
        raise HostKeyError(
            f"SSH host key of {exc.hostname} has CHANGED: it offered {exc.key.get_name()} {_fingerprint(exc.key)} "
            f"but {known} expects {_fingerprint(exc.expected_key)}; connection refused (connecting to {label}). "
            "This is either a reinstalled host or a man-in-the-middle.",
            hint=_verify_hint(host, port, known).replace("then add it:", f"then replace the old line (ssh-keygen -R {host} -f {known}) and add it:"),
        ) from exc
    except paramiko.AuthenticationException as exc:
        conn.close()
        raise RemoteError(
            f"SSH authentication to {label} failed: {exc}.",
            hint="Check deploy.identity_file / IdentityFile in the ssh config and the remote authorized_keys.",
        ) from exc
    except (OSError, EOFError, socket.timeout, paramiko.SSHException) as exc:
        conn.close()
        raise RemoteError(
            f"cannot connect to {label} within {opts.connect_timeout_s:g}s: {type(exc).__name__}: {exc}.",
            hint="Check the host is up and reachable (firewall, bastion, ProxyJump); retry later.",
        ) from exc
    conn.transport.set_keepalive(15)
    return RemoteHost(target.host, conn, opts)


@dataclass(frozen=True)
class HostOutcome(Generic[R]):
    """The result of one host's share of a parallel run."""

    host: str
    value: R | None
    error: SparkMLOpsError | None
    seconds: float

    @property
    def ok(self) -> bool:
        return self.error is None


def for_each_host(hosts: Sequence[T], work: Callable[[T], R], name: Callable[[T], str], parallel: int) -> list[HostOutcome[R]]:
    """Run ``work`` for every host in parallel threads; one outcome per host, in input order.

    Errors of sparkml-ops are captured per host; anything else is a bug and propagates.
    """

    def one(host: T) -> HostOutcome[R]:
        start = time.monotonic()
        try:
            value = work(host)
        except SparkMLOpsError as exc:
            return HostOutcome(name(host), None, exc, time.monotonic() - start)
        return HostOutcome(name(host), value, None, time.monotonic() - start)

    if len(hosts) <= 1:
        return [one(h) for h in hosts]
    with ThreadPoolExecutor(max_workers=min(parallel, len(hosts)), thread_name_prefix="ssh") as pool:
        return list(pool.map(one, hosts))


def stream(src: RemoteHost, src_cmd: str, dst: RemoteHost, dst_cmd: str, timeout_s: float) -> int:
    """Pipe ``src_cmd``'s stdout on one host into ``dst_cmd``'s stdin on another, through this process.

    The two hosts never talk to each other (they may be in networks that cannot see each other).

    Returns:
        Bytes carried.

    Raises:
        RemoteError: either side failed (its stderr is in the message) or the time ran out.
    """
    out = src.open_session(src_cmd)
    into = dst.open_session(dst_cmd)
    errs = {"src": bytearray(), "dst": bytearray()}

    def drain_stderr(chan: paramiko.Channel, key: str) -> None:
        while (data := chan.recv_stderr(65536)):
            errs[key] += data

    threads = [threading.Thread(target=drain_stderr, args=(c, k), daemon=True) for c, k in ((out, "src"), (into, "dst"))]
    for t in threads:
        t.start()
    carried = 0
    deadline = time.monotonic() + timeout_s
    out.settimeout(timeout_s)
    try:
        while data := out.recv(_CHUNK):
            into.sendall(data)
            carried += len(data)
            if time.monotonic() > deadline:
                raise RemoteError(f"streaming {src.name} -> {dst.name} exceeded {timeout_s:g}s.")
        into.shutdown_write()
        src_rc, dst_rc = out.recv_exit_status(), into.recv_exit_status()
    except SparkMLOpsError:
        raise
    except Exception as exc:
        raise RemoteError(f"streaming {src.name} -> {dst.name} failed ({type(exc).__name__}: {exc}).") from exc
    finally:
        for t in threads:
            t.join(timeout=5)
        out.close()
        into.close()
    if src_rc != 0 or dst_rc != 0:
        failed = [(src.name, src_cmd, src_rc, errs["src"]), (dst.name, dst_cmd, dst_rc, errs["dst"])]
        detail = "; ".join(
            f"{h}: '{c}' exited {rc}: {e.decode(errors='replace').strip()[-500:]}" for h, c, rc, e in failed if rc != 0
        )
        raise RemoteError(f"streaming {src.name} -> {dst.name} failed: {detail}")
    return carried


def quote(parts: Iterable[str]) -> str:
    """A shell command line from arguments, each quoted."""
    return " ".join(shlex.quote(str(p)) for p in parts)
