"""The HDFS audit copy as trace and status read it: which deployment put a build in place, what runs now."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sparkml_ops.config import load_settings
from sparkml_ops.lifecycle.audit import AuditCopy, current_at, deployment_before, read_audit_copy

from tests.conftest import CONF_DIR


def _rec(time: str, host: str, build: str, action: str = "deploy", result: str = "ok", **extra) -> dict:
    return {"time": time, "env": "prod", "host": host, "action": action, "build": build, "user": "ops", "result": result,
            **extra}


TRAIL = (
    _rec("2026-04-01T10:00:00+00:00", "e1", "b1"), _rec("2026-04-01T10:00:01+00:00", "e2", "b1"),
    _rec("2026-04-10T09:00:00+00:00", "e1", "b2", "promote", change_id="CHG-101", approvals=["bob", "carol"]),
    _rec("2026-04-10T09:00:01+00:00", "e2", "b2", "promote", change_id="CHG-101", approvals=["bob", "carol"]),
    _rec("2026-04-11T08:00:00+00:00", "e1", "b3", result="failed"),
    _rec("2026-04-12T08:00:00+00:00", "e1", "b1", "rollback", reason="scores drifted"),
)


def test_the_latest_switch_to_the_build_before_the_run_is_its_deployment():
    copy = AuditCopy("prod", "webhdfs://nn/x/_audit/prod.jsonl", TRAIL)
    found = deployment_before(copy, "b2", datetime(2026, 4, 11, tzinfo=UTC))
    assert found.record["change_id"] == "CHG-101" and found.record["host"] == "e2"
    assert found.current_on == ("e1", "e2")
    later = deployment_before(copy, "b2", datetime(2026, 4, 13, tzinfo=UTC))
    assert later.current_on == ("e2",) and later.hosts_elsewhere == {"e1": "b1"}
    assert deployment_before(copy, "b2", datetime(2026, 4, 5, tzinfo=UTC)) is None


def test_failed_switches_do_not_count_and_each_host_shows_its_latest():
    current = current_at(AuditCopy("prod", None, TRAIL).switches())
    assert {h: (r["build"], r["action"]) for h, r in current.items()} == {"e1": ("b1", "rollback"), "e2": ("b2", "promote")}


def test_a_missing_hdfs_dir_or_copy_is_a_stated_problem_not_an_error(tmp_path):
    settings = load_settings("local", CONF_DIR, overrides=[f"state_dir={tmp_path}"], environ={})
    assert read_audit_copy(settings).problem == (
        "deploy.hdfs_dir is not set for environment local: its deploys keep their audit records on the edge nodes "
        "only (fab status reads them over SSH)")
    on_disk = settings.model_copy(update={"deploy": settings.deploy.model_copy(update={"hdfs_dir": str(tmp_path / "builds")})})
    assert read_audit_copy(on_disk).problem.startswith("cannot read ")
    mounted = on_disk.model_copy(update={"deploy": on_disk.deploy.model_copy(update={"hdfs_read_uri": "file://"})})
    assert read_audit_copy(mounted).problem == (f"there is no audit copy file://{tmp_path}/builds/_audit/local.jsonl: "
                                                "nothing was deployed to local with deploy.hdfs_dir set")
    (tmp_path / "builds" / "_audit").mkdir(parents=True)
    (tmp_path / "builds" / "_audit" / "local.jsonl").write_text("".join(json.dumps(r) + "\n" for r in TRAIL))
    assert read_audit_copy(mounted).records == TRAIL
