"""The benchmark's results: a DuckDB file owned by the main process (tables ``meta``, ``datasets``,
``cells``, ``trials``; the same tables as parquet), its rows and the frames the report reads."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from metalearn.benchmark.cells import NO_TRIAL_SUCCEEDED, CellResult
from metalearn.benchmark.datasets import DatasetInfo
from metalearn.data.errors import InputError, NotFoundError
from metalearn.data.numbers import json_safe

__all__ = [
    "RESULTS_FILE",
    "ResultStore",
    "cell_row",
    "dataset_row",
    "dumps",
    "load_frames",
    "normalise_frame",
    "trial_rows",
]

RESULTS_FILE = "results.duckdb"


# ------------------------------------------------------------------------------------------ result store
_DATASET_COLS = [
    ("key", "VARCHAR"),
    ("spec", "VARCHAR"),
    ("name", "VARCHAR"),
    ("kind", "VARCHAR"),
    ("metric", "VARCHAR"),
    ("greater_is_better", "BOOLEAN"),
    ("n_rows", "BIGINT"),
    ("n_features", "BIGINT"),
    ("n_rows_used", "BIGINT"),
    ("n_train", "BIGINT"),
    ("n_test", "BIGINT"),
    ("dataset_id", "VARCHAR"),
    ("train_id", "VARCHAR"),
    ("openml_id", "BIGINT"),
    ("metafeatures", "VARCHAR"),
    ("mf_seconds", "DOUBLE"),
    ("n_excluded", "BIGINT"),
    ("excluded", "VARCHAR"),
    ("status", "VARCHAR"),
    ("error", "VARCHAR"),
]
_CELL_COLS = [
    ("dataset", "VARCHAR"),
    ("strategy", "VARCHAR"),
    ("seed", "BIGINT"),
    ("status", "VARCHAR"),
    ("error", "VARCHAR"),
    ("n_trials", "BIGINT"),
    ("n_failed_trials", "BIGINT"),
    ("n_recommended", "BIGINT"),
    ("best_cv_score", "DOUBLE"),
    ("test_score", "DOUBLE"),
    ("test_metrics", "VARCHAR"),
    ("search_seconds", "DOUBLE"),
    ("refit_seconds", "DOUBLE"),
    ("budget_seconds", "DOUBLE"),
    ("incumbent", "VARCHAR"),
    ("recommendations", "VARCHAR"),
    ("finished_at", "DOUBLE"),
]
_TRIAL_COLS = [
    ("dataset", "VARCHAR"),
    ("strategy", "VARCHAR"),
    ("seed", "BIGINT"),
    ("number", "BIGINT"),
    ("score", "DOUBLE"),
    ("best_score", "DOUBLE"),
    ("status", "VARCHAR"),
    ("origin", "VARCHAR"),
    ("elapsed", "DOUBLE"),
    ("seconds", "DOUBLE"),
    ("config_id", "VARCHAR"),
]
_TABLE_COLS = {"datasets": _DATASET_COLS, "cells": _CELL_COLS, "trials": _TRIAL_COLS}


def dumps(obj: Any) -> str:
    """``obj`` as JSON text (NaN and infinities as null, sorted keys), as stored in the result tables."""
    return json.dumps(json_safe(obj), sort_keys=True, default=str)


def dataset_row(info: DatasetInfo) -> dict[str, Any]:
    return {
        "key": info.key,
        "spec": info.spec,
        "name": info.name,
        "kind": info.kind,
        "metric": info.metric,
        "greater_is_better": bool(info.greater_is_better),
        "n_rows": info.n_rows,
        "n_features": info.n_features,
        "n_rows_used": info.n_rows_used,
        "n_train": info.n_train,
        "n_test": info.n_test,
        "dataset_id": info.dataset_id,
        "train_id": info.train_id,
        "openml_id": info.openml_id,
        "metafeatures": dumps(info.metafeatures),
        "mf_seconds": float(info.mf_seconds),
        "n_excluded": len(info.excluded),
        "excluded": dumps(list(info.excluded)),
        "status": info.status,
        "error": info.error,
    }


def cell_row(r: CellResult) -> dict[str, Any]:
    return {
        "dataset": r.dataset,
        "strategy": r.strategy,
        "seed": int(r.seed),
        "status": r.status,
        "error": r.error,
        "n_trials": int(r.n_trials),
        "n_failed_trials": int(r.n_failed_trials),
        "n_recommended": int(r.n_recommended),
        "best_cv_score": float(r.best_cv_score),
        "test_score": float(r.test_score),
        "test_metrics": dumps(r.test_metrics),
        "search_seconds": float(r.search_seconds),
        "refit_seconds": float(r.refit_seconds),
        "budget_seconds": None if r.budget_seconds is None else float(r.budget_seconds),
        "incumbent": dumps(r.incumbent),
        "recommendations": dumps(r.recommendations),
        "finished_at": time.time(),
    }


def trial_rows(r: CellResult) -> list[dict[str, Any]]:
    return [{"dataset": r.dataset, "strategy": r.strategy, "seed": int(r.seed), **t} for t in r.trials]


def normalise_frame(table: str, frame: pd.DataFrame | Sequence[dict[str, Any]]) -> pd.DataFrame:
    """A results table with its columns in order, plain dtypes, sorted by its key (the form the report reads)."""
    cols = _TABLE_COLS[table]
    df = pd.DataFrame(list(frame) if not isinstance(frame, pd.DataFrame) else frame)
    for name, _ in cols:
        if name not in df.columns:
            df[name] = None
    df = df[[c for c, _ in cols]].copy()
    for name, typ in cols:
        if typ == "DOUBLE":
            df[name] = pd.to_numeric(df[name], errors="coerce").astype("float64")
        elif typ == "BIGINT":
            df[name] = pd.to_numeric(df[name], errors="coerce").astype("Int64")
        elif typ == "BOOLEAN":
            df[name] = df[name].astype(bool)
        else:
            df[name] = df[name].astype(object).where(df[name].notna(), None)
    keys = {
        "datasets": ["key"],
        "cells": ["dataset", "strategy", "seed"],
        "trials": ["dataset", "strategy", "seed", "number"],
    }[table]
    return df.sort_values(keys, kind="stable").reset_index(drop=True)


class ResultStore:
    """The benchmark's output DuckDB (owned by the main process): settings, datasets, cells, trials."""

    def __init__(self, out_dir: str | Path, read_only: bool = False) -> None:
        import duckdb

        self.out_dir = Path(out_dir)
        path = self.out_dir / RESULTS_FILE
        if read_only and not path.is_file():
            raise NotFoundError(
                f"no benchmark results at {str(path)!r}; run metalearn benchmark --out {out_dir} first"
            )
        if not read_only:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(str(path), read_only=read_only)
        except duckdb.Error as exc:
            raise InputError(
                f"cannot open {str(path)!r} ({' '.join(str(exc).split())[:200]}); is another benchmark writing to it?"
            ) from None
        if not read_only:
            self.con.execute("CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
            for table, cols in _TABLE_COLS.items():
                spec = ", ".join(f"{n} {t}" for n, t in cols)
                self.con.execute(f"CREATE TABLE IF NOT EXISTS {table} ({spec})")
            # results of older releases stored a cell without any successful trial as done
            self.con.execute(
                "UPDATE cells SET status = 'failed' WHERE status = 'done' AND starts_with(error, ?)",
                [NO_TRIAL_SUCCEEDED],
            )

    def close(self) -> None:
        self.con.close()

    def get_meta(self, key: str) -> Any:
        row = self.con.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return None if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        self.con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [key, dumps(value)])

    def _insert(self, table: str, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        cols = [c for c, _ in _TABLE_COLS[table]]
        marks = ", ".join("?" for _ in cols)
        values = [[_sql_value(r.get(c)) for c in cols] for r in rows]
        self.con.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})", values)

    def put_dataset(self, info: DatasetInfo) -> None:
        self.con.execute("BEGIN TRANSACTION")
        try:
            self.con.execute("DELETE FROM datasets WHERE key = ?", [info.key])
            self._insert("datasets", [dataset_row(info)])
            self.con.execute("COMMIT")
        except Exception:
            self.con.execute("ROLLBACK")
            raise

    def put_rows(self, cell: dict[str, Any], trials: Sequence[dict[str, Any]]) -> None:
        """Store one finished cell and its trials atomically (replacing an earlier failed attempt)."""
        key = [cell["dataset"], cell["strategy"], int(cell["seed"])]
        self.con.execute("BEGIN TRANSACTION")
        try:
            self.con.execute("DELETE FROM trials WHERE dataset = ? AND strategy = ? AND seed = ?", key)
            self.con.execute("DELETE FROM cells WHERE dataset = ? AND strategy = ? AND seed = ?", key)
            self._insert("trials", trials)
            self._insert("cells", [cell])
            self.con.execute("COMMIT")
        except Exception:
            self.con.execute("ROLLBACK")
            raise

    def frame(self, table: str) -> pd.DataFrame:
        return normalise_frame(table, self.con.execute(f"SELECT * FROM {table}").df())

    def datasets(self) -> dict[str, DatasetInfo]:
        out = {}
        for row in self.frame("datasets").to_dict("records"):
            out[row["key"]] = _info_from_row(row)
        return out

    def finished(self) -> dict[tuple[str, str, int], str]:
        rows = self.con.execute("SELECT dataset, strategy, seed, status FROM cells").fetchall()
        return {(d, s, int(seed)): st for d, s, seed, st in rows}

    def export_parquet(self) -> None:
        for table in ("datasets", "cells", "trials"):
            path = self.out_dir / f"{table}.parquet"
            self.con.execute(f"COPY {table} TO '{path.as_posix()}' (FORMAT PARQUET)")


