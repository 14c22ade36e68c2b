"""What happens on one edge node: upload, verify, install, smoke test, atomic switch, prune, audit.

Layout under ``deploy.base_dir`` on every edge node::

    incoming/<build>.tar(.part)   upload in progress (resumable); removed once installed
    releases/<build>/             unpacked, verified build with its own venv (.installed, .smoke-ok markers)
    current -> releases/<build>   switched by rename(2) of a temporary symlink, never ``ln -sfn``
    audit.jsonl                   append-only deployment records, one JSON object per line
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import PurePosixPath

from sparkml_ops.config import DeploySettings
from sparkml_ops.deploy import edge_kerberos
from sparkml_ops.deploy.manifest import CHECKSUMS, StoredBuild
from sparkml_ops.errors import IntegrityError, RefusedError, UsageError
from sparkml_ops.io.ssh import RemoteHost, quote

AUDIT = "audit.jsonl"
# The smoke job's JVMs (spark-submit's launcher and the driver) live a few seconds; C2's JIT threads
# burn about a third of their CPU on code they never run again, on edge nodes that other users share.
# JDK_JAVA_OPTIONS is added to the java command line, so it cannot override the site's own
# spark.driver.extraJavaOptions (Kerberos, truststores); deploy.smoke_env may override it.
SMOKE_JVM_OPTIONS = {"JDK_JAVA_OPTIONS": "-XX:TieredStopAtLevel=1"}


@dataclass(frozen=True)
class Layout:
    """Paths of one environment's deploy directory on an edge node."""

    base: PurePosixPath

    @classmethod
    def of(cls, deploy: DeploySettings) -> Layout:
        base = PurePosixPath(deploy.base_dir)
        if not base.is_absolute() or ".." in base.parts:
            raise UsageError(f"deploy.base_dir must be an absolute path without '..', got {deploy.base_dir!r}.")
        return cls(base)

    @property
    def releases(self) -> PurePosixPath:
        return self.base / "releases"

    @property
    def incoming(self) -> PurePosixPath:
        return self.base / "incoming"

    @property
    def current(self) -> PurePosixPath:
        return self.base / "current"

    @property
    def audit(self) -> PurePosixPath:
        return self.base / AUDIT

    def release(self, build_id: str) -> PurePosixPath:
        return self.releases / build_id


def current_build(host: RemoteHost, layout: Layout) -> str | None:
    """The build ``current`` points at, or ``None`` before the first deploy."""
    out = host.run(f"readlink {quote([layout.current])} || true").stdout.strip()
    return PurePosixPath(out).name if out else None


def upload_and_verify(host: RemoteHost, layout: Layout, build: StoredBuild) -> int:
    """Upload the build tarball (resuming a partial upload) and check its sha256 on the host.

    Returns:
        Bytes sent over SSH.

    Raises:
        IntegrityError: the bytes on the host differ from the build's (the partial file is removed).
    """
    part = layout.incoming / f"{build.build_id}.tar.part"
    host.run(f"mkdir -p {quote([layout.incoming, layout.releases])}")
    sent = host.upload(build.tarball, str(part))
    got = host.run(f"sha256sum {quote([part])}").stdout.split()[0]
    if got != build.tarball_sha256:
        host.run(f"rm -f {quote([part])}")
        raise IntegrityError(
            f"{host.name}: uploaded {part} has sha256 {got}, the build has {build.tarball_sha256}; removed it.",
            hint="Run the deploy again; if it repeats, check the disk and network of that host.",
        )
    host.run(f"mv -f {quote([part, layout.incoming / (build.build_id + '.tar')])}")
    return sent


