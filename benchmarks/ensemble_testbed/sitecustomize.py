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
"""

from __future__ import annotations

import os

if os.environ.get("POOL_DIR"):
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

    def _score_and_dump(prep: Any, res: Any, model: Any, since: float) -> None:
        _score_model(prep, res, model, since)
        pool = _last.get("pool")
        if not str(res.strategy).startswith("product") or pool is None:
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
