"""The FastAPI application: routes, and refusals as JSON ``{"detail": ...}``.

Routes:
    ``GET /health``: liveness and the number of models.
    ``GET /models``: every served model, with what a request must send.
    ``GET /models/{name}``: one of them.
    ``POST /models/{name}/forecast``: a forecast from a recent history.

Bad input is refused with a 4xx that says what was wrong, never a 5xx: 404 for an unknown
model, 408 for a body that does not arrive in time, 413 for a body above the size limit, 400
for a body that cannot be decoded (not UTF-8, a number of thousands of digits, nesting
thousands deep), 422 for everything else (JSON, types, NaN, too short a history, the wrong
number of columns, a horizon out of range, bad timestamps). Load is refused with 503 and
``Retry-After``: more forecasts in flight than ``max_in_flight``, or more of several passes
than ``max_rollouts``. A bug answers 500, as JSON too, and uvicorn logs its traceback.

The forecast endpoint checks the request on the event loop (history, timestamps, values known
ahead), counts its work, takes a slot, then computes in the thread pool; forecasts of one model
or of several run side by side.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

try:
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the installed extras
    raise ModuleNotFoundError(
        "the forecasting service needs the 'serve' extra: pip install 'seqcast[serve]'"
    ) from exc

from seqcast._version import __version__
from seqcast.errors import DataError, SeqcastError
from seqcast.evaluation.probabilistic import check_quantiles
from seqcast.prediction import continue_timestamps, step_numbers
from seqcast.serving import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_HORIZON,
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_MAX_ROLLOUTS,
    DEFAULT_READ_TIMEOUT,
)
from seqcast.serving.limits import BodySizeLimit, ForecastSlots
from seqcast.serving.models import ServedModel, load_served_models
from seqcast.serving.schemas import (
    ErrorBody,
    ErrorItem,
    ForecastRequest,
    ForecastResponse,
    Health,
    ModelInfo,
    ModelList,
)

__all__ = ["create_app"]

#: At most this many validation problems are spelled out in ``detail``; ``errors`` has all.
MAX_LISTED_ERRORS = 3

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No model of that name is served."}
}
_REFUSED: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "The body cannot be decoded; `detail` says why."},
    **_NOT_FOUND,
    408: {"model": ErrorBody, "description": "The body did not arrive in time."},
    413: {"model": ErrorBody, "description": "The request body is above the size limit."},
    422: {"model": ErrorBody, "description": "The request is invalid; `detail` says why."},
    503: {"model": ErrorBody, "description": "Too many forecasts in flight; see Retry-After."},
}


def create_app(
    model_dirs: Sequence[str | os.PathLike[str]],
    max_horizon: int = DEFAULT_MAX_HORIZON,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    max_rollouts: int = DEFAULT_MAX_ROLLOUTS,
    read_timeout: float = DEFAULT_READ_TIMEOUT,
) -> FastAPI:
    """Loads the model folders and builds the app that serves them.

    Args:
        model_dirs: folders written by ``seqcast fit``; each is served under its folder's name.
        max_horizon: the largest horizon T a request may ask for (less for a model with input
            features, which cannot forecast past its trained horizon).
        max_body_bytes: the largest request body; larger ones get 413 before being parsed.
        max_in_flight: forecasts computed at once; more get 503 with ``Retry-After`` at once,
            while ``/health`` and ``/models`` always answer.
        max_rollouts: of those, forecasts of more than one pass (past the trained horizon,
            or with sampled quantile paths); more get 503 with ``Retry-After`` at once.
        read_timeout: seconds a request body gets to arrive; then 408.

    Returns:
        The application, ready for any ASGI server; ``app.state.models`` maps each name to
        its :class:`~seqcast.serving.models.ServedModel`.

    Raises:
        SeqcastError: no folder, duplicate folder names, or a bad limit.
        ModelFormatError: a folder cannot be loaded.

    Example:
        >>> app = create_app(["models/rnn"])  # doctest: +SKIP
        >>> # uvicorn.run(app, host="127.0.0.1", port=8000)
    """
    for name, value in (
        ("max_body_bytes", max_body_bytes),
        ("max_in_flight", max_in_flight),
        ("max_rollouts", max_rollouts),
    ):
        if value < 1:
            raise SeqcastError(f"{name} must be at least 1, got {value}", arguments=(name,))
    if not read_timeout > 0:
        raise SeqcastError(
            f"read_timeout must be positive, got {read_timeout}", arguments=("read_timeout",)
        )
    models = load_served_models(model_dirs, max_horizon)
    app = FastAPI(
        title="seqcast",
        version=__version__,
        summary="Forecasts from saved seqcast models.",
        description=(
            "POST a model's recent history to `/models/{name}/forecast` to get the next T "
            "steps. Without `timestamps`, forecast steps are numbered 1..T after the last "
            "history step: the service cannot know when the history ends."
        ),
    )
    app.state.models = models
    slots = ForecastSlots(max_in_flight, max_rollouts)
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes, read_timeout=read_timeout)
    _add_error_handlers(app)
    _list_names_in_schema(app, list(models))

    def lookup(name: str) -> ServedModel:
        model = models.get(name)
        if model is None:
            raise HTTPException(
                status_code=404,
                detail=f"unknown model '{name}'; this server serves: {', '.join(models)}",
            )
        return model

    @app.get("/health", response_model=Health)
    async def health() -> Health:  # on the event loop: never waits for a worker thread
        """Whether the server is up, and how many models it serves."""
        return Health(status="ok", models=len(models))

    @app.get("/models", response_model=ModelList)
    def list_models() -> ModelList:
        """Every served model: its name, columns, window, horizons and training metrics."""
        return ModelList(models=[model.info() for model in models.values()])

    @app.get("/models/{name}", response_model=ModelInfo, responses=_NOT_FOUND)
    def model_info(name: str) -> ModelInfo:
        """One served model."""
        return lookup(name).info()

    @app.post("/models/{name}/forecast", response_model=ForecastResponse, responses=_REFUSED)
    async def forecast(name: str, request: ForecastRequest) -> ForecastResponse:
        """Forecasts the next ``horizon`` steps after ``history``.

        ``history`` holds the model's input columns (GET /models: targets, then features),
        oldest step first; at least ``context_length`` steps, of which the last are used.
        """
        model = lookup(name)
        horizon = model.forecaster.horizon if request.horizon is None else request.horizon
        model.check_horizon(horizon)
        levels = None if request.quantiles is None else check_quantiles(request.quantiles)
        if levels is not None:
            model.check_quantiles(horizon)
        checked = _check(model, request, horizon)  # cheap, and before any slot is taken
        passes = model.passes(horizon, levels is not None)
        refusal = slots.enter(passes)
        if refusal is not None:
            raise HTTPException(status_code=503, detail=refusal, headers={"Retry-After": "1"})
        try:
            return await run_in_threadpool(_answer, model, checked, horizon, levels)
        finally:
            slots.leave(passes)

    return app


@dataclass(frozen=True)
class _Checked:
    """A request's inputs, checked: the (C, F) context, the (1, T', F_k) values known ahead
    (None without such inputs), the forecast steps' timestamps and the (N, F) history rows."""

    context: np.ndarray
    known: np.ndarray | None
    times: list[str] | list[float] | list[int]
    history: np.ndarray