def install(host: RemoteHost, layout: Layout, build: StoredBuild, deploy: DeploySettings) -> None:
    """Unpack into ``releases/<build>``, verify every file's sha256, create its venv offline.

    Raises:
        IntegrityError: a file's checksum differs from the manifest.
        RemoteError: unpacking or pip failed.
    """
    rel = layout.release(build.build_id)
    tmp = layout.releases / f".tmp-{build.build_id}"
    tar = layout.incoming / f"{build.build_id}.tar"
    res = host.run(
        f"set -e; rm -rf {quote([tmp])}; mkdir -p {quote([tmp])}; tar -xf {quote([tar])} -C {quote([tmp])}; "
        f"cd {quote([tmp])} && sha256sum --check --quiet --strict {CHECKSUMS}",
        check=False,
    )
    if res.exited != 0:
        host.run(f"rm -rf {quote([tmp])}")
        bad = (res.stdout + res.stderr).strip().splitlines()[:5]
        raise IntegrityError(f"{host.name}: files of build {build.build_id} fail their checksums: {'; '.join(bad)}.")
    # A release directory without .installed is a leftover of an interrupted install: replace it.
    host.run(f"set -e; rm -rf {quote([rel])}; mv -T {quote([tmp, rel])}")
    spark_home = deploy.smoke_env.get("SPARK_HOME")
    spark_home = quote([spark_home]) if spark_home else '"$SPARK_HOME"'
    # Without pyspark in the wheelhouse the release's Python finds the edge node's Spark client through
    # a .pth of its python/lib/*.zip (pyspark.zip, py4j), as spark-submit does for its drivers.
    host.run(
        f"set -e; cd {quote([rel])}; {quote([deploy.python])} -m venv venv; "
        f"venv/bin/python -m pip install -q --no-index --no-deps --no-compile --disable-pip-version-check "
        f"wheelhouse/*.whl ./*.whl; "
        f"site=$(venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])'); "
        f"(ls -1 {spark_home}/python/lib/*.zip 2>/dev/null || true) > \"$site/spark-client.pth\"; "
        f"touch .installed; rm -f {quote([tar])}"
    )


def is_installed(host: RemoteHost, layout: Layout, build_id: str) -> bool:
    rel = layout.release(build_id)
    return host.run(f"test -f {quote([rel / '.installed'])} && echo yes || echo no").stdout.strip() == "yes"


def smoke_command(layout: Layout, build_id: str, deploy: DeploySettings, master: str) -> str:
    """The spark-submit command line of the smoke test, run from the release directory."""
    rel = layout.release(build_id)
    py = rel / "venv" / "bin" / "python"
    env = {**SMOKE_JVM_OPTIONS, **deploy.smoke_env, "PYSPARK_PYTHON": str(py), "PYSPARK_DRIVER_PYTHON": str(py)}
    assignments = " ".join(f"{k}={quote([v])}" for k, v in sorted(env.items()))
    args = quote([deploy.spark_submit, "--master", master, *deploy.smoke_args, str(rel / "smoke.py"), build_id])
    return f"cd {quote([rel])} && env {assignments} {args}"


def smoke_test(host: RemoteHost, layout: Layout, build_id: str, deploy: DeploySettings, master: str) -> str:
    """Run the smoke test once per release and host; returns its ``SMOKE OK`` line (or that it passed before).

    Raises:
        RefusedError: the job did not print ``SMOKE OK`` (the release is not switched to).
        AuthenticationError: the Kerberos login of ``deploy.kerberos`` failed (see :mod:`.edge_kerberos`).
    """
    marker = layout.release(build_id) / ".smoke-ok"
    if host.run(f"test -f {quote([marker])} && echo yes || echo no").stdout.strip() == "yes":
        return f"smoke test passed earlier ({marker})"
    # With deploy.kerberos the job runs with a fresh ticket of the environment's principal (KRB5CCNAME).
    res = edge_kerberos.run(host, deploy.kerberos, smoke_command(layout, build_id, deploy, master), check=False)
    ok = [line for line in res.stdout.splitlines() if line.startswith(f"SMOKE OK {build_id}")]
    if res.exited != 0 or not ok:
        tail = "\n  ".join((res.stderr or res.stdout).strip().splitlines()[-8:])
        raise RefusedError(f"{host.name}: smoke test of {build_id} failed (exit {res.exited}); not switching:\n  {tail}")
    # The marker keeps the job's line: who it ran as, against which filesystem.
    host.run(f"printf '%s\\n' {quote([ok[0]])} > {quote([marker])}")
    return ok[0]


def switch(host: RemoteHost, layout: Layout, build_id: str) -> str | None:
    """Point ``current`` at ``releases/<build>`` atomically; returns the previous build.

    A new symlink is created under a temporary name and renamed over ``current`` (``mv -T``
    is rename(2)), so a reader always sees either the old or the new target, never none.
    """
    if not is_installed(host, layout, build_id):
        raise RefusedError(f"{host.name}: release {build_id} is not installed there; deploy it first.")
    previous = current_build(host, layout)
    tmp = layout.base / f".current-{secrets.token_hex(4)}"
    host.run(f"set -e; ln -s {quote(['releases/' + build_id, tmp])}; mv -T {quote([tmp, layout.current])}")
    return previous


