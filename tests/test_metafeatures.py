"""Meta-feature extraction on real corpus datasets of every kind (metalearn.metalearning.metafeatures)."""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pytest

from metalearn.data.dataset import Dataset
from metalearn.data.errors import DataError, InputError, MetaLearnError
from metalearn.data.task import Task, TaskKind
from metalearn.kb.records import MetaFeatureRecord
from metalearn.metalearning.metafeatures import (
    EXTRACTOR_VERSION,
    LABEL_NAMES,
    REGRESSION_NAMES,
    SIGNED_LOG_FEATURES,
    SIMPLE_NAMES,
    _fast_calc_conc,
    _fast_calc_joint_ent,
    extract_metafeatures,
    metafeature_names,
    metafeature_record,
    not_computable,
    signed_log,
)

pytestmark = pytest.mark.corpus

KIND_FLAGS = (
    "is_binary",
    "is_multiclass",
    "is_regression",
    "is_multilabel",
    "is_multitarget",
    "is_multitask",
)

# one real corpus dataset per kind (small, so the file stays fast); penguins has missing values,
# cleve/flags categorical features
KIND_DATASETS = {
    "binary": "cleve",
    "multiclass": "penguins",
    "regression": "1028_SWD",
    "multilabel": "flags",
    "multitarget": "enb",
}


@pytest.fixture(scope="module")
def extracted(load_corpus) -> dict[str, tuple[Dataset, dict[str, float]]]:
    """Each kind's dataset and its meta-features (extracted once for the module)."""
    out = {}
    for kind, name in KIND_DATASETS.items():
        ds = load_corpus(name)
        assert str(ds.task.kind) == kind, f"{name} is {ds.task.kind}, expected {kind}"
        out[kind] = (ds, extract_metafeatures(ds))
    return out


def finite_fraction(values: dict[str, float], prefix: str = "") -> float:
    sel = [v for k, v in values.items() if k.startswith(prefix)]
    return sum(math.isfinite(v) for v in sel) / len(sel)


def same(a: dict[str, float], b: dict[str, float]) -> bool:
    return list(a) == list(b) and all((math.isnan(x) and math.isnan(b[k])) or x == b[k] for k, x in a.items())


def one_line(err: pytest.ExceptionInfo[BaseException]) -> str:
    msg = str(err.value)
    assert isinstance(err.value, MetaLearnError)
    assert msg and "\n" not in msg
    return msg


# ---------------------------------------------------------------------------------------- schema


def test_schema_is_fixed_and_versioned() -> None:
    names = metafeature_names()
    assert isinstance(names, tuple) and len(names) == len(set(names))
    assert names == metafeature_names()
    assert EXTRACTOR_VERSION.startswith("mf-")
    # the blocks, in order, and the features the brief asks for
    assert names[: len(SIMPLE_NAMES)] == SIMPLE_NAMES
    assert names[len(SIMPLE_NAMES) : len(SIMPLE_NAMES) + len(LABEL_NAMES)] == LABEL_NAMES
    assert names[-len(REGRESSION_NAMES) :] == REGRESSION_NAMES
    for expected in (
        "log_n_rows",
        "log_n_features",
        "ratio_categorical",
        "missing_ratio",
        *KIND_FLAGS,
        "n_classes",
        "label.n_targets",
        "label.cardinality",
        "label.density",
        "label.n_distinct_sets",
        "label.distinct_sets_ratio",
        "label.ir_mean",
        "label.ir_max",
        "label.assoc_mean",
        "label.assoc_max",
        "label.target_skewness_mean",
        "label.frac_class_targets",
        "mfe.one_nn.mean",
        "mfe.one_nn.sd",
        "mfe.leaves",
        "mfe.mut_inf.mean",
        "mfe.attr_ent.mean",
        "mfe.cor.mean",
        "reg.lm_linear_r2",
    ):
        assert expected in names
    mfe_names = [n for n in names if n.startswith("mfe.")]
    assert len(mfe_names) > 60
    assert not any(n.endswith((".nanmean", ".nansd")) for n in mfe_names)
    assert "mfe.range.mean" not in names  # scale-only features are excluded
    assert set(names) >= SIGNED_LOG_FEATURES
    assert signed_log(math.e - 1) == pytest.approx(1.0) and signed_log(-(math.e - 1)) == pytest.approx(-1.0)


