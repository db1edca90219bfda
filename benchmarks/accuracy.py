"""Accuracy of the neural forecasters against the baselines and the reference numbers.

Course protocol on `synthetic` (train 1,000, one-step forecasts of the last 461, window 20),
`sunspots` (train 3,000, validate 235, one-step) and `etth1` (all 7 channels in, horizon 96,
the ETT protocol: scaler on the first 8,640 rows, test windows over rows 11,520-14,400).
Nothing is tuned here: every model runs with its defaults; medians over seeds 0, 1, 2.

    .venv/bin/python benchmarks/accuracy.py [--only synthetic,sunspots,etth1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from seqcast.data import load_dataset, split_indices
from seqcast.evaluation import backtest
from seqcast.forecasters.registry import create_for

SEEDS = (0, 1, 2)


def block_bootstrap_se(errors: np.ndarray, block: int = 12, draws: int = 2000) -> float:
    """Standard error of the mean of ``errors`` (N,) by the circular block bootstrap.

    Blocks of ``block`` consecutive forecast origins keep the errors' short-range correlation;
    the generator is seeded, so the figure repeats.
    """
    rng = np.random.default_rng(0)
    n = len(errors)
    starts = rng.integers(0, n, size=(draws, -(-n // block)))
    index = (starts[:, :, None] + np.arange(block)).reshape(draws, -1)[:, :n] % n
    return float(errors[index].mean(axis=1).std())


def run(
    dataset: str,
    model: str,
    val_size: int,
    errors: list[np.ndarray] | None = None,
    **options: object,
) -> list[float]:
    """Each seed's MAE; with ``errors``, each seed's absolute errors (N,) are appended to it."""
    data = load_dataset(dataset)
    splits = split_indices(data, val_size=val_size)
    maes = []
    for seed in SEEDS:
        forecaster = create_for(model, {"seed": seed, **options})
        started = time.perf_counter()
        result = backtest(forecaster, data, splits, season=int(options.get("season", 1)))
        maes.append(result.metrics["mae"] or float("nan"))
        if errors is not None:
            errors.append(np.abs(result.forecasts[0] - result.actuals[0]).ravel())
        print(
            f"  {dataset} {model} {options} seed {seed}: MAE {maes[-1]:.3f} "
            f"({result.epochs} epochs, {time.perf_counter() - started:.1f} s)",
            flush=True,
        )
    return maes


def course() -> None:
    print("synthetic (course protocol, window 20)")
    rows = []
    for model in ("rnn", "lstm", "gru", "dnn", "cnn-lstm"):
        for season in (365, 1):
            maes = run("synthetic", model, 461, window=20, season=season)
            rows.append((model, season, statistics.median(maes), min(maes), max(maes)))
    for name, options in (
        ("linear", {"window": 20}),
        ("diff-ma-smooth", {"window": 50, "season": 365}),
    ):
        maes = run("synthetic", name, 461, **options)
        rows.append((name, options.get("season", 1), maes[0], maes[0], maes[0]))
    print("| model | season | MAE median of 3 seeds | min | max |")
    print("| --- | --- | --- | --- | --- |")
    for model, season, median, low, high in rows:
        print(f"| {model} | {season} | {median:.3f} | {low:.3f} | {high:.3f} |")


def sunspots() -> None:
    print("sunspots (train 3,000, validate 235, one-step, window 20, season 132)")
    rows = []
    medians = {}
    for model, options in (
        ("linear", {}),
        ("naive", {}),
        ("rnn", {"season": 132}),
        ("lstm", {"season": 132}),
        ("cnn-lstm", {"season": 132}),
    ):
        errors: list[np.ndarray] = []
        maes = run("sunspots", model, 235, errors, window=20, **options)
        medians[model] = errors[int(np.argsort(maes)[len(maes) // 2])]
        difference = medians[model] - medians["linear"]
        rows.append(
            (
                model,
                statistics.median(maes),
                min(maes),
                max(maes),
                float(difference.mean()),
                block_bootstrap_se(difference),
            )
        )
    # Paired against least squares on the same 235 months (median seeds), with the standard
    # error of that difference (circular block bootstrap, 12-month blocks): whether a gap
    # between two forecasters stands out from which months happened to be scored.
    print("| model | MAE median of 3 seeds | min | max | minus linear ± standard error |")
    print("| --- | --- | --- | --- | --- |")
    for model, median, low, high, gap, se in rows:
        print(f"| {model} | {median:.3f} | {low:.3f} | {high:.3f} | {gap:+.3f} ± {se:.3f} |")


def etth1() -> None:
    """All 7 channels in and out, lookback 96, horizon 96: MSE/MAE on standardised data.

    As in the papers: fit on the first 12 months (8,640 rows; early stopping on our own slice
    of them), scaler from those rows, test on every window whose forecast lies in rows
    11,520-14,400 (2,785 windows, stride 1).
    """
    from seqcast.data.windows import sliding_windows

    channels = ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]
    values = load_dataset("etth1", targets=channels).series[0].values[:14400]
    mean, std = values[:8640].mean(axis=0), values[:8640].std(axis=0)
    scaled = (values - mean) / std
    horizon, window = 96, 96
    origins = np.arange(11520, 14400 - horizon + 1)
    truth = sliding_windows(scaled, horizon)[origins]  # (B, T, 7)
    print("etth1 (7 channels in and out, lookback 96, horizon 96, scaled as in the papers)")
    rows = []
    for model, options in (
        ("naive", {}),
        ("linear", {}),
        ("rnn", {"season": 24}),
        ("gru", {"season": 24}),
    ):
        started = time.perf_counter()
        forecaster = create_for(model, {"window": window, "horizon": horizon, "seed": 0, **options})
        forecaster.fit([scaled[:8640]], n_targets=7)
        context = forecaster.context_length
        forecasts = forecaster.predict(sliding_windows(scaled, context)[origins - context])
        mse = float(np.mean((forecasts - truth) ** 2))
        mae = float(np.mean(np.abs(forecasts - truth)))
        rows.append((model, mse, mae, time.perf_counter() - started))
        print(f"  {model}: MSE {mse:.3f} MAE {mae:.3f} ({rows[-1][3]:.0f} s)", flush=True)
    print("| model | MSE | MAE | seconds |")
    print("| --- | --- | --- | --- |")
    for model, mse, mae, seconds in rows:
        print(f"| {model} | {mse:.3f} | {mae:.3f} | {seconds:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", default="synthetic,sunspots,etth1")
    args = parser.parse_args()
    torch.set_num_threads(1)
    jobs = {"synthetic": course, "sunspots": sunspots, "etth1": etth1}
    for name in args.only.split(","):
        jobs[name]()


if __name__ == "__main__":
    main()
