"""The human drift report: one self-contained HTML page (inline CSS and PNG plots, no JavaScript, no
external assets) built from the results of :func:`~metalearn.monitoring.drift.data_drift` and
:func:`~metalearn.monitoring.drift.concept_drift` and the two windows they compared.

Every string that comes from the user (model name, column names, category labels, reasons) is
escaped with :func:`html.escape`, and matplotlib gets it with math text parsing off (a ``$`` in a
column name is not LaTeX).
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from metalearn.monitoring.drift import label_key

__all__ = ["MAX_PLOTS", "render_drift_report"]

#: Features plotted (the most drifted first).
MAX_PLOTS = 8
#: Categories shown per categorical plot (the rest pooled as "other").
_MAX_LEVELS = 12
_REF_COLOR, _CUR_COLOR = "#4c72b0", "#dd8452"

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;margin:24px;color:#222;
background:#fff;max-width:1240px}
h1{font-size:1.6em;margin:0 0 4px}h2{font-size:1.2em;margin:28px 0 8px;border-bottom:1px solid #ddd}
.flags{display:flex;gap:12px;flex-wrap:wrap;margin:12px 0}
.flag{padding:10px 14px;border-radius:6px;border:1px solid;min-width:260px}
.flag b{display:block;font-size:1.1em}.bad{background:#fdecea;border-color:#e0a39c}
.good{background:#eaf6ec;border-color:#9cc9a5}.na{background:#f3f3f3;border-color:#ccc}
table{border-collapse:collapse;font-size:.9em;margin:6px 0}td,th{border:1px solid #ddd;padding:4px 8px;
text-align:left;vertical-align:top}th{background:#f5f5f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.drifted td{background:#fff4f2}.plots{display:flex;flex-wrap:wrap;gap:10px}
.plots figure{margin:0;border:1px solid #eee;padding:4px}figcaption{font-size:.85em;color:#555;max-width:470px}
.muted{color:#666;font-size:.9em}code{background:#f5f5f5;padding:0 3px}
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _num(x: Any, fmt: str = ".3g") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "&ndash;"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    return format(float(x), fmt)


def _pct(x: Any) -> str:
    return "&ndash;" if x is None else f"{float(x):.1%}"


def _col(frame: pd.DataFrame, name: str) -> pd.Series | None:
    for c in frame.columns:
        if str(c) == name:
            return frame[c]
    return None


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)  # fixed margins: "tight" bounding boxes draw twice
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(width: float = 5.8, height: float = 3.2, bottom: float = 0.12) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)  # the Agg canvas: no display, no pyplot state
    fig.subplots_adjust(left=0.13, right=0.98, top=0.9, bottom=bottom)
    return fig, fig.add_subplot(1, 1, 1)


def _numeric_plot(name: str, ref: pd.Series, cur: pd.Series) -> str | None:
    r = pd.to_numeric(ref.astype(object), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    c = pd.to_numeric(cur.astype(object), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    r, c = r[np.isfinite(r)], c[np.isfinite(c)]
    if r.size == 0 and c.size == 0:
        return None
    both = np.concatenate([r, c])
    lo, hi = np.quantile(both, [0.005, 0.995])
    if not hi > lo:
        lo, hi = float(both.min()) - 0.5, float(both.max()) + 0.5
    edges = np.linspace(lo, hi, 31)
    fig, ax = _figure()
    for values, label, color in ((r, "reference", _REF_COLOR), (c, "current", _CUR_COLOR)):
        if values.size:
            density, _ = np.histogram(np.clip(values, lo, hi), bins=edges, density=True)
            ax.stairs(density, edges, fill=True, alpha=0.5, color=color, label=label)
    ax.set_title(name, parse_math=False)
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    return _png(fig)


def _categorical_plot(name: str, ref: pd.Series, cur: pd.Series) -> str | None:
    r = pd.Series([label_key(v) for v in ref.astype(object)]).where(ref.notna().to_numpy(), "<missing>")
    c = pd.Series([label_key(v) for v in cur.astype(object)]).where(cur.notna().to_numpy(), "<missing>")
    rs, cs = r.value_counts(normalize=True), c.value_counts(normalize=True)
    if rs.empty and cs.empty:
        return None
    order = rs.add(cs, fill_value=0.0).sort_values(ascending=False)
    levels = list(order.index[:_MAX_LEVELS])
    rv = [float(rs.get(lv, 0.0)) for lv in levels]
    cv = [float(cs.get(lv, 0.0)) for lv in levels]
    if len(order) > _MAX_LEVELS:
        levels.append("other")
        rv.append(max(0.0, 1.0 - sum(rv)))
        cv.append(max(0.0, 1.0 - sum(cv)))
    x = np.arange(len(levels))
    fig, ax = _figure(bottom=0.3)
    ax.bar(x - 0.2, rv, width=0.4, color=_REF_COLOR, alpha=0.8, label="reference")
    ax.bar(x + 0.2, cv, width=0.4, color=_CUR_COLOR, alpha=0.8, label="current")
    ax.set_xticks(x)
    shown = [lv if len(lv) <= 18 else lv[:17] + "…" for lv in levels]
    ax.set_xticklabels(shown, rotation=35, ha="right", fontsize=8)
    for t in ax.get_xticklabels():
        t.set_parse_math(False)
    ax.set_title(name, parse_math=False)
    ax.set_ylabel("share of rows")
    ax.legend(fontsize=8)
    return _png(fig)


def _concept_plot(cd: Mapping[str, Any]) -> str | None:
    windows = [w for w in cd.get("windows") or [] if w.get("score") is not None]
    if not windows:
        return None
    ts = cd.get("training_score")
    fig, ax = _figure(8.0, 3.2, bottom=0.15)
    ax.plot(
        [w["end"] for w in windows],
        [w["score"] for w in windows],
        marker="o",
        ms=3,
        color=_CUR_COLOR,
        label=f"rolling {cd.get('metric')} ({cd.get('window')} rows)",
    )
    if ts is not None:
        ax.axhline(ts, color=_REF_COLOR, label="training")
        drop = float(cd.get("threshold") or 0.0)
        limit = ts - drop * abs(ts) if cd.get("greater_is_better") else ts + drop * abs(ts)
        ax.axhline(limit, color="#c44e52", linestyle="--", label=f"drift threshold ({drop:.0%} worse)")
    ax.set_xlabel("feedback rows (window end)")
    ax.set_ylabel(str(cd.get("metric")), parse_math=False)
    ax.legend(fontsize=8)
    return _png(fig)


def _flag_box(title: str, result: Mapping[str, Any] | None, missing: str) -> str:
    if result is None:
        return f'<div class="flag na"><b>{_e(title)}: not evaluated</b>{_e(missing)}</div>'
    if result.get("status") == "insufficient_data":
        cls, word = "na", "insufficient data"
    elif result.get("drifted"):
        cls, word = "bad", "DRIFT"
    else:
        cls, word = "good", "no drift"
    return f'<div class="flag {cls}"><b>{_e(title)}: {_e(word)}</b>{_e(result.get("reason", ""))}</div>'


def _sort_features(features: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    def key(f: Mapping[str, Any]) -> tuple[int, float, float]:
        psi = f.get("psi")
        p = f.get("p_value")
        return (
            0 if f.get("drifted") else 1,
            -(psi if psi is not None else -1.0),
            p if p is not None else 2.0,
        )

    return sorted(features, key=key)


def _feature_table(features: list[Mapping[str, Any]]) -> str:
    head = (
        "<tr><th>#</th><th>feature</th><th>kind</th><th>test</th><th>PSI</th><th>p-value</th>"
        "<th>statistic</th><th>missing ref &rarr; cur</th><th>unseen</th><th>drifted</th><th>reason</th></tr>"
    )
    rows = []
    for i, f in enumerate(features, 1):
        cls = ' class="drifted"' if f.get("drifted") else ""
        rows.append(
            f"<tr{cls}><td class=num>{i}</td><td>{_e(f.get('name'))}</td><td>{_e(f.get('kind'))}</td>"
            f"<td>{_e(f.get('test'))}</td><td class=num>{_num(f.get('psi'))}</td>"
            f"<td class=num>{_num(f.get('p_value'), '.2g')}</td><td class=num>{_num(f.get('statistic'))}</td>"
            f"<td class=num>{_pct(f.get('missing_reference'))} &rarr; {_pct(f.get('missing_current'))}</td>"
            f"<td class=num>{_pct(f.get('unseen_share'))}</td>"
            f"<td>{'<b>yes</b>' if f.get('drifted') else 'no'}</td><td>{_e(f.get('reason', ''))}</td></tr>"
        )
    return f"<table>{head}{''.join(rows)}</table>"


def _plots(features: list[Mapping[str, Any]], reference: pd.DataFrame, current: pd.DataFrame) -> str:
    figs = []
    for f in features[:MAX_PLOTS]:
        name = str(f.get("name"))
        ref, cur = _col(reference, name), _col(current, name)
        if ref is None or cur is None:
            continue
        try:
            img = (_categorical_plot if f.get("kind") == "categorical" else _numeric_plot)(name, ref, cur)
        except (ValueError, TypeError):  # an unplottable column must not lose the report
            img = None
        if img is None:
            continue
        caption = f"{name}: PSI {_num(f.get('psi'))}, p {_num(f.get('p_value'), '.2g')}" + (
            " (drifted)" if f.get("drifted") else ""
        )
        figs.append(
            f'<figure><img alt="{_e("distribution of " + name)}" src="data:image/png;base64,{img}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>"
        )
    if not figs:
        return '<p class="muted">No feature to plot.</p>'
    return f'<div class="plots">{"".join(figs)}</div>'


def _summary(dd: Mapping[str, Any]) -> str:
    th = dd.get("thresholds") or {}
    mfd = dd.get("metafeature_detail") or {}
    pth = dd.get("p_thresholds") or {}
    rows = [
        ("reference rows", _num(dd.get("n_reference"))),
        ("current rows", _num(dd.get("n_current"))),
        (
            "features drifted",
            f"{_num(dd.get('n_drifted'))} of {_num(dd.get('n_features'))} "
            f"({_pct(dd.get('share_drifted'))}; flagged at {_pct(th.get('drifted_share'))})",
        ),
        (
            "meta-feature distance",
            f"{_num(dd.get('metafeature_distance'))} "
            f"(flagged at {_num(th.get('metafeature_distance'))}; {_num(mfd.get('n_metafeatures'))} meta-features"
            f"{'; ' + _e(mfd['error']) if mfd.get('error') else ''})",
        ),
        (
            "feature rule",
            f"PSI &ge; {_num(th.get('psi'))} and test p below the level "
            f"({_e(th.get('correction'))}: numeric {_num(pth.get('numeric'), '.2g')}, "
            f"categorical {_num(pth.get('categorical'), '.2g')})",
        ),
    ]
    table = "<table>" + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"
    top = mfd.get("top") or []
    if top:
        items = "".join(
            f"<tr><td>{_e(t.get('name'))}</td><td class=num>{_num(t.get('reference'))}</td>"
            f"<td class=num>{_num(t.get('current'))}</td><td class=num>{_num(t.get('z'), '.2f')}</td></tr>"
            for t in top
        )
        table += (
            '<p class="muted">Most changed meta-features (z: change in reference standard deviations)</p>'
            f"<table><tr><th>meta-feature</th><th>reference</th><th>current</th><th>z</th></tr>{items}</table>"
        )
    return table


def _concept_section(cd: Mapping[str, Any] | None) -> str:
    if cd is None:
        return '<h2>Concept drift</h2><p class="muted">No labelled feedback was given.</p>'
    rows = [
        (
            "metric",
            f"{_e(cd.get('metric'))} ({'higher' if cd.get('greater_is_better') else 'lower'} is better)",
        ),
        ("training score", _num(cd.get("training_score"), ".4g")),
        ("latest window score", _num(cd.get("latest_score"), ".4g")),
        ("all feedback score", _num(cd.get("overall_score"), ".4g")),
        (
            "relative degradation",
            f"{_pct(cd.get('relative_degradation'))} (flagged at {_pct(cd.get('threshold'))})",
        ),
        (
            "feedback rows / window / step",
            f"{_num(cd.get('n_rows'))} / {_num(cd.get('window'))} / {_num(cd.get('step'))}",
        ),
    ]
    table = "<table>" + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"
    img = _concept_plot(cd)
    plot = (
        f'<figure><img alt="rolling metric against the training metric" src="data:image/png;base64,{img}">'
        "<figcaption>Rolling metric per window against the training metric.</figcaption></figure>"
        if img
        else ""
    )
    return f"<h2>Concept drift</h2>{table}{plot}"


def render_drift_report(
    name: str,
    version: int,
    data_drift: Mapping[str, Any],
    concept_drift: Mapping[str, Any] | None,
    reference: pd.DataFrame,
    current: pd.DataFrame,
) -> str:
    """A self-contained HTML page for model ``name`` version ``version``: the data/concept drift flags,
    the features sorted by drift (drifted first, then by PSI), reference vs current distributions of
    the :data:`MAX_PLOTS` most drifted features, and the rolling metric against the training metric
    when ``concept_drift`` is given."""
    title = f"Drift report: {name} v{version}"
    features = _sort_features(list(data_drift.get("features") or []))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Drift report &mdash; {_e(name)} <span class=muted>version {_e(version)}</span></h1>",
        '<div class="flags">',
        _flag_box("Data drift", data_drift, ""),
        _flag_box("Concept drift", concept_drift, "no labelled feedback"),
        "</div>",
        "<h2>Data drift</h2>",
        _summary(data_drift),
    ]
    if features:
        parts += [
            "<h2>Features by drift</h2>",
            _feature_table(features),
            f"<h2>Distributions of the most drifted features (up to {MAX_PLOTS})</h2>",
            _plots(features, reference, current),
        ]
    parts += [_concept_section(concept_drift), "</body></html>"]
    return "\n".join(parts)
