"""Importing OpenML run evaluations (flows, setups, evaluations) into the KB.

openml-python talks to a local HTTP server that replays OpenML API responses
(``tests/data/openml_replay``) in place of the OpenML server; the task and its dataset (the test
server's anneal, task 1882) come from the real cache in ``../shared/openml-cache``. So the
importer's whole path runs for real — openml-python's requests and XML parsing, the dataset load,
meta-feature extraction, translation, KB writes — without network.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from metalearn.data.errors import InputError
from metalearn.kb import InMemoryKnowledgeBase
from metalearn.offline.openml_import import (
    FOREIGN_SPACE,
    OpenMLParameter,
    import_openml_runs,
    translate_setup,
)
from metalearn.pipelines.spaces import get_space

REPLAY = Path(__file__).parent / "data" / "openml_replay"

NO_RESULTS = (
    '<oml:error xmlns:oml="http://openml.org/openml"><oml:code>372</oml:code>'
    "<oml:message>No results</oml:message></oml:error>"
)


class Replay:
    """A stand-in OpenML server: GET /api/v1/xml/<path> answers REPLAY/<path with / as __>.xml."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.misses: list[str] = []
        replay = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = unquote(urlparse(self.path).path)
                prefix = "/api/v1/xml/"
                key = path[len(prefix) :].strip("/") if path.startswith(prefix) else path
                replay.requests.append(key)
                file = REPLAY / (key.replace("/", "__") + ".xml")
                if file.is_file():
                    body, code = file.read_bytes(), 200
                else:
                    replay.misses.append(key)
                    body, code = NO_RESULTS.encode(), 412
                self.send_response(code)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v1/xml"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Replay:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def replay_openml(tmp_path: Path, openml_cache: Path) -> Iterator[tuple[Replay, Path]]:
    """The replay server, and an openml cache root whose folder for that server holds the real
    test-server cache (a private copy: openml-python deletes folders of failed lookups)."""
    src = openml_cache / "org" / "openml" / "test"
    with Replay() as server:
        netloc = urlparse(server.url).netloc
        dst = tmp_path.joinpath("cache", *reversed(netloc.split(".")))
        dst.parent.mkdir(parents=True)
        src.rename(dst)
        yield server, tmp_path / "cache"


