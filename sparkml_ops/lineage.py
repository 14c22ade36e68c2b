"""What a training run used, recorded in its version so ``models reproduce`` can rebuild it and name what changed.

Training stores, in the manifest's ``extra.reproduction`` (and three digests in ``lineage``):

* the feature spec as used: its file and the user modules it calls, each with text and sha256;
* the model config as used: its file (and estimator module), and every key after defaults;
* the seeds (``training.seed``, the estimator's ``random_state``/``seed`` parameters);
* every partition read of every source table and of the label table: rows, files, bytes and a
  fingerprint of the data files' names, sizes and modification times (nothing is re-read);
* the installed package versions.

The comparisons (:func:`spec_changes`, :func:`config_changes`, :func:`input_changes`,
:func:`package_changes`) are pure: they say exactly what differs, one sentence each.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sparkml_ops.configfile import user_module_file
from sparkml_ops.features import FeatureSpec
from sparkml_ops.io.fingerprints import TablePartition, data_files, read_partitions, row_counts
from sparkml_ops.modelconfig import ModelConfig

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

FORMAT = 1
SEED_PARAMS = ("random_state", "seed")
# Keys of a model config that change what training fits; the others (description, tags, scoring, gate) do not.
TRAINING_KEYS = ("task", "feature_set", "label_table", "label_column", "estimator", "rules", "training")


@dataclass(frozen=True)
class Reproduction:
    """The digests a manifest's ``lineage`` shows, and the full record for ``extra.reproduction``."""

    lineage: dict[str, Any]
    record: dict[str, Any]


def capture(spark: "SparkSession", config: ModelConfig, spec: FeatureSpec, frame: "DataFrame", tables: Sequence[str],
            model: Any) -> Reproduction:
    """The reproduction record of a training run that read ``frame`` (lazy) from ``tables`` and fitted ``model``."""
    spec_rec = files_record(spec_files(spec))
    config_rec = {**files_record(config_files(config)), "as_used": config_as_used(config)}
    inputs = inputs_record(spark, frame, tables)
    record = {"format": FORMAT, "feature_spec": {"name": spec.name, **spec_rec}, "model_config": config_rec,
              "seeds": seeds(config, model), "inputs": inputs, "packages": installed_packages()}
    lineage = {"feature_spec_sha256": spec_rec["sha256"], "model_config_sha256": config_rec["sha256"],
               "inputs_sha256": digest(json.dumps(inputs, sort_keys=True).encode())}
    return Reproduction(lineage, record)


def digest(data: bytes) -> str:
    """sha256 hex of ``data``."""
    return hashlib.sha256(data).hexdigest()


def spec_files(spec: FeatureSpec) -> dict[str, bytes]:
    """The spec's file and the user modules its derived columns call, by file name (they sit side by side)."""
    files = {spec.path.name: spec.path.read_bytes()}
    for source in spec.sources.values():
        for column in source.derived:
            if column.function is not None:
                module = user_module_file(spec.path.parent, column.function.__module__)
                if module.is_file():
                    files[module.name] = module.read_bytes()
    return files


def config_files(config: ModelConfig) -> dict[str, bytes]:
    """The model config's file and its estimator factory's module, when it sits beside it."""
    if config.source_dir is None:
        return {}
    files = {}
    path = Path(config.source_dir) / f"{config.name}.yaml"
    if path.is_file():
        files[path.name] = path.read_bytes()
    factory = config.estimator.factory if config.estimator else None
    if factory:
        module = user_module_file(Path(config.source_dir), factory.partition(":")[0])
        if module.is_file():
            files[module.name] = module.read_bytes()
    return files


def files_record(files: Mapping[str, bytes]) -> dict[str, Any]:
    """Texts and digests of a few small text files, and one digest over all of them."""
    entries = [{"name": name, "sha256": digest(data), "text": data.decode("utf-8")} for name, data in sorted(files.items())]
    combined = digest("".join(f"{e['name']}\t{e['sha256']}\n" for e in entries).encode())
    return {"sha256": combined, "files": entries}


def config_as_used(config: ModelConfig) -> str:
    """Every key of the model config after defaults, as canonical JSON (where the file is does not count)."""
    return json.dumps(config.model_dump(mode="json", by_alias=True, exclude={"source_dir"}), sort_keys=True)


def seeds(config: ModelConfig, model: Any) -> dict[str, Any]:
    """The random seeds a fit depended on: the sampling seed and the estimator's seed parameters."""
    out: dict[str, Any] = {"training.seed": config.training.seed}
    # scikit-learn says what it was built with; a Spark ML estimator's seeds are in its config params.
    params = model.get_params() if hasattr(model, "get_params") else dict(config.estimator.params if config.estimator else {})
    for name, value in sorted(params.items()):
        if any(name == s or name.endswith(f"__{s}") for s in SEED_PARAMS) and (value is None or isinstance(value, int)):
            out[f"estimator.{name}"] = value
    return out


def installed_packages() -> list[str]:
    """``name==version`` of every installed distribution, sorted (what ``pip freeze`` would say)."""
    found = {(d.metadata["Name"] or "").lower(): d.version for d in metadata.distributions() if d.metadata["Name"]}
    return [f"{name}=={version}" for name, version in sorted(found.items())]


