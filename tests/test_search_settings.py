"""The search parameters are declared once (metalearn.search.settings): the CLI's ``optimize`` options,
the ``POST /searches`` form and ``MetaLearnEstimator``'s parameters must not drift from it (names,
defaults, help, bounds), and SearchSettings' own checks are the bounds the declaration states."""

from __future__ import annotations

import inspect
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

import metalearn
from metalearn.data.errors import InputError
from metalearn.search import loop
from metalearn.search.automl import MetaLearnEstimator
from metalearn.search.estimators import MetaLearnClassifier, MetaLearnRegressor
from metalearn.search.evaluation import EvalProtocol
from metalearn.search.settings import (
    OPTIMIZERS,
    PARAMS,
    PROTOCOL_PARAMS,
    UNBOUNDED_TRIALS,
    UNTIMED_TRIALS,
    Param,
    SearchSettings,
    SettingError,
    Surface,
    defaults,
    machine_cores,
    params,
)

SURFACES: tuple[Surface, ...] = ("cli", "api", "estimator")


def test_one_class_wherever_it_is_imported_from() -> None:
    assert loop.SearchSettings is SearchSettings
    assert metalearn.SearchSettings is SearchSettings


def test_every_field_is_declared_with_searchsettings_own_default() -> None:
    declared = {f.name: f for f in fields(SearchSettings) if f.name != "protocol"}
    assert set(PARAMS) == {*declared, *PROTOCOL_PARAMS}
    for name, f in declared.items():
        assert PARAMS[name].name == name and PARAMS[name].default == f.default, name
        assert PARAMS[name].help.endswith("."), name
    assert PARAMS["n_folds"].default == EvalProtocol().n_folds  # restated there to keep the CLI start-up light
    assert PARAMS["group_repeats"].default == EvalProtocol().group_repeats
    from metalearn.data.splits import DUPLICATED_SHARE

    assert f"{DUPLICATED_SHARE:.0%}".replace("%", " %") in PARAMS["group_repeats"].help  # "5 %", restated
    assert SearchSettings.from_params() == SearchSettings()
    for surface in SURFACES:  # every interface's defaults make valid settings
        SearchSettings.from_params(**defaults(surface))


def _below_and_at(p: Param) -> tuple[Any, Any]:
    if p.ge is not None:
        return p.ge - 1, p.ge
    assert p.gt is not None
    return p.gt, p.gt + 0.5


@pytest.mark.parametrize("name", [n for n, p in PARAMS.items() if p.ge is not None or p.gt is not None])
def test_declared_lower_bounds_are_the_ones_searchsettings_checks(name: str) -> None:
    below, at = _below_and_at(PARAMS[name])
    with pytest.raises(InputError, match=name) as info:
        SearchSettings.from_params(**{name: below})
    if name != "n_folds":  # the protocol's own check (EvalProtocol) does not name the parameter
        assert isinstance(info.value, SettingError) and info.value.param == name
    SearchSettings.from_params(**{name: at})


def test_setting_errors_name_their_parameter() -> None:
    cases: dict[str, dict[str, Any]] = {"optimizer": {"optimizer": "grid"}, "strategy": {"strategy": "bogus"},
             "multi_fidelity": {"optimizer": "random", "multi_fidelity": True}}
    for name, values in cases.items():
        with pytest.raises(SettingError) as info:
            SearchSettings.from_params(**values)
        assert info.value.param == name


@pytest.mark.parametrize(
    ("values", "says"),
    [({"ensemble": "no"}, "ensemble must be True or False, got 'no'"),  # accepted, and true: the ensemble was on
     ({"seed": "a"}, "seed must be an integer, got 'a'"),
     ({"time_limit": "10"}, "time_limit must be positive seconds (a finite number), got '10'"),  # a bare TypeError
     ({"time_limit": float("inf")}, "time_limit must be positive seconds (a finite number), got inf"),
     ({"trial_time_limit": float("nan")}, "trial_time_limit must be positive seconds (a finite number)"),
     ({"min_budget": "x"}, "min_budget must be in (0, 1)"),
     ({"calibrate": 1}, "calibrate must be True or False, got 1"),
     ({"scheduler": 8786}, "scheduler must be a string or None")],
)
def test_each_field_is_checked_against_its_declared_type(values: dict[str, Any], says: str) -> None:
    with pytest.raises(SettingError, match=re.escape(says)) as info:
        SearchSettings(**values)
    assert info.value.param == next(iter(values)) and "\n" not in str(info.value)


