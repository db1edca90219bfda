"""Request and response bodies of the service, and the checks that need no model.

``history`` and ``timestamps`` are checked by hand-written validators rather than by a pydantic
union: a union reports every branch that failed, while these name the one step that is wrong
("history: step 3 is nan; send finite numbers ..."). Their JSON schemas are declared
explicitly for ``/openapi.json``. Checks that depend on the model (length, columns, horizon)
live in :mod:`seqcast.serving.models`.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import numpy as np
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    Strict,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

__all__ = [
    "ErrorBody",
    "ErrorItem",
    "ForecastRequest",
    "ForecastResponse",
    "Health",
    "History",
    "Horizon",
    "ModelInfo",
    "ModelList",
    "Timestamps",
    "parse_history",
    "parse_timestamps",
]

_NUMBERS: dict[str, Any] = {"type": "array", "items": {"type": "number"}, "minItems": 1}
_ROWS: dict[str, Any] = {
    "type": "array",
    "items": {"type": "array", "items": {"type": "number"}, "minItems": 1},
    "minItems": 1,
}
#: A refused value is quoted in the message up to this many characters.
MAX_SHOWN_CHARS = 40
#: Longest timestamp string accepted; ISO 8601 with nanoseconds and an offset fits in 35.
MAX_TIMESTAMP_CHARS = 64


def _invalid(kind: str, reason: str) -> PydanticCustomError:
    # The reason goes through the context: a literal template would treat braces as fields.
    return PydanticCustomError(kind, "{reason}", {"reason": reason})


def _number(value: object, where: str) -> float:
    """``value`` as a finite float; JSON booleans and strings are refused, not converted."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        shown = type(value).__name__ if isinstance(value, list | dict) else repr(value)
        if len(shown) > MAX_SHOWN_CHARS:
            shown = shown[: MAX_SHOWN_CHARS - 3] + "..."
        raise _invalid("not_a_number", f"{where} is {shown}, not a number")
    try:
        number = float(value)
    except OverflowError:
        raise _invalid("not_finite", f"{where} is too large for a float64") from None
    if not math.isfinite(number):
        raise _invalid(
            "not_finite",
            f"{where} is {number}; send finite numbers (fill missing values before forecasting)",
        )
    return number


def parse_history(value: object) -> np.ndarray:
    """Checks the ``history`` field: a list of numbers, or a list of equally long rows.

    Args:
        value: the decoded JSON value.

    Returns:
        float64 values: (N,) for a list of numbers, (N, F) for rows.

    Raises:
        PydanticCustomError: not a list, empty, a non-number, NaN or infinite, rows of
            different lengths, or numbers mixed with rows; the message names the step.
    """
    # The common case, plain numbers (or rows of them), is checked in bulk: a request is
    # hundreds of values, and this runs on the event loop. Anything else takes the slow
    # path, which finds the first offending value and names it.
    if isinstance(value, list) and value:
        rows = isinstance(value[0], list)
        items = [x for row in value if type(row) is list for x in row] if rows else value
        regular = not rows or all(type(row) is list and len(row) == len(value[0]) for row in value)
        if regular and items and all(type(x) is float or type(x) is int for x in items):
            try:
                array = np.array(value, dtype=np.float64)
            except OverflowError:
                array = np.array([np.inf])
            if np.isfinite(array).all():
                return array
    return np.array(_parse_history_slowly(value), dtype=np.float64)


def _parse_history_slowly(value: object) -> list[float] | list[list[float]]:
    if not isinstance(value, list):
        raise _invalid(
            "history_type",
            "must be a list of numbers, or a list of rows of numbers (one row per step)",
        )
    if not value:
        raise _invalid("history_empty", "is empty; send the most recent steps")
    if not isinstance(value[0], list):
        numbers: list[float] = []
        for i, item in enumerate(value):
            if isinstance(item, list):
                raise _invalid(
                    "history_mixed",
                    f"step {i} is a list but step 0 is a number; send numbers only, or rows only",
                )
            numbers.append(_number(item, f"step {i}"))
        return numbers
    width = len(value[0])
    rows: list[list[float]] = []
    for i, row in enumerate(value):
        if not isinstance(row, list):
            raise _invalid(
                "history_mixed",
                f"step {i} is not a row but step 0 is; send numbers only, or rows only",
            )
        if len(row) != width or width == 0:
            raise _invalid(
                "history_ragged",
                f"step {i} has {len(row)} values but step 0 has {width}; every row holds one "
                "value per column",
            )
        rows.append([_number(item, f"step {i}, value {j}") for j, item in enumerate(row)])
    return rows


def parse_timestamps(value: object) -> list[str] | list[float]:
    """Checks the ``timestamps`` field: ISO 8601 strings, or numbers; never both.

    Raises:
        PydanticCustomError: not a list, empty, mixed kinds, a string too long, or a number
            that is not finite.
    """
    if not isinstance(value, list) or not value:
        raise _invalid("timestamps_type", "must be a non-empty list, one per history step")
    if isinstance(value[0], str):
        texts: list[str] = []
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise _invalid(
                    "timestamps_mixed", f"timestamp {i} is not a string but timestamp 0 is"
                )
            if len(item) > MAX_TIMESTAMP_CHARS:
                raise _invalid(
                    "timestamp_too_long",
                    f"timestamp {i} has {len(item)} characters; an ISO date needs at most "
                    f"{MAX_TIMESTAMP_CHARS}",
                )
            texts.append(item)
        return texts
    return [_number(item, f"timestamp {i}") for i, item in enumerate(value)]