def test_every_kind_gives_the_fixed_vector(extracted) -> None:
    names = metafeature_names()
    for kind, (ds, values) in extracted.items():
        assert tuple(values) == names, kind
        assert all(isinstance(v, float) for v in values.values())
        assert not any(math.isinf(v) for v in values.values()), kind
        # heavy-tailed features are log-scaled, so no value dwarfs the others
        assert max(abs(v) for v in values.values() if math.isfinite(v)) < 100, kind
        assert values[f"is_{kind}"] == 1.0 and sum(values[f] for f in KIND_FLAGS) == 1.0
        assert values["log_n_rows"] == pytest.approx(math.log(ds.n_rows))
        assert values["log_n_features"] == pytest.approx(math.log(ds.n_features))
        assert values["ratio_categorical"] == pytest.approx(ds.n_categorical / ds.n_features)
        assert values["missing_ratio"] == pytest.approx(float(ds.X.isna().to_numpy().mean()))
        assert values["label.n_targets"] == ds.task.n_targets
        # the unsupervised pymfe features are computed for every kind
        for f in ("mfe.cor.mean", "mfe.skewness.mean", "mfe.attr_ent.mean", "mfe.sparsity.mean"):
            assert math.isfinite(values[f]), (kind, f)
        regression_like = kind in ("regression", "multitarget")
        assert finite_fraction(values) >= (0.5 if regression_like else 0.75), kind
        if regression_like:
            assert values["n_classes"] == 0.0
            assert finite_fraction(values, "reg.") == 1.0, kind
            assert math.isnan(values["mfe.one_nn.mean"]) and math.isnan(values["mfe.leaves"])
            assert -1.0 <= values["reg.lm_tree_r2"] <= 1.0
            assert values["reg.lm_tree_r2"] > 0.1  # both datasets beat predicting the mean
        else:
            assert finite_fraction(values, "reg.") == 0.0, kind
            assert finite_fraction(values, "mfe.") >= 0.9, kind
            for f in ("mfe.one_nn.mean", "mfe.naive_bayes.mean", "mfe.best_node.mean"):
                assert 0.0 <= values[f] <= 1.0, (kind, f)
            assert values["mfe.leaves"] >= 2
            assert values["n_classes"] >= 2


def test_single_target_neutral_values(extracted) -> None:
    ds, v = extracted["binary"]
    assert v["label.n_targets"] == 1 and v["label.frac_class_targets"] == 1.0
    assert v["label.assoc_mean"] == 0.0 and v["label.assoc_max"] == 0.0
    # the binary target counts as one label: 1 for 0/1 data, else its minority class
    target = ds.y.iloc[:, 0]
    counts = target.value_counts()
    if set(target.astype(float).unique()) == {0.0, 1.0}:
        assert v["label.cardinality"] == pytest.approx(float((target.astype(float) == 1).mean()))
    else:
        assert v["label.cardinality"] == pytest.approx(counts.min() / counts.sum())
    assert v["label.density"] == v["label.cardinality"]
    assert v["label.n_distinct_sets"] == pytest.approx(math.log(3)) and v["label.ir_mean"] == pytest.approx(
        math.log(2)
    )
    assert v["minority_class_ratio"] == pytest.approx(counts.min() / counts.max())
    assert math.isnan(v["label.target_skewness_mean"])
    _, r = extracted["regression"]
    assert r["label.assoc_mean"] == 0.0 and r["label.frac_class_targets"] == 0.0
    assert math.isnan(r["label.cardinality"]) and math.isnan(r["minority_class_ratio"])
    assert math.isfinite(r["label.target_skewness_mean"]) and r["label.target_skewness_sd"] == 0.0


def test_multilabel_label_features(extracted) -> None:
    ds, v = extracted["multilabel"]
    Y = ds.y.to_numpy(dtype=float)
    q = Y.shape[1]
    assert v["label.n_targets"] == q
    assert v["label.cardinality"] == pytest.approx(Y.sum(axis=1).mean())
    assert v["label.density"] == pytest.approx(Y.sum(axis=1).mean() / q)
    n_sets = len({tuple(r) for r in Y.astype(int)})
    assert v["label.n_distinct_sets"] == pytest.approx(signed_log(n_sets))  # heavy-tailed: log-scaled
    assert v["label.distinct_sets_ratio"] == pytest.approx(n_sets / len(Y))
    pos = Y.sum(axis=0)
    assert v["label.ir_max"] == pytest.approx(signed_log(pos.max() / pos.min()))
    assert v["label.ir_mean"] == pytest.approx(signed_log((pos.max() / pos).mean()))
    corr = np.abs(np.corrcoef(Y.T))[np.triu_indices(q, 1)]
    assert v["label.assoc_mean"] == pytest.approx(corr.mean())
    assert v["label.assoc_max"] == pytest.approx(corr.max())
    # the representative target is the most balanced label -> a binary class problem
    assert v["n_classes"] == 2.0
    rates = Y.mean(axis=0)
    best = rates[np.argmin(np.abs(rates - 0.5))]
    assert v["minority_class_ratio"] == pytest.approx(min(best, 1 - best) / max(best, 1 - best))


