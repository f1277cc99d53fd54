"""The HTTP service, driven over HTTP: FastAPI's TestClient and a real uvicorn server on 127.0.0.1.

The KB is a temporary DuckDB file seeded once per session with real records: four scikit-learn
datasets (three binary, one regression), their meta-features, and real runs of a few random-search
trials each. Every test works on its own copy of that file.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import re
import shutil
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import uvicorn
from fastapi.testclient import TestClient

from metalearn.service.app import create_app
from metalearn.service.settings import Settings

KEY = "test-key-123"
#: a sample of the unhandled-exceptions counter (only present once a generic 500 happened)
UNHANDLED = re.compile(r"^metalearn_unhandled_exceptions_total\{", re.M)
AUTH = {"X-API-Key": KEY}


# ------------------------------------------------------------------------------------------ data
def _binary_from(loader: str, positive: int, name: str) -> pd.DataFrame:
    import sklearn.datasets

    bunch = getattr(sklearn.datasets, loader)(as_frame=True)
    frame = bunch.frame.copy()
    target = str(bunch.target.name)
    frame[target] = np.where(frame[target] == positive, "yes", "no")
    return frame.rename(columns={target: "label"})


def breast_cancer_csv() -> bytes:
    import sklearn.datasets

    frame = sklearn.datasets.load_breast_cancer(as_frame=True).frame
    return frame.to_csv(index=False).encode()


def small_csv(n: int = 60, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    y = np.where(x[:, 0] + 0.5 * rng.normal(size=n) > 0, "a", "b")
    return pd.DataFrame({"f1": x[:, 0], "f2": x[:, 1], "f3": x[:, 2], "y": y}).to_csv(index=False).encode()


@pytest.fixture(scope="session")
def seeded_kb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DuckDB KB with real datasets, meta-features and runs (built once per session)."""
    import sklearn.datasets

    from metalearn.data.validation import prepare_frame
    from metalearn.kb import open_kb
    from metalearn.metalearning.metafeatures import ensure_metafeatures
    from metalearn.search.evaluation import EvalProtocol
    from metalearn.search.loop import SearchSettings, run_search

    path = tmp_path_factory.mktemp("api-kb") / "seeded.duckdb"
    wine = _binary_from("load_wine", 0, "wine")
    iris = _binary_from("load_iris", 1, "iris")
    digits = sklearn.datasets.load_digits(as_frame=True).frame.iloc[:400]
    digits = digits.assign(target=np.where(digits["target"] >= 5, "high", "low"))
    diabetes = sklearn.datasets.load_diabetes(as_frame=True).frame
    datasets = [
        prepare_frame(wine, "label", name="wine_class0", origin="sklearn:wine"),
        prepare_frame(iris, "label", name="iris_versicolor", origin="sklearn:iris"),
        prepare_frame(digits, "target", name="digits_high", origin="sklearn:digits"),
        prepare_frame(diabetes, "target", name="diabetes", origin="sklearn:diabetes"),
    ]
    settings = SearchSettings(
        n_trials=3,
        trial_time_limit=30,
        optimizer="random",
        warm_start=False,
        protocol=EvalProtocol(n_folds=3),
    )
    kb = open_kb(path)
    try:
        for ds in datasets:
            ensure_metafeatures(kb, ds)
            run_search(ds, kb, settings, source="test-seed")
    finally:
        kb.close()
    return path


@pytest.fixture()
def kb_copy(seeded_kb: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "kb.duckdb"
    shutil.copyfile(seeded_kb, dst)
    return dst


def make_settings(kb_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = dict(
        kb=str(kb_path), api_keys=[KEY], advisor_refresh_seconds=0, search_workers=1, max_pending_searches=4
    )
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture()
def client(kb_copy: Path) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(kb_copy))) as c:
        yield c


def _datasets(client: TestClient, kind: str | None = None) -> list[dict[str, Any]]:
    params = {"limit": 100} if kind is None else {"limit": 100, "kind": kind}
    r = client.get("/datasets", params=params)
    assert r.status_code == 200, r.text
    return r.json()["items"]


def _upload(
    client: TestClient | httpx.Client,
    url: str,
    content: bytes,
    filename: str = "data.csv",
    targets: list[str] | None = None,
    headers: dict[str, str] | None = AUTH,
    **fields: Any,
) -> httpx.Response:
    data: dict[str, Any] = {"target": targets if targets is not None else ["target"], **fields}
    return client.post(url, files={"file": (filename, content, "text/csv")}, data=data, headers=headers or {})


def assert_error(r: httpx.Response, status: int, *words: str) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    text = body["detail"] if isinstance(body["detail"], str) else body.get("message", "")
    assert isinstance(text, str) and text, body
    for w in words:
        assert w.lower() in json.dumps(body).lower(), (w, body)


# ------------------------------------------------------------------------------------ read endpoints
def test_health_docs_and_openapi(client: TestClient) -> None:
    r = client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["kb"]["schema_version"] >= 1
    assert body["searches"]["workers"] == 1
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    for p in (
        "/recommendations",
        "/recommendations/upload",
        "/metafeatures",
        "/searches",
        "/searches/{search_id}",
        "/datasets",
        "/datasets/{dataset_id}",
        "/datasets/{dataset_id}/runs",
        "/configurations/{config_id}",
        "/kb/stats",
        "/health",
        "/metrics",
    ):
        assert p in paths, p


def test_datasets_runs_configurations(client: TestClient) -> None:
    items = _datasets(client)
    assert {d["name"] for d in items} == {"wine_class0", "iris_versicolor", "digits_high", "diabetes"}
    assert [d["name"] for d in _datasets(client, "regression")] == ["diabetes"]
    assert _datasets(client, "multilabel") == []

    page1 = client.get("/datasets", params={"limit": 3}).json()
    assert len(page1["items"]) == 3 and page1["next_offset"] == 3
    page2 = client.get("/datasets", params={"limit": 3, "offset": 3}).json()
    assert len(page2["items"]) == 1 and page2["next_offset"] is None
    assert {d["dataset_id"] for d in page1["items"] + page2["items"]} == {d["dataset_id"] for d in items}

    wine = next(d for d in items if d["name"] == "wine_class0")
    detail = client.get(f"/datasets/{wine['dataset_id']}").json()
    assert detail["kind"] == "binary" and detail["n_rows"] == 178 and detail["targets"] == ["label"]
    assert detail["metafeatures"] and sum(v is not None for v in detail["metafeatures"].values()) > 10

    runs = client.get(f"/datasets/{wine['dataset_id']}/runs").json()
    assert len(runs["items"]) == 3 and runs["next_offset"] is None
    first = client.get(f"/datasets/{wine['dataset_id']}/runs", params={"limit": 1}).json()
    assert len(first["items"]) == 1 and first["next_offset"] == 1
    run = runs["items"][0]
    assert run["dataset_id"] == wine["dataset_id"] and run["source"] == "test-seed"
    assert run["status"] in ("ok", "crash", "timeout", "memout")

    cfg = client.get(f"/configurations/{run['config_id']}").json()
    assert cfg["config_id"] == run["config_id"] and cfg["values"] and cfg["space"]

    stats = client.get("/kb/stats").json()
    assert stats["datasets"] == 4 and stats["runs"] == 12 and stats["metafeature_version"]


