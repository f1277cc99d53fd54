"""``metalearn models ...`` (the model registry) and ``metalearn predict`` (batch scoring).

From search to production: ``optimize --register NAME`` registers the search's model as a new version,
``models promote`` makes a version live, ``predict`` scores a file with it (every prediction is logged
with an id), ``models feedback`` sends the true labels of logged predictions, ``models drift`` checks
the live version's inputs and its scored feedback, ``models retrain`` searches again on new data
(warm-started) and registers the result without promoting it, ``models rollback`` undoes a promote.
Every command takes ``--kb`` (the registry lives in the KB file, its artifacts beside it).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple

import typer
from rich.markup import escape
from rich.table import Table

from metalearn.cli.commands import (
    DataArg,
    JsonOpt,
    KbOpt,
    MetricOpt,
    MlflowOpt,
    app,
    check_dataset_metric,
    console,
    format_number,
    load_data,
    out,
    print_json,
    print_kind_report,
    resolve_mlflow_target,
    with_search_options,
)
from metalearn.cli.errors import check_output
from metalearn.search.settings import SearchSettings  # at run time: with_search_options evaluates it

if TYPE_CHECKING:
    import pandas as pd

    from metalearn.registry.registry import ModelRegistry

models_app = typer.Typer(
    help="The model registry: list, show, promote, rollback, delete, evaluate, explain, compress, drift, retrain, feedback.",
    no_args_is_help=True,
)
app.add_typer(models_app, name="models")

NameArg = Annotated[str, typer.Argument(help="Model name (as given to `optimize --register NAME`).")]
VersionOpt = Annotated[
    int | None, typer.Option("--version", min=1, help="A version number (default: the live version).")
]
AliasOpt = Annotated[str, typer.Option("--alias", help="The alias to move: live or candidate.")]

#: dataset specs (not files) the loaders understand
_SPECS = ("sklearn", "corpus", "openml", "openml-task", "openml_task")
#: file endings ``predict --out`` writes
_OUT_ENDINGS = (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".parquet", ".pq")


def _say(text: str) -> None:
    """Plain text on stdout, never wrapped or read as markup."""
    out.print(text, markup=False, highlight=False, soft_wrap=True)


def _note(text: str) -> None:
    """A note on stderr (plain text)."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


@contextmanager
def _registry(kb: str | None, read_only: bool = False) -> Iterator[ModelRegistry]:
    """The registry of the KB file ``kb`` (never created here: a missing file holds no model), closed after."""
    from metalearn.data.errors import NotFoundError
    from metalearn.kb import open_kb, resolve_kb_path
    from metalearn.registry.registry import ModelRegistry

    where = resolve_kb_path(kb)
    if where != ":memory:" and not Path(where).exists():
        raise NotFoundError(
            f"no knowledge base at {where}, so no registered model: register one with "
            "`metalearn optimize DATA --register NAME`, or pass the KB that holds it with --kb"
        )
    store = open_kb(where, read_only=read_only)
    try:
        yield ModelRegistry(store)
    finally:
        store.close()


def _when(x: Any) -> str:
    """A timestamp (a datetime, naive ones UTC as the KB stores them, or ISO-8601 text) as
    ``2026-12-06 15:40:00 UTC``; anything else as it is."""
    if isinstance(x, str):
        try:
            x = datetime.fromisoformat(x)
        except ValueError:
            return x
    if isinstance(x, datetime):
        from metalearn.kb.records import as_utc

        return as_utc(x).strftime("%Y-%m-%d %H:%M:%S UTC")
    return "-" if x is None else str(x)


def _size(n: Any) -> str:
    if n is None:
        return "-"
    n = float(n)
    for unit in ("B", "KiB", "MiB"):
        if n < 1024 or unit == "MiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


def _version_label(version: int, aliases: Mapping[str, int]) -> str:
    held = sorted(a for a, v in aliases.items() if v == version)
    return f"version {version}" + (f" ({', '.join(held)})" if held else " (not live)")


# ------------------------------------------------------------------------------------------ reading
@models_app.command("list")
def models_list(kb: KbOpt = None, json_out: JsonOpt = False) -> None:
    """The registered models: versions, the latest, aliases (live, candidate), drift flags."""
    from metalearn.kb import resolve_kb_path

    where = resolve_kb_path(kb)
    if where != ":memory:" and not Path(where).exists():  # nothing registered; the file is not created
        models: list[dict[str, Any]] = []
    else:
        with _registry(kb, read_only=True) as reg:
            models = reg.list_models()
    if json_out:
        print_json({"models": models})
        return
    if not models:
        _say("no registered models (register one with `metalearn optimize DATA --register NAME`)")
        return
    table = Table(title=f"{len(models)} registered model(s)")
    for col in ("name", "kind", "versions", "latest", "aliases", "flags"):
        table.add_column(col)
    for m in models:
        aliases = ", ".join(f"{a}={v}" for a, v in sorted(m["aliases"].items())) or "-"
        table.add_row(escape(m["name"]), str(m["kind"]), str(m["versions"]), str(m["latest"]), aliases,
                      ", ".join(m["flags"]) or "-")
    out.print(table)


