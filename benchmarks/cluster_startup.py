"""Benchmark: cold and warm start-up of scripts/cluster, and the memory its daemons hold.

Runs a private cluster (own state dir under .state/, ports from 26000) so the shared one is untouched.
Cold = empty download cache and state (Maven jars fetched, Spark archive built and uploaded, PostgreSQL
initialised, schema created, HDFS formatted); warm = the same cluster stopped and started again.

    .venv/bin/python benchmarks/cluster_startup.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PORT_BASE = 26000


def run(action: str, env: dict) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([str(REPO / "scripts" / "cluster"), action], env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"scripts/cluster {action} failed:\n{proc.stderr}")
    return time.perf_counter() - t0


def daemon_rss_mb(state: Path) -> dict[str, float]:
    """RSS per daemon: the processes tagged with the state dir, and PostgreSQL (postmaster + backends)."""
    out: dict[str, float] = {}
    pg = state / "pg"
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(proc / "cwd")
            rss_kb = int(next(l for l in (proc / "status").read_text().splitlines() if l.startswith("VmRSS")).split()[1])
        except (OSError, StopIteration):
            continue
        if "MiniCluster" in cmd and str(state) in cmd:
            name = "hdfs+yarn (MiniCluster JVM)"
        elif "HiveThriftServer2" in cmd and str(state) in cmd:
            name = "thrift server (Spark driver JVM)"
        elif cwd == str(pg):
            name = "postgresql (all processes)"
        else:
            continue
        out[name] = out.get(name, 0.0) + rss_kb / 1024
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="warm starts to time (median reported)")
    args = parser.parse_args()
    state = REPO / ".state" / f"cluster-bench-{uuid.uuid4().hex[:8]}"
    cache = Path(tempfile.mkdtemp(prefix="cluster-bench-cache-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPARKML_")}
    env.update(SPARKML_OPS_CACHE=str(cache), SPARKML_CLUSTER_STATE_DIR=str(state), SPARKML_CLUSTER_PORT_BASE=str(PORT_BASE))
    try:
        cold = run("start", env)
        time.sleep(5)
        rss = daemon_rss_mb(state)
        stop = run("stop", env)
        warm = []
        for _ in range(args.repeat):
            warm.append(run("start", env))
            run("stop", env)
    finally:
        subprocess.run([str(REPO / "scripts" / "cluster"), "stop", "--force"], env=env, capture_output=True, check=False)
        shutil.rmtree(state, ignore_errors=True)
        shutil.rmtree(cache, ignore_errors=True)
    med = statistics.median(warm)
    print(f"cold start (empty cache and state): {cold:7.1f} s")
    print(f"warm start (median of {len(warm)}):       {med:7.1f} s   runs: {', '.join(f'{w:.1f}' for w in warm)}")
    print(f"cold / warm:                        {cold / med:7.2f} x")
    print(f"stop:                               {stop:7.1f} s")
    for name, mb in sorted(rss.items()):
        print(f"RSS {name:<31} {mb:7.0f} MB")
    print(f"RSS total:                          {sum(rss.values()):7.0f} MB")
    print(f"load average at end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
