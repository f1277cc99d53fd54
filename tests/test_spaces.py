"""Search spaces: registry, ConfigSpace structure, validation and canonical (JSON round-trip) values."""

from __future__ import annotations

import json
from typing import Any

import pytest
from ConfigSpace import ConfigurationSpace

from metalearn.data.errors import ConfigurationError, InputError, TaskKindError
from metalearn.data.task import Task, TaskKind
from metalearn.pipelines.spaces import SPACES, ConfigSpaceSearchSpace, SearchSpace, get_space, space_by_name
from metalearn.pipelines.spaces.components import (
    BOOSTING_LIBRARIES,
    FAMILIES,
    MAX_BOOSTING_ROUNDS,
    NATIVE_MULTILABEL,
    NATIVE_MULTITARGET,
)

KINDS = [str(k) for k in TaskKind]


def _types_ok(space: ConfigSpaceSearchSpace, values: dict) -> None:
    cs = space.configspace
    for name, value in values.items():
        hp = cs[name]
        kind = type(hp).__name__
        if "Integer" in kind:
            assert type(value) is int, (name, value)
        elif "Float" in kind:
            assert type(value) is float, (name, value)
        else:
            assert type(value) is str, (name, value)


# ------------------------------------------------------------------------------------------ registry


def test_one_space_per_kind_named_after_it() -> None:
    assert sorted(SPACES) == sorted(KINDS)
    for name, space in SPACES.items():
        assert isinstance(space, SearchSpace)
        assert space.name == name and str(space.kind) == name
        assert isinstance(space.version, str) and space.version
        assert isinstance(space.configspace, ConfigurationSpace)


def test_get_space_accepts_task_kind_and_string() -> None:
    task = Task(TaskKind.MULTILABEL, ("a", "b"))
    assert get_space(task) is SPACES["multilabel"]
    assert get_space(TaskKind.REGRESSION) is SPACES["regression"]
    assert get_space("binary") is SPACES["binary"]
    with pytest.raises(TaskKindError, match="unknown task kind 'ranking'"):
        get_space("ranking")


def test_space_by_name_and_version() -> None:
    space = space_by_name("multiclass")
    assert space is SPACES["multiclass"]
    assert space_by_name("multiclass", space.version) is space
    with pytest.raises(ConfigurationError, match="unknown search space 'svm'"):
        space_by_name("svm")
    with pytest.raises(ConfigurationError, match=r"version '0\.0' is not available"):
        space_by_name("multiclass", "0.0")


def test_configspace_is_deterministic() -> None:
    for space in SPACES.values():
        assert space.sample(5, seed=3) == space.sample(5, seed=3)
        assert space.sample(5, seed=3) != space.sample(5, seed=4)
        assert space.fresh_configspace(0) == space.configspace


# ------------------------------------------------------------------------------------------ structure


@pytest.mark.parametrize("name", KINDS)
def test_default_is_valid_canonical_and_fast(name: str) -> None:
    space = SPACES[name]
    default = space.default()
    assert space.validate(default) == default
    _types_ok(space, default)
    assert default["model" if "model" in default else "mtl_strategy"] in (*FAMILIES, "independent")
    # a config mentions only its active hyperparameters: the default forest, no MLP widths
    inactive = ("mlp:", "svm:", "hgb:", "shared:", "lgbm:", "xgb:", "catboost:")
    assert not any(k.startswith(inactive) for k in default)


def test_every_family_and_strategy_is_reachable() -> None:
    for name in ("binary", "regression", "multilabel", "multitarget", "multitask"):
        space = SPACES[name]
        configs = space.sample(300, seed=0)
        families = {c["model"] for c in configs if "model" in c}
        assert families == set(FAMILIES), (name, families)
    ml = SPACES["multilabel"].sample(300, seed=1)
    assert {c["ml_strategy"] for c in ml} == {"native", "binary_relevance", "chain"}
    assert all(c["model"] in NATIVE_MULTILABEL for c in ml if c["ml_strategy"] == "native")
    mt = SPACES["multitarget"].sample(300, seed=1)
    assert {c["mt_strategy"] for c in mt} == {"native", "per_target", "chain"}
    assert all(c["model"] in NATIVE_MULTITARGET for c in mt if c["mt_strategy"] == "native")
    mtl = SPACES["multitask"].sample(200, seed=1)
    shared = [c for c in mtl if c["mtl_strategy"] == "shared"]
    assert shared and all("model" not in c and "shared:width_1" in c for c in shared)