@models_app.command("show")
def models_show(name: NameArg, kb: KbOpt = None, json_out: JsonOpt = False) -> None:
    """A model's aliases, flags, versions and history.

    Each version: variant, created, CV score, refit metric, artifact size, parent; the history: register,
    promote, rollback, delete and flag events."""
    from metalearn.registry.registry import CV_BASES
    from metalearn.registry.variants import METHODS

    compressed = set(METHODS.values())  # variants that carry their parent's CV score
    with _registry(kb, read_only=True) as reg:
        doc = reg.show(name)
    if json_out:
        print_json(doc)
        return
    aliases = doc["aliases"]
    _say(f"model {name}: " + (", ".join(f"{a} -> version {v}" for a, v in sorted(aliases.items()))
                              or "no alias (nothing live: `metalearn models promote NAME VERSION`)"))
    flags = [f"{flag} on version {v['version']}" for v in doc["versions"] for flag in v["flags"]]
    _say("flags: " + (", ".join(flags) if flags else "none"))
    log = doc.get("log") or {}
    _say(f"prediction log: {log.get('predictions', 0)} predictions, {log.get('feedback', 0)} with feedback")
    _say("versions:")
    for v in doc["versions"]:
        metric = v["metric"]
        refit = ((v.get("metrics") or {}).get("refit") or {}).get(metric)
        model = v.get("model") or {}
        members = model.get("members") or []
        what = model.get("estimator") if model.get("type") == "pipeline" else (
            (members[0].get("estimator") or "ensemble of 1" if len(members) == 1 else f"ensemble of {len(members)}")
            if model.get("type") == "ensemble" else model.get("class"))
        if model.get("temperature") not in (None, 1.0):  # calibrated probabilities (metalearn.search.calibration)
            what = f"{what}, temperature {model['temperature']:.3g}"
        if model.get("biases"):  # a single class target's class biases (metalearn.search.calibration)
            what = f"{what}, class biases"
        if model.get("threshold") is not None:  # a binary label metric's decision threshold
            what = f"{what}, decision threshold {model['threshold']:.2f}"
        if model.get("class_weights") is not None:  # a multiclass label metric's class weights
            what = f"{what}, class weights {', '.join(f'{w:.3g}' for w in model['class_weights'])}"
        artifact = v.get("artifact") or {}
        held = f" [{', '.join(v['aliases'])}]" if v["aliases"] else ""
        flagged = f"; flagged {', '.join(v['flags'])}" if v["flags"] else ""
        _say(f"  version {v['version']}{held}{' (deleted)' if v['deleted'] else ''}: {v['variant']}, "
             f"created {_when(v['created_at'])}, cv {metric} {format_number(v.get('cv_score'))}"
             + (f" ({CV_BASES[v['cv_basis']]})" if v.get("cv_basis") in CV_BASES else "")
             + (f" (version {_cv_source(v)}'s: not cross-validated itself)" if v["variant"] in compressed else "")
             + f", refit {metric} {format_number(refit)}, "
             f"artifact {_size(artifact.get('bytes'))} {artifact.get('format', '')}, "
             f"parent {format_number(v.get('parent_version'))}, {what or '-'}{flagged}")
    _say("history:")
    for e in doc["events"]:
        detail = ", ".join(f"{k}={val}" for k, val in (e.get("detail") or {}).items()
                           if not isinstance(val, dict | list) and k not in ("reason", "from"))
        alias = f" {e['alias']}" if e.get("alias") else ""
        was = f" (was version {e['previous_version']})" if e.get("previous_version") is not None else ""
        _say(f"  #{e['seq']} {_when(e['at'])} {e['action']}{alias} version {e['version']}{was}"
             + (f" ({detail})" if detail else ""))