def test_read_endpoints_bad_input(client: TestClient) -> None:
    assert_error(client.get("/datasets/ffffffffffffffffffff"), 404, "ffffffffffffffffffff")
    assert_error(client.get("/datasets/ffffffffffffffffffff/runs"), 404)
    assert_error(client.get("/configurations/0000deadbeef"), 404)
    assert_error(client.get("/searches/0000deadbeef"), 404)
    assert client.get("/datasets", params={"kind": "bogus"}).status_code == 422
    assert client.get("/datasets", params={"limit": 0}).status_code == 422
    for limit in (5000, 100_000):  # one bound, one message (100,000 said "at most 10000")
        assert_error(client.get("/datasets", params={"limit": limit}), 422, "limit must be at most 1000")
    assert client.get("/datasets", params={"offset": -1}).status_code == 422
    assert client.get("/datasets", params={"limit": "ten"}).status_code == 422
    assert client.get("/datasets/bad%20id!").status_code == 422
    assert client.get("/datasets/x/runs", params={"status": "weird"}).status_code == 422
    assert client.get("/no/such/route").status_code == 404


# ----------------------------------------------------------------------------------- recommendations
def test_advisor_matches_the_recommenders(kb_copy: Path) -> None:
    """The advisor's prepared, cached regret matrix ranks exactly like the recommenders run from
    scratch on the same KB frames, with only the configurations valid in the current space allowed."""
    from metalearn.kb import open_kb
    from metalearn.metalearning.advisor import Advisor
    from metalearn.metalearning.metafeatures import EXTRACTOR_VERSION
    from metalearn.metalearning.strategies import recommend
    from metalearn.pipelines.spaces import get_space

    kb = open_kb(kb_copy)
    try:
        advisor = Advisor(kb)
        n = 0
        for d in kb.list_datasets():
            mf = kb.get_metafeatures(d.dataset_id, EXTRACTOR_VERSION).values
            data, space = advisor.kind_data(d.kind), get_space(d.kind)
            found = kb.get_configurations(sorted(set(data.runs["config_id"])))
            valid = {cid for cid, c in found.items() if space.is_valid(dict(c.values))}
            for strategy in Advisor.strategies():
                for exclude in ((), (d.dataset_id,)):
                    a = advisor.recommend(
                        mf, d.kind, strategy=strategy, k=5, exclude_ids=exclude, check_fresh=False
                    )
                    b = recommend(
                        strategy, pd.Series(mf, dtype=float), data.metafeatures, data.runs, k=5,
                        exclude=set(exclude), allowed_configs=valid, names=data.names,
                    )  # fmt: skip
                    got = [
                        (r.rank, r.config_id, r.expected_regret, r.explanation,
                         [(s.dataset_id, s.distance, s.regret) for s in r.sources])
                        for r in a
                    ]  # fmt: skip
                    want = [
                        (r.rank, r.config_id, r.expected_regret, r.explanation,
                         [(s.dataset_id, s.distance, s.regret_there) for s in r.sources])
                        for r in b
                    ]  # fmt: skip
                    assert got == want, (d.name, strategy, exclude)
                    n += len(a)
        assert n > 50
    finally:
        kb.close()


def test_recommendations_from_metafeatures(client: TestClient) -> None:
    items = _datasets(client, "binary")
    wine = next(d for d in items if d["name"] == "wine_class0")
    others = {d["dataset_id"] for d in items if d["name"] != "wine_class0"}
    mf = client.get(f"/datasets/{wine['dataset_id']}").json()["metafeatures"]
    strategies = client.get("/recommendations/strategies").json()
    assert strategies["default"] in strategies["strategies"]
    for strategy in strategies["strategies"]:
        body = {"metafeatures": mf, "kind": "binary", "strategy": strategy, "k": 5,
                "exclude_dataset_ids": [wine["dataset_id"]]}  # fmt: skip
        r = client.post("/recommendations", json=body)
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["strategy"] == strategy and out["kind"] == "binary" and out["n_features_used"] > 10
        recs = out["recommendations"]
        assert 1 <= len(recs) <= 5, strategy
        assert [x["rank"] for x in recs] == list(range(1, len(recs) + 1))
        for x in recs:
            assert x["values"] and x["explanation"], x
            # wine is excluded: the evidence can only come from the other binary datasets
            assert {s["dataset_id"] for s in x["sources"]} <= others, x["sources"]
            assert client.get(f"/configurations/{x['config_id']}").status_code == 200
    # without exclusion wine itself is the nearest neighbour (distance 0)
    r = client.post(
        "/recommendations", json={"metafeatures": mf, "kind": "binary", "strategy": "knn", "k": 3}
    )
    first_sources = r.json()["recommendations"][0]["sources"]
    assert first_sources[0]["dataset_id"] == wine["dataset_id"] and first_sources[0]["distance"] == 0.0
    # no KB evidence for this kind: an empty list, not an error
    r = client.post("/recommendations", json={"metafeatures": mf, "kind": "multilabel"})
    assert r.status_code == 200 and r.json()["recommendations"] == []


