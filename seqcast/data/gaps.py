"""Gaps in a series: values that were never observed.

A loaded series marks the rows whose target values were not observed
(:attr:`~seqcast.data.frame.Series.unobserved`): filled by ``fill`` ``ffill`` or
``interpolate``, or left missing (NaN) by ``fill`` ``mask``. Backtests never score such a row.
Models that read gaps natively (the recurrent networks: their inputs flag each unobserved
value, and no training target is ever one) get the NaN; the others get each gap carried
forward from the last value before it, which only looks back in time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["carry_forward", "has_gaps"]


def has_gaps(values: np.ndarray) -> bool:
    """Whether ``values`` hold a missing value (NaN)."""
    return bool(np.isnan(values).any())


def carry_forward(values: np.ndarray) -> np.ndarray:
    """``values`` (N, F) with each NaN replaced by the last value before it in its column
    (a leading gap by the first value after it, the only one there is).

    Example:
        >>> carry_forward(np.array([[np.nan], [1.0], [np.nan], [3.0]]))[:, 0].tolist()
        [1.0, 1.0, 1.0, 3.0]
    """
    if not has_gaps(values):
        return values
    filled: np.ndarray = pd.DataFrame(values).ffill().bfill().to_numpy(dtype=np.float64)
    return filled
