"""Benchmark: `fab deploy` to 4 edge nodes in parallel versus 1, and upload throughput over SSH.

Needs the sshd test hosts (scripts/sshd-hosts start) and root. Deploys a real build (built
here from a clean clone of HEAD, or --build ID from .state/builds) to fresh directories on
prod1..prod4 through the bastion, so every run uploads, verifies, installs and smoke-tests.

    .venv/bin/python benchmarks/deploy_parallel.py [--repeat 3] [--build ID]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
HOSTS = REPO / ".state" / "sshd-hosts"
BUILDS = REPO / ".state" / "builds"


def settings(base: Path, n: int):
    from sparkml_ops.config import load_settings

    hosts = "[" + ", ".join(f"{{host: prod{i}}}" for i in range(1, n + 1)) + "]"
    return load_settings("prod", HOSTS / "conf", environ={}, overrides=[
        f"deploy.base_dir={base}", f"deploy.builds_dir={BUILDS}", f"deploy.edge_hosts={hosts}"])


def make_build() -> str:
    from sparkml_ops.deploy.build import build

    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "repo"
        subprocess.run(["git", "clone", "-q", "--shared", str(REPO), str(clone)], check=True)
        return build(settings(HOSTS / "mnt" / "bench", 1), clone, BUILDS, user="bench").build.build_id


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (all cores; every host shares them)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def deploy_once(build_id: str, n: int) -> tuple[float, float]:
    """Wall seconds and machine-wide busy CPU seconds of one deploy to prod1..prod<n>."""
    from sparkml_ops.deploy.service import deploy_build

    run = f"bench-{uuid.uuid4().hex[:8]}"
    try:
        start, cpu = time.monotonic(), busy_cpu_seconds()
        deploy_build(settings(HOSTS / "mnt" / run, n), BUILDS, build_id, user="bench")
        return time.monotonic() - start, busy_cpu_seconds() - cpu
    finally:
        for i in range(1, 5):
            shutil.rmtree(HOSTS / "hosts" / f"prod{i}" / "root" / run, ignore_errors=True)


def upload_rate(build_id: str, n: int) -> float:
    """Aggregate MB/s of uploading the build tarball to n prod hosts at once (through the bastion)."""
    from sparkml_ops.config import SshHost
    from sparkml_ops.io.ssh import SshOptions, connect, for_each_host

    s = settings(HOSTS / "mnt" / "bench", n)
    tarball = BUILDS / build_id / f"{build_id}.tar"
    opts = SshOptions.from_settings(s.deploy)
    conns = [connect(SshHost(host=f"prod{i}"), opts) for i in range(1, n + 1)]
    remote = f"/tmp/sparkml-ops-bench-{uuid.uuid4().hex[:8]}.tar"
    try:
        start = time.monotonic()
        outcomes = for_each_host(conns, lambda c: c.upload(tarball, remote), lambda c: c.name, 8)
        took = time.monotonic() - start
        assert all(o.ok for o in outcomes), outcomes
    finally:
        for c in conns:
            c.run(f"rm -f {remote}", check=False)
            c.close()
    return n * tarball.stat().st_size / took / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--build", help="an existing build id in .state/builds (default: build HEAD)")
    args = parser.parse_args()
    build_id = args.build or make_build()
    size = (BUILDS / build_id / f"{build_id}.tar").stat().st_size
    print(f"build {build_id}: {size / 1e6:.1f} MB tarball; {args.repeat} repeat(s)")
    up1 = [upload_rate(build_id, 1) for _ in range(args.repeat)]
    up4 = [upload_rate(build_id, 4) for _ in range(args.repeat)]
    one, four = [], []
    for _ in range(args.repeat):
        one.append(deploy_once(build_id, 1))
        four.append(deploy_once(build_id, 4))
    m1, m4 = statistics.median(t for t, _ in one), statistics.median(t for t, _ in four)
    c1, c4 = statistics.median(c for _, c in one), statistics.median(c for _, c in four)
    cores = len(os.sched_getaffinity(0))
    print(f"{'measure':<40}{'1 host':>12}{'4 hosts':>12}{'ratio':>8}")
    print(f"{'upload throughput, aggregate MB/s':<40}{statistics.median(up1):>12.1f}{statistics.median(up4):>12.1f}"
          f"{statistics.median(up4) / statistics.median(up1):>8.2f}")
    print(f"{'full deploy (upload..smoke..switch) s':<40}{m1:>12.1f}{m4:>12.1f}{m4 / m1:>8.2f}")
    print(f"{'busy CPU s, whole machine':<40}{c1:>12.1f}{c4:>12.1f}{c4 / c1:>8.2f}")
    # The four "edge nodes" are namespaces on this machine's cores: four deploys' CPU work spread over
    # every core is a lower bound on the 4-host time, whatever the deployer does.
    floor = 4 * c1 / cores
    print(f"CPU-bound floor here: 4 x {c1:.1f} CPU s / {cores} cores = {floor:.1f} s = {floor / m1:.2f}x single-host")
    print(f"target: 4-host deploy <= 1.5x single-host: {'MET' if m4 <= 1.5 * m1 else 'NOT MET'} ({m4 / m1:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
