"""Reading values: where a value sits in its table, and numbers read exactly or refused.

Shared by :mod:`seqcast.data.loading` and :mod:`seqcast.data.timestamps`: every message names
the file (or frame), the column and the row.
"""

from __future__ import annotations

import decimal
from dataclasses import dataclass

import numpy as np
import pandas as pd

from seqcast.errors import DataError

__all__ = ["EXACT_INTEGERS", "LARGEST_VALUE", "ROW", "Where", "check_finite", "is_numeric_like",
           "is_text", "to_numeric"]  # fmt: skip

#: The column that keeps each row's place in the original table, for messages.
ROW = "_seqcast_row"
#: The largest magnitude a value may have: variances and squared errors of larger ones
#: overflow float64 (about 1.8e308).
LARGEST_VALUE = 1e150


@dataclass(frozen=True)
class Where:
    """Where the data came from, to phrase messages."""

    label: str
    has_lines: bool

    def row(self, position: int) -> str:
        """Describes the data row at 0-based ``position`` of the original table."""
        if self.has_lines:
            return f"row {position + 1} (line {position + 2})"
        return f"row {position + 1}"


def is_numeric_like(values: pd.Series) -> bool:
    # Dates convert to numbers (nanoseconds since 1970), but they are never a value to forecast.
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_datetime64_any_dtype(values):
        return False
    if pd.api.types.is_numeric_dtype(values):
        return True
    return bool(pd.to_numeric(values, errors="coerce").notna().any())


def is_text(values: pd.Series) -> bool:
    return pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)


def to_numeric(values: pd.Series, where: Where, col: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(values):
        raise DataError(f"{where.label}, column '{col}': expected numbers, got true/false values")
    if pd.api.types.is_float_dtype(values):
        return values.astype(np.float64)
    if pd.api.types.is_numeric_dtype(values):
        converted = values.astype(np.float64)
    else:
        converted = pd.to_numeric(values, errors="coerce").astype(np.float64)
        bad = values.notna() & converted.isna()
        if bad.any():
            position = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"{where.label}, column '{col}', {where.row(position)}: expected a number, got "
                f"{values.iloc[position]!r} ({int(bad.sum())} non-numeric value(s) in the column)"
            )
    _check_exact(values, converted, where, col)
    return converted


#: Integers beyond this magnitude are not all exact as 64-bit floats (2 ** 53).
EXACT_INTEGERS = float(2**53)


def _check_exact(values: pd.Series, converted: pd.Series, where: Where, col: str) -> None:
    """Refuses distinct numbers (large integers, decimals, text) that read as one float.

    A float keeps 15 to 17 significant digits: ``1e30 + 1`` and ``1e30 + 2`` both become
    ``1e30``, and a series of them would be forecast as a constant.
    """
    big = np.abs(converted.to_numpy()) > EXACT_INTEGERS  # NaN compares False
    if not big.any():
        return
    raw, floats = values[big], converted[big]
    exact = raw.map(_exact_text)
    merged = pd.DataFrame({"exact": exact.to_numpy(), "float": floats.to_numpy()})
    distinct = merged.groupby("float")["exact"].transform("nunique").to_numpy()
    if not (distinct > 1).any():
        return
    first = int(np.flatnonzero(distinct > 1)[0])
    value = floats.iloc[first]
    others = raw[(floats == value).to_numpy() & (exact != exact.iloc[first]).to_numpy()]
    position = int(np.flatnonzero(big)[first])
    raise DataError(
        f"{where.label}, column '{col}', {where.row(position)}: {raw.iloc[first]!s} and "
        f"{others.iloc[0]!s} are different numbers but the same 64-bit float ({value:.17g}), "
        "which keeps 15 to 17 significant digits; subtract an offset or divide the column by "
        "a power of ten first"
    )


def _exact_text(value: object) -> str:
    """A number's exact value as canonical text (``1e3`` and ``1000`` alike)."""
    try:
        return str(decimal.Decimal(str(value).strip()).normalize(_EXACT))
    except (decimal.InvalidOperation, ValueError):
        return str(value)


#: Enough digits for any number a file can hold (Python refuses integers of over 4,300).
_EXACT = decimal.Context(prec=5000)


def check_finite(frame: pd.DataFrame, where: Where, col: str) -> None:
    infinite = np.isinf(frame[col].to_numpy())
    if infinite.any():
        position = int(frame[ROW].to_numpy()[np.flatnonzero(infinite)[0]])
        raise DataError(
            f"{where.label}, column '{col}' has {int(infinite.sum())} infinite value(s), "
            f"the first at {where.row(position)}; expected finite numbers"
        )
    huge = np.abs(frame[col].to_numpy()) > LARGEST_VALUE
    if huge.any():
        first = int(np.flatnonzero(huge)[0])
        position = int(frame[ROW].to_numpy()[first])
        raise DataError(
            f"{where.label}, column '{col}' has {int(huge.sum())} value(s) beyond "
            f"±{LARGEST_VALUE:.0e}, the first {frame[col].iloc[first]:.3g} at "
            f"{where.row(position)}: their squares overflow; divide the column by a power of ten"
        )
