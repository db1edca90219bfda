"""Calendar features: where each timestamp falls in its day, week and year, as cyclic inputs
known for every step, the forecast steps included.

Each cycle is encoded by a sine and a cosine of its phase, so that its last and first values
(Sunday and Monday, December and January) are neighbours. Which cycles depend on the
frequency: an hourly series gets the hour of the day and the day of the week, a daily one the
day of the week and the day of the year, a weekly one the week of the year, a monthly one the
month of the year, a quarterly one the quarter. A cycle no longer than one step carries nothing
and is never used (a monthly series has no day of the week).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["CALENDARS", "CYCLES", "calendar_names", "calendar_values"]

#: The ``calendar`` choices: ``auto`` (the cycles of the frequency) or ``none``.
CALENDARS = ("auto", "none")

#: Each cycle's phase in [0, 1) at every timestamp.
CYCLES: dict[str, Callable[[pd.DatetimeIndex], Any]] = {
    "hour": lambda t: (t.hour + t.minute / 60.0) / 24.0,
    "weekday": lambda t: t.day_of_week / 7.0,
    "week": lambda t: (t.day_of_year - 1) / 365.25,
    "yearday": lambda t: (t.day_of_year - 1) / 365.25,
    "month": lambda t: (t.month - 1) / 12.0,
    "quarter": lambda t: (t.quarter - 1) / 4.0,
}


def _cycles(step_days: float) -> list[str]:
    """The cycles that a series with steps of ``step_days`` days goes through several times
    a cycle: those longer than two steps."""
    if step_days < 1.0:
        return ["hour", "weekday"]
    if step_days < 2.0:
        return ["weekday", "yearday"]
    if step_days < 14.0:
        return ["week"]
    if step_days < 45.0:
        return ["month"]
    if step_days < 140.0:
        return ["quarter"]
    return []


def calendar_names(index: pd.Index) -> list[str]:
    """The calendar columns of a series with timestamps ``index`` (``calendar:weekday_sin``,
    ``calendar:weekday_cos``, ...): none for steps without dates or of a year or more."""
    if not isinstance(index, pd.DatetimeIndex) or len(index) < 2:
        return []
    step = pd.Series(index).diff().median() / pd.Timedelta(days=1)  # in days, any unit
    return [f"calendar:{cycle}_{part}" for cycle in _cycles(step) for part in ("sin", "cos")]


def calendar_values(index: pd.DatetimeIndex, names: list[str]) -> np.ndarray:
    """(N, K) values of the calendar columns ``names`` at the timestamps ``index``.

    Example:
        >>> days = pd.date_range("2024-01-01", periods=8, freq="D")  # a Monday first
        >>> values = calendar_values(days, ["calendar:weekday_sin", "calendar:weekday_cos"])
        >>> np.allclose(values[0], values[7]), np.allclose(values[0], [0.0, 1.0])
        (True, True)
    """
    out = np.empty((len(index), len(names)))
    for k, name in enumerate(names):
        cycle, _, part = name.removeprefix("calendar:").rpartition("_")
        if cycle not in CYCLES or part not in ("sin", "cos"):
            raise ValueError(f"unknown calendar column '{name}'")
        phase = np.asarray(CYCLES[cycle](index), dtype=np.float64)
        angle = 2.0 * np.pi * phase
        out[:, k] = np.sin(angle) if part == "sin" else np.cos(angle)
    return out
