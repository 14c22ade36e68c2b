"""Registry throughput versus a raw `hdfs` client, and alias-resolve + small-model load latency.

Runs against the WebHDFS of the local test cluster (``scripts/cluster start``) by default, or any
registry URI with ``--uri`` (``file:///tmp/x`` for the local-disk backend). Prints medians of
``--runs`` runs side by side with ratios; target: registry >= 0.8x raw throughput.

    .venv/bin/python benchmarks/registry_throughput.py [--size-mb 500] [--runs 3] [--uri URI]

On the secure (Kerberos) test cluster the registry logs in from svc-sparkml's keytab (SPNEGO) and the
raw baseline is the `hdfs` package's own KerberosClient (requests-kerberos, the ticket in KRB5CCNAME:
run `eval "$(scripts/cluster env)"` first); the cost of one keytab login is printed too.

Two publish/load figures are shown:
  * ``bytes`` flavor: the artifact is already serialised bytes, so the figure isolates what the
    registry adds to the transfer (sha256 of every byte, staging, atomic rename, listing checks);
  * ``pyfunc`` flavor: end to end, including cloudpickle serialisation of a model holding the payload.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sparkml_ops.config import RegistrySettings  # noqa: E402
from sparkml_ops.io.storage import HdfsStorage, open_storage  # noqa: E402
from sparkml_ops.registry import ModelRegistry, Provenance  # noqa: E402
from sparkml_ops.registry.flavors import BytesFlavor, register_flavor  # noqa: E402

MB = 1024 * 1024


class RawBytesFlavor(BytesFlavor):
    """Benchmark-only flavor: the model *is* its serialised bytes."""

    name = "bench-bytes"
    file_name = "model.bin"

    def check(self, model):
        if not isinstance(model, bytes):
            raise TypeError("bench-bytes stores bytes")

    def dumps(self, model):
        return model

    def loads(self, data):
        return data


class Payload:
    """A pyfunc model carrying a large array of weights."""

    def __init__(self, weights: bytes) -> None:
        self.weights = weights

    def predict(self, df):
        return df.iloc[:, 0] * 0


def hashed(chunks) -> int:
    """sha256 of ``chunks`` on a second thread while the next chunk arrives: the least a verified load does.

    The chunks are kept until the end, as a loader must keep every byte it will deserialise: dropping them
    would let the allocator reuse one chunk's pages and skip faulting in the artifact's memory.
    """
    digest, held = hashlib.sha256(), []
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(lambda: None)
        for chunk in chunks:
            held.append(chunk)
            pending.result()
            pending = pool.submit(digest.update, chunk)
        pending.result()
    digest.hexdigest()
    return sum(len(c) for c in held)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median_of(runs: int, fn) -> float:
    return statistics.median(timed(fn) for _ in range(runs))


def settings_for(args) -> RegistrySettings:
    if args.uri:
        auth = {"method": "simple", "user": args.user} if args.user else {}
        return RegistrySettings(uri=args.uri, auth=auth)
    facts = cluster_facts()
    web = urlsplit(facts["webhdfs_url"])
    auth = {"method": "simple", "user": facts["hdfs_user"]}
    if facts.get("security") == "kerberos":
        auth = {"method": "kerberos", "principal": facts["job_principal"], "keytab": facts["job_keytab"]}
    return RegistrySettings(uri=f"webhdfs://{web.hostname}:{web.port}/benchmarks/registry-{uuid.uuid4().hex[:8]}",
                            auth=auth, timeout_s=300)


def cluster_facts() -> dict:
    return json.loads((REPO / ".state/cluster/cluster.json").read_text())


def raw_client(storage: HdfsStorage, settings: RegistrySettings):
    """The baseline: the `hdfs` package's own client for the same auth (KerberosClient on the secure cluster)."""
    if settings.auth.method != "kerberos":
        return storage.client, "raw hdfs client (InsecureClient.write / read)"
    from hdfs.ext.kerberos import KerberosClient

    url = storage.client.url
    return KerberosClient(url, timeout=300), "raw hdfs KerberosClient (SPNEGO, kinit ticket)"


