"""Inputs known ahead: the same models with and without them, on ETTh1 and ETTh2 (the
calendar) and on a daily sales series with planned promotions (a future feature).

The ETT protocol of `accuracy.py` (all 7 channels in and out, lookback 96, horizon 96; fit
and scaler on the first 8,640 rows; MSE and MAE on the scaled data), scored on the validation
rows (8,640-11,520: where a default is chosen) and on the test rows (11,520-14,400: reported,
never chosen on). With ``calendar``, the hour of the day and the day of the week (a sine and a
cosine each, ``--calendar auto`` for hourly data) are inputs known for every forecast step.
``rnn-1`` is the rnn without seasonal inputs (season 1), for which the calendar is the only
word of the daily cycle.

``promo``: 3 years of generated daily sales (a weekly cycle, a yearly swing, noise, and a lift
on the 15 % of days with a planned promotion); fit on the first 2 years, forecast 14 days from
every day of the third (validation: its first half, test: its second). The promotion column
is given as a past-only feature (``--feature``) or as known ahead (``--future-feature``), with
and without the calendar.

    .venv/bin/python benchmarks/known_future.py [--only etth1,etth2,promo] [--models linear,rnn]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from seqcast.data import load_dataset
from seqcast.data.windows import known_after, sliding_windows
from seqcast.forecasters.registry import create_for

CHANNELS = ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]
HORIZON = WINDOW = 96
PARTS = {"validation": (8640, 11520), "test": (11520, 14400)}


def score(dataset: str, model: str, calendar: bool) -> tuple[dict[str, tuple[float, float]], float]:
    data = load_dataset(dataset, targets=CHANNELS, calendar="auto" if calendar else "none")
    values = data.series[0].values[:14400]
    n_known = data.n_future if calendar else 0
    mean, std = values[:8640, :7].mean(axis=0), values[:8640, :7].std(axis=0)
    scaled = values.copy()
    scaled[:, :7] = (values[:, :7] - mean) / std  # the calendar is in [-1, 1] already
    options = {"window": WINDOW, "horizon": HORIZON, "seed": 0}
    if model != "linear":
        options["season"] = 24
    if model == "rnn-1":
        options["season"] = 1
    started = time.perf_counter()
    forecaster = create_for(model.removesuffix("-1"), options)
    forecaster.fit([scaled[:8640]], n_targets=7, n_future=n_known)
    seconds = time.perf_counter() - started
    context = forecaster.context_length
    scores = {}
    for part, (start, end) in PARTS.items():
        origins = np.arange(start, end - HORIZON + 1)
        truth = sliding_windows(scaled[:, :7], HORIZON)[origins]  # (B, T, 7)
        contexts = sliding_windows(scaled, context)[origins - context]
        known = known_after(scaled, origins, HORIZON, n_known)
        forecasts = forecaster.predict(contexts, future=known)
        scores[part] = (
            float(np.mean((forecasts - truth) ** 2)),
            float(np.mean(np.abs(forecasts - truth))),
        )
    return scores, seconds


def promo(model: str, known: bool, calendar: bool) -> tuple[dict[str, tuple[float, float]], float]:
    """Scores on the generated promotion series (see the module docstring), in its units."""
    import pandas as pd

    from seqcast.data import load_series

    rng = np.random.default_rng(0)
    days = pd.date_range("2021-01-04", periods=3 * 364, freq="D")
    planned = (rng.random(len(days)) < 0.15).astype(float)
    step = np.arange(len(days))
    sales = (100 + 15 * (days.day_of_week >= 5) + 10 * np.sin(2 * np.pi * step / 364)
             + 30 * planned + rng.normal(0, 4, len(days)))  # fmt: skip
    frame = pd.DataFrame({"date": days, "sales": sales, "promo": planned})
    data = load_series(
        frame,
        targets=["sales"],
        features=[] if known else ["promo"],
        future_features=["promo"] if known else [],
        calendar="auto" if calendar else "none",
    )
    values = data.series[0].values
    horizon = 14
    options = {"window": 28, "horizon": horizon, "seed": 0}
    if model != "linear":
        options["season"] = 1 if model == "rnn-1" else 7
    started = time.perf_counter()
    forecaster = create_for(model.removesuffix("-1"), options)
    forecaster.fit([values[:728]], n_targets=1, n_future=data.n_future)
    seconds = time.perf_counter() - started
    context = forecaster.context_length
    scores = {}
    for part, (start, end) in {"validation": (728, 910), "test": (910, 1092)}.items():
        origins = np.arange(start, end - horizon + 1)
        truth = sliding_windows(values[:, :1], horizon)[origins]
        contexts = sliding_windows(values, context)[origins - context]
        forecasts = forecaster.predict(
            contexts, future=known_after(values, origins, horizon, data.n_future)
        )
        scores[part] = (
            float(np.mean((forecasts - truth) ** 2)),
            float(np.mean(np.abs(forecasts - truth))),
        )
    return scores, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="etth1,etth2,promo")
    parser.add_argument("--models", default="linear,rnn")
    args = parser.parse_args()
    print("| data | model | inputs | validation MSE | MAE | test MSE | MAE | fit s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for dataset in args.only.split(","):
        for model in args.models.split(","):
            variants = (
                [(k, c) for k in (False, True) for c in (False, True)]
                if dataset == "promo"
                else [(False, False), (False, True)]
            )
            for known, calendar in variants:
                if dataset == "promo":
                    scores, seconds = promo(model, known, calendar)
                    inputs = "promo known ahead" if known else "promo past only"
                else:
                    scores, seconds = score(dataset, model, calendar)
                    inputs = "7 channels"
                inputs += " + calendar" if calendar else ""
                (v_mse, v_mae), (t_mse, t_mae) = scores["validation"], scores["test"]
                print(
                    f"| {dataset} | {model} | {inputs} | {v_mse:.3f} | {v_mae:.3f} | "
                    f"{t_mse:.3f} | {t_mae:.3f} | {seconds:.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
