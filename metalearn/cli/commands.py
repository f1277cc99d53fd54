"""The ``metalearn`` command line.

Every command prints a one-line ``error: ...`` (and exits non-zero) for bad input instead of a traceback;
``--debug`` (or ``METALEARN_DEBUG=1``) shows the traceback of unexpected errors.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import os
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from metalearn.cli.errors import comma_names
from metalearn.registry import REGISTER_HELP
from metalearn.search.settings import PARAMS, SearchSettings, defaults, params

app = typer.Typer(
    name="metalearn",
    help="Meta-learning warm-start AutoML: recommend configurations from a knowledge base and warm-start SMAC.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
kb_app = typer.Typer(help="Inspect, build, export, import and evaluate the knowledge base.", no_args_is_help=True)
app.add_typer(kb_app, name="kb")

console = Console(stderr=True)
out = Console()

KbOpt = Annotated[
    str | None,
    typer.Option("--kb", help="Knowledge-base file (default: $METALEARN_KB or the per-user default file)."),
]
TargetOpt = Annotated[
    list[str] | None,
    typer.Option("--target", "-t", help="Target column (repeat for several targets). Not needed for sklearn:/openml:/corpus: data."),
]
KindOpt = Annotated[
    str | None,
    typer.Option("--kind", help="Override the inferred task kind: binary, multiclass, regression, multilabel, multitarget, multitask."),
]
MlflowOpt = Annotated[
    str | None,
    typer.Option("--mlflow-uri", help="Also log each registered version to this MLflow tracking/model registry "
                 "(e.g. sqlite:///mlflow.db, http://host:5000; default: $METALEARN_MLFLOW_URI; needs "
                 "pip install 'metalearn\\[mlflow]'). An MLflow failure is a warning: the version stays registered."),
]


def resolve_mlflow_target(explicit: str | None) -> str | None:
    """The MLflow URI to sync with (the flag, else $METALEARN_MLFLOW_URI), checked before any work: a URI
    without mlflow installed is refused in one line."""
    from metalearn.registry.mlflow_sync import mlflow_uri, require_mlflow

    uri = mlflow_uri(explicit)
    if uri is not None:
        require_mlflow()
    return uri


MetricOpt = Annotated[str | None, typer.Option("--metric", help="Metric to optimise (default: the kind's AMLB default).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
DataArg = Annotated[
    str,
    typer.Argument(help="A CSV/parquet/ARFF file, or sklearn:NAME, openml:DID, openml-task:TID, corpus:NAME."),
]

#: the defaults of the search parameters as the CLI's ``optimize`` / ``models retrain`` options give them
SEARCH_DEFAULTS = defaults("cli")


def search_option(name: str) -> Any:
    """The ``optimize`` option of search parameter ``name``: its flag and help as
    :mod:`metalearn.search.settings` declares them (SearchSettings validates the value)."""
    param = PARAMS[name]
    low = f" (>= {param.ge:g})" if param.ge is not None else f" (> {param.gt:g})" if param.gt is not None else ""
    return typer.Option(param.cli, help=param.help + low)


def search_settings(**values: Any) -> Any:
    """``SearchSettings`` from the ``optimize`` options; an invalid value is a usage error naming its flag."""
    from metalearn.search.settings import SearchSettings, SettingError

    try:
        return SearchSettings.from_params(**values)
    except SettingError as exc:
        param = PARAMS.get(exc.param or "")
        if param is None or not param.flags:
            raise
        raise typer.BadParameter(str(exc), param_hint=list(param.flags)) from None


def with_search_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give a command the search parameters' options in place of its keyword-only ``settings`` parameter.

    One option a parameter the CLI exposes (:func:`~metalearn.search.settings.params`, in their declared
    order), with :func:`search_option`'s flag and help and :data:`SEARCH_DEFAULTS`' default; the command gets
    them as ``settings``, a ``SearchSettings`` made by :func:`search_settings` (a bad value is a usage error
    naming its flag, raised before the command runs). Typer reads the signature set here."""
    signature = inspect.signature(command, eval_str=True)  # Typer needs the annotations, not their text
    own = list(signature.parameters.values())
    at = [p.name for p in own].index("settings")
    options = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=SEARCH_DEFAULTS[name],
                          annotation=Annotated[PARAMS[name].annotation("cli"), search_option(name)])
        for name in params("cli")
    ]
    signature = signature.replace(parameters=[*own[:at], *options, *own[at + 1:]])

    @functools.wraps(command)
    def with_settings(**values: Any) -> None:
        settings = search_settings(**{name: values.pop(name) for name in params("cli")})
        command(**values, settings=settings)

    with_settings.__signature__ = signature  # type: ignore[attr-defined]
    with_settings.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()}
    return with_settings


def load_data(data: str, target: list[str] | None, kind: str | None, metric: str | None, corpus: str | None = None):
    """The dataset a command's ``DATA`` argument names (:func:`metalearn.data.loading.load_dataset`), its ``--target``
    options one target name or several."""
    from metalearn.data.loading import load_dataset

    tgt: Any = None
    if target:
        tgt = target[0] if len(target) == 1 else list(target)
    return load_dataset(data, target=tgt, kind=kind, metric=metric, corpus=corpus)


def check_dataset_metric(ds: Any) -> None:
    """Refuse (InputError) a metric that is not one of the task kind's, before anything is written."""
    from metalearn.data.metrics import check_metric

    check_metric(ds.task.kind, ds.task.metric)


def _open_kb(path: str | None, read_only: bool = False, seed_from_shipped: bool = True, current: bool = False):
    from metalearn.kb.shipped import open_default_kb

    return open_default_kb(path, read_only=read_only, seed_from_shipped=seed_from_shipped, current=current)