def keytab_login_ms(settings: RegistrySettings, runs: int) -> float:
    """Median wall time of one keytab login (AS exchange into a fresh private cache), in ms."""
    from sparkml_ops.io.kerberos import KerberosLogin

    return 1000 * median_of(runs, lambda: KerberosLogin(settings.auth.principal, settings.auth.keytab).ticket())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--small-runs", type=int, default=20)
    parser.add_argument("--uri", help="registry URI (default: a fresh directory on the test cluster's WebHDFS)")
    parser.add_argument("--user", help="HDFS user for --uri webhdfs://")
    args = parser.parse_args()

    settings = settings_for(args)
    storage = open_storage(settings)
    reg = ModelRegistry(storage)
    register_flavor(RawBytesFlavor(), replace=True)
    prov = Provenance(user="bench", host=os.uname().nodename)
    data = os.urandom(MB) * args.size_mb  # incompressible enough for HDFS, cheap to build
    size = len(data)
    print(f"registry {reg.uri}; artifact {size / MB:.0f} MB; median of {args.runs} runs", flush=True)

    # Raw baseline: the same bytes through the same backend without the registry.
    storage.makedirs("raw")
    # Every raw upload creates a new file, like every publish does (on ext4, overwriting a file in
    # place is 3-4x faster than allocating a new one, which would flatter the baseline).
    raw_files: list[str] = []
    if isinstance(storage, HdfsStorage):
        client, raw_name = raw_client(storage, settings)

        def raw_up():
            raw_files.append(f"{storage.root}/raw/blob-{len(raw_files)}.bin")
            client.write(raw_files[-1], data=data)

        def raw_down():
            with client.read(raw_files[-1]) as reader:
                assert len(reader.read()) == size

        def raw_down_hashed():
            with client.read(raw_files[-1], chunk_size=8 * MB) as chunks:
                assert hashed(chunks) == size
    else:
        def raw_up():
            raw_files.append(str(storage.root / "raw" / f"blob-{len(raw_files)}.bin"))
            with open(raw_files[-1], "xb") as fh:
                fh.write(data)
                os.fsync(fh.fileno())

        def raw_down():
            assert len(Path(raw_files[-1]).read_bytes()) == size

        def raw_down_hashed():
            with open(raw_files[-1], "rb") as fh:
                assert hashed(iter(lambda: fh.read(8 * MB), b"")) == size
        raw_name = "raw file write+fsync / read"

    # Interleaved: each run times raw and registry back to back, so both see the same machine load
    # (the test machine is shared); the ratio is taken per run, then the median.
    model = Payload(data)
    times: dict[str, list[float]] = {k: [] for k in ("up", "down", "floor", "pub", "load", "pub_py", "load_py")}
    for run in range(args.runs):
        v: dict[str, int] = {}
        steps = {
            "up": raw_up,
            "pub": lambda: v.__setitem__("big", reg.publish("big", data, flavor="bench-bytes", provenance=prov).version),
            "pub_py": lambda: v.__setitem__("bigpy", reg.publish("bigpy", model, flavor="pyfunc",
                                                                 provenance=prov).version),
            "down": raw_down,
            "floor": raw_down_hashed,
            "load": lambda: reg.load(f"big:{v['big']}"),
            "load_py": lambda: reg.load(f"bigpy:{v['bigpy']}"),
        }
        # Alternate who goes first: the first writer of a pair leaves dirty pages the second pays for.
        writes, reads = ["up", "pub", "pub_py"], ["down", "floor", "load", "load_py"]
        if run % 2:
            writes, reads = writes[::-1], reads[::-1]
        for key in writes + reads:
            times[key].append(timed(steps[key]))

    def med(key: str) -> float:
        return statistics.median(times[key])

    def ratio(raw: str, key: str) -> float:
        return statistics.median(r / t for r, t in zip(times[raw], times[key]))

    rows = [
        (f"upload: {raw_name}", med("up"), None),
        ("publish: registry, bench-bytes flavor (sha256 + stage + rename)", med("pub"), ratio("up", "pub")),
        ("publish: registry, pyfunc flavor (+ cloudpickle)", med("pub_py"), ratio("up", "pub_py")),
        (f"download: {raw_name}", med("down"), None),
        ("floor of a verified load: raw download + sha256 on a 2nd thread", med("floor"), ratio("down", "floor")),
        ("load: registry, bench-bytes flavor (verify sha256 while reading)", med("load"), ratio("down", "load")),
        ("load: registry, pyfunc flavor (+ unpickle)", med("load_py"), ratio("down", "load_py")),
    ]
    vs_floor = ratio("floor", "load")
    print(f"\n{'operation':<72} {'median s':>9} {'MB/s':>8} {'x raw':>6}  (x raw: median of per-run ratios)")
    for name, secs, ratio in rows:
        print(f"{name:<72} {secs:>9.2f} {size / MB / secs:>8.0f} {'' if ratio is None else f'{ratio:.2f}':>6}")


    print(f"load, registry (bench-bytes) / floor of a verified load: {vs_floor:.2f} (median of per-run ratios)")

    from sklearn.linear_model import LogisticRegression

    small = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    mv = reg.publish("small", small, flavor="sklearn", provenance=prov)
    reg.set_alias("small", "champion", mv.version, provenance=prov)
    t_resolve = median_of(args.small_runs, lambda: reg.resolve("small@champion"))
    t_small = median_of(args.small_runs, lambda: reg.load("small@champion"))
    print(f"\nsmall sklearn model ({mv.manifest['files'][1]['size']} bytes), median of {args.small_runs}:")
    print(f"  resolve small@champion            {t_resolve * 1000:8.1f} ms")
    print(f"  resolve + verify + load           {t_small * 1000:8.1f} ms")

    if settings.auth.method == "kerberos":
        print(f"  one keytab login (private cache)  {keytab_login_ms(settings, args.small_runs):8.1f} ms")

    storage.delete("big", recursive=True)
    storage.delete("bigpy", recursive=True)
    storage.delete("raw", recursive=True)
    if not args.uri:
        storage.client.delete(storage.root, recursive=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