def test_recommendations_bad_input(client: TestClient) -> None:
    mf = {"nr_inst": 100.0, "nr_attr": 5.0}
    ok = {"metafeatures": mf, "kind": "binary"}
    assert client.post("/recommendations", json=ok).status_code in (200, 400)
    headers = {"content-type": "application/json"}
    r = client.post("/recommendations", content=b'{"metafeatures": {', headers=headers)
    assert_error(r, 422, "json")
    assert_error(client.post("/recommendations", content=b"", headers=headers), 422)
    assert_error(client.post("/recommendations", json={**ok, "k": 0}), 422, "k")
    assert_error(client.post("/recommendations", json={**ok, "k": 101}), 422, "k")
    assert_error(client.post("/recommendations", json={**ok, "k": "many"}), 422)
    assert_error(client.post("/recommendations", json={**ok, "k": True}), 422, "k")  # it was read as k=1
    assert_error(client.post("/recommendations", json={**ok, "k": "5"}), 422, "k")
    # 1e308 overflowed the distances: 200, no recommendation, "no configuration ... valid in the search space"
    huge = {**ok, "metafeatures": {**mf, "log_n_rows": 1e308}}
    assert_error(client.post("/recommendations", json=huge), 422, "1e+12, which no extractor gives", "log_n_rows", "POST /metafeatures")
    assert_error(client.post("/recommendations", json={**ok, "strategy": "magic"}), 422, "unknown strategy")
    assert_error(client.post("/recommendations", json={**ok, "kind": "ternary"}), 422, "kind")
    assert_error(client.post("/recommendations", json={"kind": "binary"}), 422, "metafeatures")
    assert_error(client.post("/recommendations", json={**ok, "metafeatures": [1, 2]}), 422)
    assert_error(client.post("/recommendations", json={**ok, "metafeatures": {"a": "x"}}), 422)
    assert_error(client.post("/recommendations", json={**ok, "surprise": 1}), 422, "surprise")
    r = client.post("/recommendations", content=b'{"metafeatures": {"nr_inst": Infinity}, "kind": "binary"}',
                    headers=headers)  # fmt: skip
    assert_error(r, 422, "finite")
    r = client.post("/recommendations", content=b'{"metafeatures": {"log_n_rows": NaN}, "kind": "binary"}',
                    headers=headers)  # fmt: skip
    assert_error(r, 400, "meta-feature(s) 'log_n_rows'", "no finite value")  # it said "none ... match the KB's"
    # nothing in common with the KB's meta-features: a 400 saying what to send
    assert_error(
        client.post("/recommendations", json={**ok, "metafeatures": {"zzz": 1.0}}), 400, "meta-features"
    )
    assert_error(client.post("/recommendations", json=[1, 2, 3]), 422)


# ------------------------------------------------------------------------------------------ uploads
def test_metafeatures_upload_then_recommend(client: TestClient) -> None:
    r = _upload(client, "/metafeatures", breast_cancer_csv(), filename="breast_cancer.csv")
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["kind"] == "binary" and out["n_rows"] == 569 and out["n_features"] == 30
    assert out["cached"] is False and len(out["dataset_id"]) >= 16
    names = client.get("/metafeatures").json()
    assert names["version"] == out["version"]
    assert set(out["metafeatures"]) == set(names["names"])
    # each null is explained: a binary dataset has no numeric target for the regression block
    assert set(out["not_computable"]) == {k for k, v in out["metafeatures"].items() if v is None}
    assert out["not_computable"]["reg.target_skewness"].endswith("defined for a numeric target")
    # the vector from /metafeatures is exactly what /recommendations takes
    r = client.post(
        "/recommendations", json={"metafeatures": out["metafeatures"], "kind": out["kind"], "k": 4}
    )
    assert r.status_code == 200, r.text
    assert 1 <= len(r.json()["recommendations"]) <= 4
    # the upload variant gives the same ranking for the same data
    r2 = _upload(client, "/recommendations/upload", breast_cancer_csv(), filename="bc.csv", k="4")
    assert r2.status_code == 200, r2.text
    assert r2.json()["dataset_id"] == out["dataset_id"]
    assert [x["config_id"] for x in r2.json()["recommendations"]] == [
        x["config_id"] for x in r.json()["recommendations"]
    ]
    # a parquet upload of the same frame is the same dataset
    buf = io.BytesIO()
    pd.read_csv(io.BytesIO(breast_cancer_csv())).to_parquet(buf, index=False)
    r3 = client.post(
        "/metafeatures", files={"file": ("bc.parquet", buf.getvalue(), "application/octet-stream")},
        data={"target": "target"}, headers=AUTH,
    )  # fmt: skip
    assert r3.status_code == 200, r3.text
    assert r3.json()["dataset_id"] == out["dataset_id"]
    # another metric of the kind ranks by it (the KB runs record every metric), in both variants
    body = {"metafeatures": out["metafeatures"], "kind": out["kind"], "k": 4}
    by_acc = client.post("/recommendations", json={**body, "metric": "accuracy"})
    assert by_acc.status_code == 200, by_acc.text
    recs = by_acc.json()["recommendations"]
    assert {x["ranked_by"] for x in recs} == {"accuracy"} and {x["score_metric"] for x in recs} == {"accuracy"}
    assert {x["ranked_by"] for x in r.json()["recommendations"]} == {"roc_auc"}
    r4 = _upload(client, "/recommendations/upload", breast_cancer_csv(), filename="bc.csv", k="4", metric="accuracy")
    assert r4.status_code == 200, r4.text
    assert [x["config_id"] for x in r4.json()["recommendations"]] == [x["config_id"] for x in recs]
    assert_error(client.post("/recommendations", json={**body, "metric": "rmse"}), 400, "rmse", "not valid for a binary")


def test_upload_bad_input(client: TestClient) -> None:
    for url in ("/metafeatures", "/recommendations/upload"):
        assert_error(_upload(client, url, small_csv(), targets=["nope"]), 400, "not found")
        assert_error(_upload(client, url, b""), 400, "'data.csv' is empty")  # the name as sent (it said 'data')
        assert_error(_upload(client, url, gzip.compress(small_csv())), 400, "gzip-compressed", ".csv.gz")
        assert_error(_upload(client, url, b"\x01\x02 \xff", filename="rand.bin"), 400, "'rand.bin'")
        assert_error(_upload(client, url, b"\x00\x01\x02\xff\xfe garbage \x00" * 50), 400)
        assert_error(_upload(client, url, b'a,b\n1,"2\n3'), 400)
        assert_error(_upload(client, url, b"a,b,target\n1,2,x\n"), 400, "rows")
        assert_error(_upload(client, url, small_csv(), targets=["y"], kind="regression"), 400)
        assert_error(_upload(client, url, small_csv(), targets=["y"], kind="nonsense"), 422)
        r = client.post(url, files={"file": ("d.csv", small_csv(), "text/csv")}, headers=AUTH)
        assert_error(r, 422, "target")
        r = client.post(url, data={"target": "y"}, headers=AUTH)
        assert_error(r, 422, "file")
        assert_error(_upload(client, url, small_csv(), targets=["y"], headers={}), 401, "X-API-Key")
        assert_error(
            _upload(client, url, small_csv(), targets=["y"], headers={"X-API-Key": "wrong"}), 403, "valid"
        )
    assert_error(_upload(client, "/recommendations/upload", small_csv(), targets=["y"], strategy="x"), 422)
    assert_error(_upload(client, "/recommendations/upload", small_csv(), targets=["y"], k="0"), 422)
    assert_error(_upload(client, "/recommendations/upload", small_csv(), targets=["y"], metric="rmse"), 422,
                 "not valid for a binary task")