def print_json(obj: Any) -> None:
    """Write ``obj`` to stdout as the ``--json`` output: indented JSON, datetimes as UTC text ending in ``Z``, numpy
    scalars as numbers, NaN / infinity as null."""
    from metalearn.data.numbers import json_safe
    from metalearn.kb.records import utc_text

    def default(o: Any) -> Any:
        if isinstance(o, datetime):  # before .item: a pandas Timestamp is a datetime; UTC text with "Z", as the API's
            return utc_text(o)
        if hasattr(o, "item"):
            return o.item()
        if hasattr(o, "isoformat"):
            return o.isoformat()
        if isinstance(o, set | tuple):
            return list(o)
        return str(o)

    sys.stdout.write(json.dumps(json_safe(json.loads(json.dumps(obj, default=default))), indent=2) + "\n")


def format_number(x: Any, digits: int = 4) -> str:
    """A value for a table cell: a float to ``digits`` significant digits (``nan`` for NaN), None as ``-``, anything
    else as its text."""
    if x is None:
        return "-"
    if isinstance(x, float):
        return "nan" if math.isnan(x) else f"{x:.{digits}g}"
    return str(x)


# --------------------------------------------------------------------------------------------- data
@app.command()
def metafeatures(
    data: DataArg,
    target: TargetOpt = None,
    kind: KindOpt = None,
    json_out: JsonOpt = False,
    seed: Annotated[int, typer.Option(help="Random seed (subsampling, landmarkers).")] = 0,
    kb: Annotated[
        str | None,
        typer.Option("--kb", help="Knowledge-base file whose stored vector of this dataset is shown instead of "
                     "extracting it (default: $METALEARN_KB or the per-user default file, when it exists). "
                     "Read only: nothing is written."),
    ] = None,
) -> None:
    """Extract the meta-feature vector of a dataset (or show the one the knowledge base stores for it).

    Some features are stored log-scaled (``log_n_*``: natural log; heavy-tailed ones: sign(x)*log1p(|x|));
    the table says which and shows their raw value, --json lists them under "transforms" and "raw".
    """
    from metalearn.metalearning.metafeatures import EXTRACTOR_VERSION, not_computable

    ds = load_data(data, target, kind, None)
    if not json_out:
        print_kind_report(ds)
    with console.status(f"extracting meta-features of {ds.name} ({ds.n_rows} x {ds.n_features})"):
        values, seconds, cached = _metafeatures_of(ds, seed, kb)
    transforms = {k: t for k in values if (t := _transform_of(k))}
    raw = {k: _raw_value(transforms[k], values[k]) for k in transforms}
    missing = not_computable(values, ds.task)
    if json_out:
        print_json(
            {
                "dataset": ds.name,
                "dataset_id": ds.dataset_id,
                "kind": str(ds.task.kind),
                "targets": _target_kinds(ds.task),
                "version": EXTRACTOR_VERSION,
                "seconds": seconds,
                "cached": cached,
                "metafeatures": values,
                "transforms": transforms,
                "raw": raw,
                "not_computable": missing,
            }
        )
        return
    table = Table(
        title=f"{ds.name}: {ds.task.kind}, {ds.n_rows} rows x {ds.n_features} features ({EXTRACTOR_VERSION})",
        caption="value: as stored and compared by the recommenders; raw: before the transform "
        "(ln: natural log; slog1p: sign(x)*log1p(|x|), for heavy-tailed features)",
    )
    table.add_column("meta-feature")
    table.add_column("value", justify="right")
    table.add_column("transform")
    table.add_column("raw", justify="right")
    for k, v in values.items():
        table.add_row(escape(k), format_number(v), transforms.get(k, ""), format_number(raw[k]) if k in raw else "")
    out.print(table)
    where = "read from the knowledge base" if cached else f"in {seconds:.2f} s"
    console.print(f"{len(values)} meta-features {where}" + _not_computable_text(missing))



def _not_computable_text(missing: dict[str, str]) -> str:
    """``; 28 not computable: 16 ... (why), 12 ... (why)``: the meta-features without a value grouped by
    why (:func:`~metalearn.metalearning.metafeatures.not_computable`), with a few names each."""
    if not missing:
        return ""
    groups: dict[str, list[str]] = {}
    for name, why in missing.items():
        groups.setdefault(why, []).append(name)
    parts = []
    for why, names in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        parts.append(f"{len(names)} {why} ({shown})")
    return (f"; {len(missing)} not computable (NaN: the recommenders drop a meta-feature most KB datasets of "
            "the kind lack, and fill a missing value with the KB's median): " + "; ".join(parts))


def _metafeatures_of(ds: Any, seed: int, kb: str | None) -> tuple[dict[str, float], float, bool]:
    """(values, seconds, cached): the KB's stored vector of ``ds`` when the KB file exists and holds it
    (never created or written here), else the vector extracted now."""
    import time

    from metalearn.data.errors import NotFoundError
    from metalearn.kb import open_kb, resolve_kb_path
    from metalearn.metalearning.metafeatures import EXTRACTOR_VERSION, metafeature_record

    start = time.perf_counter()
    where = resolve_kb_path(kb)
    if where != ":memory:" and Path(where).exists():
        store = open_kb(where, read_only=True)
        try:
            rec = store.get_metafeatures(ds.dataset_id, EXTRACTOR_VERSION)
            return dict(rec.values), time.perf_counter() - start, True
        except NotFoundError:
            pass
        finally:
            store.close()
    rec = metafeature_record(ds, seed=seed)
    return dict(rec.values), rec.extraction_seconds, False


def _transform_of(name: str) -> str:
    """How meta-feature ``name`` is stored: "ln", "slog1p" (sign(x)*log1p(|x|)) or "" (raw)."""
    from metalearn.metalearning.metafeatures import SIGNED_LOG_FEATURES

    if name in SIGNED_LOG_FEATURES:
        return "slog1p"
    return "ln" if name.startswith("log_") else ""