def test_settings_from_to_dict_are_refused_for_their_protocol_text_and_numpy_numbers_are_fine() -> None:
    import numpy as np

    with pytest.raises(SettingError, match=r"protocol must be an EvalProtocol.*from_params"):
        SearchSettings(**SearchSettings().to_dict())  # the protocol was kept as its text, silently
    s = SearchSettings(seed=np.int64(3), n_trials=np.int32(4), time_limit=np.float64(5.0), ensemble=np.bool_(False))
    assert (s.seed, s.n_trials, s.time_limit) == (3, 4, 5.0) and not s.ensemble


def test_from_params_seeds_the_protocol() -> None:
    s = SearchSettings.from_params(n_folds=3, seed=7, n_trials=4)
    assert s.protocol == EvalProtocol(n_folds=3, seed=7) and s.seed == 7 and s.n_trials == 4


# ----------------------------------------------------------------------------------- the interfaces
def test_cli_options_are_the_declared_ones() -> None:
    import typer.main

    from metalearn.cli import app

    command = typer.main.get_command(app).commands["optimize"]  # type: ignore[attr-defined]
    options = {p.name: p for p in command.params}
    job = {"data", "target", "kind", "metric", "out_dir", "kb", "json_out", "register", "mlflow_uri"}  # not search parameters
    assert set(options) - job == set(params("cli"))
    from metalearn.registry import REGISTER_HELP

    assert options["register"].help == REGISTER_HELP  # declared once, beside the registry
    for name, p in params("cli").items():
        option = options[name]
        assert (*option.opts, *option.secondary_opts) == p.flags, name
        assert option.default == p.default_for("cli"), name
        if name != "workers":  # the one deliberate difference: the command line runs trials on every core
            assert p.default_for("cli") == p.default, name
        assert option.help.startswith(p.help), name
    assert options["workers"].default == machine_cores() and SearchSettings().workers == 1


