"""Build a drift report on a corpus dataset with shifted data and check it renders in a headless browser.

The dataset's rows are split in two random halves (the reference and the current window); the current
window is then shifted: the first numeric column multiplied by 1.5, the second shifted by one standard
deviation, the first categorical column's rows of its most frequent level dropped, 30% of the third
numeric column set missing. Data drift, concept drift (a logistic regression / ridge fitted on the
reference, scored on the current window with its labels partly flipped / permuted) and the HTML report
are timed. When ``chromium`` (or ``chromium-browser`` / ``google-chrome``) is on PATH, the page is
screenshotted with ``--headless --screenshot --window-size=1280,2000`` and the PNG measured: its size
in bytes and the share of non-white pixels (a blank page has none). Nothing is installed; without a
browser the screenshot step says so and is skipped.

    python benchmarks/drift_report.py                          # dataset "dis", output in a temp dir
    python benchmarks/drift_report.py --dataset nursery --out benchmarks/out/drift
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """The first Chromium-like browser on PATH, else None."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot(browser: str, html: Path, png: Path, size: str = "1280,2000", timeout: float = 120.0) -> float:
    """Screenshot ``html`` into ``png`` with headless Chromium; returns the seconds it took."""
    cmd = [
        browser,
        "--headless",
        "--no-sandbox",  # containers run as root, where Chromium's sandbox cannot start
        "--disable-gpu",
        "--hide-scrollbars",
        "--disable-dev-shm-usage",
        f"--screenshot={png}",
        f"--window-size={size}",
        html.resolve().as_uri(),
    ]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0 or not png.is_file():
        raise RuntimeError(f"{browser} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return time.perf_counter() - start


def measure_png(png: Path) -> dict[str, Any]:
    """Size, pixel dimensions, share of non-white pixels and number of distinct colours of a PNG."""
    from matplotlib import image

    img = image.imread(str(png))  # float RGB(A) in [0, 1]
    rgb = img[..., :3]
    nonwhite = (rgb < 0.94).any(axis=-1)
    quant = (rgb * 15).round().astype(np.int64)
    colours = np.unique(quant[..., 0] * 256 + quant[..., 1] * 16 + quant[..., 2]).size
    return {
        "bytes": png.stat().st_size,
        "width": int(img.shape[1]),
        "height": int(img.shape[0]),
        "nonwhite_share": float(nonwhite.mean()),
        "distinct_colours": int(colours),
    }


def shifted_windows(
    X: pd.DataFrame, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame, list[str], np.ndarray]:
    """(reference, shifted current window, the columns changed, the current rows' positions in X)."""
    from metalearn.monitoring.drift import infer_column_kinds

    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(X))
    half = len(X) // 2
    ref_rows, cur_rows = np.sort(perm[:half]), np.sort(perm[half:])
    ref, cur = X.iloc[ref_rows].copy(), X.iloc[cur_rows].copy()
    kinds = infer_column_kinds(X)
    numeric = [c for c in X.columns if kinds[str(c)] == "numeric" and X[c].nunique() > 5]
    categorical = [c for c in X.columns if kinds[str(c)] == "categorical" and X[c].nunique() > 1]
    changed: list[str] = []
    if numeric:
        cur[numeric[0]] = cur[numeric[0]] * 1.5
        changed.append(str(numeric[0]))
    if len(numeric) > 1:
        cur[numeric[1]] = cur[numeric[1]] + X[numeric[1]].std()
        changed.append(str(numeric[1]))
    if len(numeric) > 2:
        col = numeric[2]
        cur[col] = cur[col].where(rng.random(len(cur)) >= 0.3)
        changed.append(str(col))
    if categorical:
        col = categorical[0]
        top = X[col].value_counts().index[0]
        keep = (cur[col] != top).to_numpy()
        if keep.sum() >= 30:
            cur, cur_rows = cur[keep], cur_rows[keep]
            changed.append(str(col))
    return ref, cur, changed, cur_rows