@pytest.mark.parametrize("name", KINDS)
def test_boosting_hyperparameters_are_active_only_for_their_family(name: str) -> None:
    """The LightGBM / XGBoost / CatBoost hyperparameters are conditional on ``model``, so a
    configuration of another family (every configuration of space version 1) is unchanged by them."""
    space = SPACES[name]
    configs = space.sample(300, seed=5)
    for c in configs:
        prefixes = {k.split(":")[0] for k in c if ":" in k}
        for fam in BOOSTING_LIBRARIES:
            assert (fam in prefixes) == (c.get("model") == fam), (fam, c)
        if c.get("model") == "xgb":  # depth-wise growth bounded by depth, leaf-wise by leaves
            assert ("xgb:max_depth" in c) == (c["xgb:grow_policy"] == "depthwise")
            assert ("xgb:max_leaves" in c) == (c["xgb:grow_policy"] == "lossguide")
    old = [c for c in configs if c.get("model") not in BOOSTING_LIBRARIES]
    assert old and all(space.validate(c) == c for c in old)


def test_mlp_architecture_conditions() -> None:
    configs = [c for c in SPACES["multiclass"].sample(400, seed=2) if c["model"] == "mlp"]
    depths = {c["mlp:n_layers"] for c in configs}
    assert depths == {1, 2, 3}
    for c in configs:
        n = c["mlp:n_layers"]
        widths = [k for k in c if k.startswith("mlp:width_")]
        assert sorted(widths) == [f"mlp:width_{i}" for i in range(1, n + 1)]
        assert all(16.0 <= c[w] <= 256.0 for w in widths)


def test_budget_relevant_ranges_are_capped() -> None:
    cs: Any = SPACES["binary"].configspace
    assert cs["rf:n_estimators"].upper <= 300 and cs["et:n_estimators"].upper <= 300
    assert cs["hgb:max_iter"].upper <= 512
    for fam in BOOSTING_LIBRARIES:
        rounds = cs[f"{fam}:n_estimators"]
        assert rounds.upper <= MAX_BOOSTING_ROUNDS and rounds.log
    assert cs["mlp:width_1"].log and cs["knn:n_neighbors"].log


# ------------------------------------------------------------------------------------------ validation


@pytest.mark.parametrize("name", KINDS)
def test_json_round_trip_is_identity(name: str) -> None:
    space = SPACES[name]
    for values in space.sample(40, seed=11):
        back = json.loads(json.dumps(values))
        assert space.validate(back) == values
        _types_ok(space, space.validate(back))


@pytest.mark.parametrize("name", KINDS)
def test_validated_values_are_configspace_configurations(name: str) -> None:
    space = SPACES[name]
    for values in [space.default(), *space.sample(30, seed=5)]:
        config = space.to_configuration(json.loads(json.dumps(values)))
        assert config.config_space is space.configspace
        assert space.validate(dict(config)) == values


def test_integers_given_as_floats_become_ints() -> None:
    space = SPACES["binary"]
    v = space.default()
    v["rf:min_samples_leaf"] = 3.0
    out = space.validate(v)
    assert out["rf:min_samples_leaf"] == 3 and type(out["rf:min_samples_leaf"]) is int
    v["rf:n_estimators"] = 50  # an int for a float hyperparameter
    assert type(space.validate(v)["rf:n_estimators"]) is float