def _api_form(tmp_path: Path) -> dict[str, Any]:
    from metalearn.service.app import create_app
    from metalearn.service.settings import Settings

    app = create_app(Settings(_env_file=None, kb=str(tmp_path / "kb.duckdb")))  # type: ignore[call-arg]
    schema = app.openapi()
    body = schema["paths"]["/searches"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    props: dict[str, Any] = schema["components"]["schemas"][body["$ref"].split("/")[-1]]["properties"]
    return props


def test_api_form_fields_are_the_declared_ones(tmp_path: Path) -> None:
    from metalearn.service.settings import Settings

    props = _api_form(tmp_path)
    assert set(props) - {"file", "target", "kind", "metric", "register"} == set(params("api"))
    from metalearn.registry import REGISTER_HELP

    assert props["register"]["description"].startswith(REGISTER_HELP)
    server = Settings(_env_file=None)  # type: ignore[call-arg]
    server_max = {"n_trials": server.max_search_trials, "time_limit": server.max_search_seconds}
    for name, p in params("api").items():
        prop = props[name]
        assert prop["description"] == p.help, name
        assert prop.get("default") == p.default_for("api"), name
        value = next((b for b in prop.get("anyOf", [prop]) if b.get("type") != "null"), prop)
        bounds = {"minimum": p.ge if p.ge is not None else p.api_ge, "exclusiveMinimum": p.gt,
                  "maximum": p.api_le, "maxLength": p.max_length}
        if name in server_max:  # the schema also states this server's own limit where it is lower
            bounds["maximum"] = min(b for b in (p.api_le, server_max[name]) if b is not None)
        assert {k: value.get(k) for k in bounds} == bounds, name
    assert props["optimizer"]["enum"] == list(OPTIMIZERS)
    assert not (tmp_path / "kb.duckdb").exists()


ESTIMATORS: dict[type[Any], set[str]] = {  # each estimator's own parameters besides the search's
    MetaLearnEstimator: {"kind", "metric", "kb"},
    MetaLearnClassifier: {"metric", "kb"},  # the kind follows from the class: classes, never inferred
    MetaLearnRegressor: {"metric", "kb"},
}


@pytest.mark.parametrize("cls", list(ESTIMATORS), ids=lambda c: c.__name__)
def test_estimator_parameters_are_the_declared_ones(cls: type[Any]) -> None:
    signature = inspect.signature(cls.__init__).parameters
    assert set(signature) - {"self", *ESTIMATORS[cls]} == set(params("estimator"))
    assert set(cls().get_params()) == set(signature) - {"self"}
    doc = cls.__doc__ or ""
    for name, p in params("estimator").items():
        assert signature[name].default == p.default_for("estimator"), name
        assert f"``{name}``" in doc and p.help in doc, name
    assert signature["kb"].default is None and "in-memory" in doc  # no KB file written unless one is given
    est = cls()
    built = SearchSettings.from_params(**{n: getattr(est, n) for n in params("estimator")})
    assert built.n_trials == defaults("estimator")["n_trials"]
    assert built.resume is False and "resume" in params("estimator")  # a fit searches unless told to resume


def test_estimators_import_from_every_documented_place() -> None:
    from metalearn.search import automl, estimators

    for cls in ESTIMATORS:
        name = cls.__name__
        assert getattr(estimators, name) is getattr(automl, name) is getattr(metalearn, name) is cls
        assert name in metalearn.__all__


def test_interfaces_differ_from_searchsettings_only_where_declared() -> None:
    for surface in SURFACES:
        for name, p in params(surface).items():
            own = {"cli": p.cli_default, "api": p.api_default, "estimator": p.estimator_default}[surface]
            if p.default_for(surface) != p.default:
                assert own is not None and own == p.default_for(surface), (surface, name)
    assert defaults("api")["n_trials"] is defaults("estimator")["n_trials"] is defaults("cli")["n_trials"] is None
    assert defaults("api")["trial_time_limit"] == 60.0


def test_the_trial_budget_is_the_time_limit_unless_a_count_is_given() -> None:
    """Unset, ``n_trials`` bounds nothing under a time limit (the time ends the search, as the wall-clock
    benchmark runs it) and is UNTIMED_TRIALS without one; a count given is the budget either way."""
    assert SearchSettings().n_trials is None and SearchSettings().trial_budget == UNTIMED_TRIALS == 30
    timed = SearchSettings(time_limit=60.0)
    assert timed.trial_budget == UNBOUNDED_TRIALS and not timed.trials_bounded
    assert SearchSettings(time_limit=60.0, n_trials=5).trial_budget == 5
    assert SearchSettings(n_trials=5).trials_bounded and SearchSettings().trials_bounded
    assert SearchSettings.from_params(time_limit=60.0).to_dict()["n_trials"] is None
    for bad in (0, -3, 2.5, True):
        with pytest.raises(SettingError, match="n_trials must be a positive integer"):
            SearchSettings(n_trials=bad)
    assert "time limit" in PARAMS["n_trials"].help and str(UNTIMED_TRIALS) in PARAMS["n_trials"].help


def test_ensemble_is_a_switch_of_every_interface() -> None:
    p = PARAMS["ensemble"]
    assert p.flags == ("--ensemble", "--no-ensemble") and p.default is True
    assert all("ensemble" in params(surface) and defaults(surface)["ensemble"] is True for surface in SURFACES)
    assert SearchSettings.from_params(ensemble=False).ensemble is False
    assert "ensemble_size" not in params("cli") and SearchSettings().ensemble_size == PARAMS["ensemble_size"].default