def _whole_float_to_int(value: object) -> object:
    """``2.0`` -> ``2``: JSON Schema counts it as an integer. Strings, booleans and fractions
    are still refused by the strict integer check that follows."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


History = Annotated[
    np.ndarray,
    PlainValidator(parse_history),
    WithJsonSchema(
        {
            "anyOf": [_NUMBERS, _ROWS],
            "description": "The most recent steps, oldest first. A list of numbers for models "
            "with one input column; else one row per step with a value per column, targets "
            "first, then features (GET /models lists them). Only the last `context_length` "
            "steps are used; a model trained on series shorter than its context also takes "
            "fewer, padded in front.",
        }
    ),
]
Future = Annotated[
    np.ndarray,
    PlainValidator(parse_history),
    WithJsonSchema(
        {
            "anyOf": [_NUMBERS, _ROWS],
            "description": "For a model with future features (GET /models "
            "`future_features`): their values at the forecast steps, one row per step (a "
            "number per step for one feature), for max(horizon, the trained horizon) steps.",
        }
    ),
]
#: A whole number of steps; ``2.0`` counts (JSON Schema calls it an integer), ``"2"`` does not.
Horizon = Annotated[int, Strict(), Field(ge=1), BeforeValidator(_whole_float_to_int)]
Timestamps = Annotated[
    list[str] | list[float],
    PlainValidator(parse_timestamps),
    WithJsonSchema(
        {
            "anyOf": [
                {
                    "type": "array",
                    "items": {"type": "string", "maxLength": MAX_TIMESTAMP_CHARS},
                    "minItems": 1,
                },
                _NUMBERS,
            ],
            "description": "One per history step: ISO 8601 dates or numbers. The response's "
            "timestamps continue them.",
        }
    ),
]


#: The most quantile levels one request may ask for.
MAX_QUANTILES = 99


class ForecastRequest(BaseModel):
    """Body of ``POST /models/{name}/forecast``."""

    model_config = ConfigDict(
        extra="forbid",
        arbitrary_types_allowed=True,
        json_schema_extra={"examples": [{"history": [1.0, 2.0, 3.0], "horizon": 2}]},
    )

    history: History
    horizon: Horizon | None = Field(
        default=None,
        description="Steps T to forecast, at least 1 and at most the model's `max_horizon` "
        "(GET /models); default: the horizon it was trained for.",
    )
    timestamps: Timestamps | None = None
    quantiles: list[Annotated[float, Field(gt=0.0, lt=1.0)]] | None = Field(
        default=None,
        max_length=MAX_QUANTILES,
        description="Quantile levels in (0, 1) to forecast too (a model that can: GET /models "
        "`quantiles`); the response's `quantiles` holds them.",
    )
    future: Future | None = None


class ForecastResponse(BaseModel):
    """Body of a successful forecast."""

    model: str = Field(description="The name the model is served under.")
    horizon: int
    targets: list[str] = Field(description="The forecast columns.")
    forecast: list[float] | list[list[float]] = Field(
        description="T numbers for a model with one target, else T rows of one value per target."
    )
    timestamps: list[str] | list[float] | list[int] = Field(
        description="The time of each forecast step: continuing the request's timestamps, or "
        "step numbers 1..T after the last history step when none were sent."
    )
    quantiles: dict[str, list[float] | list[list[float]]] | None = Field(
        default=None,
        description="Per requested level (as text, '0.1'), T numbers for a model with one "
        "target, else T rows of one value per target; non-decreasing across levels.",
    )


class ModelInfo(BaseModel):
    """One served model, as ``GET /models`` lists it."""

    name: str = Field(description="The model folder's name; the path segment of its URL.")
    model: str = Field(description="The forecaster, as `seqcast fit --model` names it.")
    window: int
    horizon: int = Field(description="The horizon the model was trained for.")
    context_length: int = Field(
        description="History steps a request must send at least (fewer for a model trained "
        "with padding: see padded)."
    )
    padded: bool = Field(
        default=False, description="Whether the model takes a shorter history, padded in front."
    )
    quantiles: str | None = Field(
        default=None,
        description="How the model forecasts quantiles: 'network' (trained for them, up to its "
        "horizon), 'conformal' (calibrated intervals, up to `quantile_steps`), or none.",
    )
    quantile_steps: int = Field(default=0, description="The farthest step with quantiles.")
    max_horizon: int = Field(description="The largest horizon a request may ask for.")
    targets: list[str]
    features: list[str] = Field(description="Input columns that are not forecast.")
    future_features: list[str] = Field(
        default_factory=list,
        description="Inputs whose values at the forecast steps a request sends in `future`.",
    )
    calendar: list[str] = Field(
        default_factory=list,
        description="Calendar inputs, computed from the request's `timestamps` (then needed).",
    )
    freq: str | None = Field(description="Frequency of the training timestamps, if dated.")
    trained_at: str | None
    metrics: dict[str, Any]


class ModelList(BaseModel):
    """Body of ``GET /models``."""

    models: list[ModelInfo]


class Health(BaseModel):
    """Body of ``GET /health``."""

    status: str
    models: int


class ErrorItem(BaseModel):
    """One problem found in a request."""

    loc: list[str | int] = Field(description="Where: 'body', then the field and position.")
    msg: str
    type: str


class ErrorBody(BaseModel):
    """Body of every refusal (4xx) and of an internal error (500)."""

    detail: str = Field(description="What was wrong, in one or a few sentences.")
    errors: list[ErrorItem] | None = Field(
        default=None, description="Every problem found, for a request that failed validation."
    )