def test_inactive_hyperparameters_are_dropped() -> None:
    space = SPACES["binary"]
    v = space.default()
    given = {**v, "svm:C": 10.0, "mlp:width_3": 64.0, "pca:keep_variance": 0.9}
    assert space.validate(given) == v
    mlp = space.validate({**v, "model": "mlp", "mlp:n_layers": 1, "mlp:width_2": 32.0}, fill_defaults=True)
    assert "mlp:width_2" not in mlp and mlp["mlp:width_1"] == 64.0


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        ({"no_such": 1}, r"unknown hyperparameter 'no_such' for search space 'binary'"),
        ({"rf:n_estimator": 10.0}, r"did you mean 'rf:n_estimators'\?"),
        ({"rf:n_estimators": 5000.0}, r"'rf:n_estimators'.*out of range: 5000.*\[16, 300\]"),
        ({"rf:n_estimators": "100"}, r"'rf:n_estimators'.*must be a number, got str"),
        ({"rf:min_samples_leaf": 2.5}, r"'rf:min_samples_leaf'.*whole number.*integer in \[1, 20\]"),
        ({"rf:min_samples_leaf": True}, r"'rf:min_samples_leaf'.*must be a number, got bool"),
        ({"rf:max_features_exponent": float("nan")}, r"must be finite"),
        ({"model": "xgboost"}, r"'model'.*got 'xgboost'; allowed: one of 'linear', 'svm'"),
        ({"scaling": 1}, r"'scaling'.*got 1"),
    ],
)
def test_bad_values_are_named_with_allowed_values(change: dict, pattern: str) -> None:
    space = SPACES["binary"]
    with pytest.raises(ConfigurationError, match=pattern) as err:
        space.validate({**space.default(), **change})
    msg = str(err.value)
    assert "\n" not in msg
    assert isinstance(err.value, InputError) and isinstance(err.value, ValueError)
    assert not space.is_valid({**space.default(), **change})


def test_missing_active_hyperparameter() -> None:
    space = SPACES["regression"]
    v = space.default()
    del v["rf:n_estimators"]
    with pytest.raises(ConfigurationError, match=r"missing hyperparameter 'rf:n_estimators'.*\[16, 300\]"):
        space.validate(v)
    assert space.validate(v, fill_defaults=True)["rf:n_estimators"] == 100.0
    with pytest.raises(ConfigurationError, match="must be a mapping"):
        space.validate(["model", "rf"])  # type: ignore[arg-type]


def test_forbidden_native_strategies() -> None:
    ml = SPACES["multilabel"]
    with pytest.raises(ConfigurationError, match=r"forbidden combination.*ml_strategy='native'.*model in"):
        ml.validate({"model": "svm", "ml_strategy": "native"}, fill_defaults=True)
    ok = ml.validate({"model": "svm", "ml_strategy": "chain"}, fill_defaults=True)
    assert ok["ml_strategy"] == "chain"
    mt = SPACES["multitarget"]
    with pytest.raises(ConfigurationError, match=r"mt_strategy='native'"):
        mt.validate({"model": "hgb", "mt_strategy": "native"}, fill_defaults=True)
    assert mt.validate({"model": "linear", "mt_strategy": "native"}, fill_defaults=True)["model"] == "linear"


def test_kind_specific_hyperparameters() -> None:
    assert "linear:C" in SPACES["binary"].configspace and "linear:alpha" not in SPACES["binary"].configspace
    assert "svm:epsilon" in SPACES["regression"].configspace
    assert "rf:criterion" not in SPACES["regression"].configspace
    mtl = SPACES["multitask"].configspace
    assert {"linear:C", "linear:alpha", "svm:epsilon", "rf:criterion", "shared:n_layers"} <= set(mtl)


def test_build_rejects_other_kind() -> None:
    task = Task(TaskKind.REGRESSION, ("y",))
    space = SPACES["binary"]
    with pytest.raises(TaskKindError, match="space 'binary' is for binary tasks but the task is regression"):
        space.build(space.default(), task, [False])
    with pytest.raises(ConfigurationError):
        space.build({"model": "nope"}, Task(TaskKind.BINARY, ("y",)), [False])


# ------------------------------------------------------------------------------------ learned spaces


def _transformed(hp: Any, x: float) -> float:
    import math

    return math.log(x) if hp.log else float(x)


