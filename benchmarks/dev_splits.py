"""Development splits for choosing defaults without touching any scored part.

    .venv/bin/python benchmarks/dev_splits.py rnn ['{"loss": "mae"}'] [sun132,s1,s2,s3]

Defaults are judged here, never on the benchmark splits: three synthetic series other than the
course's (other seeds, phases, noise and periods) and sunspots' first 3,000 months only (train
2,700, score the next 300, or the rolling folds ``sun-2100/2400/2700`` that score the 300 months
before those; the scored months 3,000-3,234 are never loaded). Prints each seed's
MAE, the median over seeds 0-2, and for scale the linear baseline on the same split.
"""

from __future__ import annotations

import ast
import statistics
import sys
from collections.abc import Callable

import numpy as np
import torch

from seqcast.data import SeriesData, load_dataset, load_series, split_indices, synthetic_series
from seqcast.evaluation import backtest
from seqcast.forecasters.registry import create, create_for


def _sunspots_head(end: int = 3000) -> SeriesData:
    return load_series(load_dataset("sunspots").series[0].values[:end])


#: name -> (data, validation size, season)
SPLITS: dict[str, tuple[Callable[[], SeriesData], int, int]] = {
    "s1": (lambda: load_series(synthetic_series(seed=7, phase=100).astype(np.float64)), 461, 365),
    "s2": (lambda: load_series(synthetic_series(
        seed=11, phase=200, noise_level=3, autocorrelation=0.5).astype(np.float64)), 461, 365),
    "s3": (lambda: load_series(synthetic_series(
        seed=3, length=1200, period=100, amplitude=20, slope=-0.02).astype(np.float64)), 300, 100),
    "sun": (_sunspots_head, 300, 1),
    "sun132": (_sunspots_head, 300, 132),
    # Rolling folds: score the 300 months before month 2,100 / 2,400 / 2,700, train on the rest.
    "sun-2100": (lambda: _sunspots_head(2100), 300, 132),
    "sun-2400": (lambda: _sunspots_head(2400), 300, 132),
    "sun-2700": (lambda: _sunspots_head(2700), 300, 132),
}  # fmt: skip


def main() -> None:
    model = sys.argv[1]
    extra = ast.literal_eval(sys.argv[2]) if len(sys.argv) > 2 else {}
    which = sys.argv[3].split(",") if len(sys.argv) > 3 else ["s1", "s2", "s3", "sun132"]
    torch.set_num_threads(1)
    for key in which:
        make, val_size, season = SPLITS[key]
        data = make()
        splits = split_indices(data, val_size=val_size)
        linear = backtest(create("linear", window=20), data, splits)
        maes = []
        for seed in (0, 1, 2):
            options = dict(**{"window": 20, "season": season, "seed": seed, **extra})
            result = backtest(create_for(model, options), data, splits, season=season)
            maes.append(result.metrics["mae"] or float("nan"))
            print(f"  {key} seed {seed}: MAE {maes[-1]:.3f} ({result.epochs} epochs)", flush=True)
        print(
            f"{model} {extra} {key}: median {statistics.median(maes):.3f} "
            f"(linear {linear.metrics['mae']:.3f})",
            flush=True,
        )


if __name__ == "__main__":
    main()