def _raw_value(transform: str, value: float | None) -> float | None:
    """The value before ``transform`` (the inverse of the stored scale)."""
    if value is None or not math.isfinite(value):
        return value
    raw = math.exp(value) if transform == "ln" else math.copysign(math.expm1(abs(value)), value)
    return float(f"{raw:.12g}")  # exp(ln(178)) is 177.99999999999997


def _target_kinds(task: Any) -> list[dict[str, str]]:
    """The kind of every target and why (the inference's reason, or that it was given and checked)."""
    reasons = task.kind_reasons or ("",) * task.n_targets
    return [{"name": name, "kind": str(k), "reason": reason}
            for name, k, reason in zip(task.targets, task.target_kinds, reasons, strict=True)]


#: targets of the same kind and reason the kind report prints on one line when there are at least this many
#: (a multi-label dataset's 53 labels took 53 lines before anything else); fewer get a line each
KIND_GROUP_AT = 5
#: the target names such a line shows before "... and N more"
KIND_GROUP_SHOWN = 3


def _kind_report_lines(task: Any) -> list[str]:
    """The kind report's lines: a target's line (:meth:`~metalearn.data.task.Task.kind_report`), or, where at least
    :data:`KIND_GROUP_AT` targets share their kind and reason, one line for them at the first one's place
    (``53 targets ('A.A1', 'A.A2', 'A.A3', ... and 50 more): binary - reason``). ``--json`` lists every target."""
    lines = task.kind_report()
    kinds = _target_kinds(task)
    groups: dict[tuple[str, str], list[int]] = {}
    for i, t in enumerate(kinds):
        groups.setdefault((t["kind"], t["reason"]), []).append(i)
    keys = list(task.target_keys())  # a multitask target's metric prefix (t0, ...) beside its name, as kind_report
    out: list[str] = []
    for i, t in enumerate(kinds):
        members = groups[(t["kind"], t["reason"])]
        if len(members) < KIND_GROUP_AT:
            out.append(f"target {lines[i]}")
        elif members[0] == i:
            shown = ", ".join(f"{kinds[j]['name']!r}" + (f" ({keys[j]})" if keys else "")
                              for j in members[:KIND_GROUP_SHOWN])
            more = len(members) - KIND_GROUP_SHOWN
            out.append(f"{len(members)} targets ({shown}, ... and {more} more): {t['kind']}"
                       + (f" - {t['reason']}" if t["reason"] else ""))
    return out


def print_kind_report(ds: Any) -> None:
    """Each target's kind and why (targets of a shared kind and reason grouped: :func:`_kind_report_lines`), and
    what became of each date column."""
    for line in _kind_report_lines(ds.task):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    for source, parts in ds.dates:
        made = f"the days since 1970-01-01 and {', '.join(parts)}" if parts else "the days since 1970-01-01"
        console.print(f"date column {source!r}: used as {made}", markup=False, highlight=False, soft_wrap=True)
    for note in ds.notes:
        console.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)