@pytest.mark.parametrize("name", KINDS)
def test_a_learned_space_samples_only_the_region_of_its_configurations(name: str) -> None:
    from ConfigSpace import Configuration

    from metalearn.pipelines.spaces.by_kind import BOX_MARGIN

    space = get_space(name)
    configs = [c for c in space.sample(400, seed=3) if c.get("model") in ("xgb", "et")][:4]
    assert {c["model"] for c in configs} == {"xgb", "et"}
    cs = space.restricted_configspace(configs)
    assert cs is not None
    assert dict(cs.get_default_configuration()) == configs[0]
    for c in configs:  # every configuration it was learned from lies in it, with the same values
        assert space.validate(dict(Configuration(cs, values=c))) == c
    samples = [space.validate({k: v for k, v in dict(x).items()}) for x in cs.sample_configuration(300)]
    assert {s.get("model") for s in samples} == {"xgb", "et"}  # no other family (nor a shared multitask net)
    narrower = 0
    for hp_name in cs:
        full, box = space.configspace[hp_name], cs[hp_name]
        seen = [c[hp_name] for c in configs if hp_name in c]
        if not hasattr(full, "lower") or not seen:
            continue
        assert full.lower <= box.lower <= min(seen) and max(seen) <= box.upper <= full.upper
        width = _transformed(full, full.upper) - _transformed(full, full.lower)
        room = _transformed(full, box.upper) - _transformed(full, box.lower)
        spread = _transformed(full, max(seen)) - _transformed(full, min(seen))
        assert room <= spread + 2 * BOX_MARGIN * width + (2 if "Integer" in type(full).__name__ else 1e-9)
        narrower += room < width - 1e-9
        assert all(box.lower <= s[hp_name] <= box.upper for s in samples if hp_name in s)
    assert narrower >= 5


def test_a_learned_space_of_nothing_is_the_whole_space() -> None:
    assert get_space("binary").restricted_configspace([]) is None


# ------------------------------------------------------------------------------------ effective values
def _task_of(name: str) -> Task:
    kind = TaskKind(name)
    if kind is TaskKind.MULTITASK:
        return Task(kind, ("a", "b"), target_kinds=(TaskKind.BINARY, TaskKind.REGRESSION))
    if kind in (TaskKind.MULTILABEL, TaskKind.MULTITARGET):
        return Task(kind, ("a", "b"))
    return Task(kind, ("y",))


def _built(space: ConfigSpaceSearchSpace, values: dict, task: Task) -> str:
    return repr(sorted((k, repr(v)) for k, v in space.build(values, task, [False, True]).get_params(deep=True).items()))


@pytest.mark.parametrize("name", KINDS)
def test_effective_values_round_exactly_the_counts_the_builders_round(name: str) -> None:
    """``SearchSpace.effective`` rounds the hyperparameters declared with ``Count``: a twin of a configuration
    whose counts differ below their integer part has the same effective values and builds the same model,
    while a change of any other float builds another one (so a search may run one of two twins only)."""
    from metalearn.pipelines.spaces.components import ROUNDED

    space = SPACES[name]
    cs = space.configspace
    task = _task_of(name)
    counts = {n for n, hp in cs.items() if (hp.meta or {}).get(ROUNDED)}
    assert {"lgbm:num_leaves", "xgb:n_estimators", "knn:n_neighbors"} <= counts
    n_twins = n_other = 0
    for values in space.sample(60, seed=7):
        twin = dict(values)
        for k in counts & set(values):
            hp = cs[k]
            base = float(round(values[k]))
            twin[k] = min(max(base + (0.2 if base + 0.2 <= hp.upper else -0.2), hp.lower), hp.upper)
        if twin == values:
            continue
        twin = space.validate(twin)
        assert space.effective(twin) == space.effective(values) != twin, (values, twin)
        assert _built(space, twin, task) == _built(space, values, task), (values, twin)
        n_twins += 1
        others = [k for k in values if k not in counts and type(values[k]) is float
                  and cs[k].upper / max(cs[k].lower, 1e-300) > 1.01 and k != "encoding:min_frequency"]
        for k in others[:1]:
            hp = cs[k]
            moved = space.validate({**values, k: hp.lower if values[k] > (hp.lower + hp.upper) / 2 else hp.upper})
            assert space.effective(moved) != space.effective(values), k
            assert _built(space, moved, task) != _built(space, values, task), k
            n_other += 1
    assert n_twins >= 20 and n_other >= 10, (n_twins, n_other)