def test_write_access_configuration(kb_copy: Path) -> None:
    with TestClient(create_app(make_settings(kb_copy, api_keys=[]))) as c:
        r = _upload(c, "/metafeatures", small_csv(), targets=["y"], headers={"X-API-Key": "anything"})
        assert_error(r, 403, "METALEARN_API_KEYS")
        assert c.get("/datasets").status_code == 200
    with TestClient(create_app(make_settings(kb_copy, api_keys=[], allow_anonymous_writes=True))) as c:
        r = _upload(c, "/metafeatures", small_csv(), targets=["y"], headers={})
        assert r.status_code == 200, r.text
    with TestClient(create_app(make_settings(kb_copy, protect_reads=True))) as c:
        assert_error(c.get("/datasets"), 401)
        assert_error(c.get("/kb/stats", headers={"X-API-Key": "nope"}), 403)
        assert c.get("/datasets", headers=AUTH).status_code == 200
        assert c.get("/health").status_code == 200  # probes stay open


def test_upload_limits(kb_copy: Path) -> None:
    settings = make_settings(kb_copy, max_upload_bytes=20_000, max_rows=100, max_columns=10)
    with TestClient(create_app(settings)) as c:
        big = breast_cancer_csv()
        assert len(big) > 20_000
        assert_error(_upload(c, "/metafeatures", big), 413, "limited")

        # a chunked body without Content-Length is cut while it streams
        def chunks() -> Iterator[bytes]:
            boundary = b"--xyz"
            yield boundary + b'\r\nContent-Disposition: form-data; name="target"\r\n\r\ntarget\r\n'
            yield boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n\r\n'
            for _ in range(100):
                yield b"1.0,2.0,3.0\n" * 100
            yield b"\r\n" + boundary + b"--\r\n"

        r = c.post(
            "/metafeatures",
            content=chunks(),
            headers={**AUTH, "content-type": "multipart/form-data; boundary=xyz"},
        )
        assert_error(r, 413)
        assert_error(_upload(c, "/metafeatures", small_csv(n=150), targets=["y"]), 413, "rows")
        wide = (
            pd.DataFrame(np.ones((20, 12)), columns=[f"c{i}" for i in range(12)]).to_csv(index=False).encode()
        )
        assert_error(_upload(c, "/metafeatures", wide, targets=["c0"]), 413, "columns")
        assert _upload(c, "/metafeatures", small_csv(n=50), targets=["y"]).status_code == 200
        # compressed uploads are bounded by what they expand to, parquet by its metadata
        bomb = gzip.compress(b"f1,f2,y\n" + b"1.0,2.0,a\n" * 100_000)
        assert len(bomb) < 20_000
        assert_error(
            _upload(c, "/metafeatures", bomb, filename="d.csv.gz", targets=["y"]), 413, "decompresses"
        )
        ok = _upload(c, "/metafeatures", gzip.compress(small_csv(n=50)), filename="d.csv.gz", targets=["y"])
        assert ok.status_code == 200, ok.text
        assert_error(_upload(c, "/metafeatures", b"not gzip at all", filename="d.csv.gz", targets=["y"]), 400)
        buf = io.BytesIO()
        pd.read_csv(io.BytesIO(small_csv(n=150))).to_parquet(buf, index=False)
        assert_error(
            _upload(c, "/metafeatures", buf.getvalue(), filename="d.parquet", targets=["y"]), 413, "rows"
        )
        r = c.post(
            "/recommendations",
            content=b"[" + b"1," * 700_000 + b"1]",
            headers={"content-type": "application/json"},
        )
        assert_error(r, 413)


def test_metrics(client: TestClient) -> None:
    wine = _datasets(client, "binary")[0]
    mf = client.get(f"/datasets/{wine['dataset_id']}").json()["metafeatures"]
    for _ in range(3):
        assert client.post("/recommendations", json={"metafeatures": mf, "kind": "binary"}).status_code == 200
    client.get("/datasets/ffffffffffffffffffff")
    text = client.get("/metrics").text
    assert 'metalearn_http_request_duration_seconds_count{method="POST",route="/recommendations"} 3.0' in text
    assert (
        'metalearn_http_requests_total{method="GET",route="/datasets/{dataset_id}",status="404"} 1.0' in text
    )
    assert (
        'metalearn_http_errors_total{method="GET",route="/datasets/{dataset_id}",status_class="4xx"}' in text
    )
    assert "metalearn_searches_running 0.0" in text
    assert "metalearn_kb_runs 12.0" in text
    assert 'metalearn_kb_datasets_by_kind{group="binary"} 3.0' in text
    assert not UNHANDLED.search(text)