def test_import_runs_of_a_task_through_openml_python(replay_openml) -> None:
    server, cache = replay_openml
    kb = InMemoryKnowledgeBase()
    report = import_openml_runs(kb, [1882], limit=6, cache_dir=cache, server=server.url)
    assert server.misses == [], server.misses
    assert any(r.startswith("evaluation/list/function/predictive_accuracy") for r in server.requests)
    # the task's dataset (anneal, multiclass) was loaded from the cache and described
    (ds,) = kb.find_datasets(openml_id=2)
    assert ds.kind == "multiclass" and report.tasks[1882].startswith(ds.dataset_id)
    from metalearn.metalearning.metafeatures import EXTRACTOR_VERSION

    assert len(kb.get_metafeatures(ds.dataset_id, EXTRACTOR_VERSION).values) > 50
    # 6 evaluations: RF (twice, same setup), HGB -> the product's space; RF with 500 trees (outside
    # the space), SVC with gamma="scale", weka J48 -> kept verbatim in the foreign space
    assert (report.evaluations, report.translated, report.foreign, report.runs_added) == (6, 3, 3, 6)
    runs = kb.list_runs(dataset_id=ds.dataset_id)
    assert len(runs) == 6 and all(r.source == "import:openml" and r.metric == "accuracy" for r in runs)
    by_protocol = {r.protocol: r for r in runs}
    rf = by_protocol["openml-task1882-run9001"]
    assert rf.score == pytest.approx(0.9944) and rf.cost == pytest.approx(-0.9944)
    # the same setup's second run is the same configuration under its own protocol
    assert by_protocol["openml-task1882-run9006"].config_id == rf.config_id
    space = get_space("multiclass")
    conf = kb.get_configuration(rf.config_id)
    assert conf.space == space.name and space.is_valid(conf.values)
    assert {k: conf.values[k] for k in ("model", "rf:n_estimators", "rf:criterion", "rf:bootstrap")} == {
        "model": "rf", "rf:n_estimators": 100.0, "rf:criterion": "entropy", "rf:bootstrap": "false",
    }  # fmt: skip
    assert conf.values["imputation:numeric"] == "median" and conf.values["encoding"] == "onehot"
    hgb = kb.get_configuration(by_protocol["openml-task1882-run9005"].config_id)
    assert hgb.values["model"] == "hgb" and hgb.values["hgb:max_leaf_nodes"] == 15.0
    assert hgb.values["encoding"] == "ordinal" and hgb.values["hgb:early_stop"] == "off"
    j48 = kb.get_configuration(by_protocol["openml-task1882-run9004"].config_id)
    assert j48.space == FOREIGN_SPACE and j48.values["flow"] == "weka.J48(1)"
    assert j48.values["parameters"] == {"J48.C": 0.9, "J48.M": 2}
    assert any("500" in reason or "n_estimators" in reason for reason in report.reasons)
    assert any("gamma" in reason for reason in report.reasons)
    # the translated runs are what the recommenders see: the space's runs frame has exactly those
    frame = kb.runs_frame(kind="multiclass", space=space.name)
    assert sorted(frame["protocol"]) == sorted(
        ["openml-task1882-run9001", "openml-task1882-run9005", "openml-task1882-run9006"]
    )

    # importing again adds nothing; without foreign setups only translated runs are considered
    again = import_openml_runs(kb, [1882], limit=6, cache_dir=cache, server=server.url, keep_foreign=False)
    assert again.runs_added == 0 and again.foreign == 0 and again.skipped == 3
    assert len(kb.list_runs(dataset_id=ds.dataset_id)) == 6


def test_unknown_or_unreachable_tasks_are_reported_not_raised(replay_openml, tmp_path: Path) -> None:
    server, cache = replay_openml
    kb = InMemoryKnowledgeBase()
    report = import_openml_runs(kb, [999999], cache_dir=cache, server=server.url)
    assert report.tasks[999999].startswith("skipped:") and "999999" in report.tasks[999999]
    unreachable = import_openml_runs(
        kb, [31], cache_dir=tmp_path / "empty", server="http://127.0.0.1:9/api/v1/xml"
    )
    assert "unreachable" in unreachable.tasks[31]
    assert kb.stats()["runs"] == 0
    # errors are listed lowest first, scores highest first (so --limit keeps the best runs); OpenML's
    # "no results" answer is an empty list, not an error
    from metalearn.offline.openml_import import fetch_evaluations

    assert fetch_evaluations(1882, "root_mean_squared_error", 5, cache, server.url) == []
    assert server.requests[-1].endswith("/sort_order/asc")
    assert fetch_evaluations(1882, "area_under_roc_curve", 5, cache, server.url) == []
    assert server.requests[-1].endswith("/sort_order/desc")
    with pytest.raises(InputError, match="unknown OpenML measure"):
        import_openml_runs(kb, [1882], measure="f1")
    with pytest.raises(InputError, match="limit"):
        import_openml_runs(kb, [1882], limit=0)


def P(component: str, name: str, value: object) -> OpenMLParameter:
    return OpenMLParameter(component, name, value)