def prune(host: RemoteHost, layout: Layout, keep: int, protect: set[str]) -> list[str]:
    """Delete releases beyond the newest ``keep``; never ``protect``ed ones (current, previous)."""
    out = host.run(
        f"cd {quote([layout.releases])} && for d in */; do d=${{d%/}}; "
        f"[ -f \"$d/.installed\" ] && echo \"$(stat -c %Y \"$d/.installed\") $d\" || echo \"0 $d\"; done 2>/dev/null || true"
    ).stdout
    stamped = [line.split(" ", 1) for line in out.strip().splitlines() if " " in line]
    ranked = [name for _, name in sorted(stamped, key=lambda p: (int(p[0]), p[1]), reverse=True)]
    doomed = [name for i, name in enumerate(ranked) if i >= keep and name not in protect]
    if doomed:
        host.run(f"cd {quote([layout.releases])} && rm -rf -- {quote(doomed)}")
    return doomed


def append_audit(host: RemoteHost, layout: Layout, record: dict) -> None:
    """Append one record to the host's audit trail (``>>``: O_APPEND, never rewritten)."""
    line = json.dumps(record, sort_keys=True, separators=(",", ":"))
    host.run(f"mkdir -p {quote([layout.base])} && printf '%s\\n' {quote([line])} >> {quote([layout.audit])}")


def read_audit(host: RemoteHost, layout: Layout) -> list[dict]:
    """All audit records of the host, oldest first (unparseable lines are reported, not skipped)."""
    text = host.run(f"cat {quote([layout.audit])} 2>/dev/null || true").stdout
    return parse_audit(text, f"{host.name}: {layout.audit}")


def parse_audit(text: str, where: str) -> list[dict]:
    """The records of an audit trail's text (one JSON object per line), oldest first.

    Raises:
        IntegrityError: a line is not JSON (``where`` names the trail in the message).
    """
    records = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except ValueError as exc:
                raise IntegrityError(f"{where} line {n} is not JSON; the trail was tampered with.") from exc
    return records


def hdfs_publish_commands(deploy: DeploySettings, layout: Layout, build_id: str, env: str) -> list[str]:
    """Commands (run on an edge node) that publish the packed env and job files under the build id."""
    if not deploy.hdfs_dir:
        return []
    target = PurePosixPath(deploy.hdfs_dir) / build_id
    rel = layout.release(build_id)
    hdfs = deploy.hdfs_command
    staging = PurePosixPath(deploy.hdfs_dir) / f".tmp-{build_id}-{env}"
    conf = quote([rel / "conf.tar.gz"])
    # Copy into a staging directory and rename: readers never see half a build on HDFS. If another
    # environment sharing this HDFS renamed the same build first, -mv moves our staging directory
    # *into* the target; the last -rm removes that copy (the build's bytes are the same).
    # World-readable whatever the client's umask (a build holds no secret): YARN localizes such an
    # archive once per NodeManager for every job (PUBLIC visibility) instead of once per job.
    return [
        f"{hdfs} -test -d {quote([target])} || ( {hdfs} -rm -r -f -skipTrash {quote([staging])} >/dev/null 2>&1; "
        f"{hdfs} -mkdir -p {quote([staging])} && "
        f"{hdfs} -put {quote([rel / 'env.tar.gz', rel / 'jobs', rel / 'manifest.json', rel / 'smoke.py'])} "
        f"$(test -f {conf} && echo {conf}) {quote([staging])} && "
        f"{hdfs} -chmod -R a+rX {quote([staging])} && "
        f"{hdfs} -mv {quote([staging, target])} && "
        f"{hdfs} -rm -r -f -skipTrash {quote([target / staging.name])} >/dev/null 2>&1 )"
    ]


def hdfs_audit_command(deploy: DeploySettings, env: str) -> str | None:
    """Command appending stdin to the environment's audit trail on HDFS, or ``None`` without an hdfs target."""
    if not deploy.hdfs_dir:
        return None
    path = PurePosixPath(deploy.hdfs_dir) / "_audit" / f"{env}.jsonl"
    # -appendToFile creates the file and its parent directories; one client start less than -mkdir first.
    return f"{deploy.hdfs_command} -appendToFile - {quote([path])}"