def _check(model: ServedModel, request: ForecastRequest, horizon: int) -> _Checked:
    """Checks a request against its model: history, timestamps, values known ahead."""
    rows = model.rows(request.history, request.timestamps)  # (N, F)
    context = model.last(rows)  # (C, F)
    n_steps = len(request.history)
    if request.timestamps is not None and len(request.timestamps) != n_steps:
        raise DataError(
            f"timestamps has {len(request.timestamps)} entries but history has {n_steps} "
            "steps; send one timestamp per history step"
        )
    times: list[str] | list[float] | list[int] = step_numbers(horizon)
    if request.timestamps is not None:
        times = continue_timestamps(request.timestamps, horizon, model.saved.data, model.name)
    known = model.known(context, horizon, request.future, request.timestamps)  # (1, T', F_k)
    return _Checked(context, known, times, rows)


def _answer(
    model: ServedModel,
    checked: _Checked,
    horizon: int,
    levels: tuple[float, ...] | None,
) -> ForecastResponse:
    """Computes a checked request's forecast (on a worker thread)."""
    context, known = checked.context, checked.known
    values = model.forecast(context, horizon, known)  # (T, Ft)
    targets = model.saved.targets
    quantiles = None
    if levels is not None:
        bands = model.forecast_quantiles(context, values, levels, known, checked.history)
        quantiles = {
            f"{q:g}": bands[:, 0, k].tolist() if len(targets) == 1 else bands[..., k].tolist()
            for k, q in enumerate(levels)
        }
    return ForecastResponse(
        model=model.name,
        horizon=horizon,
        targets=targets,
        forecast=values[:, 0].tolist() if len(targets) == 1 else values.tolist(),
        timestamps=checked.times,
        quantiles=quantiles,
    )