def _model_feedback(
    ds: Any, ref: pd.DataFrame, cur: pd.DataFrame, cur_rows: np.ndarray
) -> dict[str, Any] | None:
    """Concept drift of a simple model fitted on the reference half, on the current rows with 30% of
    the labels corrupted (flipped classes / permuted values) in the second half of the feedback."""
    from sklearn.compose import make_column_transformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from metalearn.data.prediction import Prediction
    from metalearn.data.task import TaskKind
    from metalearn.monitoring.drift import concept_drift

    task = ds.task
    if task.kind not in (TaskKind.BINARY, TaskKind.REGRESSION):
        return None
    num = [c for c, is_cat in zip(ds.X.columns, ds.categorical, strict=True) if not is_cat]
    cat = [c for c, is_cat in zip(ds.X.columns, ds.categorical, strict=True) if is_cat]
    pre = make_column_transformer(
        (make_pipeline(SimpleImputer(), StandardScaler()), num),
        (make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")), cat),
    )
    y_all = ds.y.iloc[:, 0]
    y_ref = y_all.loc[ref.index]
    y_cur = y_all.iloc[cur_rows].reset_index(drop=True)
    rng = np.random.default_rng(1)
    corrupt = np.zeros(len(y_cur), dtype=bool)
    corrupt[len(y_cur) // 2 :] = rng.random(len(y_cur) - len(y_cur) // 2) < 0.3
    if task.kind is TaskKind.BINARY:
        model = make_pipeline(pre, LogisticRegression(max_iter=2000))
        scoring = "roc_auc"
        labels = np.sort(y_all.dropna().unique())
        flipped = y_cur.map({labels[0]: labels[1], labels[1]: labels[0]})
        y_fb = y_cur.where(~corrupt, flipped)
    else:
        model = make_pipeline(pre, Ridge())
        scoring = "neg_root_mean_squared_error"
        y_fb = y_cur.copy()
        y_fb[corrupt] = rng.permutation(y_cur[corrupt].to_numpy())
    ts = float(np.mean(cross_val_score(model, ref, y_ref, cv=3, scoring=scoring)))
    ts = -ts if scoring.startswith("neg_") else ts
    model.fit(ref, y_ref)
    if task.kind is TaskKind.BINARY:
        pred = Prediction([model.predict(cur)], [model.predict_proba(cur)], [model.classes_])
    else:
        pred = Prediction([model.predict(cur)], [None], [None])
    return concept_drift(y_fb.to_frame(), pred, task=task, training_score=ts, window=max(50, len(cur) // 8))


def build(corpus: Path, dataset: str, out: Path) -> dict[str, Any]:
    """Write ``<out>/drift_<dataset>.html`` and return what was measured."""
    from metalearn.data.loading import Corpus
    from metalearn.monitoring.drift import data_drift
    from metalearn.monitoring.report import render_drift_report

    ds = Corpus(corpus).load(dataset)
    ref, cur, changed, cur_rows = shifted_windows(ds.X)
    t0 = time.perf_counter()
    dd = data_drift(ref, cur)
    t1 = time.perf_counter()
    cd = _model_feedback(ds, ref, cur, cur_rows)
    t2 = time.perf_counter()
    page = render_drift_report(dataset, 1, dd, cd, ref, cur)
    t3 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    html = out / f"drift_{dataset}.html"
    html.write_text(page, encoding="utf-8")
    flagged = [f["name"] for f in dd["features"] if f["drifted"]]
    return {
        "dataset": dataset,
        "shape": list(ds.X.shape),
        "n_reference": len(ref),
        "n_current": len(cur),
        "changed": changed,
        "flagged": flagged,
        "changed_and_flagged": sorted(set(changed) & set(flagged)),
        "dataset_drifted": dd["drifted"],
        "metafeature_distance": dd["metafeature_distance"],
        "concept_drifted": None if cd is None else cd["drifted"],
        "concept_reason": None if cd is None else cd["reason"],
        "seconds_data_drift": round(t1 - t0, 3),
        "seconds_concept_drift": round(t2 - t1, 3),
        "seconds_report": round(t3 - t2, 3),
        "html": str(html),
        "html_bytes": html.stat().st_size,
        "img_tags": page.count("<img"),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_corpus = os.environ.get("METALEARN_CORPUS", str(REPO.parent / "shared" / "corpus"))
    ap.add_argument("--corpus", default=default_corpus)
    ap.add_argument("--dataset", default="dis")
    ap.add_argument("--out", default=None, help="output directory (default: a new temporary directory)")
    args = ap.parse_args(argv)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="drift_report_"))
    result = build(Path(args.corpus), args.dataset, out)
    browser = find_chromium()
    if browser is None:
        result["screenshot"] = f"skipped: none of {', '.join(BROWSERS)} is on PATH"
    else:
        png = out / f"drift_{args.dataset}.png"
        seconds = screenshot(browser, Path(result["html"]), png)
        result["screenshot"] = {
            "browser": browser,
            "png": str(png),
            "seconds": round(seconds, 2),
            **measure_png(png),
        }
    print(json.dumps(result, indent=2))
    shot = result["screenshot"]
    if isinstance(shot, dict) and (shot["bytes"] < 20_000 or shot["nonwhite_share"] < 0.02):
        print("the screenshot looks blank", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
