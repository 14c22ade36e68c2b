"""models reproduce on the embedded default: bit for bit, or exactly what changed since training."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sparkml_ops.errors import InputsChangedError
from sparkml_ops.identifiers import ModelRef
from sparkml_ops.lifecycle.reproduce import ReproduceRequest, reproduce
from sparkml_ops.quickstart import QuickstartOptions, run_chain
from sparkml_ops.registry import Provenance, open_registry

from tests.lifecycle.test_new_model import make_project

pytestmark = pytest.mark.spark
PROV = Provenance(user="auditor", host="ci")
CHANGED_DAY = "2026-04-10"  # a day the training read


@pytest.fixture(scope="module")
def trained(tmp_path_factory, spark, local_settings):
    """The demo model (card_fraud's config, as repro_fraud) trained once on demo data."""
    root = tmp_path_factory.mktemp("reproduce")
    project = make_project(root / "repo")
    config = (project / "conf" / "models" / "card_fraud.yaml").read_text().replace("name: card_fraud", "name: repro_fraud")
    (project / "conf" / "models" / "repro_fraud.yaml").write_text(config)
    settings = local_settings.model_copy(update={"conf_dir": project / "conf"})
    run_chain(spark, settings, PROV, QuickstartOptions(model="repro_fraud", today=date(2026, 5, 1), customers=200,
                                                       tx_per_day=300, history_days=60))
    version = max(open_registry(settings).version_numbers("repro_fraud"))
    return settings, ModelRef("repro_fraud", version=version), root / "scratch"


def test_the_demo_model_reproduces_bit_for_bit_into_a_scratch_registry(trained, spark):
    settings, ref, scratch = trained
    before = open_registry(settings).version_numbers("repro_fraud")
    report = reproduce(spark, settings, ReproduceRequest(ref, out_dir=scratch), PROV)
    assert report.verdict == "identical" and report.exit_code == 0
    body = json.loads(report.path.read_text())
    assert body == report.body | {"at": body["at"]}
    assert body["changed"] == [] and body["forced"] is False and body["registered"] is None
    predictions = body["predictions"]
    assert predictions["source"] in ("stored", "rebuilt") and predictions["rows"] > 0
    assert (predictions["rows_differing"], predictions["max_abs_diff"], predictions["nan_mismatches"]) == (0, 0.0, 0)
    assert all(m["equal"] for m in body["metrics"]) and body["artifact"]["identical"] is True
    assert report.path.parent.parent == scratch and body["reproduced"] == "repro_fraud:1"
    assert open_registry(settings).version_numbers("repro_fraud") == before, "no new version without --register"


def test_a_changed_spec_is_detected_and_named_and_nothing_is_retrained(trained, spark):
    settings, ref, scratch = trained
    spec = settings.conf_dir / "features" / "card_fraud.yaml"
    original = spec.read_text()
    assert original.count("windows: [1d, 7d, 90d]") == 1  # the foreign transactions' windows
    spec.write_text(original.replace("windows: [1d, 7d, 90d]", "windows: [1d, 7d, 60d]"))
    try:
        with pytest.raises(InputsChangedError) as err:
            reproduce(spark, settings, ReproduceRequest(ref, out_dir=scratch), PROV)
    finally:
        spec.write_text(original)
    assert err.value.exit_code == 11
    assert f"{ref} cannot be reproduced as recorded: feature spec card_fraud: card_fraud.yaml changed (sha256 " in err.value.message
    report = Path(err.value.message.rsplit("Report: ", 1)[1])
    body = json.loads(report.read_text())
    assert body["verdict"] == "not run: inputs changed" and "predictions" not in body
    assert not (report.parent / "registry").exists()


def test_a_changed_source_partition_is_named_and_force_retrains_and_marks_the_result(trained, spark):
    settings, ref, scratch = trained
    table = f"{settings.hive.databases.raw}.card_transactions"
    rows, files = _rewrite_partition_files(spark, table, CHANGED_DAY)
    with pytest.raises(InputsChangedError) as err:
        reproduce(spark, settings, ReproduceRequest(ref, out_dir=scratch), PROV)
    assert (f"{table} partition ds={CHANGED_DAY} changed since training: rows {rows} -> {rows}, files {files} -> {files}"
            in err.value.message), err.value.message
    forced = reproduce(spark, settings, ReproduceRequest(ref, force=True, register=True, out_dir=scratch), PROV)
    assert forced.body["forced"] is True and forced.verdict == "identical"  # the same rows: the same model
    assert any(f"partition ds={CHANGED_DAY} changed" in line for line in forced.body["changed"])
    registered = open_registry(settings).resolve(forced.body["registered"])
    assert registered.manifest["tags"]["reproduces"] == str(ref)


def _rewrite_partition_files(spark, table: str, day: str) -> tuple[int, int]:
    """Copy each data file of a partition to a new name and drop the old one: new files, the same rows in the same order.

    The order matters for "identical": sums of doubles depend on the order they are added in, so the
    same rows shuffled into other files can move a feature in its last bit (docs/lifecycle.md).
    """
    location = spark.sql(f"DESCRIBE FORMATTED {table} PARTITION (ds='{day}')").where("col_name = 'Location'").first()
    directory = Path(location["data_type"].removeprefix("file:"))
    originals = sorted(f for f in directory.iterdir() if f.is_file() and not f.name.startswith(("_", ".")))
    rows = 0
    for i, old in enumerate(originals):
        rows += pq.read_metadata(old).num_rows
        shutil.copyfile(old, directory / f"rewritten-{i:05d}{''.join(old.suffixes)}")  # same bytes: same size, order
        old.unlink()
        (directory / f".{old.name}.crc").unlink(missing_ok=True)  # the local filesystem's checksum of the old name
    spark.catalog.refreshTable(table)
    return rows, len(originals)
