"""The ensemble test bed's dump hook: with ``POOL_DIR`` set, every product cell of ``benchmarks/peers.py``
also writes its search's out-of-fold pool and the test predictions of the pool's best candidates.

Nothing happens without ``POOL_DIR``. Python imports this module at start-up in every process (the peers'
workers too) when its folder is on ``PYTHONPATH``::

    POOL_DIR=pools PYTHONPATH=.:benchmarks/ensemble_testbed python benchmarks/peers.py --budgets 120 \\
        --peers flaml,autogluon --per-kind 0 --workers 2 --split-seed 0 --datasets allbp,allhypo --out DIR
    python benchmarks/ensemble_testbed/evaluate.py pools/*.pkl

After a product cell is scored, the pool's ``POOL_TOP`` (default 30) best candidates are refit on the
training part (no time limit) and predict the test part; ``POOL_DIR/<dataset>_<strategy>_<time>.pkl`` holds
the task, the test truth, the cell's test score and summary, and per candidate its configuration, search
score, out-of-fold predictions and test predictions. The refits run after the cell's clock stopped: its
search time is unchanged, its ``refit_seconds`` includes them.

With ``FINAL_DIR`` set instead (or as well), every product cell writes its *final* model's out-of-fold
predictions (:func:`~metalearn.search.ensemble.model_oof`) and its test predictions before temperature
scaling, with the temperature the product used, to ``FINAL_DIR/<dataset>_<SPLIT_SEED>_<time>.pkl`` (no
refit), for calibration variants: ``python benchmarks/ensemble_testbed/prior_mix.py FINAL_DIR/*.pkl`` (stop 44).
"""

from __future__ import annotations

import os

if os.environ.get("POOL_DIR") or os.environ.get("FINAL_DIR"):
    # this runs before benchmarks/peers.py, whose one-thread BLAS settings must precede numpy's import
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
        os.environ.setdefault(_var, "1")

    import pickle
    import time
    import warnings
    from typing import Any

    import metalearn.benchmark.peers as _peers
    import metalearn.search.ensemble as _ensemble

    _last: dict[str, Any] = {}
    _pool_init = _ensemble.OOFPool.__init__
    _score_model = _peers._score_model

    def _remembered_init(self: Any, *args: Any, **kwargs: Any) -> None:
        _pool_init(self, *args, **kwargs)
        _last["pool"] = self  # one search per process at a time: the cell's

    def _dump_final(prep: Any, res: Any, model: Any, pool: Any) -> None:
        temperature = getattr(model, "temperature", 1.0)
        oof = _ensemble.model_oof(prep.train.task, pool, model, (res.incumbent or {}).get("config_id"))
        model.temperature = 1.0
        try:
            test = model.predict_task(prep.X_test)
        finally:
            model.temperature = temperature
        out = {"dataset": res.dataset, "task": prep.train.task, "oof": oof, "y_test": prep.y_test, "test": test,
               "temperature": temperature, "final_test": res.test_score, "n_rows": prep.train.n_rows}
        folder = os.environ["FINAL_DIR"]
        os.makedirs(folder, exist_ok=True)
        seed = os.environ.get("SPLIT_SEED", "s")
        with open(os.path.join(folder, f"{res.dataset}_{seed}_{int(time.time())}.pkl"), "wb") as f:
            pickle.dump(out, f)

    def _score_and_dump(prep: Any, res: Any, model: Any, since: float) -> None:
        _score_model(prep, res, model, since)
        pool = _last.get("pool")
        if not str(res.strategy).startswith("product") or pool is None:
            return
        if os.environ.get("FINAL_DIR"):
            try:
                _dump_final(prep, res, model, pool)
            except Exception as exc:  # a dump that fails leaves the cell as scored
                print(f"FINAL_DIR: {res.dataset} not dumped ({exc!r})", flush=True)
        if not os.environ.get("POOL_DIR"):
            return
        from metalearn.pipelines.spaces import get_space
        from metalearn.search.evaluation import fit_final

        space = get_space(prep.train.task)
        out: dict[str, Any] = {"task": prep.train.task, "y_test": prep.y_test, "final_test": res.test_score,
                               "incumbent": res.incumbent, "cands": []}
        for c in pool.candidates()[: int(os.environ.get("POOL_TOP", "30"))]:
            t0 = time.monotonic()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    test = fit_final(prep.train, space, c.values).predict_task(prep.X_test)
            except Exception:  # a candidate that does not refit is left out of the evaluation
                test = None
            out["cands"].append({"config_id": c.config_id, "values": c.values, "score": c.score, "oof": c.oof,
                                 "test": test, "refit": time.monotonic() - t0})
        folder = os.environ["POOL_DIR"]
        os.makedirs(folder, exist_ok=True)
        name = f"{res.dataset}_{str(res.strategy).replace('@', '_')}_{int(time.time())}.pkl"
        with open(os.path.join(folder, name), "wb") as f:
            pickle.dump(out, f)

    _ensemble.OOFPool.__init__ = _remembered_init  # type: ignore[method-assign]
    _peers._score_model = _score_and_dump