def test_multitarget_target_features(extracted) -> None:
    ds, v = extracted["multitarget"]
    Y = ds.y.to_numpy(dtype=float)
    assert v["label.n_targets"] == Y.shape[1] and v["label.frac_class_targets"] == 0.0
    corr = np.abs(np.corrcoef(Y.T))[np.triu_indices(Y.shape[1], 1)]
    assert v["label.assoc_max"] == pytest.approx(corr.max())
    assert 0.0 <= v["label.assoc_mean"] <= v["label.assoc_max"] <= 1.0
    for stat in ("skewness", "kurtosis", "cv"):
        assert math.isfinite(v[f"label.target_{stat}_mean"]) and v[f"label.target_{stat}_sd"] >= 0
    cvs = Y.std(axis=0, ddof=1) / np.abs(Y.mean(axis=0))
    assert (Y >= 0).all()  # cv is defined for ratio-scale (non-negative) targets
    assert v["label.target_cv_mean"] == pytest.approx(signed_log(cvs.mean()))
    assert math.isnan(v["label.cardinality"])


def test_every_missing_meta_feature_says_why(extracted) -> None:
    for kind, (ds, values) in extracted.items():
        missing = not_computable(values, ds.task)
        assert set(missing) == {k for k, v in values.items() if math.isnan(v)}, kind
        for name, why in missing.items():
            if name.startswith("reg.") and kind in ("regression", "multitarget"):
                assert why == "not computable on this data", (kind, name)  # it has a numeric target
        if kind == "multilabel":  # 0/1 targets: the numeric targets' statistics are not defined
            assert missing["label.target_skewness_mean"] == "defined for numeric targets"
            assert "label.cardinality" not in missing
        if kind == "multitarget":  # numeric targets: no class target for pymfe's measures
            assert missing["mfe.one_nn.mean"] == "pymfe's measures: defined for a class target"
            assert "label.target_skewness_mean" not in missing


def test_multitask_from_promoted_feature(load_corpus) -> None:
    """A classification dataset with one categorical feature and one numeric feature promoted to targets."""
    ds = load_corpus("cleve")
    cat_col = next(c for c, is_cat in zip(ds.X.columns, ds.categorical, strict=True) if is_cat)
    num_col = next(c for c, is_cat in zip(ds.X.columns, ds.categorical, strict=True) if not is_cat)
    X = ds.X.drop(columns=[cat_col, num_col])
    y = pd.concat([ds.y, ds.X[[cat_col]], ds.X[[num_col]].astype(float)], axis=1)
    n_levels = ds.X[cat_col].nunique()
    kinds = (TaskKind.BINARY, TaskKind.BINARY if n_levels == 2 else TaskKind.MULTICLASS, TaskKind.REGRESSION)
    task = Task(TaskKind.MULTITASK, tuple(y.columns), kinds)
    cat = tuple(
        is_cat for c, is_cat in zip(ds.X.columns, ds.categorical, strict=True) if c not in (cat_col, num_col)
    )
    mt = Dataset("cleve-multitask", X, y, task, cat, "test")
    v = extract_metafeatures(mt)
    assert tuple(v) == metafeature_names()
    assert v["is_multitask"] == 1.0 and v["label.n_targets"] == 3
    assert v["label.frac_class_targets"] == pytest.approx(2 / 3)
    assert 0.0 <= v["label.assoc_mean"] <= v["label.assoc_max"] <= 1.0
    # the regression target's statistics, the class targets' label statistics
    assert math.isfinite(v["label.target_skewness_mean"]) and v["label.target_skewness_sd"] == 0.0
    assert math.isfinite(v["label.cardinality"])
    # supervised features describe the first class target (the original binary one)
    assert v["n_classes"] == 2.0
    assert finite_fraction(v, "mfe.") >= 0.9
    assert finite_fraction(v) >= 0.75


# -------------------------------------------------------------------------------- robustness


def test_deterministic_for_a_seed(load_corpus) -> None:
    ds = load_corpus("allbp")  # 3,772 rows: max_rows=500 forces a (stratified) sample
    a = extract_metafeatures(ds, seed=0, max_rows=500)
    b = extract_metafeatures(ds, seed=0, max_rows=500)
    assert same(a, b)
    c = extract_metafeatures(ds, seed=1, max_rows=500)
    assert not same(a, c)  # another seed draws another sample
    # the full-data features do not depend on the sample
    for f in ("log_n_rows", "missing_ratio", "n_classes", "minority_class_ratio"):
        assert a[f] == c[f]
    # a sample keeps every class of the representative target, so n_classes-based values stay finite
    assert finite_fraction(a, "mfe.") >= 0.9


