"""Inputs known ahead: the same models with and without the calendar, on ETTh1 and ETTh2.

The ETT protocol of `accuracy.py` (all 7 channels in and out, lookback 96, horizon 96; fit
and scaler on the first 8,640 rows; MSE and MAE on the scaled data), scored on the validation
rows (8,640-11,520: where a default is chosen) and on the test rows (11,520-14,400: reported,
never chosen on). With ``calendar``, the hour of the day and the day of the week (a sine and a
cosine each, ``--calendar auto`` for hourly data) are inputs known for every forecast step.

    .venv/bin/python benchmarks/known_future.py [--only etth1,etth2] [--models linear,rnn]
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
    started = time.perf_counter()
    forecaster = create_for(model, options)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="etth1,etth2")
    parser.add_argument("--models", default="linear,rnn")
    args = parser.parse_args()
    print("| data | model | inputs | validation MSE | MAE | test MSE | MAE | fit s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for dataset in args.only.split(","):
        for model in args.models.split(","):
            for calendar in (False, True):
                scores, seconds = score(dataset, model, calendar)
                (v_mse, v_mae), (t_mse, t_mae) = scores["validation"], scores["test"]
                inputs = "7 channels + calendar" if calendar else "7 channels"
                print(
                    f"| {dataset} | {model} | {inputs} | {v_mse:.3f} | {v_mae:.3f} | "
                    f"{t_mse:.3f} | {t_mae:.3f} | {seconds:.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
