"""Searches: warm-started SMAC runs on an uploaded dataset, executed by the worker pool."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Form, HTTPException, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from metalearn.data.errors import InputError
from metalearn.data.metrics import check_metric
from metalearn.data.task import TaskKind
from metalearn.registry import REGISTER_HELP
from metalearn.search.settings import PARAMS, SearchSettings, defaults, params, trial_budget
from metalearn.service.deps import PageDep, ReadAccess, SearchesDep, SettingsDep, WriteAccess
from metalearn.service.routers.recommendations import ERRORS
from metalearn.service.schemas import (
    ID_PATTERN,
    Message,
    Page,
    SearchCreated,
    SearchLeaderboardOut,
    SearchOut,
    SearchSummaryOut,
)
from metalearn.service.schemas_models import MODEL_NAME_PATTERN
from metalearn.service.searches import SearchesDisabledError
from metalearn.service.uploads import TargetsField, UploadField, read_upload

router = APIRouter(prefix="/searches", tags=["searches"])

SearchId = Annotated[str, Path(pattern=ID_PATTERN, description="Search id.")]
StatusFilter = Literal["pending", "running", "done", "failed", "cancelled", "interrupted"]

#: the defaults of the search parameters as the API's forms give them (``POST /searches``, a model's retrain)
API_DEFAULTS = defaults("api")


def search_form(name: str) -> Any:
    """The form field of search parameter ``name``: its help and bounds as metalearn.search.settings
    declares them (validation itself is SearchSettings')."""
    param = PARAMS[name]
    return Form(description=param.help, **param.form_bounds())


Result = TypeVar("Result")


def with_search_form(endpoint: Callable[..., Awaitable[Result]]) -> Callable[..., Awaitable[Result]]:
    """Give an endpoint the search parameters' form fields in place of its keyword-only ``search`` parameter.

    One field a parameter the API exposes (:func:`~metalearn.search.settings.params`, in their declared order):
    of its declared type (``Param.annotation``), with :func:`search_form`'s help and bounds and :data:`API_DEFAULTS`' default.
    The endpoint gets the values sent as ``search``, one mapping by name, and validates them itself
    (:func:`server_search_settings`: its server's limits, then ``SearchSettings.from_params``). FastAPI reads the signature set here (annotations
    evaluated), so the form, its 422 errors and the OpenAPI schema are those of the same parameters written
    out in the endpoint in that order."""
    names = tuple(params("api"))
    signature = inspect.signature(endpoint, eval_str=True)  # FastAPI takes the annotations as they are
    own = list(signature.parameters.values())
    at = [p.name for p in own].index("search")
    form = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=API_DEFAULTS[name],
                              annotation=Annotated[PARAMS[name].annotation("api"), search_form(name)]) for name in names]
    signature = signature.replace(parameters=[*own[:at], *form, *own[at + 1:]])

    @functools.wraps(endpoint)
    async def with_search(**values: Any) -> Result:
        search = {name: values.pop(name) for name in names}
        return await endpoint(**values, search=search)

    with_search.__signature__ = signature  # type: ignore[attr-defined]
    with_search.__annotations__ = {
        **{p.name: p.annotation for p in signature.parameters.values()}, "return": signature.return_annotation
    }
    return with_search


def server_trials(n_trials: int | None, time_limit: float | None, settings: Any) -> int | None:
    """The trial budget a search on this server gets: ``n_trials`` when it is within the server's
    ``max_search_trials`` (else a 422); unset, the search's own default (no bound under a time limit),
    capped at ``max_search_trials``."""
    if n_trials is not None:
        if n_trials > settings.max_search_trials:
            raise HTTPException(
                422,
                detail=f"n_trials must be at most {settings.max_search_trials} on this server, got {n_trials}",
            )
        return n_trials
    unset = trial_budget(None, time_limit)
    return None if unset <= settings.max_search_trials else int(settings.max_search_trials)


def server_search_settings(search: Mapping[str, Any], settings: Any) -> SearchSettings:
    """The settings of a search (``POST /searches``, a model's retrain) from its form's values (:func:`with_search_form`):
    the trial budget within this server's limit (:func:`server_trials`), the time limit within its
    ``max_search_seconds``, then ``SearchSettings``' own validation; each a 422 naming the value."""
    time_limit = search["time_limit"]
    n_trials = server_trials(search["n_trials"], time_limit, settings)
    if time_limit is not None and time_limit > settings.max_search_seconds:
        raise HTTPException(
            422,
            detail=f"time_limit must be at most {settings.max_search_seconds:g} s on this server, got {time_limit:g}",
        )
    try:  # SearchSettings validates; its error is a 422 like the form's own
        return SearchSettings.from_params(**{**search, "n_trials": n_trials})
    except InputError as exc:
        raise HTTPException(422, detail=str(exc)) from None


