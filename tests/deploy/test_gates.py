"""Promotion gates and HDFS path logic: pure decisions, exact messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sparkml_ops.config import DeploySettings, PromotionSettings
from sparkml_ops.deploy import gates
from sparkml_ops.deploy.release import Layout, hdfs_audit_command, hdfs_publish_commands
from sparkml_ops.errors import IntegrityError, RefusedError, UsageError

GATE = PromotionSettings(from_env="test", min_soak_s=3600, required_approvals=2)
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def rec(build, action="deploy", result="ok", time=T0, sha="abc", previous=None):
    return {"build": build, "action": action, "result": result, "time": time.isoformat(), "tarball_sha256": sha,
            "previous": previous}


def trail(records, current):
    """The source trails of one host t1."""
    return gates.SourceTrails({"t1": records}, {"t1": current})


def test_change_id_is_required_and_must_match_the_pattern():
    with pytest.raises(RefusedError) as exc:
        gates.check_change_id(None, GATE, "prod")
    assert exc.value.message == "promotion to prod refused: a change id is required (--change)."
    with pytest.raises(RefusedError, match=r"change id 'JIRA-1' does not match \^CHG-"):
        gates.check_change_id("JIRA-1", GATE, "prod")
    assert gates.check_change_id("CHG-12345", GATE, "prod") == "CHG-12345"


def test_approvals_must_be_distinct_people_other_than_the_promoter():
    with pytest.raises(RefusedError) as exc:
        gates.check_approvals(["bob", "bob"], "alice", GATE, "prod")
    assert exc.value.message == "promotion to prod refused: 2 approval(s) required, got 1 (bob)."
    with pytest.raises(RefusedError, match="alice cannot approve their own promotion"):
        gates.check_approvals(["alice", "bob"], "alice", GATE, "prod")
    assert gates.check_approvals(["bob", "carol"], "alice", GATE, "prod") == ("bob", "carol")


def test_soak_counts_from_the_latest_switch_on_any_source_host():
    records = {"t1": [rec("B1", time=T0)], "t2": [rec("B1", time=T0 + timedelta(minutes=30))]}
    current = {"t1": "B1", "t2": "B1"}
    trails = gates.SourceTrails(records, current)
    with pytest.raises(RefusedError) as exc:
        gates.check_soaked("B1", "abc", trails, GATE, T0 + timedelta(minutes=80), "prod")
    assert exc.value.message == (
        "promotion of B1 to prod refused: it has soaked in test for 3000s (since 2026-01-05T09:30:00+00:00), "
        "the minimum is 1.0h."
    )
    assert gates.check_soaked("B1", "abc", trails, GATE, T0 + timedelta(minutes=90), "prod") == (
        T0 + timedelta(minutes=30))


def test_build_must_have_passed_and_still_run_in_the_source_env_with_the_same_bytes():
    later = T0 + timedelta(days=9)
    with pytest.raises(RefusedError, match="it was never deployed and smoke-tested in test on t1"):
        gates.check_soaked("B1", "abc", trail([rec("B1", result="failed")], None), GATE, later, "prod")
    with pytest.raises(RefusedError, match="t1 in test now runs B0, not B1 \\(rolled back or superseded\\)"):
        gates.check_soaked("B1", "abc", trail([rec("B1"), rec("B0", "rollback")], "B0"), GATE, later, "prod")
    with pytest.raises(IntegrityError, match="test ran bytes with sha256 zzz, the build store has abc"):
        gates.check_soaked("B1", "abc", trail([rec("B1", sha="zzz")], "B1"), GATE, later, "prod")
    with pytest.raises(UsageError):
        gates.check_soaked("B1", "abc", gates.SourceTrails({}, {}), GATE, later, "prod")


def test_last_switch_ignores_failures_and_non_switch_records():
    records = [rec("A"), rec("B"), rec("C", result="failed"), {"action": "promote-model", "result": "ok"}]
    assert gates.last_switch(records)["build"] == "B"
    assert gates.last_switch(records, "A")["build"] == "A"
    assert gates.last_switch(records, "C") is None


def test_hdfs_publish_goes_to_a_staging_dir_renamed_to_the_build_id():
    deploy = DeploySettings(base_dir="/opt/smo", hdfs_dir="/apps/smo/builds")
    (cmd,) = hdfs_publish_commands(deploy, Layout.of(deploy), "0.1.0-gabc", "prod")
    assert cmd.startswith("hdfs dfs -test -d /apps/smo/builds/0.1.0-gabc || (")
    assert "-put /opt/smo/releases/0.1.0-gabc/env.tar.gz /opt/smo/releases/0.1.0-gabc/jobs" in cmd
    assert "$(test -f /opt/smo/releases/0.1.0-gabc/conf.tar.gz && echo /opt/smo/releases/0.1.0-gabc/conf.tar.gz)" in cmd
    assert cmd.endswith("hdfs dfs -mv /apps/smo/builds/.tmp-0.1.0-gabc-prod /apps/smo/builds/0.1.0-gabc && "
                        "hdfs dfs -rm -r -f -skipTrash /apps/smo/builds/0.1.0-gabc/.tmp-0.1.0-gabc-prod >/dev/null 2>&1 )")
    assert hdfs_audit_command(deploy, "prod") == (
        "hdfs dfs -appendToFile - /apps/smo/builds/_audit/prod.jsonl")
    assert hdfs_publish_commands(DeploySettings(), Layout.of(DeploySettings()), "x", "dev") == []
    assert hdfs_audit_command(DeploySettings(), "dev") is None


def test_base_dir_must_be_absolute():
    with pytest.raises(UsageError, match="deploy.base_dir must be an absolute path without '..', got 'rel/dir'"):
        Layout.of(DeploySettings(base_dir="rel/dir"))