def _list_names_in_schema(app: FastAPI, names: list[str]) -> None:
    """Documents the served names as the ``enum`` of every ``{name}`` path parameter, so that
    ``/openapi.json`` says which models exist (and schema-driven clients and tests use them)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = FastAPI.openapi(app)
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    for parameter in operation.get("parameters", []):
                        if parameter.get("in") == "path" and parameter.get("name") == "name":
                            parameter["schema"]["enum"] = names
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            ErrorItem(
                loc=[p if isinstance(p, int) else str(p) for p in e["loc"]],
                msg=_message(e),
                type=str(e["type"]),
            )
            for e in exc.errors()
        ]
        listed = [_describe(e.loc, e.msg, e.type) for e in errors[:MAX_LISTED_ERRORS]]
        if len(errors) > MAX_LISTED_ERRORS:
            listed.append(f"and {len(errors) - MAX_LISTED_ERRORS} more")
        body = ErrorBody(detail="; ".join(listed), errors=errors)
        return JSONResponse(status_code=422, content=body.model_dump())

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail
        if exc.status_code == 400 and detail == "There was an error parsing the body":
            detail = _undecodable(exc.__cause__)
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(SeqcastError)
    async def refused(request: Request, exc: SeqcastError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": str(exc)})

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        # Starlette raises the exception again once this answer is sent: uvicorn logs it.
        return JSONResponse(
            status_code=500,
            content={"detail": f"internal error ({type(exc).__name__}); see the server log"},
        )


def _undecodable(cause: BaseException | None) -> str:
    """Why FastAPI could not decode a body; its own message says only that it could not."""
    if isinstance(cause, RecursionError):
        return "the body cannot be decoded: its arrays or objects are nested too deeply"
    if isinstance(cause, ValueError) and not isinstance(cause, UnicodeDecodeError):
        # Python refuses integers of more than 4,300 digits; the rest is advice to callers.
        return f"the body cannot be decoded: {str(cause).split(';')[0]}"
    return "the body cannot be decoded: send JSON encoded as UTF-8"


def _message(error: Any) -> str:
    """A validation error's message, with the parser's reason for malformed JSON."""
    if error["type"] == "json_invalid":
        reason = (error.get("ctx") or {}).get("error", "")
        where = error["loc"][-1] if isinstance(error["loc"][-1], int) else None
        at = f" at character {where}" if where is not None else ""
        return f"the body is not valid JSON ({reason}{at})" if reason else "the body is not JSON"
    return str(error["msg"])


def _describe(loc: list[str | int], message: str, kind: str) -> str:
    """``['body', 'history', 3]`` -> ``history[3]: message``; the body itself is ``body``."""
    if kind == "json_invalid":
        return message
    parts = loc[1:] if len(loc) > 1 and loc[0] == "body" else loc
    where = ""
    for part in parts:
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
    return f"{where}: {message}"
