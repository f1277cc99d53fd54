"""The model registry's storage rules (metalearn.kb.model_store), one suite on every backend, plus the
DuckDB DDL against the record declarations and a kill -9 during promote/rollback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from metalearn.data.errors import ConflictError, InputError, NotFoundError
from metalearn.kb import DuckDBKnowledgeBase, InMemoryKnowledgeBase, KnowledgeBase
from metalearn.kb.model_store import (
    MODEL_TABLES,
    FeedbackRecord,
    FlagRecord,
    ModelJobRecord,
    ModelVersionRecord,
    PredictionRecord,
    table_columns,
)


@pytest.fixture(params=["memory", "duckdb"])
def kb(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KnowledgeBase]:
    store: KnowledgeBase = InMemoryKnowledgeBase() if request.param == "memory" else DuckDBKnowledgeBase(tmp_path / "kb.duckdb")
    yield store
    store.close()


def version(name: str = "m", number: int = 1, **kw: object) -> ModelVersionRecord:
    base: dict[str, object] = dict(
        name=name, version=number, kind="binary", metric="roc_auc", greater_is_better=True, variant="search",
        artifact=f"{name}/{number}/model.skops", artifact_format="skops", artifact_sha256="ab" * 32,
        artifact_bytes=123, info={"cv_score": 0.9, "nested": {"a": [1, 2.5, None]}, "nan": float("nan")},
    )
    base.update(kw)
    return ModelVersionRecord(**base)  # type: ignore[arg-type]


def test_versions_are_immutable_and_numbers_never_reused(kb: KnowledgeBase) -> None:
    models = kb.models
    assert models.next_version("m") == 1
    models.add_version(version())
    with pytest.raises(ConflictError, match="immutable"):
        models.add_version(version(info={"other": 1}))
    assert models.get_version("m", 1).info["cv_score"] == 0.9
    assert models.get_version("m", 1).info["nan"] is None  # NaN stored as null, not as invalid JSON
    models.add_version(version(number=2))
    models.delete_version("m", 2)
    assert models.next_version("m") == 3  # the deleted number is not given again
    assert [v.version for v in models.list_versions("m")] == [1]
    assert [v.version for v in models.list_versions("m", include_deleted=True)] == [1, 2]
    assert models.get_version("m", 2).deleted
    assert models.list_models() == ["m"]
    with pytest.raises(NotFoundError, match="no version 7"):
        models.get_version("m", 7)
    with pytest.raises(NotFoundError, match="not in the registry"):
        models.get_version("other", 1)
    with pytest.raises(InputError):
        models.add_version(version(variant="bogus"))


def test_records_out_equal_records_in(kb: KnowledgeBase) -> None:
    rec = version(info={"x": [1, "a", {"b": True}]}, search_id="s1", dataset_id="d1", parent_version=None)
    kb.models.add_version(rec)
    assert kb.models.get_version("m", 1) == rec


def test_one_version_per_alias_and_history(kb: KnowledgeBase) -> None:
    models = kb.models
    for n in (1, 2, 3):
        models.add_version(version(number=n))
    models.set_alias("m", "live", 1, "promote")
    models.set_alias("m", "live", 2, "promote")
    models.set_alias("m", "candidate", 3, "promote")
    assert models.aliases("m") == {"candidate": 3, "live": 2}
    moves = [(e.action, e.alias, e.version, e.previous_version) for e in models.events("m") if e.alias]
    assert moves == [("promote", "live", 1, None), ("promote", "live", 2, 1), ("promote", "candidate", 3, None)]
    with pytest.raises(NotFoundError):
        models.set_alias("m", "live", 9, "promote")
    assert models.aliases("m")["live"] == 2  # unchanged by the refused write
    models.delete_version("m", 3)
    assert "candidate" not in models.aliases("m")  # a deleted version holds no alias
    with pytest.raises(ConflictError, match="deleted"):
        models.set_alias("m", "live", 3, "promote")
    models.unset_alias("m", "live")
    assert models.aliases("m") == {}


def test_the_live_version_is_refused_by_the_delete_itself_and_an_unchanged_alias_is_no_event(
    kb: KnowledgeBase,
) -> None:
    """Checked inside the write's transaction: a promote of version 2 that lands between a caller's own check
    and its delete of version 2 cannot leave the model without a live version (seen over HTTP: both 200)."""
    models = kb.models
    for n in (1, 2, 3):
        models.add_version(version(number=n))
    assert models.set_alias("m", "live", 1, "promote") is None
    assert models.set_alias("m", "live", 2, "promote") == 1
    with pytest.raises(ConflictError, match="is live: promote another version first"):
        models.delete_version("m", 2)
    assert models.aliases("m") == {"live": 2} and not models.get_version("m", 2).deleted
    n_events = len(models.events("m"))
    assert models.set_alias("m", "live", 2, "promote") == 2  # already there: nothing written
    assert len(models.events("m")) == n_events
    models.set_alias("m", "candidate", 3, "promote")
    assert models.delete_version("m", 3) == ["candidate"]
    assert models.delete_version("m", 1) == []
    assert models.aliases("m") == {"live": 2}


def test_a_failed_transaction_leaves_aliases_as_they_were(kb: KnowledgeBase) -> None:
    models = kb.models
    models.add_version(version(number=1))
    models.add_version(version(number=2))
    models.set_alias("m", "live", 1, "promote")
    with pytest.raises(RuntimeError), kb.transaction():
        models.set_alias("m", "live", 2, "promote")
        raise RuntimeError("boom")
    assert models.aliases("m") == {"live": 1}
    assert [e.action for e in models.events("m")].count("promote") == 1


def test_the_alias_epoch_moves_with_every_alias_change(kb: KnowledgeBase) -> None:
    """Rule 6: the serving path caches aliases under the epoch, so every change must move it."""
    models = kb.models
    for n in (1, 2):
        models.add_version(version(number=n))
    seen = [models.alias_epoch()]

    def moved() -> bool:
        now = kb.models.alias_epoch()  # any store object of the same KB
        changed = now != seen[-1]
        seen.append(now)
        return changed

    models.add_version(version(number=3))
    assert not moved()  # registering changes no alias
    models.set_alias("m", "live", 1, "promote")
    assert moved()
    with pytest.raises(RuntimeError), kb.transaction():
        models.set_alias("m", "live", 2, "promote")
        raise RuntimeError("boom")
    assert moved()  # rolled back: a reader inside the transaction may have cached version 2
    models.set_alias("m", "candidate", 3, "promote")
    assert moved()
    models.delete_version("m", 3)
    assert moved()
    models.unset_alias("m", "live")
    assert moved()
    assert models.aliases("m") == {}


def test_flags_upsert_and_clear(kb: KnowledgeBase) -> None:
    models = kb.models
    models.add_version(version())
    models.set_flag(FlagRecord("m", 1, "data_drift", {"share": 0.5}))
    models.set_flag(FlagRecord("m", 1, "data_drift", {"share": 0.7}))
    assert [f.detail for f in models.flags("m")] == [{"share": 0.7}]
    assert models.clear_flag("m", 1, "data_drift") and not models.clear_flag("m", 1, "data_drift")
    with pytest.raises(NotFoundError):
        models.set_flag(FlagRecord("m", 5, "data_drift", {}))


def test_prediction_log_is_bounded_and_feedback_needs_a_logged_prediction(kb: KnowledgeBase) -> None:
    models = kb.models
    models.add_version(version())
    recs = [PredictionRecord(f"p{i:03d}", "m", 1, {"x": i}, {"predictions": {"y": i % 2}}) for i in range(20)]
    for r in recs:  # distinct timestamps
        assert models.log_predictions([r]) == 1
        time.sleep(0.001)
    assert models.log_predictions(recs[:3]) == 0  # existing ids are skipped
    models.add_feedback([FeedbackRecord("p000", "m", 1, {"y": 1}), FeedbackRecord("p019", "m", 1, {"y": 0})])
    with pytest.raises(NotFoundError, match="not in the prediction log"):
        models.add_feedback([FeedbackRecord("p001", "m", 1, {"y": 1}), FeedbackRecord("nope", "m", 1, {"y": 1})])
    assert models.counts("m") == {"predictions": 20, "feedback": 2}  # the refused batch wrote nothing
    assert models.trim_predictions("m", 10) == 10
    kept = models.recent_predictions("m", limit=100)
    assert [p.prediction_id for p in kept] == [f"p{i:03d}" for i in range(10, 20)]  # the newest, oldest first
    assert models.counts("m") == {"predictions": 10, "feedback": 1}  # p000's feedback went with it
    pairs = models.feedback("m")
    assert [(p.prediction_id, f.labels) for p, f in pairs] == [("p019", {"y": 0})]
    assert set(models.get_predictions(["p019", "p000"])) == {"p019"}


def test_jobs_are_replaced_by_id_and_need_a_stored_model(kb: KnowledgeBase) -> None:
    import datetime as dt

    models = kb.models
    job = ModelJobRecord("j1", "m", "retrain", "pending", "d1", "new data", parent_version=1,
                         detail={"settings": {"n_trials": 5}, "versions": []})
    with pytest.raises(NotFoundError, match="not in the registry"):
        models.save_job(job)  # rule 7: a job of a stored model
    models.add_version(version())
    models.save_job(job)
    assert models.get_job("j1") == job
    done = ModelJobRecord("j1", "m", "retrain", "done", "d1", "new data", parent_version=1,
                          detail={"versions": [2], "result": {"nan": float("nan")}}, created_at=job.created_at,
                          started_at=job.created_at, finished_at=job.created_at + dt.timedelta(seconds=3))
    models.save_job(done)
    got = models.get_job("j1")
    assert got.status == "done" and got.detail == {"versions": [2], "result": {"nan": None}}
    assert got.finished_at == done.finished_at and len(models.list_jobs("m")) == 1
    later = ModelJobRecord("j0", "m", "compress", "pending", "d1", "m version 1", parent_version=1,
                           created_at=job.created_at + dt.timedelta(seconds=1))
    models.save_job(later)
    assert [j.job_id for j in models.list_jobs("m")] == ["j1", "j0"] == [j.job_id for j in models.list_jobs()]
    assert models.list_jobs("other") == []
    with pytest.raises(NotFoundError, match="no job 'nope'"):
        models.get_job("nope")
    with pytest.raises(InputError, match="status"):
        models.save_job(ModelJobRecord("j2", "m", "retrain", "sleeping", "d1", "x"))
    with pytest.raises(InputError, match="operation"):
        models.save_job(ModelJobRecord("j2", "m", "delete", "pending", "d1", "x"))
    assert [j.job_id for j in models.list_jobs("m")] == ["j1", "j0"]  # nothing written by the refused ones


def test_duckdb_ddl_matches_the_record_declarations(tmp_path: Path) -> None:
    kb = DuckDBKnowledgeBase(tmp_path / "kb.duckdb")
    try:
        cur = kb._cursor()
        for table in MODEL_TABLES:
            rows = cur.execute(
                "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
                "WHERE table_name = ? ORDER BY ordinal_position", [table]
            ).fetchall()
            got = [(name, dtype, nullable == "YES") for name, dtype, nullable in rows]
            assert got == table_columns(table), table
    finally:
        kb.close()


_PROMOTER = textwrap.dedent(
    """
    import sys
    from metalearn.kb import DuckDBKnowledgeBase
    kb = DuckDBKnowledgeBase(sys.argv[1])
    print("ready", flush=True)
    i = 0
    while True:
        kb.models.set_alias("m", "live", 1 + i % 2, "promote" if i % 3 else "rollback")
        i += 1
    """
)


@pytest.mark.parametrize("delay", [0.3, 0.7, 1.1])
def test_kill_9_during_promote_leaves_exactly_one_live_version(tmp_path: Path, delay: float) -> None:
    path = tmp_path / "kb.duckdb"
    kb = DuckDBKnowledgeBase(path)
    kb.models.add_version(version(number=1))
    kb.models.add_version(version(number=2))
    kb.models.set_alias("m", "live", 1, "promote")
    kb.close()
    proc = subprocess.Popen([sys.executable, "-c", _PROMOTER, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    kb = DuckDBKnowledgeBase(path)
    try:
        rows = kb._cursor().execute("SELECT version FROM model_aliases WHERE name = 'm' AND alias = 'live'").fetchall()
        assert len(rows) == 1 and rows[0][0] in (1, 2)
        events = kb.models.events("m")
        assert events[-1].version == rows[0][0]  # the alias and its history were committed together
        assert len(events) > 5  # the loop really ran before the kill
    finally:
        kb.close()
