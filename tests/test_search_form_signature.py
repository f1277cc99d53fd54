"""The ``POST /searches`` form's search parameters are derived once (``with_search_form``), not listed by hand:
``create_search`` gets one form field a ``SearchSettings`` field the API exposes (and ``n_folds``), in the
declared order, typed as the fields were written out; a bad value is still the same 422 body; the values
sent reach the search's settings."""

from __future__ import annotations

import inspect
import json
import types
from collections.abc import Iterator, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import pytest
from fastapi import FastAPI, Form
from fastapi.testclient import TestClient
from test_api import AUTH, make_settings, small_csv

from metalearn.kb import open_kb
from metalearn.search.settings import OPTIMIZERS, PROTOCOL_PARAMS, SearchSettings, params
from metalearn.service.app import create_app
from metalearn.service.routers.models import retrain
from metalearn.service.routers.searches import API_DEFAULTS, create_search, with_search_form

#: the fields of SearchSettings the API exposes, in declaration order, then n_folds (the protocol's folds)
API_FIELDS = [f.name for f in fields(SearchSettings) if "param" in f.metadata and f.metadata["param"].api]
FIELD_TYPES = {f.name: str(f.type) for f in fields(SearchSettings)}  # the annotations' text, e.g. "int | None"


def _form_field(annotation: Any) -> tuple[Any, Any]:
    """(type, FastAPI Form info) of an ``Annotated[type, Form(...)]`` parameter."""
    assert get_origin(annotation) is Annotated, annotation
    kind, info = get_args(annotation)[:2]
    return kind, info


def _optional(kind: Any) -> tuple[Any, bool]:
    """(``kind`` without None, whether it allowed None)."""
    if get_origin(kind) in (Union, types.UnionType):
        rest = [a for a in get_args(kind) if a is not type(None)]
        assert len(rest) == 1, kind
        return rest[0], len(rest) < len(get_args(kind))
    return kind, False


def test_the_declared_api_parameters_are_fields_of_the_form_and_the_folds() -> None:
    assert list(params("api")) == [*API_FIELDS, *PROTOCOL_PARAMS]


def test_the_endpoint_signature_holds_every_api_parameter_in_declared_order() -> None:
    signature = inspect.signature(create_search).parameters
    assert "search" not in signature  # replaced by the form fields
    names = list(signature)
    at = names.index(API_FIELDS[0])
    assert names[:at] == ["request", "response", "searches", "settings", "file", "target", "kind", "metric"]
    assert names[at:] == [*params("api"), "register_as"]  # together, in the declared order, then its own
    for name, p in params("api").items():
        parameter = signature[name]
        assert parameter.default == API_DEFAULTS[name] == p.default_for("api"), name
        kind, info = _form_field(parameter.annotation)
        assert type(info).__name__ == "Form" and info.description == p.help, name
        base, optional = _optional(kind)
        assert optional == (p.default_for("api") is None), name  # a form's only None: a field left out
        if p.choices is not None:
            assert get_origin(base) is Literal and get_args(base) == p.choices == OPTIMIZERS, name
        else:  # the field's type (n_folds, no field: its default's)
            declared = FIELD_TYPES.get(name, type(p.default).__name__).removesuffix(" | None")
            assert base.__name__ == declared, name
    # a field of float | None, defaulting to 60 s on a server: the form's field is a float
    assert FIELD_TYPES["trial_time_limit"] == "float | None"
    assert _form_field(signature["trial_time_limit"].annotation)[0] is float


def test_the_retrain_form_has_the_search_fields_of_post_searches() -> None:
    """A model's retrain form gets the same search fields as ``POST /searches`` (with_search_form; until stop 58 it
    listed 7 of them by hand): the same names in the same order, types, help, bounds and defaults."""
    derived = inspect.signature(create_search).parameters
    own = inspect.signature(retrain).parameters
    assert "search" not in own
    assert [n for n in own if n in params("api")] == list(params("api"))
    for name in params("api"):
        kind, info = _form_field(own[name].annotation)
        derived_kind, derived_info = _form_field(derived[name].annotation)
        assert kind == derived_kind and own[name].default == derived[name].default, name
        assert info.description == derived_info.description, name
        assert repr(info.metadata) == repr(derived_info.metadata), name  # the bounds (pydantic's have no ==)
    assert list(own)[-1] == "if_drifted"  # its own query parameter after them


# ------------------------------------------------------------------------------------------ the decorator
async def _probe(
    name: Annotated[str, Form()], *, search: Mapping[str, Any], loud: Annotated[bool, Form()] = False
) -> dict[str, Any]:
    return {"name": name, "loud": loud, "search": dict(search)}