# ------------------------------------------------------------------------------------------ aliases
@models_app.command("promote")
def models_promote(
    name: NameArg,
    version: Annotated[int, typer.Argument(min=1, help="The version to promote.")],
    alias: AliasOpt = "live",
    mlflow_uri: MlflowOpt = None,
    kb: KbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Point an alias (default: live) at a version; the version's artifact is loaded and checked first.
    With --mlflow-uri the MLflow registered model's alias moves too."""
    target = resolve_mlflow_target(mlflow_uri)
    with _registry(kb) as reg:
        result = reg.promote(name, version, alias=alias)
    _sync_alias(target, result)
    if json_out:
        print_json(result)
        return
    before = result["previous_version"]
    if before == version:  # no change, no event: a rollback now would go further back
        _say(f"{name}: {alias} is already version {version}; nothing changed")
        _say_mlflow(result)
        return
    _say(f"{name}: {alias} -> version {version}" + (f" (was version {before})" if before is not None else "")
         + (f"; undo with `metalearn models rollback {name}" + (f" --alias {alias}`" if alias != "live" else "`")
            if before is not None else ""))
    _say_mlflow(result)


def _sync_alias(uri: str | None, result: dict[str, Any]) -> None:
    """Move the MLflow alias after the metalearn one (an MLflow failure is a warning in ``result``)."""
    from metalearn.registry.mlflow_sync import mirror_alias

    synced = mirror_alias(uri, result)
    if synced is not None:
        result["mlflow"] = synced


def _log_versions(uri: str | None, reg: ModelRegistry, name: str, versions: Sequence[int]) -> list[dict[str, Any]]:
    """Log registered versions to MLflow (after registering: an MLflow failure is a warning)."""
    if uri is None:
        return []
    from metalearn.registry.mlflow_sync import log_version

    return [log_version(uri, reg, reg.store.get_version(name, v)) for v in versions]


def _say_mlflow(result: Mapping[str, Any]) -> None:
    from metalearn.registry.mlflow_sync import describe

    synced = result.get("mlflow")
    for item in ([synced] if isinstance(synced, Mapping) else synced or []):
        _say(describe(item))


@models_app.command("rollback")
def models_rollback(name: NameArg, alias: AliasOpt = "live", mlflow_uri: MlflowOpt = None, kb: KbOpt = None,
                    json_out: JsonOpt = False) -> None:
    """Point an alias (default: live) back at the version it pointed at before the current one.
    With --mlflow-uri the MLflow registered model's alias moves too."""
    target = resolve_mlflow_target(mlflow_uri)
    with _registry(kb) as reg:
        result = reg.rollback(name, alias=alias)
    _sync_alias(target, result)
    if json_out:
        print_json(result)
        return
    _say(f"{name}: {alias} -> version {result['version']} (rolled back from version {result['previous_version']})")
    _say_mlflow(result)


@models_app.command("delete")
def models_delete(
    name: NameArg,
    version: Annotated[int, typer.Argument(min=1, help="The version to delete (not the live one).")],
    kb: KbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Mark a version deleted (it stays in the history; its files stay on disk until removed by hand)."""
    with _registry(kb) as reg:
        removed = reg.delete(name, version)
        where = reg.root / name / str(version)
    if json_out:
        print_json({"name": name, "version": version, "deleted": True, "aliases_removed": removed, "files": str(where)})
        return
    aliases = f"; the alias{'es' if len(removed) > 1 else ''} it held ({', '.join(removed)}) went with it" if removed else ""
    _say(f"{name}: version {version} deleted{aliases} (its files stay in {where} until removed by hand)")


# ------------------------------------------------------------------------------------------ variants
@models_app.command("compress")
def models_compress(
    name: NameArg,
    version: VersionOpt = None,
    method: Annotated[
        str | None, typer.Option("--method", help="Comma-separated: onnx (ONNX Runtime), prune (a smaller "
                                 "ensemble), distill (one LightGBM or MLP pipeline imitating the version). Default: all.")
    ] = None,
    data: Annotated[
        str | None,
        typer.Option("--data", help="Validation data (file or dataset spec) to measure and score on "
                     "(default: the training sample kept with the version: an in-sample score)."),
    ] = None,
    target: Annotated[
        list[str] | None, typer.Option("--target", "-t", help="Target column(s) of --data (default: the model's).")
    ] = None,
    mlflow_uri: MlflowOpt = None,
    kb: KbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Compressed variants of a version (ONNX, pruned ensemble, distilled pipeline), compared with it.

    Each variant is registered as a new version (not promoted); the table compares it with the version
    compressed (default: the live one, else the latest): size, single-row p50/p99 latency, rows/s on a
    10,000-row batch, validation score."""
    from metalearn.registry.registry import check_name
    from metalearn.registry.retrain import check_retrain_targets
    from metalearn.registry.variants import compress, validation_data

    check_name(name)
    mlflow_target = resolve_mlflow_target(mlflow_uri)
    methods = None if method is None else [m.strip() for m in method.split(",") if m.strip()]
    with _registry(kb) as reg:
        validation = None
        if data is not None:
            base = reg.working_version(name, version)
            if target:  # before the data is read
                check_retrain_targets(reg, base, list(target), "the validation data")
            table = _data_table(data)  # read once: its labels are checked, then its rows taken as the model's kind
            validation = validation_data(reg, base, table.frame, target, name=table.name, origin=table.origin)
        result = compress(reg, name, version, methods=methods, validation=validation,
                          on_status=None if json_out else lambda text: _note(f"{name}: {text}"))
        made = [int(r["version"]) for r in result.get("variants") or []
                if r.get("method") != "original" and r.get("version") is not None and not r.get("error")]
        if mlflow_target is not None:
            result = {**result, "mlflow": _log_versions(mlflow_target, reg, name, made)}
    if json_out:
        print_json(result)
        return
    _print_variants(name, result)
    _say_mlflow(result)


def _cv_source(v: Mapping[str, Any]) -> Any:
    """The version a compressed variant's CV score was measured on (its chain's start; the parent for a variant
    registered before the chain was recorded)."""
    return ((v.get("compression") or {}).get("cv_inherited") or {}).get("version", v.get("parent_version"))


def _print_variants(name: str, result: Mapping[str, Any]) -> None:
    rows = result.get("variants") or []
    original: Mapping[str, Any] = next((r for r in rows if r.get("method") == "original"), {})
    metric = original.get("metric") or "score"
    table = Table(
        title=f"compressed variants of {escape(name)} version {result.get('base_version')}",
        caption=f"measured on {result.get('rows_from')}; latency: one row; rows/s: a 10,000-row batch",
    )
    for col in ("variant", "version", "size", "p50 ms", "p99 ms", "rows/s", metric):
        table.add_column(col, justify="left" if col == "variant" else "right")
    for r in rows:
        if not r.get("error"):
            label = f"{r.get('method')} ({r['student']})" if r.get("student") else str(r.get("method"))
            table.add_row(escape(label), format_number(r.get("version")), _size(r.get("size_bytes")),
                          format_number(r.get("p50_ms"), 3), format_number(r.get("p99_ms"), 3), format_number(r.get("rows_per_s"), 3),
                          format_number(r.get("score")))
    out.print(table)
    in_sample = bool(result.get("in_sample"))
    for r in rows:
        cmp = r.get("compare") or {}
        if r.get("error"):
            _say(f"{r.get('method')}: not made: {r['error']}")
        elif cmp:
            _say(f"{r.get('method')} (version {r.get('version')}) vs original: {cmp['size_ratio']:.2f}x smaller, "
                 f"{cmp['speedup_p50']:.2f}x faster (p50), {cmp['throughput_ratio']:.2f}x rows/s, "
                 f"{metric} loss {100 * cmp['score_loss']:.2f} %" + (" in-sample" if in_sample else "")
                 + ((" (meets the target in-sample: 2x at < 0.5 % loss on the training rows; check it on held-out "
                     "rows with --data)" if in_sample else " (meets the target: 2x at < 0.5 % loss)")
                    if cmp.get("meets_target") else ""))
            if r.get("chosen_by"):
                _say(f"  kept {r.get('members')} of {r.get('of')} members, chosen by {r['chosen_by']}; "
                     f"calibration: {r.get('calibration')}")
    made = [str(r["version"]) for r in rows if r.get("method") != "original" and r.get("version") is not None]
    if made:
        _say(f"registered {name} version(s) {', '.join(made)} (not live: metalearn models promote {name} VERSION)")
    else:
        _say(f"{name}: no variant was registered")


# ------------------------------------------------------------------------------------------ monitoring
@models_app.command("drift")
def models_drift(
    name: NameArg,
    version: VersionOpt = None,
    report: Annotated[Path | None, typer.Option("--report", help="Also write an HTML drift report to this file.")] = None,
    threshold: Annotated[
        list[str] | None,
        typer.Option("--threshold", help="Override a drift threshold, e.g. psi=0.1, concept_drop=0.1, min_rows=50 "
                     "(repeat for several)."),
    ] = None,
    kb: KbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Data and concept drift of a version (default: the live one).

    Data drift: the logged inputs against the training data (PSI + KS / chi-square per feature, and the
    meta-feature distance); concept drift: the metric on the labelled feedback against training. Drifted
    versions are flagged (`models show`)."""
    from metalearn.monitoring.drift import env_thresholds
    from metalearn.registry.monitor import check_drift, drift_report_html

    # METALEARN_DRIFT_THRESHOLDS read and checked as the service reads it (a flag flipped with whichever checked
    # last while the CLI ignored it), --threshold overriding it
    thresholds = {**(env_thresholds() or {}), **(_thresholds(threshold or []) or {})} or None
    if report is not None:  # before the check sets or clears flags
        check_output(report, "--report")
    with _registry(kb) as reg:
        result = check_drift(reg, name, version=version, thresholds=thresholds)
        if report is not None:
            html = drift_report_html(reg, name, version=version, thresholds=thresholds)
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(html, encoding="utf-8")
    if json_out:
        print_json({**result, **({"report": str(report)} if report is not None else {})})
        return
    _print_drift(name, result)
    if report is not None:
        _say(f"report written to {report}")


@models_app.command("evaluate")
def models_evaluate(
    name: NameArg,
    data: Annotated[
        str | None,
        typer.Argument(help="Labelled data: a CSV/parquet/ARFF file, or sklearn:NAME, corpus:NAME, ... "
                            "(not with --feedback)."),
    ] = None,
    feedback: Annotated[
        bool, typer.Option("--feedback", help="Score on the prediction log's labelled predictions instead of DATA, "
                                              "beside the predictions served for them.")
    ] = False,
    version: VersionOpt = None,
    metric: Annotated[str | None, typer.Option(
        "--metric", help="The metric reported as the score and ranking the features (default: the version's); "
                         "every metric of the kind is printed.")] = None,
    importance: Annotated[
        bool, typer.Option("--importance", help="Also each feature's permutation importance on these rows.")
    ] = False,
    repeats: Annotated[int, typer.Option("--repeats", min=1, max=100, help="Shuffles of each feature.")] = 5,
    max_rows: Annotated[
        int, typer.Option("--max-rows", min=2, help="Rows the importance uses at most (a random sample).")
    ] = 5000,
    time_limit: Annotated[
        float | None, typer.Option("--time-limit", min=0, help="Seconds after which no more shuffles start.")
    ] = None,
    top: Annotated[int, typer.Option("--top", min=1, help="Features shown (the JSON has all).")] = 20,
    kb: KbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Score a registered model (default: its live version) on labelled data — the features and the true
    target values, e.g. a held-out test file — with every metric of its kind; nothing is logged or stored.

    ``--feedback``: on the prediction log's labelled predictions instead (the logged inputs, of every version,
    whose true labels came back with `metalearn models feedback`), beside the predictions that were served for
    them — a candidate version against the live one on real traffic before promoting it.

    ``--importance``: each feature's permutation importance on those rows (the mean drop of the metric when
    the feature's values are shuffled, over ``--repeats`` shuffles; its standard deviation and p-value)."""
    from metalearn.data.errors import InputError

    if (data is None) == (not feedback):
        raise InputError("give the labelled DATA to score the model on, or --feedback for the prediction log's "
                         "labelled predictions (one of them, not both)")
    options: dict[str, Any] = {"metric": metric, "importance": importance, "n_repeats": repeats,
                               "max_rows": max_rows, "time_limit": time_limit}
    with _registry(kb, read_only=True) as reg:
        record = reg.resolve(name, version)  # an unknown model / version fails before the data is read
        if data is None:
            from metalearn.registry.monitor import evaluate_on_feedback

            result = evaluate_on_feedback(reg, name, record.version, **options)
        else:
            result = reg.evaluate(name, _data_table(data).frame, record.version, **options)
    if json_out:
        print_json(result)
        return
    for w in result["warnings"]:
        _note(f"warning: {w}")
    every = " of every target" if len(result.get("targets") or {}) > 1 else ""
    skipped = f" ({result['unlabelled_rows']} without a label{every} skipped)" if result["unlabelled_rows"] else ""
    where = result.get("source") or f"{result['rows']} labelled rows"
    _say(f"model {name} version {result['version']} on {where}{skipped}: {result['metric']} {format_number(result['score'])}")
    _say("  " + ", ".join(f"{k} {format_number(v)}" for k, v in result["metrics"].items()))
    if result.get("targets"):  # a multitask model's per-target metrics are keyed t<i>:
        _say("  (" + ", ".join(f"{k} = {t!r}" for k, t in result["targets"].items()) + ")")
    served = result.get("served")
    if served is not None:
        by = ", ".join(f"version {v}: {n}" for v, n in served["versions"].items())
        _say(f"the predictions served for them ({by}): {result['metric']} {format_number(served['score'])}")
    imp = result["importance"]
    if imp is not None:
        better = "higher" if result["greater_is_better"] else "lower"
        _say(f"permutation importance ({result['metric']} lost when a feature is shuffled; {better} is better; "
             f"{imp['rows']} rows, {imp['shuffle_sets']} shuffles):")
        _say(f"  {'feature':<32} {'importance':>11} {'stddev':>9} {'p_value':>8}")
        for f in imp["features"][:top]:
            _say(f"  {str(f['feature'])[:32]:<32} {format_number(f['importance'], 5):>11} {format_number(f['stddev'], 5):>9} "
                 f"{format_number(f['p_value'], 3):>8}")
        if len(imp["features"]) > top:
            _say(f"  ... {len(imp['features']) - top} more features (--top, or --json for all)")


@models_app.command("explain")
def models_explain(
    name: NameArg,
    data: DataArg,
    version: VersionOpt = None,
    rows: Annotated[int, typer.Option("--rows", min=1, help="Explain the first N rows of the data.")] = 5,
    top: Annotated[int, typer.Option("--top", min=1, help="Features shown per row (the rest summed).")] = 5,
    permutations: Annotated[
        int, typer.Option("--permutations", min=1, max=100, help="Feature orders sampled per background row.")
    ] = 8,
    background: Annotated[
        int, typer.Option("--background", min=1, max=200, help="Rows of the training sample to start from.")
    ] = 16,
    kb: KbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Why a registered model (default: its live version) predicts what it does for rows of a file: each
    feature's Shapley value — how much it moved the output (a class's probability, or the value) from the
    model's mean output on the training sample kept with the version. Nothing is logged or stored."""
    from metalearn.registry.registry import MAX_EXPLAIN_ROWS

    with _registry(kb, read_only=True) as reg:
        record = reg.resolve(name, version)  # an unknown model / version fails before the data is read
        targets = [t.name for t in reg.signature(record).targets]
        frame, _ignored = _read_rows(data, targets)
        result = reg.explain(name, frame.head(min(rows, MAX_EXPLAIN_ROWS)), record.version,
                             n_permutations=permutations, background=background, top=None if json_out else top)
    if json_out:
        print_json(result)
        return
    for w in result["warnings"]:
        _note(f"warning: {w}")
    _say(f"model {name} version {result['version']}: Shapley values against {result['background_rows']} training "
         f"rows, {result['n_permutations']} feature orders each")
    for i, row in enumerate(result["rows"]):
        for target, outputs in row.items():
            label, block = _explained_output(outputs)
            what = f"{target}" if label == "value" else f"{target} = {label}: probability"
            _say(f"row {i}: {what} {format_number(block['prediction'])} (mean on the {result['background_rows']} background "
                 f"rows {format_number(block['base'])})")
            for c in block["contributions"]:
                _say(f"  {c['value']:+.4g}  {c['feature']}")
            if block["others"]:
                _say(f"  {block['others']:+.4g}  (the other features)")


def _explained_output(outputs: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    """The output a row's explanation shows: the value, or the most probable class's probability."""
    label = max(outputs, key=lambda k: outputs[k]["prediction"])
    return label, outputs[label]


def _thresholds(pairs: Sequence[str]) -> dict[str, Any] | None:
    """``--threshold KEY=VALUE`` options as a mapping (the drift checks validate names and values)."""
    from metalearn.data.errors import InputError

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--threshold {pair!r}: give NAME=VALUE, e.g. psi=0.1")
        value: Any = text.strip()
        for cast in (int, float):
            try:
                value = cast(value)
                break
            except ValueError:
                continue
        out[key.strip()] = value
    return out or None


def _verdict(check: Mapping[str, Any]) -> str:
    """YES / no / not tested (too few rows, or a metric undefined on the latest window: "no" said it passed)."""
    if check.get("drifted"):
        return "YES"
    untested = check.get("status") not in (None, "ok") or ("latest_score" in check and check.get("latest_score") is None)
    return "not tested" if untested else "no"


def _print_drift(name: str, result: Mapping[str, Any]) -> None:
    data = result.get("data") or {}
    _say(f"model {name} version {result.get('version')}: drift check at {_when(result.get('checked_at'))}")
    _say(f"data drift: {_verdict(data)} - {data.get('reason') or data.get('status') or ''}")
    for f in [f for f in data.get("features") or [] if f.get("drifted")][:20]:
        _say(f"  {f.get('name')} ({f.get('kind')}): {f.get('reason')}")
    concept = result.get("concept")
    verdicts = [_verdict(data)]
    if concept is None:
        _say("concept drift: not checked (no labelled feedback: `metalearn models feedback NAME LABELS.csv`)")
    else:
        verdicts.append(_verdict(concept))
        _say(f"concept drift: {verdicts[-1]} - {concept.get('reason') or concept.get('status') or ''}")
    flags = result.get("flags") or []
    kept = " (a check that did not test keeps the flag it raised before)" if flags and "not tested" in verdicts else ""
    _say("flags: " + (", ".join(str(f) for f in flags) if flags else "none") + kept)


@models_app.command("feedback")
def models_feedback(
    name: NameArg,
    labels: Annotated[Path, typer.Argument(help="CSV/parquet with a prediction_id column and the target column(s).")],
    kb: KbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Send the true labels of logged predictions (ids from `metalearn predict`'s output).

    They score the model on live data: `models drift` reports concept drift from them."""
    from metalearn.data.errors import InputError
    from metalearn.data.loading import load_frame_file
    from metalearn.kb.model_store import missing_model
    from metalearn.pipelines.signature import check_unique_columns
    from metalearn.registry.registry import check_name

    check_name(name)
    with _registry(kb) as reg:
        versions = reg.store.list_versions(name)
        if not versions:
            raise missing_model(name)
        sig = reg.signature(versions[-1])
        targets = [t.name for t in sig.targets]
        frame = load_frame_file(labels)
        check_unique_columns(frame, repr(labels.name))
        missing = [c for c in ("prediction_id", *targets) if c not in frame.columns]
        if missing:
            raise InputError(
                f"{labels.name!r} lacks column(s) {', '.join(map(repr, missing))}: it needs prediction_id (as "
                f"`metalearn predict` wrote it) and the true value of {', '.join(map(repr, targets))}"
            )
        ignored = [str(c) for c in frame.columns if c not in ("prediction_id", *targets)]
        complete = frame[["prediction_id", *targets]].notna().all(axis=1)
        classes = {t.name: t.classes for t in sig.targets}
        items = [{"prediction_id": str(row["prediction_id"]),
                  "labels": {t: _label(row[t], classes[t]) for t in targets}}
                 for _, row in frame[complete].iterrows()]
        if not items:
            raise InputError(f"{labels.name!r} has no row with a prediction_id and every target value; nothing was stored")
        result = reg.feedback(name, items)
        counts = reg.store.counts(name)
    if json_out:
        print_json({**result, "skipped_rows": int((~complete).sum()), "ignored_columns": ignored})
        return
    if ignored:
        _note(f"note: column(s) {', '.join(ignored[:8])}{' ...' if len(ignored) > 8 else ''} ignored")
    if not complete.all():
        _note(f"note: {int((~complete).sum())} row(s) without a prediction_id or a label skipped")
    _say(f"{name}: {result['stored']} label(s) stored ({counts.get('feedback', '?')} in all); "
         f"`metalearn models drift {name}` scores them")


def _label(value: Any, classes: Sequence[Any] | None) -> Any:
    """A label read from a file as the model's class (``1.0`` or ``"1"`` for class ``1``; strings as
    strings); regression targets as floats."""
    if hasattr(value, "item"):
        value = value.item()
    if not classes:
        try:
            return float(value)
        except (TypeError, ValueError):
            return value
    by_text = {str(c): c for c in classes}
    text = str(value)
    if text in by_text:
        return by_text[text]
    if isinstance(value, float) and value.is_integer() and str(int(value)) in by_text:
        return by_text[str(int(value))]
    return value


# ------------------------------------------------------------------------------------------ retrain
@models_app.command("retrain")
@with_search_options
def models_retrain(
    name: NameArg,
    data: Annotated[str | None, typer.Option("--data", help="New training data: a CSV/parquet/ARFF file, or "
                                             "sklearn:NAME, openml:DID, corpus:NAME.")] = None,
    feedback: Annotated[
        bool, typer.Option("--feedback", help="Train on the prediction log's labelled predictions too (after "
                                              "--data's rows, or alone).")
    ] = False,
    target: Annotated[
        list[str] | None,
        typer.Option("--target", "-t", help="Target column(s) (default: the model's)."),
    ] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="Task kind (default: the model's).")] = None,
    metric: MetricOpt = None,
    version: Annotated[
        int | None, typer.Option("--version", min=1, help="Retrain from this version (default: the live one, else the latest).")
    ] = None,
    *,
    settings: SearchSettings,  # optimize's search options (with_search_options)
    mlflow_uri: MlflowOpt = None,
    kb: KbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Search again on new data (warm-started) and register the result as a new version, not live.

    Warm-started from the model's configurations and the KB; the new version's variant is retrain and it is
    never promoted here. ``--feedback``: the prediction log's labelled predictions are training rows too (after
    ``--data``'s, or alone); the version records them, and `models evaluate --feedback` leaves them out when it
    scores it. Takes optimize's search options."""
    from metalearn.data.errors import InputError
    from metalearn.registry.registry import check_name
    from metalearn.registry.retrain import check_retrain_targets, feedback_data, retrain
    from metalearn.runtime.progress import SearchProgress

    check_name(name)
    if data is None and not feedback:
        raise InputError("give the new training data with --data FILE, or --feedback to train on the prediction "
                         "log's labelled predictions (or both)")
    if feedback and (target or kind):
        raise InputError("--feedback retrains on the model's own targets and kind: drop --target / --kind (a --data "
                         "file must hold the model's target columns)")
    mlflow_target = resolve_mlflow_target(mlflow_uri)
    started = time.monotonic()
    with _registry(kb) as reg:
        base = reg.working_version(name, version)
        task = reg.task(base)
        if target:  # before the data is read as the model's kind, which another target may not have
            check_retrain_targets(reg, base, list(target))
        used: list[str] = []
        if feedback:  # the labelled log in the model's task, after the file's rows (read as a table)
            ds, used = feedback_data(reg, name, None if data is None else _data_table(data).frame, version=version)
        else:  # the same loader and options as optimize; the target(s) and kind default to the model's
            assert data is not None
            ds = load_data(data, list(target) if target else list(task.targets), kind or str(task.kind), metric)
        check_dataset_metric(ds)
        if not json_out:
            print_kind_report(ds)
        with SearchProgress(console, ds, settings, enabled=not json_out or console.is_terminal) as progress:
            record = retrain(reg, name, ds, settings, version=version, on_status=progress.status,
                             on_trial=progress.update, feedback=used)
        doc = {**reg.version_dict(record, reg.store.aliases(name)), "seconds": time.monotonic() - started}
        if mlflow_target is not None:
            doc["mlflow"] = _log_versions(mlflow_target, reg, name, [record.version])[0]
    if json_out:
        print_json(doc)
        return
    for warning in doc["warnings"]:  # the search's (a better earlier run it did not resume, repeated rows ...)
        _note(f"warning: {warning}")
    parent = f" from version {record.parent_version}" if record.parent_version is not None else ""
    _say(f"retrained {name}{parent} on {ds.name} ({ds.n_rows} rows): {record.metric} "
         f"{format_number(doc.get('cv_score'))} (cross-validated) in {doc['seconds']:.1f} s")
    _say(f"registered {name} version {record.version} (not live: metalearn models promote {name} {record.version})")
    _say_mlflow(doc)


# ------------------------------------------------------------------------------------------ predict
@app.command()
def predict(
    name: NameArg,
    data: DataArg,
    out_file: Annotated[
        Path | None,
        typer.Option("--out", help="Where to write the predictions (.csv, .tsv, .parquet; default: CSV on stdout)."),
    ] = None,
    version: VersionOpt = None,
    log: Annotated[bool, typer.Option("--log/--no-log", help="Log the predictions (needed for feedback and drift).")] = True,
    kb: KbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Batch predictions of a registered model (default: its live version) for the rows of a file.

    The rows are checked against the training schema (a missing, extra or mistyped column is an error
    naming it; unseen categories are warnings). Writes prediction_id, model_version, each target's
    prediction and, for classes, ``<target>:proba:<class>`` probabilities. Predictions are logged with
    their id (send the true labels with `metalearn models feedback`)."""
    import pandas as pd

    from metalearn.data.errors import InputError
    from metalearn.data.loading import write_frame_file
    from metalearn.registry.registry import MAX_BATCH_ROWS

    if out_file is not None and not str(out_file).lower().endswith(_OUT_ENDINGS):
        raise InputError(f"--out {str(out_file)!r}: write predictions to a {', '.join(_OUT_ENDINGS)} file")
    if out_file is not None:  # before anything is predicted and logged
        check_output(out_file, "--out")
    started = time.perf_counter()
    with _registry(kb) as reg:
        record = reg.resolve(name, version)  # an unknown model / version fails before the data is read
        aliases = reg.store.aliases(name)
        targets = [t.name for t in reg.signature(record).targets]
        frame, ignored = _read_rows(data, targets)
        if len(frame) > MAX_BATCH_ROWS:  # every batch checked before the first is logged
            reg.signature(record).validate(frame)
        parts: list[pd.DataFrame] = []
        warnings: list[str] = []
        for start in range(0, len(frame), MAX_BATCH_ROWS):
            chunk = frame.iloc[start:start + MAX_BATCH_ROWS].reset_index(drop=True)
            batch = reg.predict(name, chunk, version=record.version, log=log)
            parts.append(batch.frame())
            warnings += [w for w in batch.warnings if w not in warnings]
        if not parts:  # no rows: let the schema check say so
            reg.predict(name, frame, version=record.version, log=log)
    result = pd.concat(parts, ignore_index=True)
    result.insert(1, "model_version", record.version)
    seconds = time.perf_counter() - started
    if out_file is not None:
        write_frame_file(result, out_file)
    label = _version_label(record.version, aliases)
    info = {"name": name, "version": record.version, "aliases": sorted(a for a, v in aliases.items()
                                                                       if v == record.version),
            "rows": len(result), "logged": log, "out": str(out_file) if out_file is not None else None,
            "ignored_columns": ignored, "warnings": warnings, "seconds": seconds}
    if json_out:
        if out_file is None:
            info["predictions"] = result.to_dict(orient="records")
        print_json(info)
        return
    if ignored:
        _note(f"note: target column(s) {', '.join(map(repr, ignored))} in the data ignored (the model predicts them)")
    for w in warnings:
        _note(f"warning: {w}")
    done = (f"{name} {label}: {len(result)} rows predicted in {seconds:.1f} s"
            + (f", {len(result)} logged" if log else ", not logged"))
    if out_file is None:
        sys.stdout.write(result.to_csv(index=False))
        _note(done)
    else:
        _say(f"{done}; written to {out_file}")


def _read_rows(data: str, targets: Sequence[str]) -> tuple[pd.DataFrame, list[str]]:
    """The rows of ``data`` (a file, or a dataset spec: its features) and the target columns dropped (a
    spec's own, a file's those of ``targets`` it has)."""
    table = _data_table(data)
    dropped = table.targets if table.targets is not None else [t for t in targets if t in table.frame.columns]
    return table.frame.drop(columns=dropped), dropped


class _DataTable(NamedTuple):
    """The table of a DATA argument — a file's rows, or a dataset spec's features and targets — read once."""

    frame: pd.DataFrame
    targets: list[str] | None  # the spec's target columns (None for a file)
    name: str  # what the loaders call it in their messages: the spec's dataset name, the file's name without ending
    origin: str  # ``file:PATH``, or the spec's origin


def _data_table(data: str) -> _DataTable:
    """The :class:`_DataTable` of ``data``."""
    import pandas as pd

    from metalearn.data.loading import data_file_stem, load_frame_file

    scheme, sep, _rest = data.strip().partition(":")
    if sep and scheme.lower() in _SPECS:
        ds = load_data(data, None, None, None)
        return _DataTable(pd.concat([ds.X, ds.y], axis=1).reset_index(drop=True), [str(t) for t in ds.task.targets],
                          ds.name, ds.origin)
    path = Path(data.strip()).expanduser()  # named as load_dataset names a file
    return _DataTable(load_frame_file(data), None, data_file_stem(path), f"file:{path}")
