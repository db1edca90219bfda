"""Speed and memory of seqcast against the Keras course reference, measured in the same run.

    .venv/bin/python benchmarks/speed.py [--only epoch,fit,inference,memory] [--epochs 20]

`epoch` and `fit` need the Keras peer: TensorFlow CPU 2.21 in its own virtual environment,
created on first use at benchmarks/.venv-tf (about 600 MB). Both sides use one thread.
Prints a Markdown table of figures and ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TF_VENV = HERE / ".venv-tf"
ROWS: list[tuple[str, str, str, str, str]] = []


def report(what: str, seqcast: str, peer: str, ratio: str, target: str) -> None:
    ROWS.append((what, seqcast, peer, ratio, target))
    print(f"  {what}: seqcast {seqcast} | peer {peer} | {ratio} | target {target}", flush=True)


def keras(model: str, epochs: int, lr: float) -> dict[str, float]:
    """Runs the course's Keras training script in its own environment (one thread)."""
    python = TF_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(TF_VENV)], check=True)
        subprocess.run(
            [str(TF_VENV / "bin" / "pip"), "install", "-q", "tensorflow-cpu==2.21.0", "numpy"],
            check=True,
        )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        subprocess.run(
            [
                str(python),
                "train.py",
                "--model",
                model,
                "--lr",
                str(lr),
                "--loss",
                "huber",
                "--epochs",
                str(epochs),
                "--batch",
                "32",
                "--seed",
                "1",
                "--out",
                str(out),
            ],
            cwd=HERE / "keras_course",
            check=True,
            capture_output=True,
        )
        return json.loads(out.read_text())  # type: ignore[no-any-return]


def seqcast_epochs(model: str, epochs: int, **options: object) -> tuple[float, float]:
    """Median epoch time (first epoch excluded) of a seqcast model on the course split."""
    from seqcast.data import load_dataset
    from seqcast.forecasters.registry import create

    train = load_dataset("synthetic").series[0].values[:1000]
    forecaster = create(
        model, window=20, batch_size=32, epochs=epochs, patience=0, seed=1, **options
    )  # type: ignore[arg-type]
    forecaster.fit([train], 1)
    seconds = forecaster.history_.epoch_seconds  # type: ignore[attr-defined]
    return statistics.median(seconds[1:]), sum(seconds)


def epoch(epochs: int) -> None:
    print("per epoch, course settings (window 20, batch 32, 980 windows, one thread)")
    for name, peer, options in (
        ("2 x SimpleRNN(40) + Dense", "rnn", {"season": 1}),
        (
            "2 x bidirectional LSTM(32) + Dense",
            "lstm",
            {"season": 1, "hidden_size": 32, "bidirectional": True},
        ),
    ):
        mine, _ = seqcast_epochs("rnn" if peer == "rnn" else "lstm", epochs, **options)
        theirs = keras(peer, epochs, 1e-6)["median_epoch_s_excl_first"]
        report(
            f"epoch, {name}",
            f"{mine * 1000:.1f} ms",
            f"{theirs * 1000:.1f} ms",
            f"{mine / theirs:.3f}",
            "<= 0.2",
        )


def fit() -> None:
    print("whole fit: default rnn against the Keras course rnn (100 epochs)")
    from seqcast.data import load_dataset, split_indices
    from seqcast.evaluation import backtest
    from seqcast.forecasters.registry import create

    data = load_dataset("synthetic")
    splits = split_indices(data, val_size=461)
    forecaster = create("rnn", window=20, season=365, seed=1)
    result = backtest(forecaster, data, splits, season=365)
    peer = keras("rnn", 100, 1e-6)
    report(
        "whole fit, default rnn vs Keras rnn 100 epochs",
        f"{result.fit_seconds:.2f} s, MAE {result.metrics['mae']:.3f}",
        f"{peer['train_wall_s']:.2f} s, MAE {peer['val_mae']:.3f}",
        f"{result.fit_seconds / peer['train_wall_s']:.3f}",
        "<= 0.2 at a better MAE",
    )


def inference() -> None:
    print("inference from a loaded default rnn (season 365)")
    import numpy as np

    from seqcast.data import load_dataset, load_series, sliding_windows, synthetic_series
    from seqcast.forecasters.registry import create
    from seqcast.persistence import load_model, save_model

    data = load_dataset("synthetic")
    forecaster = create("rnn", window=20, season=365, seed=0)
    forecaster.fit([data.series[0].values[:1000]], 1)
    with tempfile.TemporaryDirectory() as tmp:
        save_model(forecaster, Path(tmp) / "rnn", data)
        loaded = load_model(Path(tmp) / "rnn").forecaster
    context = loaded.context_length
    long = load_series(synthetic_series(length=100_000 + context).astype(np.float64))
    windows = sliding_windows(long.series[0].values, context)[:100_000]
    loaded.predict(windows[:1000])  # warm-up
    for threads in (1, 2):
        import torch

        torch.set_num_threads(threads)
        started = time.perf_counter()
        out = loaded.predict(windows)
        seconds = time.perf_counter() - started
        assert out.shape == (100_000, 1, 1)
        report(
            f"batch inference, 100,000 windows, {threads} thread(s)",
            f"{100_000 / seconds:,.0f} forecasts/s",
            "-",
            "-",
            ">= 200,000/s on 2 cores",
        )
    torch.set_num_threads(1)
    single = windows[:1]
    times = []
    for _ in range(300):
        started = time.perf_counter()
        loaded.predict(single)
        times.append(time.perf_counter() - started)
    report(
        "single forecast, median of 300",
        f"{statistics.median(times) * 1000:.3f} ms",
        "-",
        "-",
        "<= 2 ms",
    )


MEMORY_CHILD = """
import numpy as np
from seqcast.data.windows import make_windows, iterate_batches
def status(key):  # VmHWM is the peak RSS of this process; unlike getrusage it is reset by exec
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
before = status("VmHWM")  # after imports, before the series
series = np.random.default_rng(0).standard_normal((10_000_000, 1))
windows = make_windows(series, window=365, horizon=1)
total = 0.0
for index in iterate_batches(len(windows), 4096, seed=0):
    total += float(windows.inputs[index].sum())  # one copied mini-batch at a time
    break
total += float(windows.inputs[::100_000].sum()) + float(windows.targets[-1].sum())
peak = status("VmHWM")
print(series.nbytes, before, peak, len(windows), windows.inputs.shape[1])
"""


def memory() -> None:
    print("memory: windowing a 10-million-point series with L = 365")
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_CHILD], check=True, capture_output=True, text=True
    ).stdout.split()
    nbytes, before, peak, count, length = (int(v) for v in out)
    report(
        f"windows of 10M points, L=365 ({count:,} windows)",
        f"peak RSS {peak / 2**20:.0f} MiB ({(peak - before) / 2**20:.0f} MiB above start)",
        f"series {nbytes / 2**20:.0f} MiB",
        f"{peak / nbytes:.2f}x total, {(peak - before) / nbytes:.2f}x above start",
        f"< 2x; a copy would be {count * length * 8 / 2**30:.0f} GiB",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", default="epoch,fit,inference,memory")
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    print(
        f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}, "
        f"torch {torch.__version__}, max RSS now "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
    )
    jobs = {
        "epoch": lambda: epoch(args.epochs),
        "fit": fit,
        "inference": inference,
        "memory": memory,
    }
    for name in args.only.split(","):
        jobs[name]()
    print("| measure | seqcast | peer | ratio | target |")
    print("| --- | --- | --- | --- | --- |")
    for row in ROWS:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
