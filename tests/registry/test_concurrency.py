"""Concurrent publishers and publishers killed with SIGKILL, in real processes, on both backends."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time

import pytest

from tests.registry import workers

PUBLISHERS = 20


def _publish_concurrently(reg_settings, publishers: int) -> list[tuple[int, int]]:
    """(publisher index, version it got) of ``publishers`` processes publishing one model at once."""
    ctx = mp.get_context("spawn")  # a clean interpreter per publisher, like separate spark-submit jobs
    barrier, results = ctx.Barrier(publishers), ctx.Queue()
    procs = [ctx.Process(target=workers.publish_after_barrier,
                         args=(reg_settings.model_dump(mode="json"), i, barrier, results))
             for i in range(publishers)]
    for p in procs:
        p.start()
    got = [results.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return got


def test_twenty_concurrent_publishers_get_twenty_distinct_complete_versions(registry, reg_settings):
    got = _publish_concurrently(reg_settings, PUBLISHERS)
    assert sorted(v for _, v in got) == list(range(1, PUBLISHERS + 1))
    versions = registry.list_versions("fraud")
    assert [v.version for v in versions] == list(range(1, PUBLISHERS + 1))
    # Each version holds the model of the publisher that claimed it, complete and verified.
    by_version = {v: i for i, v in got}
    for mv in versions:
        assert mv.manifest["tags"] == {"worker": str(by_version[mv.version])}
        assert mv.manifest["created_by"]["user"] == f"worker{by_version[mv.version]}"
        registry.verify(mv)
    assert registry.storage.list("_staging") == []


def test_concurrent_publishers_each_record_the_version_they_claimed_once_in_version_order(registry, reg_settings):
    got = _publish_concurrently(reg_settings, 8)  # a loser of a race rewrites its staged entry
    claimed_by = {v: f"worker{i}" for i, v in got}
    history = registry.history("fraud")
    # Each entry is stamped after its number was found free, so no entry sorts before a lower version's.
    assert [(e["event"], e["version"], e["user"]) for e in history] == [
        ("publish", v, claimed_by[v]) for v in range(1, 9)]
    assert registry.storage.list("_staging") == []


def _staged(registry, rel: str) -> bool:
    """Whether some staging directory holds ``rel`` yet ("" = a staging directory exists)."""
    entries = registry.storage.list("_staging")
    return any(not rel or registry.storage.exists(f"_staging/{e.name}/{rel}") for e in entries)


@pytest.mark.parametrize("kill_when", ["", "model/model.pkl", "environment.json"])
def test_sigkill_mid_publish_leaves_no_partial_version_and_gc_cleans_up(registry, reg_settings, kill_when):
    ctx = mp.get_context("spawn")
    proc = ctx.Process(target=workers.publish_big, args=(reg_settings.model_dump(mode="json"), 300))
    proc.start()
    deadline = time.monotonic() + 120
    while not _staged(registry, kill_when) and proc.is_alive():
        assert time.monotonic() < deadline, f"the publisher never staged {kill_when or 'anything'}"
        time.sleep(0.002)
    if kill_when != "environment.json":  # the last file is written just before the rename
        assert proc.is_alive(), f"publisher finished before it could be killed after staging {kill_when!r}"
    # is_alive() reaps a finished child, so only a live (or zombie) publisher can be signalled.
    if proc.is_alive():
        os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    if registry.version_numbers("big"):
        # Killed after the rename, or finished first: the version is there and it is complete.
        assert registry.version_numbers("big") == [1]
        registry.verify("big:1")
        return
    assert proc.exitcode == -signal.SIGKILL
    # Nothing partial is visible: no version directory, so resolve and listing see no model.
    assert registry.list_models() in ([], ["big"]) and registry.version_numbers("big") == []
    assert len(registry.storage.list("_staging")) == 1
    assert registry.gc(older_than_hours=1) == []  # young staging data is left alone
    removed = registry.gc(older_than_hours=0)
    assert len(removed) == 1 and removed[0].startswith("_staging/big.")
    assert registry.storage.list("_staging") == []