@router.post(
    "",
    status_code=202,
    response_model=SearchCreated,
    dependencies=[WriteAccess],
    responses={**ERRORS, 429: {"model": Message, "description": "Too many pending searches"}},
    summary="Start a warm-started search on an uploaded dataset",
)
@with_search_form
async def create_search(
    request: Request,
    response: Response,
    searches: SearchesDep,
    settings: SettingsDep,
    file: UploadField,
    target: TargetsField,
    kind: Annotated[TaskKind | None, Form(description="Task kind (inferred when absent).")] = None,
    metric: Annotated[str | None, Form(max_length=64, description="Metric to optimise.")] = None,
    *,
    search: Mapping[str, Any],  # the search parameters' form fields (with_search_form)
    register_as: Annotated[
        str | None,
        Form(
            alias="register",
            pattern=MODEL_NAME_PATTERN,
            description=REGISTER_HELP + " The search's status says which version.",
        ),
    ] = None,
) -> SearchCreated:
    """Returns 202 at once with the search id and a ``Location`` to poll; every trial goes to the KB."""
    if not searches.enabled:
        raise SearchesDisabledError(
            "this server opened its knowledge base read-only, so it cannot run searches; "
            "start it with --workers 1 and without METALEARN_KB_READ_ONLY"
        )
    search_settings = server_search_settings(search, settings)
    dataset = await run_in_threadpool(read_upload, file, target, settings, kind, metric or None)
    try:  # a metric of another kind (or none) is refused before the dataset and the search are stored
        check_metric(dataset.task.kind, dataset.task.metric)
    except InputError as exc:
        raise HTTPException(422, detail=str(exc)) from None
    job = await run_in_threadpool(searches.submit, dataset, search_settings, register_as or None)
    location = str(request.url_for("get_search", search_id=job.search_id))
    response.headers["Location"] = location
    return SearchCreated(
        search_id=job.search_id, status="pending", dataset_id=job.dataset_id, location=location
    )


@router.get(
    "", response_model=Page[SearchSummaryOut], dependencies=[ReadAccess], summary="Searches, newest first"
)
def list_searches(
    searches: SearchesDep,
    page: PageDep,
    status: Annotated[StatusFilter | None, Query(description="Only searches with this status.")] = None,
) -> Page[SearchSummaryOut]:
    limit, offset = page
    rows = searches.list(limit + 1, offset, status=status)
    return Page[SearchSummaryOut](
        items=[SearchSummaryOut.model_validate(r) for r in rows[:limit]],
        limit=limit,
        offset=offset,
        next_offset=offset + limit if len(rows) > limit else None,
    )


@router.get(
    "/{search_id}",
    response_model=SearchOut,
    dependencies=[ReadAccess],
    responses={404: {"model": Message}},
    summary="Status, trials so far, trajectory and incumbent of a search",
)
def get_search(search_id: SearchId, searches: SearchesDep) -> SearchOut:
    return SearchOut.model_validate(searches.get(search_id))


@router.get(
    "/{search_id}/leaderboard",
    response_model=SearchLeaderboardOut,
    dependencies=[ReadAccess],
    responses={404: {"model": Message}},
    summary="Every pipeline the search scored, best first, with its weight in the registered model",
)
def get_leaderboard(
    search_id: SearchId,
    searches: SearchesDep,
    top: Annotated[int | None, Query(ge=1, le=10_000, description="Only the best 'top' pipelines.")] = None,
) -> SearchLeaderboardOut:
    """AutoGluon's ``leaderboard()`` for a search of this server: each configuration scored on all the data
    (a running search's trials so far), its best validation score, time, evaluations and origin; ``weight``
    is its share of the final model when the search registered one (``register``), else 0."""
    board = searches.leaderboard(search_id)
    rows = board.pop("rows")
    return SearchLeaderboardOut.model_validate(
        {**board, "n_pipelines": len(rows), "rows": rows if top is None else rows[:top]}
    )


@router.delete(
    "/{search_id}",
    status_code=202,
    response_model=SearchOut,
    dependencies=[WriteAccess],
    responses={404: {"model": Message}, 409: {"model": Message, "description": "Already finished"}},
    summary="Cancel a pending or running search",
)
def cancel_search(search_id: SearchId, searches: SearchesDep) -> SearchOut:
    """A pending search is cancelled at once; a running one stops after its current trial."""
    view: dict[str, Any] = searches.cancel(search_id)
    return SearchOut.model_validate(view)