@app.command()
def recommend(
    data: DataArg,
    target: TargetOpt = None,
    kind: KindOpt = None,
    metric: MetricOpt = None,
    k: Annotated[int, typer.Option("--k", min=1, max=200, help="How many configurations.")] = 10,
    strategy: Annotated[str | None, typer.Option(help="Recommender strategy (default: hybrid, the best first pick in the shipped KB's leave-one-dataset-out evaluation; kb evaluate compares them on yours).")] = None,
    kb: KbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Recommend starting configurations for a dataset from the most similar KB datasets / portfolios."""
    from metalearn.metalearning.advisor import Advisor
    from metalearn.metalearning.metafeatures import metafeature_record

    ds = load_data(data, target, kind, metric)
    check_dataset_metric(ds)
    if not json_out:
        print_kind_report(ds)
    store = _open_kb(kb, read_only=True)
    with console.status("extracting meta-features"):
        mf = metafeature_record(ds)
    advisor = Advisor(store)
    recs = advisor.recommend_dataset(ds, mf.values, strategy=strategy, k=k, exclude_ids={ds.dataset_id})
    composed = any(r.composed for r in recs)
    reason = None if recs else advisor.no_recommendation_reason(ds.task.kind, {ds.dataset_id})
    if json_out:
        print_json({"dataset": ds.name, "kind": str(ds.task.kind), "targets": _target_kinds(ds.task),
               "strategy": advisor.resolve_strategy(strategy),
               "composed": composed, "reason": reason, "recommendations": [r.to_dict() for r in recs]})
        return
    if not recs:
        console.print(f"{reason}: a search will start cold", markup=False, highlight=False)
        return
    if composed:
        from metalearn.metalearning.composed import COMPOSED_NOTE

        console.print(COMPOSED_NOTE, markup=False, highlight=False)
    table = Table(
        title=f"top {len(recs)} configurations for {ds.name} ({advisor.resolve_strategy(strategy)})",
        caption="expected regret/score: predicted for this dataset from the similar KB datasets that evaluated "
        "the configuration (regret by " + (recs[0].ranked_by if recs and recs[0].ranked_by else "their stored metric")
        + ": 0 = the best observed there, 1 = the worst); the rank is the strategy's "
        "order, which for portfolio strategies is what a configuration adds to those before it",
    )
    for col in ("#", "model", "expected regret", "expected score", "from", "config_id"):
        table.add_column(col)
    for r in recs:
        score = "-" if r.expected_score is None else f"{r.score_metric} {format_number(r.expected_score, 3)}"
        table.add_row(str(r.rank), r.summary, format_number(r.expected_regret, 3), score, r.source_text, r.config_id)
    out.print(table)


@app.command()
@with_search_options
def optimize(
    data: DataArg,
    target: TargetOpt = None,
    kind: KindOpt = None,
    metric: MetricOpt = None,
    *,
    settings: SearchSettings,  # the search parameters' options (with_search_options)
    out_dir: Annotated[Path | None, typer.Option("--out", help="Directory for the refit model and summary.json.")] = None,
    register: Annotated[
        str | None,
        typer.Option("--register", help=REGISTER_HELP),
    ] = None,
    mlflow_uri: MlflowOpt = None,
    kb: KbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Run a warm-started SMAC search; every trial goes to the KB, the best pipeline is refit and saved.

    Exits with 1 when no configuration succeeded (at full budget, for a multi-fidelity search): then no
    model is written (nor registered), only summary.json.
    """
    started = time.monotonic()  # the reported time is the whole job: loading the data included
    from metalearn.runtime.progress import SearchProgress
    from metalearn.search.automl import optimize as run_optimize

    if register is not None:  # a bad name is refused before anything is loaded, searched or written
        from metalearn.registry.registry import check_name

        check_name(register)
    if out_dir is not None:  # as is a directory that cannot be written
        from metalearn.cli.errors import check_output

        check_output(out_dir, "--out", directory=True)
    mlflow_target = resolve_mlflow_target(mlflow_uri) if register is not None else None

    ds = load_data(data, target, kind, metric)
    check_dataset_metric(ds)  # before the KB is opened (or created) and the dataset written
    store = _open_kb(kb)
    if register is not None:  # a name taken by a model of other targets: refused before the search
        from metalearn.registry.registry import ModelRegistry

        ModelRegistry(store).check_compatible(register, ds.task)
    if not json_out:
        print_kind_report(ds)
    with SearchProgress(console, ds, settings, enabled=not json_out or console.is_terminal) as progress:
        outcome = run_optimize(ds, kb=store, settings=settings, out_dir=out_dir, on_trial=progress.update,
                               on_status=progress.status, started=started, copies=int(register is not None))
    summary = outcome.summary
    model_info = summary["model"]
    registered: dict[str, Any] | None = None
    if register is not None and outcome.model is not None:
        from metalearn.registry.registry import ModelRegistry

        registry = ModelRegistry(store)
        record = registry.register_outcome(register, outcome, ds)
        registered = {"name": record.name, "version": record.version, "live": False}
        if mlflow_target is not None:  # after the registration, which an MLflow failure never undoes
            from metalearn.registry.mlflow_sync import log_version

            registered["mlflow"] = log_version(mlflow_target, registry, record)
        summary["registered"] = registered
    if json_out:
        print_json(summary)
    else:
        res = outcome.result
        # plain text, never wrapped at the console's width (the configuration is JSON)

        def say(text: str) -> None:
            out.print(text, markup=False, highlight=False, soft_wrap=True)

        say(
            f"best {res.metric} = {format_number(res.best_score)} after {len(res.trials)} trials "
            f"({res.n_resumed} resumed from the KB, {res.n_new} new, {res.n_failed} failed) "
            f"in {summary['seconds']:.1f} s"
        )
        if res.n_cut:
            say(
                f"{res.n_cut} trial(s) scored with boosted fits stopped at the {res.settings['trial_time_limit']:g} s "
                "trial limit (fewer rounds than configured; raise --trial-time-limit to fit them whole)"
            )
        for warning in summary.get("warnings") or []:
            say(f"warning: {warning}")
        budget = summary.get("time_budget") or {}
        if budget.get("limit") is not None:
            stop = "the time limit" if summary.get("stopped_by") == "time_limit" else summary.get("stopped_by")
            say(f"time: {budget['used']:.1f} s of the {budget['limit']:g} s limit (stopped by {stop})")
            for note in budget.get("notes", []):
                say(f"time budget: {note}")
        if summary["warm_start"].get("composed"):
            say(f"warm start: {summary['warm_start']['composed']}")
        if res.best_values:
            say(f"best configuration ({res.best_config_id}): {json.dumps(res.best_values, default=str)}")
        from metalearn.search.ensemble import calibration_lines, ensemble_lines

        for line in [*ensemble_lines(summary.get("ensemble")), *calibration_lines(summary.get("calibration"))]:
            say(line)
        if model_info["constant_targets"]:
            say(f"targets constant in the data, predicted as constants: {', '.join(model_info['constant_targets'])}")
        if outcome.out_dir:
            written = "model and summary" if model_info["file"] else "summary (no model)"
            say(f"{written} written to {outcome.out_dir}")
        if registered is not None:
            say(f"registered {register} version {registered['version']} "
                f"(not live: metalearn models promote {register} {registered['version']})")
            if "mlflow" in registered:
                from metalearn.registry.mlflow_sync import describe

                say(describe(registered["mlflow"]))
    if outcome.model is None:
        nothing = f"no model was written{f' and nothing registered as {register!r}' if register else ''}"
        console.print(f"[red]error:[/red] {escape(model_info['missing_reason'])}; {escape(nothing)}",
                      highlight=False, soft_wrap=True)
        raise typer.Exit(1)


@app.command()
def leaderboard(
    run: Annotated[Path, typer.Argument(help="The --out directory of `metalearn optimize`, or its summary.json.")],
    top: Annotated[int | None, typer.Option("--top", min=1, help="Show the best N pipelines (default: all).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Every pipeline a search scored, best first: validation score, time, origin, weight in the final model."""
    from metalearn.data.errors import InputError
    from metalearn.search.leaderboard import leaderboard as board
    from metalearn.search.leaderboard import leaderboard_text

    path = run / "summary.json" if run.is_dir() else run
    try:
        summary = json.loads(path.read_text())
    except OSError as err:
        raise InputError(f"cannot read {path} ({err.strerror}): give the --out directory of `metalearn optimize`") from None
    except ValueError as err:
        raise InputError(f"{path} is not JSON ({err}): give the summary.json that `metalearn optimize --out` wrote") from None
    frame = board(summary)
    if json_out:
        shown = frame if top is None else frame.head(top)
        print_json({"metric": frame.attrs["metric"], "greater_is_better": frame.attrs["greater_is_better"],
               "pipelines": len(frame), "leaderboard": shown.to_dict(orient="records")})
        return
    if frame.empty:  # (a header and no row said nothing)
        n_failed = summary.get("n_failed") or 0
        out.print(f"no pipeline was scored in this search ({n_failed} trial(s) failed: see summary.json's trials)",
                  markup=False, highlight=False, soft_wrap=True)
        return
    for line in leaderboard_text(frame, top):
        out.print(line, markup=False, highlight=False, soft_wrap=True)


# ----------------------------------------------------------------------------------------- kb
@kb_app.command("info")
def kb_info(kb: KbOpt = None, json_out: JsonOpt = False) -> None:
    """Counts of datasets (by kind), configurations, runs and searches."""
    from metalearn.kb.owners import owner_gone

    store = _open_kb(kb, read_only=True)
    stats = store.stats()
    stats["path"] = str(getattr(store, "path", kb or ""))
    # read-only, the KB is not changed: a search whose process is gone still reads running until a read-write open
    # records it interrupted, so it is counted as that here
    by_status: dict[str, int] = dict(stats["searches_by_status"])  # type: ignore[call-overload]
    gone = [r for r in store.list_searches() if r.status in ("pending", "running") and owner_gone(r)]
    for r in gone:
        by_status[r.status] -= 1
        by_status["interrupted"] = by_status.get("interrupted", 0) + 1
    stats["searches_by_status"] = {k: v for k, v in sorted(by_status.items()) if v}
    if json_out:
        print_json(stats)
        return
    table = Table(title=f"knowledge base {stats['path']}")
    table.add_column("what")
    table.add_column("count", justify="right")
    for key, value in stats.items():
        if isinstance(value, dict):
            for sub, v in value.items():
                table.add_row(f"{key}: {sub}", str(v))
        elif key != "path":
            table.add_row(key, str(value))
    out.print(table)
    if gone:
        out.print(f"{len(gone)} search(es) counted as interrupted: their process is gone (the KB records it on its "
                  "next read-write open)")


@kb_app.command("export")
def kb_export(directory: Annotated[Path, typer.Argument(help="Directory for the parquet snapshot.")], kb: KbOpt = None) -> None:
    """Export the KB as a parquet snapshot (one file per table + snapshot.json)."""
    from metalearn.kb.snapshot import export_snapshot

    counts = export_snapshot(_open_kb(kb, read_only=True), directory)
    out.print(f"exported {counts} to {directory}")


@kb_app.command("import")
def kb_import(directory: Annotated[Path, typer.Argument(help="A snapshot directory written by kb export.")], kb: KbOpt = None) -> None:
    """Import a parquet snapshot into the KB (existing records are kept; all or nothing)."""
    from metalearn.kb.snapshot import import_snapshot

    # an explicit --kb file is the snapshot's: a new one starts empty (a restore), as `kb build --kb` does; it was
    # seeded with the shipped KB first, so the snapshot's datasets were skipped as already there
    counts = import_snapshot(_open_kb(kb, seed_from_shipped=kb is None), directory)
    out.print(f"imported {counts} from {directory}")


@kb_app.command("evaluate")
def kb_evaluate(
    kb: KbOpt = None,
    kind: Annotated[str | None, typer.Option(help="Only this task kind (default: every kind in the KB).")] = None,
    strategies: Annotated[str | None, typer.Option(help="Comma-separated strategies (default: all).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Leave-one-dataset-out evaluation of the recommender strategies on the KB (normalised regret of top-k)."""
    from metalearn.data.errors import InputError
    from metalearn.data.task import TaskKind
    from metalearn.metalearning.advisor import evaluate_strategies

    if kind is not None and kind not in {k.value for k in TaskKind}:
        raise InputError(f"--kind {kind!r} is not a task kind; use one of {', '.join(k.value for k in TaskKind)}")
    names = comma_names(strategies, "--strategies", "strategies")
    store = _open_kb(kb, read_only=True, current=True)
    with console.status("leave-one-dataset-out evaluation"):
        report = evaluate_strategies(store, kind=kind, strategies=names)
    if not report["kinds"]:
        raise InputError(
            f"the knowledge base holds no two {kind + ' ' if kind else ''}datasets with runs of shared configurations "
            "to evaluate the recommenders on (leaving one out needs another to recommend from): build or search more"
        )
    if json_out:
        print_json(report)
        return
    for kind_name, block in report["kinds"].items():
        table = Table(title=f"{kind_name}: mean normalised regret of the best of the top-k ({block['n_datasets']} datasets)")
        table.add_column("strategy")
        ks = block["ks"]
        for kk in ks:
            table.add_column(f"k={kk}", justify="right")
        for strat, row in block["table"].items():
            table.add_row(strat, *[format_number(row.get(str(kk)), 3) for kk in ks])
        out.print(table)
    by_kind = ", ".join(f"{k}: {v}" for k, v in report.get("best_by_kind", {}).items())
    out.print(f"best strategy overall: [bold]{report['best']}[/bold]" + (f" (per kind: {by_kind})" if by_kind else ""))


@kb_app.command("build")
def kb_build(
    corpus: Annotated[str | None, typer.Option("--corpus", help="Corpus directory (manifest.csv + data/).")] = None,
    suite: Annotated[str | None, typer.Option("--suite", help="openml-cc18, amlb, or a suite CSV with a did column.")] = None,
    datasets: Annotated[str | None, typer.Option("--datasets", help="Comma-separated dataset names (default: all).")] = None,
    kinds: Annotated[str | None, typer.Option("--kinds", help="Comma-separated task kinds to include.")] = None,
    kb: KbOpt = None,
    configs: Annotated[int, typer.Option("--configs", min=1, help="Common candidate configurations per kind.")] = 56,
    explore: Annotated[int, typer.Option("--explore", min=0, help="SMAC exploration trials per dataset.")] = 8,
    families: Annotated[str | None, typer.Option("--families", help="Extend the KB with these model families (comma-separated, e.g. lgbm,xgb,catboost): --configs configurations of them per kind on every dataset, same protocol, no exploration.")] = None,
    portfolio: Annotated[int, typer.Option("--portfolio", min=0, help="Evaluate this many of the KB's stored configurations per kind (each family's best two, then the best of the rest) with this build's protocol, e.g. a larger --max-rows; no exploration.")] = 0,
    min_rows: Annotated[int, typer.Option("--min-rows", min=0, help="Only datasets with more rows than this.")] = 0,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Dask workers (LocalCluster).")] = 1,
    scheduler: Annotated[str | None, typer.Option("--scheduler", help="Address of an existing Dask scheduler.")] = None,
    max_rows: Annotated[int, typer.Option("--max-rows", help="Subsample larger datasets to this many rows.")] = 1500,
    folds: Annotated[int, typer.Option("--folds", min=2, help="CV folds per evaluation.")] = 3,
    trial_time_limit: Annotated[float, typer.Option("--trial-time-limit", help="Seconds per evaluation.")] = 30.0,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    json_out: JsonOpt = False,
) -> None:
    """Build or extend the KB offline: meta-features, per-dataset exploration, dense performance matrix.

    With --families, extend it instead: --configs configurations of those model families per kind,
    each evaluated on every dataset with the matrix protocol (no exploration). With --portfolio, evaluate
    stored configurations again under this build's protocol (e.g. --max-rows 4000 --min-rows 2500: the
    large datasets at a size closer to their own; the recommenders then read that protocol for them).
    Resumable: kill it at any point and run the same command again. A --kb file is the build's own: a new
    one starts empty (not seeded with the shipped KB, as the per-user default KB is).
    """
    from metalearn.data.errors import InputError
    from metalearn.data.task import TaskKind
    from metalearn.offline.build import BuildSettings, build_kb, resolve_sources
    from metalearn.runtime.progress import BuildProgress

    settings = BuildSettings(n_configs=configs, n_explore=explore, max_rows=max_rows, n_folds=folds,
                             trial_time_limit=trial_time_limit, seed=seed, workers=workers, scheduler=scheduler,
                             families=tuple(f.strip() for f in families.split(",") if f.strip()) if families else (),
                             portfolio=portfolio, min_rows=min_rows)
    names = comma_names(datasets, "--datasets", "datasets")
    kind_names = comma_names(kinds, "--kinds", "task kinds")
    bad_kinds = [k for k in kind_names or () if k not in {t.value for t in TaskKind}]
    if bad_kinds:
        raise InputError(f"--kinds: {', '.join(map(repr, bad_kinds))} is not a task kind; use some of "
                         f"{', '.join(t.value for t in TaskKind)}")
    sources, missing = resolve_sources(corpus=corpus, suite=suite, names=names, kinds=kind_names)
    if missing:
        console.print(f"{len(missing)} suite datasets not found locally, skipped: {', '.join(missing[:20])}"
                      + (" ..." if len(missing) > 20 else ""))
    # an explicit --kb file is the build's own: a new one starts empty, an existing one is not topped up from
    # the shipped snapshot (it holds what its builds put in); the per-user default KB is seeded as everywhere
    store = _open_kb(kb, seed_from_shipped=kb is None)
    with BuildProgress(console, enabled=not json_out or console.is_terminal) as progress:
        report = build_kb(store, sources, settings, progress=progress)
    if json_out:
        print_json(report.to_dict())
        return
    out.print(f"{report.datasets} datasets, {report.evaluations_done} evaluations in the KB "
              f"({report.evaluations_new} new, {report.failures} failed) in {report.seconds:.0f} s")
    for spec, reason in report.skipped[:20]:
        console.print(f"skipped {escape(spec)}: {escape(reason)}", highlight=False)


@kb_app.command("import-openml")
def kb_import_openml(
    tasks: Annotated[str | None, typer.Option("--tasks", help="Comma-separated OpenML task ids.")] = None,
    suite: Annotated[str | None, typer.Option("--suite", help="openml-cc18, amlb, or a suite CSV: its task ids.")] = None,
    measure: Annotated[str | None, typer.Option("--measure", help="OpenML measure (default per kind: area_under_roc_curve, predictive_accuracy, root_mean_squared_error).")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Evaluations per task (best first).")] = 1000,
    foreign: Annotated[bool, typer.Option("--foreign/--no-foreign", help="Also keep setups without a counterpart in the search space (in the 'openml' space).")] = True,
    openml_cache: Annotated[str | None, typer.Option("--openml-cache", help="openml-python cache root (default: $METALEARN_OPENML_CACHE or openml's).")] = None,
    server: Annotated[str | None, typer.Option("--server", help="OpenML API URL (default: openml.org).")] = None,
    kb: KbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Import past run evaluations from OpenML (evaluations + setups of each task) into the KB.

    Setups of scikit-learn flows that the search space can express become its configurations (and
    feed the recommenders); re-running adds nothing twice.
    """
    from metalearn.data.errors import InputError, NotFoundError, OpenMLUnavailableError
    from metalearn.data.suites import load_suite, with_task_ids
    from metalearn.offline.openml_import import import_openml_runs

    ids: list[int] = []
    if tasks:
        try:
            ids += [int(t) for t in tasks.split(",") if t.strip()]
        except ValueError:
            raise InputError(f"--tasks must be comma-separated integers, got {tasks!r}") from None
    if suite:
        chosen = load_suite(suite)
        try:
            chosen = with_task_ids(chosen)  # OpenML-CC18's local CSV lists dataset ids only
        except OpenMLUnavailableError as err:
            console.print(escape(str(err)), highlight=False)
        entries = chosen.entries
        without = [e.name or str(e.did) for e in entries if e.tid is None]
        ids += [int(e.tid) for e in entries if e.tid is not None]
        if without:
            console.print(f"{len(without)} suite datasets have no OpenML task id, skipped: {', '.join(without[:10])}"
                          + (" ..." if len(without) > 10 else ""))
    if not ids:
        raise InputError("give --tasks ID,... and/or --suite NAME (with OpenML task ids)")
    store = _open_kb(kb)

    def on_task(tid: int, status: str) -> None:
        if not json_out:
            console.print(f"task {tid}: {escape(status)}", highlight=False)

    report = import_openml_runs(store, ids, measure=measure, limit=limit, keep_foreign=foreign,
                                cache_dir=openml_cache, server=server, on_task=on_task)
    if json_out:
        print_json(report.to_dict())
    else:
        out.print(f"{report.evaluations} evaluations: {report.translated} in the search space, {report.foreign} "
                  f"kept verbatim, {report.skipped} skipped; {report.runs_added} runs added")
        for reason, n in list(report.to_dict()["reasons"].items())[:8]:
            console.print(f"  not translated ({n}): {escape(reason)}", highlight=False)
    if report.imported_tasks == 0:  # every task was skipped: nothing was written
        first = next(iter(report.tasks.items()))
        why = (f"task {first[0]}: {first[1].removeprefix('skipped: ')}" if json_out  # else printed above
               else "each task's reason is above")
        raise NotFoundError(
            f"nothing imported from {len(report.tasks)} OpenML task(s) and nothing written to the KB ({why})"
        )


@app.command()
def benchmark(
    suite: Annotated[str | None, typer.Option("--suite", help="openml-cc18, amlb, or a suite CSV with a did column.")] = None,
    corpus: Annotated[str | None, typer.Option("--corpus", help="Corpus directory: suite datasets are matched in it by OpenML id; alone, benchmark its datasets.")] = None,
    datasets: Annotated[str | None, typer.Option("--datasets", help="Comma-separated dataset names (default: all).")] = None,
    strategies: Annotated[str, typer.Option("--strategies", help="Comma-separated: warm, cold, random, knn, portfolio, weighted_portfolio, surrogate, zeroshot, hybrid, flaml, or all.")] = "warm,cold,random",
    trials: Annotated[int, typer.Option("--trials", min=1, help="Trial budget of every search.")] = 25,
    time_limit: Annotated[float | None, typer.Option("--time-limit", help="Wall-clock seconds per search (cell).")] = None,
    trial_time_limit: Annotated[float, typer.Option("--trial-time-limit", help="Seconds per trial.")] = 60.0,
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="Seeds per (dataset, strategy): 0..K-1.")] = 1,
    kb: KbOpt = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Output directory (results.duckdb, parquet, report.md, plots).")] = Path("benchmark-results"),
    workers: Annotated[int, typer.Option("--workers", min=1, help="Cells run in parallel (process pool).")] = 1,
    max_rows: Annotated[int, typer.Option("--max-rows", help="Subsample larger datasets to this many rows.")] = 5000,
    folds: Annotated[int, typer.Option("--folds", min=2, help="CV folds on the training part.")] = 3,
    write_kb: Annotated[bool, typer.Option("--write-kb", help="Also store the benchmark searches in the KB.")] = False,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Run failed cells again on resume.")] = False,
    budgets: Annotated[str | None, typer.Option("--budgets", help="Wall-clock mode: seconds per run, comma-separated (e.g. 30,120); the product and each peer at equal wall-clock.")] = None,
    peers: Annotated[str | None, typer.Option("--peers", help="With --budgets: flaml, autogluon (optional extras: pip install 'metalearn\\[peers]').")] = None,
    zero_shot: Annotated[bool, typer.Option("--zero-shot/--no-zero-shot", help="With --budgets: also the top-1 recommendation alone vs FLAML's zero-shot LightGBM.")] = True,
    json_out: JsonOpt = False,
) -> None:
    """Benchmark warm-start strategies side by side on held-out datasets (no KB leakage); resumable.

    Writes raw trajectories (results.duckdb + parquet), report.md and PNG plots to --out. With --budgets,
    compares the product with --peers at equal wall-clock instead (final test scores, win rates, time used).
    """
    from metalearn.benchmark.datasets import resolve_benchmark_sources
    from metalearn.benchmark.runner import run_benchmark
    from metalearn.benchmark.settings import BenchmarkSettings, parse_budgets, parse_peers
    from metalearn.runtime.progress import RichProgress

    names = comma_names(datasets, "--datasets", "datasets")
    settings = BenchmarkSettings(
        strategies=tuple(s for s in strategies.split(",")), n_trials=trials, seeds=tuple(range(seeds)),
        time_limit=time_limit, trial_time_limit=trial_time_limit, max_rows=max_rows, n_folds=folds,
        workers=workers, write_kb=write_kb, retry_failed=retry_failed, budgets=parse_budgets(budgets),
        peers=parse_peers(peers), zero_shot=zero_shot,
    )
    if settings.budget_mode:
        _check_peers(settings.peers)
    sources, missing = resolve_benchmark_sources(suite=suite, corpus=corpus, names=names)
    if missing:
        console.print(f"{len(missing)} suite datasets not found locally, skipped: {', '.join(missing[:20])}"
                      + (" ..." if len(missing) > 20 else ""))
    from metalearn.cli.errors import check_output

    check_output(out_dir, "--out", directory=True)  # a file there, or no right to write, before anything runs
    store = _open_kb(kb, read_only=not write_kb, current=True)  # a KB seeded by an older release: updated first
    with RichProgress(console, enabled=not json_out or console.is_terminal) as progress:
        outcome = run_benchmark(sources, store, out_dir, settings, progress=progress, missing=missing)
    if json_out:
        print_json(outcome.summary)
        return
    summary = outcome.summary
    if settings.budget_mode:
        _print_peer_summary(summary)
        out.print(f"{outcome.n_run} cells run now, {outcome.n_cells - outcome.n_run} finished earlier, "
                  f"{outcome.n_failed} failed; {len(outcome.failed_datasets)} datasets failed to load; "
                  f"report: {outcome.report_path}")
        return
    budgets = summary["budgets"]
    table = Table(title=f"mean normalised regret over {summary['n_instances']} (dataset, seed) instances")
    table.add_column("strategy")
    for b in budgets:
        table.add_column(f"{b} trials", justify="right")
    table.add_column("test rank", justify="right")
    for strat in summary["strategies"]:
        row = summary["regret"]["overall"]["table"].get(strat, {})
        test_rank = summary["test"].get(strat, {}).get("rank", {}).get("mean")
        table.add_row(strat, *[format_number(row.get(str(b), {}).get("mean"), 3) for b in budgets], format_number(test_rank, 3))
    out.print(table)
    out.print(f"{outcome.n_run} cells run now, {outcome.n_cells - outcome.n_run} finished earlier, "
              f"{outcome.n_failed} failed; {len(outcome.failed_datasets)} datasets failed to load; "
              f"report: {outcome.report_path}")


def _check_peers(peers: tuple[str, ...]) -> None:
    """A one-line note (not an error) for each peer whose optional dependency is missing: its cells fail."""
    import importlib.util

    from metalearn.benchmark.settings import PEER_HINTS

    modules = {"flaml": "flaml", "autogluon": "autogluon.tabular"}
    for peer in peers:
        try:
            found = importlib.util.find_spec(modules[peer]) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            console.print(f"[yellow]{peer} is not installed; its cells will fail: {PEER_HINTS[peer]}[/yellow]",
                          highlight=False)


def _print_peer_summary(summary: dict[str, Any]) -> None:
    """Per budget: mean test score per kind of each system, the product's win rates, time used / budget."""
    for key, block in summary["per_budget"].items():
        names = block["systems"]
        table = Table(title=f"budget {key} s: mean test score per kind")
        for col in ("kind", "metric", *names):
            table.add_column(col, justify="left" if col in ("kind", "metric") else "right")
        for kind, k in block["per_kind"].items():
            table.add_row(kind, ", ".join(k.get("metrics", [])), *[format_number(k["mean"].get(n), 4) for n in names])
            if k.get("extra_metric"):
                table.add_row(kind, k["extra_metric"], *[format_number(k["extra_mean"].get(n), 4) for n in names])
        out.print(table)
        for kind, k in [*block["per_kind"].items(), ("all", {"win_rate": block.get("overall_win_rate", {})})]:
            wins = ", ".join(f"vs {o} {w['rate'] * 100:.0f} % ({w['wins']:g}/{w['n']})"
                             for o, w in k.get("win_rate", {}).items())
            if wins:
                out.print(f"  product win rate ({kind}): {wins}")
        for n, t in block["time"].items():
            if t.get("mean_ratio") is not None:
                out.print(f"  {n}: time used / budget mean {t['mean_ratio']:.2f}, max {t['max_ratio']:.2f}")


# ----------------------------------------------------------------------------------------- main
def _terminate_as_interrupt() -> Any:
    """SIGTERM (``timeout``, systemd, docker / Kubernetes stop) ends a command as Ctrl-C does: the search or build
    records itself ``cancelled`` and says how to resume (it died at once, its search left ``running``). ``serve``
    keeps uvicorn's own handling, which replaces this one when the server starts."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt("terminated (SIGTERM)")

    return signal.signal(signal.SIGTERM, interrupt)  # the handler before, put back when the command ends


def main(argv: list[str] | None = None) -> None:
    import signal

    previous = _terminate_as_interrupt()
    try:
        _main(argv)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


#: what a command ends with when interrupted (Ctrl-C, SIGTERM, or Ctrl-C inside a DuckDB query), exit code 130
INTERRUPTED = "interrupted; run the same command again to resume where it stopped"


def _main(argv: list[str] | None = None) -> None:
    from metalearn.cli.errors import exit_code
    from metalearn.data.errors import MetaLearnError

    debug = os.environ.get("METALEARN_DEBUG") == "1"
    args = list(sys.argv[1:] if argv is None else argv)
    if "--debug" in args:
        args.remove("--debug")
        debug = True
    try:
        code = app(args=args, standalone_mode=False)
    except MetaLearnError as exc:
        if debug:
            raise
        console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exit_code(exc))
    except (typer.Abort, KeyboardInterrupt):
        console.print(INTERRUPTED)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # click usage errors and unexpected failures: one line, no traceback
        from metalearn.kb.duckdb_store import is_query_interrupt

        if is_query_interrupt(exc):  # Ctrl-C that landed in a DuckDB query: RuntimeError("Query interrupted")
            console.print(INTERRUPTED)
            sys.exit(130)
        if isinstance(exc, _usage_errors()) and hasattr(exc, "format_message"):
            ctx = getattr(exc, "ctx", None)  # one line, as every other error (click's own is three)
            where = f" (`{ctx.command_path} --help` lists the options)" if ctx is not None else ""
            message = exc.format_message()
            if message:  # (a group called without its command has shown its help: nothing to add)
                console.print(f"[red]error:[/red] {escape(message)}{escape(where)}", highlight=False, soft_wrap=True)
            sys.exit(getattr(exc, "exit_code", 2))
        if debug:
            raise
        console.print(f"[red]error:[/red] unexpected {type(exc).__name__}: {escape(str(exc))} (rerun with --debug for details)",
                      highlight=False, soft_wrap=True)
        sys.exit(1)
    # without standalone mode, typer turns Ctrl-C (and an explicit typer.Exit) into a returned exit code
    if isinstance(code, int) and not isinstance(code, bool) and code != 0:
        if code == 130:
            console.print(INTERRUPTED)
        sys.exit(code)


def _usage_errors() -> tuple[type[BaseException], ...]:
    """Click's usage-error base class: typer >= 0.2x vendors click (``typer.TyperException``), older
    typer versions use click itself."""
    types: list[type[BaseException]] = []
    if hasattr(typer, "TyperException"):
        types.append(typer.TyperException)
    try:
        import click

        types.append(click.exceptions.ClickException)
    except ImportError:  # pragma: no cover - typer without click
        pass
    return tuple(types)