def test_translation_of_a_column_transformer_with_two_imputers() -> None:
    """The openml-python tutorials' pipeline: numeric branch (mean imputer, scaler), nominal branch
    (most-frequent imputer, one-hot encoder); both imputers are the same component class."""
    flow = (
        "sklearn.pipeline.Pipeline(columntransformer=sklearn.compose._column_transformer.ColumnTransformer("
        "numeric=sklearn.pipeline.Pipeline(simpleimputer=sklearn.impute._base.SimpleImputer,"
        "standardscaler=sklearn.preprocessing._data.StandardScaler),nominal=sklearn.pipeline.Pipeline("
        "simpleimputer=sklearn.impute._base.SimpleImputer,onehotencoder=sklearn.preprocessing._encoders.OneHotEncoder)),"
        "svc=sklearn.svm._classes.SVC)"
    )
    params = [P("SimpleImputer", "strategy", "median"), P("SimpleImputer", "strategy", "most_frequent"),
              P("OneHotEncoder", "handle_unknown", "ignore"), P("SVC", "gamma", 0.01), P("SVC", "C", 4.0)]  # fmt: skip
    tr = translate_setup(flow, params, "binary")
    assert tr.values is not None, tr.reason
    assert (tr.values["imputation:numeric"], tr.values["scaling"], tr.values["encoding"]) == (
        "median", "standard", "onehot",
    )  # fmt: skip
    assert (tr.values["model"], tr.values["svm:gamma"], tr.values["svm:C"]) == ("svm", 0.01, 4.0)
    # without an encoder, a most-frequent imputer acts on numbers: not in the space
    no_encoder = [q for q in params if q.component != "OneHotEncoder"]
    tr = translate_setup(
        flow.replace(",onehotencoder=sklearn.preprocessing._encoders.OneHotEncoder", ""), no_encoder, "binary"
    )
    assert tr.values is None and "imputation strategies" in tr.reason


@pytest.mark.parametrize(
    ("flow", "params", "kind", "expected"),
    [
        (
            "sklearn.ensemble.forest.RandomForestRegressor",
            [
                P("RandomForestRegressor", "n_estimators", 50),
                P("RandomForestRegressor", "max_features", "auto"),
            ],
            "regression",
            {"model": "rf", "rf:n_estimators": 50.0, "rf:max_features_exponent": 1.0},
        ),
        (
            "sklearn.pipeline.Pipeline(scaler=sklearn.preprocessing.RobustScaler,knn=sklearn.neighbors.KNeighborsClassifier)",
            [P("KNeighborsClassifier", "n_neighbors", 15), P("KNeighborsClassifier", "weights", "distance")],
            "binary",
            {"model": "knn", "knn:n_neighbors": 15.0, "knn:weights": "distance", "scaling": "robust"},
        ),
        (
            "sklearn.neural_network.MLPClassifier",
            [P("MLPClassifier", "hidden_layer_sizes", [64, 32]), P("MLPClassifier", "alpha", 0.001)],
            "multiclass",
            {"model": "mlp", "mlp:n_layers": 2, "mlp:width_1": 64.0, "mlp:width_2": 32.0, "mlp:alpha": 0.001},
        ),
        (
            "sklearn.linear_model.LogisticRegression",
            [P("LogisticRegression", "C", 0.5), P("LogisticRegression", "penalty", "l2")],
            "binary",
            {"model": "linear", "linear:C": 0.5, "linear:penalty": "l2"},
        ),
    ],
)
def test_translation_of_supported_flows(flow: str, params, kind: str, expected: dict) -> None:
    tr = translate_setup(flow, params, kind)
    assert tr.values is not None, tr.reason
    assert get_space(kind).is_valid(tr.values)
    assert {k: tr.values[k] for k in expected} == expected


@pytest.mark.parametrize(
    ("flow", "params", "kind", "reason"),
    [
        ("weka.RandomForest", [], "binary", "not a scikit-learn flow"),
        ("sklearn.ensemble.RandomForestClassifier", [P("RandomForestClassifier", "max_depth", 5)], "binary", "max_depth"),
        ("sklearn.ensemble.RandomForestClassifier", [P("RandomForestClassifier", "max_features", 0.3)], "binary", "max_features"),
        ("sklearn.ensemble.RandomForestClassifier", [], "regression", "does not fit a regression task"),
        ("sklearn.svm.SVC", [P("SVC", "kernel", "linear")], "binary", "kernel"),
        ("sklearn.pipeline.Pipeline(pca=sklearn.decomposition.KernelPCA,svc=sklearn.svm.SVC)", [P("SVC", "gamma", 0.1)], "binary", "KernelPCA"),
        ("sklearn.neighbors.KNeighborsClassifier", [P("KNeighborsClassifier", "n_neighbors", 500)], "binary", "outside the search space"),
        ("sklearn.ensemble.RandomForestClassifier", [P("RandomForestClassifier", "oob_score", True), P("RandomForestClassifier", "some_new_option", 1)], "binary", "some_new_option"),
    ],
)  # fmt: skip
def test_setups_without_a_counterpart_say_why(flow: str, params, kind: str, reason: str) -> None:
    tr = translate_setup(flow, params, kind)
    assert tr.values is None and reason in tr.reason, tr.reason