def test_missing_values_do_not_spoil_the_vector(load_corpus) -> None:
    ds = load_corpus("cleve")
    clean = extract_metafeatures(ds)
    rng = np.random.default_rng(0)
    X = ds.X.mask(rng.random(ds.X.shape) < 0.2)  # 20% of the cells, numeric and categorical
    holey = Dataset(ds.name, X, ds.y, ds.task, ds.categorical, "test")
    v = extract_metafeatures(holey)
    assert v["missing_ratio"] == pytest.approx(float(X.isna().to_numpy().mean()))
    assert 0.15 < v["missing_ratio"] < 0.25
    assert v["rows_with_missing_ratio"] > 0.5
    finite_clean = {k for k, x in clean.items() if math.isfinite(x)}
    finite_holey = {k for k, x in v.items() if math.isfinite(x)}
    assert len(finite_clean - finite_holey) <= 2, sorted(finite_clean - finite_holey)
    assert finite_fraction(v) >= 0.75


def test_wide_dataset(load_corpus) -> None:
    ds = load_corpus("genbase")  # 662 x 1,186 categorical features, 27 labels
    start = time.perf_counter()
    v = extract_metafeatures(ds)
    elapsed = time.perf_counter() - start
    assert elapsed < 30, f"wide dataset took {elapsed:.1f}s"
    assert v["log_n_features"] == pytest.approx(math.log(1186))  # counted on all columns, not the cap
    assert v["ratio_categorical"] == 1.0
    assert finite_fraction(v, "mfe.") >= 0.9
    assert finite_fraction(v) >= 0.75


def test_soft_timeout_skips_the_expensive_stages(load_corpus) -> None:
    ds = load_corpus("cleve")
    v = extract_metafeatures(ds, timeout=1e-9)
    assert tuple(v) == metafeature_names()
    assert finite_fraction(v, "mfe.") == 0.0
    assert math.isfinite(v["log_n_rows"]) and math.isfinite(v["label.cardinality"])


def test_record(load_corpus) -> None:
    ds = load_corpus("penguins")
    rec = metafeature_record(ds)
    assert isinstance(rec, MetaFeatureRecord)
    assert rec.dataset_id == ds.fingerprint and rec.version == EXTRACTOR_VERSION
    assert tuple(rec.values) == metafeature_names()
    assert same(rec.values, extract_metafeatures(ds))
    assert rec.extraction_seconds > 0


def test_bad_input(load_corpus) -> None:
    ds = load_corpus("penguins")
    with pytest.raises(InputError) as err:
        extract_metafeatures(ds, max_rows=5)
    assert "max_rows" in one_line(err)
    with pytest.raises(InputError) as err:
        extract_metafeatures(ds, timeout=0)
    assert "timeout" in one_line(err)
    with pytest.raises(InputError) as err:
        extract_metafeatures(ds.X)  # type: ignore[arg-type]
    assert "Dataset" in one_line(err)
    empty_y = ds.y.astype(object).where(pd.DataFrame(False, index=ds.y.index, columns=ds.y.columns))
    with pytest.raises(DataError) as err:
        extract_metafeatures(Dataset(ds.name, ds.X, empty_y, ds.task, ds.categorical, "test"))
    assert "missing" in one_line(err)


def test_fast_contingency_tables_match_pymfe_formulas() -> None:
    """The numpy replacements compute what pymfe computes with pd.crosstab."""
    rng = np.random.default_rng(0)
    eps = 1e-8
    for _ in range(25):
        x = rng.integers(0, rng.integers(2, 8), 400).astype(float)
        y = rng.choice(np.array(["a", "b", "c"]), 400)
        pij = pd.crosstab(x, y, normalize=True).values + eps
        isum, jsum2 = pij.sum(axis=0), np.sum(pij.sum(axis=1) ** 2)
        conc = (np.sum(pij**2 / isum) - jsum2) / (1.0 - jsum2)
        assert _fast_calc_conc(None, x, y) == pytest.approx(conc, rel=1e-9)
        joint = pd.crosstab(y, x, normalize=True).values + eps
        assert _fast_calc_joint_ent(None, x, y) == pytest.approx(-np.sum(joint * np.log2(joint)), rel=1e-9)
