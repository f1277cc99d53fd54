"""The OpenAPI schema matches the server: schemathesis' phases (examples, coverage, fuzzing, stateful) with
its conformance checks, in process against the ASGI app (issue 14 item 12).

The app serves a small temporary KB (two datasets, their configurations and runs, a finished search) with an
API key sent on every request; searches finish at once (the optimiser is replaced), so the stateful phase can
create, read and cancel them. The fuzzing phase goes round every operation until ``max-time`` (a round takes
about 3 s on 2 cores; the other phases have started within 10 s): 25 s fuzz every operation about five times
(until stop 26 it fuzzed 40 s, about ten rounds, and passed; the default suite must stay under 15 minutes).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from metalearn.kb import (
    ConfigurationRecord,
    DatasetRecord,
    DuckDBKnowledgeBase,
    MetaFeatureRecord,
    RunRecord,
    SearchRecord,
    run_id_for,
)
from metalearn.service.app import create_app
from metalearn.service.settings import Settings

schemathesis = pytest.importorskip("schemathesis")

KEY = "schemathesis-key"

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "positive_data_acceptance",
    "negative_data_rejection",
    "missing_required_header",
    "unsupported_method",
    "use_after_free",
    "ensure_resource_availability",
)

#: Options of a check beyond enabling it. A body over the server's size limit is refused with 413 before it is
#: parsed (the fuzzer sometimes generates megabytes of JSON): a rejection like any other.
CHECK_OPTIONS = {
    "negative_data_rejection": 'expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", '
    '"422", "428", "429", "5xx"]\n',
}

CONFIG = f"""
seed = 14
max-failures = 50
max-time = 25
continue-on-failure = true

[cache]
enabled = false

[headers]
X-API-Key = "{KEY}"

[generation]
max-examples = 5
database = "none"

[phases.examples]
enabled = true
[phases.coverage]
enabled = true
[phases.fuzzing]
enabled = true
[phases.stateful]
enabled = true
max-steps = 8

[checks]
enabled = false
{"".join(f"[checks.{name}]{chr(10)}enabled = true{chr(10)}{CHECK_OPTIONS.get(name, '')}" for name in CHECKS)}

# An upload's file must be a table holding the target columns, which a schema cannot say: generated files
# (arbitrary bytes) are refused with 400, and that is their only legitimate refusal.
[[operations]]
include-path-regex = "^/(metafeatures|recommendations/upload|searches)$"
include-method = "POST"
[operations.checks.positive_data_acceptance]
expected-statuses = ["2xx", "400", "401", "403", "404", "409", "429"]
"""


def _small_kb(path: Path) -> DuckDBKnowledgeBase:
    kb = DuckDBKnowledgeBase(path)
    for i, kind in enumerate(("binary", "regression")):
        d = DatasetRecord(f"ds{i}", f"data{i}", kind, 100 + i, 4, targets=("y",), target_kinds=(kind,))
        kb.put_dataset(d)
        kb.put_metafeatures(MetaFeatureRecord(d.dataset_id, "v-test", {"nr_inst": 100.0 + i, "nr_attr": 4.0}))
        space = "sklearn-classifier" if kind == "binary" else "sklearn-regressor"
        for j in range(2):
            c = ConfigurationRecord.create(space, "1", {"model": "tree", "depth": j + 1})
            kb.put_configuration(c)
            kb.add_run(
                RunRecord(
                    run_id_for(d.dataset_id, c.config_id, "cv5"),
                    d.dataset_id,
                    c.config_id,
                    "cv5",
                    "ok",
                    "m",
                    0.5 + j / 10,
                    0.5 - j / 10,
                    search_id="s-done",
                )
            )
    kb.put_search(SearchRecord("s-done", "ds0", "done", {"n_trials": 2}, n_trials=2))
    return kb


@pytest.fixture()
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    import metalearn.search.automl as automl

    def instant_search(*args: Any, **kwargs: Any) -> Any:
        return SimpleNamespace(result=SimpleNamespace(status="done"))

    monkeypatch.setattr(automl, "optimize", instant_search)
    kb = _small_kb(tmp_path / "kb.duckdb")
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        kb=str(tmp_path / "kb.duckdb"),
        api_keys=[KEY],  # type: ignore[list-item]
        metafeature_version="v-test",
        advisor_refresh_seconds=0,
        max_upload_bytes=100_000,
        max_page_size=100,
        search_workers=1,
        max_pending_searches=4,
    )
    from fastapi.testclient import TestClient

    application = create_app(settings, kb=kb)
    with TestClient(application):  # the lifespan opens the app's resources for the whole run
        yield application
    kb.close()


def _failures(app: Any) -> tuple[list[str], dict[str, int]]:
    from schemathesis.config import SchemathesisConfig
    from schemathesis.engine import events, from_schema

    config = SchemathesisConfig.from_str(CONFIG)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
    failures: list[str] = []
    seen: dict[str, str] = {}
    counts: dict[str, int] = {}
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished | events.FuzzScenarioFinished):
            phase = str(getattr(event, "phase", "fuzzing"))
            counts[phase] = counts.get(phase, 0) + len(event.recorder.cases)
            for case_id, checks in event.recorder.checks.items():
                for check in checks:
                    if check.failure_info is None:
                        continue
                    case = event.recorder.cases[case_id].value
                    failure = check.failure_info.failure
                    line = f"[{phase}] {check.name}: {case.method} {case.operation.path}: {failure.title}"
                    if line not in seen:  # one example of each kind of failure
                        detail = " ".join(str(getattr(failure, "message", "")).split())[:300]
                        interaction = event.recorder.interactions.get(case_id)
                        got = (
                            interaction.response.status_code if interaction and interaction.response else None
                        )
                        body = (
                            interaction.response.content[:200]
                            if interaction and interaction.response
                            else b""
                        )
                        seen[line] = (
                            f"{line} ({detail}; e.g. {case.formatted_path} {str(case.body)[:120]!r} -> {got} {body!r})"
                        )
        elif isinstance(event, events.NonFatalError | events.FatalError):
            failures.append(f"error: {' '.join(str(getattr(event, 'value', event)).split())[:400]}")
    return sorted(seen.values()) + failures, counts


def test_the_server_conforms_to_its_openapi_schema(app: Any) -> None:
    failures, counts = _failures(app)
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures[:40])
    # every phase ran (the examples phase has cases only for operations whose schema declares examples)
    assert set(counts) == {"examples", "coverage", "fuzzing", "stateful"}, counts
    assert all(counts[p] > 0 for p in ("coverage", "fuzzing", "stateful")), counts