def test_cli_import_openml_json(replay_openml, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from test_cli import empty_kb, kb_stats, run_cli

    server, cache = replay_openml
    kb = empty_kb(tmp_path / "kb.duckdb")
    argv = ["kb", "import-openml", "--tasks", "1882", "--limit", "6", "--kb", kb, "--openml-cache", cache,
            "--server", server.url, "--json"]  # fmt: skip
    code, out, err = run_cli(capsys, *argv)
    assert code == 0, err
    report = json.loads(out)
    assert report["runs_added"] == 6 and report["translated"] == 3
    assert kb_stats(kb)["runs"] == 6
    code, out, err = run_cli(capsys, *argv)  # again: nothing new
    assert code == 0 and json.loads(out)["runs_added"] == 0
    code, out, err = run_cli(capsys, "kb", "import-openml", "--kb", kb)
    assert code != 0 and "give --tasks" in err and "Traceback" not in err


def test_cli_import_openml_from_a_suite_file(
    replay_openml, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from test_cli import empty_kb, run_cli

    server, cache = replay_openml
    suite = tmp_path / "suite.csv"
    suite.write_text("did,name,tid\n2,anneal,1882\n")
    kb = empty_kb(tmp_path / "kb.duckdb")
    code, out, err = run_cli(capsys, "kb", "import-openml", "--suite", suite, "--limit", "6", "--kb", kb,
                             "--openml-cache", cache, "--server", server.url, "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["runs_added"] == 6


def test_suite_without_task_ids_offline_says_so(suites_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from metalearn.data.errors import OpenMLUnavailableError
    from metalearn.data.suites import load_suite, with_task_ids

    monkeypatch.setenv("METALEARN_OPENML_SERVER", "http://127.0.0.1:9/api/v1/xml")  # nothing listens
    cc18 = load_suite(suites_dir / "openml_cc18.csv")
    assert with_task_ids(cc18) is cc18  # a suite file that is not a known study: left as it is
    cc18 = load_suite("openml-cc18", suites_dir)
    assert all(e.tid is None for e in cc18.entries)
    with pytest.raises(OpenMLUnavailableError, match=r"no task id.*study 99.*unreachable"):
        with_task_ids(cc18)


def test_cli_import_openml_offline_imports_nothing_and_says_so(
    replay_openml, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Offline, a task whose dataset is cached but whose evaluations are not: nothing is imported, so
    nothing is written (not even the dataset), the command exits non-zero, and the hint names the
    option the user gave (--openml-cache), not the environment variable."""
    from test_cli import empty_kb, kb_stats, run_cli

    server, cache = replay_openml
    url = server.url
    server.__exit__()  # the server goes away: only the cache is left
    kb = empty_kb(tmp_path / "kb.duckdb")
    before = kb_stats(kb)
    argv = ["kb", "import-openml", "--tasks", "1882", "--kb", kb, "--openml-cache", cache, "--server", url]
    code, out, err = run_cli(capsys, *argv)
    assert code != 0 and "Traceback" not in err
    assert "nothing imported" in err and "unreachable" in err
    assert "--openml-cache" in err and "METALEARN_OPENML_CACHE" not in err
    assert err.count("unreachable") == 1  # the task's line says why; the error said it once more
    assert kb_stats(kb) == before and before["datasets"] == 0
    code, out, err = run_cli(capsys, *argv, "--json")  # the report is printed, the exit code still says it
    assert code != 0 and '"runs_added": 0' in out and kb_stats(kb) == before
    assert err.count("unreachable") == 1 and "nothing imported" in err  # the error alone says why