# ------------------------------------------------------------------------------------------ searches
def _wait(client: Any, search_id: str, done: set[str], timeout: float = 240.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = client.get(f"/searches/{search_id}")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        if body["status"] in done:
            return body
        time.sleep(0.3)
    raise AssertionError(f"search {search_id} did not reach {done} in {timeout} s: {body}")


def test_a_search_with_a_time_limit_and_no_trial_count_stops_at_the_servers_trial_limit(kb_copy: Path) -> None:
    """Unset, ``n_trials`` leaves a timed search to the clock, within the server's ``max_search_trials``
    (which a count given must respect: a 422 naming the limit)."""
    with TestClient(create_app(make_settings(kb_copy, max_search_trials=4))) as c:
        too_many = _upload(c, "/searches", breast_cancer_csv(), n_trials="5", time_limit="60")
        assert_error(too_many, 422, "n_trials must be at most 4 on this server, got 5")
        r = _upload(c, "/searches", breast_cancer_csv(), filename="breast_cancer.csv",
                    time_limit="120", trial_time_limit="30", n_warm="2", n_folds="3")  # fmt: skip
        assert r.status_code == 202, r.text
        body = _wait(c, r.json()["search_id"], {"done", "failed", "cancelled"})
    assert body["status"] == "done" and body["n_trials"] == 4 and body["settings"]["n_trials"] == 4, body


def test_search_runs_to_done_and_writes_runs(client: TestClient) -> None:
    r = _upload(
        client, "/searches", breast_cancer_csv(), filename="breast_cancer.csv",
        n_trials="3", trial_time_limit="30", n_warm="2", n_folds="3",
    )  # fmt: skip
    assert r.status_code == 202, r.text
    created = r.json()
    sid = created["search_id"]
    assert r.headers["location"].endswith(f"/searches/{sid}") and created["status"] == "pending"
    body = _wait(client, sid, {"done", "failed", "cancelled"})
    assert body["status"] == "done", body
    assert body["n_trials"] == 3 and len(body["trials"]) == 3 and len(body["trajectory"]) == 3
    assert body["kind"] == "binary" and body["metric"] == "roc_auc"
    assert any(t["origin"].startswith("recommendation") for t in body["trials"]), body["trials"]
    assert body["incumbent"] and 0.5 < body["incumbent"]["score"] <= 1.0
    assert body["trajectory"][-1] == body["incumbent"]["score"]
    assert body["settings"]["n_trials"] == 3

    runs = client.get(f"/datasets/{created['dataset_id']}/runs").json()["items"]
    assert len(runs) == 3 and {x["search_id"] for x in runs} == {sid}
    assert {x["config_id"] for x in runs} == {t["config_id"] for t in body["trials"]}
    listing = client.get("/searches").json()["items"]
    assert listing[0]["search_id"] == sid and listing[0]["status"] == "done"
    done = client.get("/searches", params={"status": "done"}).json()["items"]
    assert sid in [s["search_id"] for s in done] and {s["status"] for s in done} == {"done"}
    assert len(done) == 5  # the 4 seeding searches (read back from the KB) and this one
    assert client.get("/searches", params={"status": "running"}).json()["items"] == []
    # the status persisted in the KB
    kb = client.app.state.kb  # type: ignore[attr-defined]
    rec = kb.get_search(sid)
    assert (
        rec.status == "done"
        and rec.n_trials == 3
        and rec.incumbent_config_id == body["incumbent"]["config_id"]
    )
    # the recommender saw the new dataset: it is now its own nearest neighbour
    mf = client.get(f"/datasets/{created['dataset_id']}").json()["metafeatures"]
    rec_body = client.post(
        "/recommendations", json={"metafeatures": mf, "kind": "binary", "strategy": "knn"}
    ).json()
    assert rec_body["recommendations"][0]["sources"][0]["dataset_id"] == created["dataset_id"]
    assert_error(client.delete(f"/searches/{sid}", headers=AUTH), 409, "finished")
    # its leaderboard: each configuration once, best first, no weights (the search registered no model)
    board = client.get(f"/searches/{sid}/leaderboard").json()
    scores = [r["score"] for r in board["rows"]]
    assert board["metric"] == "roc_auc" and board["greater_is_better"] and board["model"] is None
    assert board["n_pipelines"] == len(scores) == len({t["config_id"] for t in body["trials"] if t["status"] == "ok"})
    assert scores == sorted(scores, reverse=True) and scores[0] == body["incumbent"]["score"]
    assert board["rows"][0]["config_id"] == body["incumbent"]["config_id"] and board["rows"][0]["family"] != "-"
    assert [r["rank"] for r in board["rows"]] == list(range(1, len(scores) + 1))
    assert {r["weight"] for r in board["rows"]} == {0.0}
    top = client.get(f"/searches/{sid}/leaderboard", params={"top": 1}).json()
    assert top["rows"] == board["rows"][:1] and top["n_pipelines"] == board["n_pipelines"]
    assert_error(client.get(f"/searches/{sid}/leaderboard", params={"top": 0}), 422, "top")
    assert_error(client.get("/searches/0123456789abcdef/leaderboard"), 404, "0123456789abcdef")
    text = client.get("/metrics").text
    assert 'metalearn_searches_finished_total{status="done"} 1.0' in text


def test_search_cancel_and_bad_input(client: TestClient) -> None:
    # a long search, and a second one that waits for the single worker
    r1 = _upload(client, "/searches", small_csv(200), targets=["y"], n_trials="200", trial_time_limit="20",
                 optimizer="random", warm_start="false", n_folds="2")  # fmt: skip
    r2 = _upload(client, "/searches", small_csv(200, seed=1), targets=["y"], n_trials="5", optimizer="random")
    assert r1.status_code == 202 and r2.status_code == 202, (r1.text, r2.text)
    s1, s2 = r1.json()["search_id"], r2.json()["search_id"]
    assert_error(client.delete(f"/searches/{s2}"), 401)
    cancelled = client.delete(f"/searches/{s2}", headers=AUTH)
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
    deadline = time.monotonic() + 60
    while client.get(f"/searches/{s1}").json()["n_trials"] < 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    r = client.delete(f"/searches/{s1}", headers=AUTH)
    assert r.status_code == 202, r.text
    body = _wait(client, s1, {"cancelled", "done", "failed"}, timeout=90)
    assert body["status"] == "cancelled" and 1 <= body["n_trials"] < 200, body
    kb = client.app.state.kb  # type: ignore[attr-defined]
    assert kb.get_search(s1).status == "cancelled" and kb.get_search(s2).status == "cancelled"
    assert len(kb.list_runs(search_id=s1)) == body["n_trials"]
    assert_error(client.delete("/searches/0000deadbeef", headers=AUTH), 404)

    # bad submissions never start anything
    assert_error(_upload(client, "/searches", small_csv(), targets=["y"], headers={}), 401)
    assert_error(_upload(client, "/searches", small_csv(), targets=["y"], n_trials="0"), 422)
    assert_error(_upload(client, "/searches", small_csv(), targets=["y"], n_trials="100000"), 422, "n_trials")
    assert_error(_upload(client, "/searches", small_csv(), targets=["y"], optimizer="grid"), 422)
    assert_error(_upload(client, "/searches", small_csv(), targets=["y"], strategy="nope"), 422, "strategy")
    assert_error(_upload(client, "/searches", small_csv(), targets=["y"], trial_time_limit="-1"), 422)
    for value in ("nan", "inf"):  # it said "less than or equal to 10000000"
        assert_error(_upload(client, "/searches", small_csv(), targets=["y"], time_limit=value), 422, "finite number")
    assert_error(_upload(client, "/searches", b"x;y\n\x00\x00", targets=["y"]), 400)
    assert_error(_upload(client, "/searches", small_csv(), targets=["missing"]), 400, "not found")
    assert len(client.get("/searches").json()["items"]) == 2 + 4  # + the seeding searches


def test_an_unexpected_error_is_one_json_500_logged_once(kb_copy: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A bug in a route answers a JSON 500 with an incident id, counted in the metrics, and is logged once (as an
    exception handler it was logged twice: Starlette re-raises after the handler, and the server logs again)."""
    app = create_app(make_settings(kb_copy))

    def broken() -> None:
        raise ZeroDivisionError("a bug")

    app.add_api_route("/broken", broken)
    with TestClient(app, raise_server_exceptions=True) as c, caplog.at_level("ERROR"):
        r = c.get("/broken")  # raise_server_exceptions: anything re-raised past the app would raise here
        metrics = c.get("/metrics").text
    assert r.status_code == 500 and re.fullmatch(r"internal server error \(incident \w{12}\); it was logged",
                                                 r.json()["detail"])
    incident = r.json()["detail"].split("incident ")[1][:12]
    logged = [rec for rec in caplog.records if "ZeroDivisionError" in str(rec.exc_info)]
    assert len(logged) == 1 and incident in logged[0].getMessage()
    assert UNHANDLED.search(metrics)


def test_a_search_running_when_the_server_stops_ends_interrupted_not_cancelled(kb_copy: Path) -> None:
    """The shutdown stops a running search through its cancel event; it read "cancelled by request", which nobody
    asked for. It is interrupted, with the advice to submit it again (as at the next start)."""
    with TestClient(create_app(make_settings(kb_copy))) as c:
        r = _upload(c, "/searches", small_csv(200), targets=["y"], n_trials="200", trial_time_limit="20",
                    optimizer="random", warm_start="false", n_folds="2", register="qa-model")  # fmt: skip
        assert r.status_code == 202, r.text
        search_id = r.json()["search_id"]
        deadline = time.monotonic() + 60
        while (running := c.get(f"/searches/{search_id}").json())["n_trials"] < 1 and time.monotonic() < deadline:
            time.sleep(0.2)
    with TestClient(create_app(make_settings(kb_copy))) as c:
        body = c.get(f"/searches/{search_id}").json()
    assert body["status"] == "interrupted" and "server stopped" in body["error"] and 1 <= body["n_trials"] < 200, body
    # the next server answers with what the request said (it gave the KB's dataset name, no start, no model name)
    assert body["dataset_name"] == running["dataset_name"] and body["model"] == {"name": "qa-model", "version": None, "mlflow": None}
    assert body["started_at"] is not None and body["started_at"].startswith(str(running["started_at"])[:19])
    assert "request" not in body["settings"] and body["settings"]["n_trials"] == 200


def test_a_restarted_server_shows_a_search_s_resumed_trials_origins_and_warnings(kb_copy: Path) -> None:
    """QA: after a restart a search's status listed only the runs stored under its own id (not the ones it resumed,
    an earlier search's), every origin read "search", and its leaderboard's weights summed to 0.11; a smaller trial
    budget left better earlier runs out without a word over HTTP."""
    finished = {"done", "failed", "cancelled"}
    opts = dict(trial_time_limit="20", n_folds="2", n_warm="2")
    with TestClient(create_app(make_settings(kb_copy))) as c:
        first = _upload(c, "/searches", small_csv(120, seed=3), targets=["y"], n_trials="4", **opts)
        assert _wait(c, first.json()["search_id"], finished)["status"] == "done"
        r = _upload(c, "/searches", small_csv(120, seed=3), targets=["y"], n_trials="6", register="resumed-m", **opts)
        sid = r.json()["search_id"]
        body = _wait(c, sid, finished)
        assert body["status"] == "done" and body["model"]["version"] == 1, body
        board = c.get(f"/searches/{sid}/leaderboard").json()
        small = _upload(c, "/searches", small_csv(120, seed=3), targets=["y"], n_trials="2", **opts)
        fewer = _wait(c, small.json()["search_id"], finished)
    assert sum(t["origin"] == "resumed" for t in body["trials"]) == 4 and len(body["trials"]) == 6
    assert any("not resumed" in w for w in fewer["warnings"]), fewer["warnings"]
    with TestClient(create_app(make_settings(kb_copy))) as c:
        again = c.get(f"/searches/{sid}").json()
        board_again = c.get(f"/searches/{sid}/leaderboard").json()
        fewer_again = c.get(f"/searches/{small.json()['search_id']}").json()
    keys = ("number", "config_id", "origin", "status", "score", "best_score")
    assert [{k: t[k] for k in keys} for t in again["trials"]] == [{k: t[k] for k in keys} for t in body["trials"]]
    assert again["trajectory"] == body["trajectory"] and again["metric"] == body["metric"] == "roc_auc"
    assert board_again["rows"] == board["rows"]
    weights = sum(row["weight"] for row in board_again["rows"])
    assert weights == pytest.approx(1.0)  # the registered model: an ensemble's members, or its one pipeline
    assert fewer_again["warnings"] == fewer["warnings"]


# ------------------------------------------------------------------------------ a real uvicorn server
@pytest.fixture()
def live_server(kb_copy: Path) -> Iterator[str]:
    app = create_app(make_settings(kb_copy, max_upload_bytes=50_000, search_workers=1))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=120)
        sock.close()


def test_live_server_concurrent_reads_during_a_search(live_server: str) -> None:
    with httpx.Client(base_url=live_server, timeout=60) as http:
        assert http.get("/health").json()["status"] == "ok"
        datasets = http.get("/datasets").json()["items"]
        wine = next(d for d in datasets if d["name"] == "wine_class0")
        mf = http.get(f"/datasets/{wine['dataset_id']}").json()["metafeatures"]
        # a search writes to the KB while many clients read it
        r = _upload(http, "/searches", small_csv(120), targets=["y"], n_trials="4", optimizer="random",
                    trial_time_limit="20", n_folds="2")  # fmt: skip
        assert r.status_code == 202, r.text
        sid = r.json()["search_id"]
        # an oversized upload is refused with 413 by the real server
        big = _upload(http, "/metafeatures", breast_cancer_csv())
        assert_error(big, 413)

    def reader(i: int) -> list[int]:
        codes = []
        with httpx.Client(base_url=live_server, timeout=60) as h:
            for j in range(15):
                which = (i + j) % 4
                if which == 0:
                    resp = h.post("/recommendations", json={"metafeatures": mf, "kind": "binary", "k": 5})
                elif which == 1:
                    resp = h.get("/datasets", params={"limit": 10})
                elif which == 2:
                    resp = h.get(f"/datasets/{wine['dataset_id']}/runs")
                else:
                    resp = h.get(f"/searches/{sid}")
                codes.append(resp.status_code)
        return codes

    with ThreadPoolExecutor(8) as pool:
        codes = [c for chunk in pool.map(reader, range(8)) for c in chunk]
    assert codes == [200] * len(codes), sorted(set(codes))
    with httpx.Client(base_url=live_server, timeout=60) as http:
        body = _wait(http, sid, {"done", "failed", "cancelled"}, timeout=120)
        assert body["status"] == "done" and body["n_trials"] == 4, body
        metrics = http.get("/metrics").text
        assert 'route="/recommendations",status="200"' in metrics
        assert not UNHANDLED.search(metrics)


# ------------------------------------------------------------------------- property-based (schemathesis)
def _fuzz(strategy: Any, codes: Counter[int], failures: list[str]) -> Any:
    """A hypothesis test sending cases of ``strategy`` (with a valid API key), recording status codes."""
    from hypothesis import HealthCheck, given
    from hypothesis import settings as hsettings

    @given(case=strategy)
    @hsettings(max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def fuzz(case: Any) -> None:
        case.headers = {**(case.headers or {}), "X-API-Key": KEY}
        response = case.call()
        codes[response.status_code] += 1
        if response.status_code >= 500:
            failures.append(
                f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
            )

    return fuzz


def test_schemathesis_finds_no_server_error(kb_copy: Path) -> None:
    """Every operation but POST /searches (long-running) fuzzed from the OpenAPI schema, with valid
    (positive) and schema-violating (negative) inputs: never a 5xx."""
    import schemathesis
    from hypothesis.errors import Unsatisfiable

    app = create_app(make_settings(kb_copy, max_upload_bytes=200_000))
    with TestClient(app):  # runs the lifespan: the app's resources stay open during the fuzzing
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        failures: list[str] = []
        seen: dict[str, Counter[int]] = {}
        for result in schema.get_all_operations():
            operation = result.ok()
            label = f"{operation.method.upper()} {operation.path}"
            if label == "POST /searches":
                continue
            codes = seen.setdefault(label, Counter())
            _fuzz(
                operation.as_strategy(generation_mode=schemathesis.GenerationMode.POSITIVE), codes, failures
            )()
            # an operation without parameters or body has nothing to violate: Unsatisfiable
            with contextlib.suppress(Unsatisfiable):
                _fuzz(
                    operation.as_strategy(generation_mode=schemathesis.GenerationMode.NEGATIVE),
                    codes,
                    failures,
                )()
        assert not failures, "\n".join(failures[:10])
        assert sum(sum(c.values()) for c in seen.values()) > 200, seen
        # the fuzzing reached the handlers: uploads were parsed and rejected, listings answered
        assert any(400 <= code < 500 for code in seen["POST /metafeatures"]), seen["POST /metafeatures"]
        assert seen["GET /datasets"][200] > 0 and seen["GET /health"][200] > 0, seen


# ---------------------------------------------------------------------------------- settings, restart
def test_settings_from_env_and_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from metalearn.data.errors import InputError

    monkeypatch.setenv("METALEARN_API_KEYS", "alpha, beta ,,gamma")
    monkeypatch.setenv("METALEARN_PROTECT_READS", "1")
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.key_values() == ["alpha", "beta", "gamma"] and s.protect_reads
    assert "alpha" not in repr(s)  # keys are secrets
    monkeypatch.delenv("METALEARN_KB", raising=False)  # the environment wins over .env
    env = tmp_path / ".env"
    env.write_text("METALEARN_MAX_ROWS=123\nMETALEARN_SEARCH_WORKERS=3\nMETALEARN_KB=/tmp/x.duckdb\n")
    s = Settings(_env_file=env)  # type: ignore[call-arg]
    assert s.max_rows == 123 and s.search_workers == 3 and s.kb == "/tmp/x.duckdb"
    monkeypatch.setenv("METALEARN_SEARCH_WORKERS", "0")
    with pytest.raises(InputError, match="METALEARN_SEARCH_WORKERS='0' is too small"):  # (tests/test_service_settings.py)
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_restart_marks_interrupted_searches_interrupted_with_their_runs(kb_copy: Path) -> None:
    from dataclasses import replace

    from metalearn.kb import open_kb
    from metalearn.kb.records import SearchRecord

    kb = open_kb(kb_copy)
    dataset_id = kb.list_datasets(limit=1)[0].dataset_id
    kb.put_search(SearchRecord(search_id="interrupted01", dataset_id=dataset_id, status="running"))
    runs = kb.list_runs(limit=3)
    kb.add_runs([replace(r, run_id=f"interrupted-run{i}", search_id="interrupted01") for i, r in enumerate(runs)])
    kb.close()
    with TestClient(create_app(make_settings(kb_copy))) as c:
        body = c.get("/searches/interrupted01").json()
        assert body["status"] == "interrupted" and "submit it again" in body["error"]
        assert body["n_trials"] == 3
        assert [s["search_id"] for s in c.get("/searches", params={"status": "interrupted"}).json()["items"]] == [
            "interrupted01"
        ]
        assert_error(c.delete("/searches/interrupted01", headers=AUTH), 409, "interrupted")


def test_cli_registers_serve() -> None:
    from typer.testing import CliRunner

    import metalearn.cli

    result = CliRunner().invoke(metalearn.cli.app, ["serve", "--help"])
    assert result.exit_code == 0, result.output
    assert "--workers" in result.output and "--kb" in result.output
    result = CliRunner().invoke(metalearn.cli.app, ["serve", "--port", "70000"])
    assert result.exit_code != 0  # refused before anything starts


# ------------------------------------------------------------------------------ unparseable JSON bodies
def test_unparseable_json_body_says_what_was_wrong(client: TestClient) -> None:
    """Bodies the JSON parser gives up on (not a syntax error) get a 400 saying why, in the
    ``{"detail": "..."}`` format the OpenAPI schema declares for a 400."""
    headers = {"content-type": "application/json"}
    declared = client.get("/openapi.json").json()["paths"]["/recommendations"]["post"]["responses"]["400"]
    assert declared["content"]["application/json"]["schema"]["$ref"].endswith("/Message")

    deep = b"[" * 200_000 + b"]" * 200_000
    r = client.post("/recommendations", content=deep, headers=headers)
    assert_error(r, 400, "not valid JSON", "nesting 200000 levels deep", "fewer than")
    assert list(r.json()) == ["detail"]

    huge = b'{"metafeatures": {"nr_inst": ' + b"7" * 5000 + b'}, "kind": "binary"}'
    r = client.post("/recommendations", content=huge, headers=headers)
    assert_error(r, 400, "not valid JSON", "integer with more than 4300 digits")

    latin1 = '{"metafeatures": {"nr_inst": 1.0}, "kind": "binaire é"}'.encode("latin-1")
    r = client.post("/recommendations", content=latin1, headers=headers)
    assert_error(r, 400, "not valid JSON", f"not valid UTF-8 at byte {latin1.index(0xE9)}")

    # nothing else changed: a syntax error is still a 422, an unknown route a plain 404
    assert_error(client.post("/recommendations", content=b"[1,", headers=headers), 422, "json")
    r = client.get("/no-such-route")
    assert r.status_code == 404 and r.json() == {"detail": "Not Found"}
    assert not UNHANDLED.search(client.get("/metrics").text)


def test_json_depth_counts_brackets_outside_strings() -> None:
    from metalearn.service.limits import json_depth

    assert json_depth(b"") == 0 and json_depth(b"1") == 0
    assert json_depth(b"[" * 7 + b"]" * 7) == 7
    assert json_depth(b'{"a": "[[[[{", "b": [[1], {"c": "\\"[["}]}') == 3


def test_uploads_say_the_kind_of_every_target_and_why(client: TestClient) -> None:
    """Issue 17: every response that describes an uploaded dataset's task names each target's kind and why."""
    rng = np.random.default_rng(0)
    n = 80
    frame = pd.DataFrame({"f1": rng.normal(size=n), "f2": rng.normal(size=n),
                          "label": np.where(rng.normal(size=n) > 0, "yes", "no"), "amount": rng.normal(size=n)})
    csv = frame.to_csv(index=False).encode()
    r = _upload(client, "/metafeatures", csv, targets=["label"])
    assert r.status_code == 200, r.text
    [one] = r.json()["target_kinds"]
    assert one["name"] == "label" and one["kind"] == "binary" and "2 distinct label(s)" in one["reason"]
    r = _upload(client, "/metafeatures", csv, targets=["label", "amount"])
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["kind"] == "multitask" and [t["name"] for t in out["target_kinds"]] == out["targets"]
    assert [t["kind"] for t in out["target_kinds"]] == ["binary", "regression"]
    assert all(t["reason"] for t in out["target_kinds"])
    r = _upload(client, "/recommendations/upload", csv, targets=["label"], kind="binary", k="2")
    assert r.status_code == 200, r.text
    [given] = r.json()["target_kinds"]
    assert given["kind"] == "binary" and "given as binary" in given["reason"]
    # a request that is only a vector names no targets: the field is there, null
    vector = _upload(client, "/metafeatures", csv, targets=["label"]).json()["metafeatures"]
    r = client.post("/recommendations", json={"metafeatures": vector, "kind": "binary", "k": 2})
    assert r.status_code == 200 and r.json()["target_kinds"] is None


@pytest.mark.parametrize("metric", ["bogus_metric", "rmse"])
def test_search_with_a_bad_metric_is_refused_before_anything_is_stored(client: TestClient, metric: str) -> None:
    """An unknown metric, or one of another kind (rmse for a classification target), used to answer 202
    and store the dataset and a search that then failed (issue 14 item 6): now a 422, nothing stored."""
    before = client.get("/kb/stats").json()
    n_searches = len(client.get("/searches").json()["items"])
    r = _upload(client, "/searches", small_csv(), targets=["y"], metric=metric, n_trials="1")
    assert_error(r, 422, metric)
    assert client.get("/kb/stats").json() == before
    assert len(client.get("/searches").json()["items"]) == n_searches


def test_protected_reads_hide_paths_and_docs(kb_copy: Path) -> None:
    with TestClient(create_app(make_settings(kb_copy, protect_reads=True))) as c:
        body = c.get("/health").json()  # probes stay open, but reveal no path to anonymous callers
        assert body["status"] == "ok" and "path" not in body["kb"] and str(kb_copy) not in json.dumps(body)
        assert "path" not in c.get("/health", headers={"X-API-Key": "wrong"}).json()["kb"]
        assert c.get("/health", headers=AUTH).json()["kb"]["path"] == str(kb_copy)
        for url in ("/openapi.json", "/docs", "/redoc"):
            assert_error(c.get(url), 401, "X-API-Key")
            assert_error(c.get(url, headers={"X-API-Key": "wrong"}), 403, "valid")
            assert c.get(url, headers=AUTH).status_code == 200, url
        schema = c.get("/openapi.json", headers=AUTH).json()
        assert schema["paths"]["/datasets"]["get"]["security"] == [{"APIKeyHeader": []}]
        assert {"401", "403"} <= set(schema["paths"]["/datasets"]["get"]["responses"])
        assert "/openapi.json" not in schema["paths"] and "security" not in schema["paths"]["/health"]["get"]
    with TestClient(create_app(make_settings(kb_copy, protect_reads=True, protect_docs=False))) as c:
        assert c.get("/openapi.json").status_code == 200 and c.get("/docs").status_code == 200
    with TestClient(create_app(make_settings(kb_copy, protect_docs=True))) as c:
        assert_error(c.get("/docs"), 401)
        assert c.get("/datasets").status_code == 200
    with TestClient(create_app(make_settings(kb_copy))) as c:  # open reads: no key security declared on them
        assert "path" not in c.get("/health").json()["kb"]
        schema = c.get("/openapi.json").json()
        assert "security" not in schema["paths"]["/datasets"]["get"]
        assert {"401", "403"} <= set(schema["paths"]["/searches/{search_id}"]["delete"]["responses"])
        limit = next(p for p in schema["paths"]["/datasets"]["get"]["parameters"] if p["name"] == "limit")
        assert limit["schema"]["maximum"] == 1000


def test_timestamps_are_utc_date_times_and_options_lists_every_method(client: TestClient) -> None:
    created = _datasets(client)[0]["created_at"]
    assert created.endswith("Z") or created.endswith("+00:00"), created
    r = client.options("/searches")
    assert r.status_code == 405 and set(r.headers["Allow"].split(", ")) == {"GET", "POST"}
    assert_error(r, 405, "GET, POST")
    assert set(client.request("PATCH", "/searches/abc").headers["Allow"].split(", ")) == {"GET", "DELETE"}
    detail = client.get("/datasets", params={"limit": 5000}).json()
    assert detail["detail"] and "limit" in json.dumps(detail)