def test_the_decorated_endpoint_gets_the_values_sent_as_one_mapping_and_keeps_its_own_parameters() -> None:
    endpoint = with_search_form(_probe)
    assert inspect.iscoroutinefunction(endpoint) and endpoint.__name__ == "_probe"
    assert list(inspect.signature(endpoint).parameters) == ["name", *params("api"), "loud"]
    app = FastAPI()
    app.post("/probe")(endpoint)
    with TestClient(app) as c:
        sent = {"n_trials": "4", "ensemble": "false", "seed": "7", "n_folds": "3", "optimizer": "random"}
        r = c.post("/probe", data={"name": "x", "loud": "true", **sent})
        assert r.status_code == 200, r.text
        assert r.json() == {"name": "x", "loud": True, "search": {
            **API_DEFAULTS, "n_trials": 4, "ensemble": False, "seed": 7, "n_folds": 3, "optimizer": "random"}}
        assert c.post("/probe", data={"name": "x"}).json()["search"] == API_DEFAULTS  # nothing sent: the defaults
        assert c.post("/probe", data={"name": "x", "workers": "0"}).status_code == 422


# ------------------------------------------------------------------------------------------ over HTTP
@pytest.fixture()
def client(tmp_path: Path) -> Iterator[TestClient]:
    kb = tmp_path / "kb.duckdb"
    open_kb(kb).close()  # empty: never seeded from a shipped snapshot
    with TestClient(create_app(make_settings(kb))) as c:
        yield c


def _post(client: TestClient, data: bytes, **fields: str) -> Any:
    """``POST /searches`` of the CSV ``data`` (target ``y``) with these form fields."""
    return client.post("/searches", files={"file": ("data.csv", data, "text/csv")}, data={"target": ["y"], **fields},
                       headers=AUTH)


def _form_error(name: str, msg: str, kind: str) -> dict[str, Any]:
    return {"detail": [{"loc": ["body", name], "msg": msg, "type": kind}], "message": f"invalid request: {name}: {msg}"}


#: POST /searches bodies as the hand-written form answered them (the 422 bodies before with_search_form)
BAD = {
    "workers=0": ({"workers": "0"},
                  _form_error("workers", "Input should be greater than or equal to 1", "greater_than_equal")),
    "n_trials=-1": ({"n_trials": "-1"},
                    _form_error("n_trials", "Input should be greater than or equal to 1", "greater_than_equal")),
    "optimizer=grid": ({"optimizer": "grid"},
                       _form_error("optimizer", "Input should be 'smac' or 'random'", "literal_error")),
    "time_limit=nan": ({"time_limit": "nan"},
                       _form_error("time_limit", "Input should be a finite number", "finite_number")),
    "ensemble=maybe": ({"ensemble": "maybe"}, _form_error(
        "ensemble", "Input should be a valid boolean, unable to interpret input", "bool_parsing")),
    "n_folds=1": ({"n_folds": "1"},
                  _form_error("n_folds", "Input should be greater than or equal to 2", "greater_than_equal")),
    "strategy 65 long": ({"strategy": "x" * 65},
                         _form_error("strategy", "String should have at most 64 characters", "string_too_long")),
    "server trials": ({"n_trials": "501"}, {"detail": "n_trials must be at most 500 on this server, got 501"}),
    "server seconds": ({"time_limit": "1e6"},
                       {"detail": "time_limit must be at most 21600 s on this server, got 1e+06"}),
    "random multi-fidelity": ({"optimizer": "random", "multi_fidelity": "true"},
                              {"detail": "multi_fidelity needs optimizer='smac'"}),
    "unknown strategy": ({"strategy": "nope"}, {"detail": "unknown strategy 'nope'; choose one of knn, portfolio, "
                                                          "weighted_portfolio, surrogate, zeroshot, hybrid"}),
}


def test_a_bad_search_parameter_is_the_same_422_and_starts_nothing(client: TestClient) -> None:
    for case, (sent, body) in BAD.items():
        r = _post(client, small_csv(), **sent)
        assert (r.status_code, r.json()) == (422, body), (case, r.text)
    assert client.get("/searches").json()["items"] == []


def test_the_values_sent_reach_the_search_settings(client: TestClient) -> None:
    sent = {"n_trials": "2", "time_limit": "600", "trial_time_limit": "15", "seed": "7", "warm_start": "false",
            "strategy": "knn", "n_warm": "2", "optimizer": "random", "multi_fidelity": "false", "ensemble": "false",
            "calibrate": "false", "workers": "1", "n_folds": "3", "group_repeats": "true"}
    assert set(sent) == set(params("api"))
    given = _post(client, small_csv(), **sent)
    unset = _post(client, small_csv(seed=1))  # waits for the one worker
    assert given.status_code == unset.status_code == 202, (given.text, unset.text)
    defaults = SearchSettings.from_params(**API_DEFAULTS)  # the form's
    expected = [
        (given, SearchSettings.from_params(n_trials=2, time_limit=600.0, trial_time_limit=15.0, seed=7,
                                           warm_start=False, strategy="knn", n_warm=2, optimizer="random",
                                           multi_fidelity=False, ensemble=False, calibrate=False, workers=1,
                                           n_folds=3, group_repeats=True)),
        (unset, defaults),
    ]
    for r, settings in expected:
        search_id = r.json()["search_id"]
        got = client.get(f"/searches/{search_id}").json()["settings"]
        assert {k: got[k] for k in settings.to_dict()} == settings.to_dict(), json.dumps(got)
        assert client.delete(f"/searches/{search_id}", headers=AUTH).status_code in (202, 409)  # 409: done
    assert defaults.trial_time_limit == 60.0 and defaults.n_trials is None