def inputs_record(spark: "SparkSession", frame: "DataFrame", tables: Sequence[str]) -> list[dict[str, Any]]:
    """Every partition of ``tables`` the frame reads: table, partition, directory, rows, files, bytes, fingerprint."""
    partitions = read_partitions(spark, frame, tables)
    counts = {t: row_counts(spark, t, [dict(p.spec) for p in partitions if p.table == t]) for t in tables}
    return [partition_record(spark, p, counts[p.table].get(p.spec, 0)) for p in partitions]


def partition_record(spark: "SparkSession", partition: TablePartition, rows: int) -> dict[str, Any]:
    """One partition's record; a partition whose directory is gone has no files."""
    files = data_files(spark, partition.directory) or []
    listing = "".join(f"{f.name}\t{f.size}\t{f.mtime_ms}\n" for f in files)
    return {"table": partition.table, "partition": dict(partition.spec), "directory": partition.directory,
            "rows": rows, "files": len(files), "bytes": sum(f.size for f in files), "fingerprint": digest(listing.encode())}


def spec_changes(recorded: Mapping[str, Any], today: Mapping[str, bytes]) -> list[str]:
    """How today's spec files differ from the recorded ones (names the files)."""
    return _file_changes(f"feature spec {recorded.get('name')}", recorded.get("files", []), today)


def module_changes(name: str, recorded: Mapping[str, Any], today: Mapping[str, bytes]) -> list[str]:
    """How today's estimator module differs from the recorded one; the config file itself is compared by keys."""
    code = [e for e in recorded.get("files", []) if not e["name"].endswith(".yaml")]
    return _file_changes(f"model config {name}", code, {n: d for n, d in today.items() if not n.endswith(".yaml")})


def _file_changes(what: str, recorded: Sequence[Mapping[str, Any]], today: Mapping[str, bytes]) -> list[str]:
    then = {e["name"]: e["sha256"] for e in recorded}
    now = {name: digest(data) for name, data in today.items()}
    out = [f"{what}: {n} was removed" for n in sorted(set(then) - set(now))]
    out += [f"{what}: {n} is new" for n in sorted(set(now) - set(then))]
    out += [f"{what}: {n} changed (sha256 {then[n][:12]} -> {now[n][:12]})" for n in sorted(set(then) & set(now))
            if then[n] != now[n]]
    return out


def config_changes(recorded_as_used: str, today: ModelConfig) -> tuple[list[str], list[str]]:
    """Changed keys of the model config: (those that change what training fits, the others), one sentence each."""
    then, now = _flat(json.loads(recorded_as_used)), _flat(json.loads(config_as_used(today)))
    changed = [k for k in sorted(set(then) | set(now)) if then.get(k, _MISSING) != now.get(k, _MISSING)]
    lines = {k: f"model config {today.name}: {k} was {_shown(then.get(k, _MISSING))}, is {_shown(now.get(k, _MISSING))}"
             for k in changed}
    training = [lines[k] for k in changed if k.split(".")[0] in TRAINING_KEYS]
    return training, [lines[k] for k in changed if k.split(".")[0] not in TRAINING_KEYS]


_MISSING = object()


def _shown(value: Any) -> str:
    return "unset" if value is _MISSING else json.dumps(value)


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict) and data:
        return {k: v for key, sub in data.items() for k, v in _flat(sub, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): data}


def input_changes(recorded: Iterable[Mapping[str, Any]], today: Iterable[Mapping[str, Any]]) -> list[str]:
    """Partitions added, removed or changed (files, bytes, rows, fingerprint) since training, one sentence each."""
    then = {_key(r): r for r in recorded}
    now = {_key(r): r for r in today}
    out = [f"{t} partition {_spec(p)} was read by training and is gone" for t, p in sorted(set(then) - set(now))]
    out += [f"{t} partition {_spec(p)} is new: training would read it today ({now[(t, p)]['rows']} rows)"
            for t, p in sorted(set(now) - set(then))]
    for key in sorted(set(then) & set(now)):
        old, new = then[key], now[key]
        if old["fingerprint"] != new["fingerprint"] or old["rows"] != new["rows"]:
            out.append(f"{key[0]} partition {_spec(key[1])} changed since training: rows {old['rows']} -> {new['rows']}, "
                       f"files {old['files']} -> {new['files']}, bytes {old['bytes']} -> {new['bytes']}"
                       + ("" if old["rows"] != new["rows"] else " (rewritten: file names or times differ)"))
    return out


def _key(record: Mapping[str, Any]) -> tuple[str, tuple[tuple[str, str], ...]]:
    return record["table"], tuple(sorted(record["partition"].items()))


def _spec(spec: tuple[tuple[str, str], ...]) -> str:
    return "/".join(f"{k}={v}" for k, v in spec) or "(whole table)"


def package_changes(recorded: Sequence[str], today: Sequence[str]) -> list[str]:
    """Packages installed, removed or at another version than at training."""
    then = dict(p.split("==", 1) for p in recorded)
    now = dict(p.split("==", 1) for p in today)
    out = [f"package {n} {then[n]} is no longer installed" for n in sorted(set(then) - set(now))]
    out += [f"package {n} {now[n]} was not installed at training" for n in sorted(set(now) - set(then))]
    out += [f"package {n} was {then[n]}, is {now[n]}" for n in sorted(set(then) & set(now)) if then[n] != now[n]]
    return out