def _sql_value(v: Any) -> Any:
    if v is pd.NA:
        return None
    if hasattr(v, "item") and not isinstance(v, str | bytes):
        return v.item()
    return v


def _info_from_row(row: dict[str, Any]) -> DatasetInfo:
    def opt_int(v: Any) -> int | None:
        return None if v is None or v is pd.NA else int(v)

    return DatasetInfo(
        key=row["key"],
        spec=row["spec"],
        name=row["name"],
        kind=row["kind"],
        metric=row["metric"],
        greater_is_better=bool(row["greater_is_better"]),
        n_rows=int(row["n_rows"]),
        n_features=int(row["n_features"]),
        n_rows_used=int(row["n_rows_used"]),
        n_train=int(row["n_train"]),
        n_test=int(row["n_test"]),
        dataset_id=row["dataset_id"],
        train_id=row["train_id"],
        openml_id=opt_int(row["openml_id"]),
        metafeatures={
            k: (math.nan if v is None else float(v)) for k, v in json.loads(row["metafeatures"]).items()
        },
        mf_seconds=float(row["mf_seconds"]),
        excluded=tuple(json.loads(row["excluded"] or "[]")),
        status=row["status"],
        error=row["error"] or "",
    )


def load_frames(out_dir: str | Path) -> dict[str, Any]:
    """The stored raw results of a benchmark: ``datasets``, ``cells``, ``trials`` frames and ``settings``."""
    store = ResultStore(out_dir, read_only=True)
    try:
        return {
            "settings": store.get_meta("settings") or {},
            "datasets": store.frame("datasets"),
            "cells": store.frame("cells"),
            "trials": store.frame("trials"),
        }
    finally:
        store.close()
