"""Fit time of seqcast against NeuralForecast's RNN and Darts' RNNModel, same settings, same run.

    .venv/bin/python benchmarks/peers.py [--epochs 20]

Both sides train 2 × tanh RNN(40) on the course's synthetic training part (1,000 points), window
20, one-step horizon, batch 32, Adam at 1e-3, a fixed number of steps (NeuralForecast counts
steps, seqcast and Darts epochs: 31 steps each), no early stopping, one thread. The peers
(pinned to torch==2.13.0) live in their own virtual environment, benchmarks/.venv-peers, created
on first use; not part of CI. Prints seconds per fit and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-peers"
ROOT = HERE.parent

PEERS = {
    "NeuralForecast RNN": """
import json, sys, time
import numpy as np, pandas as pd, torch
torch.set_num_threads(1)
import logging
logging.disable(logging.WARNING)
from neuralforecast import NeuralForecast
from neuralforecast.models import RNN
values = np.load(sys.argv[1]); steps = int(sys.argv[2])
frame = pd.DataFrame({"unique_id": "course", "ds": np.arange(len(values)), "y": values})
model = RNN(h=1, input_size=20, encoder_n_layers=2, encoder_hidden_size=40,
            encoder_activation="tanh", decoder_layers=1, decoder_hidden_size=40,
            max_steps=steps, batch_size=1, windows_batch_size=32, learning_rate=1e-3,
            scaler_type="standard", random_seed=1, enable_progress_bar=False, logger=False,
            enable_checkpointing=False, enable_model_summary=False, accelerator="cpu")
forecaster = NeuralForecast(models=[model], freq=1)
started = time.perf_counter()
forecaster.fit(frame)
print(json.dumps({"fit_s": time.perf_counter() - started, "steps": steps}))
""",
    "Darts RNNModel": """
import json, sys, time
import numpy as np, torch
torch.set_num_threads(1)
import logging
logging.disable(logging.WARNING)
from darts import TimeSeries
from darts.models import RNNModel
values = np.load(sys.argv[1]).astype(np.float32); epochs = int(sys.argv[2]) // 31
series = TimeSeries.from_values(values)
model = RNNModel(model="RNN", input_chunk_length=20, training_length=21, hidden_dim=40,
                 n_rnn_layers=2, batch_size=32, n_epochs=epochs, optimizer_kwargs={"lr": 1e-3},
                 random_state=1, save_checkpoints=False, force_reset=True,
                 pl_trainer_kwargs={"accelerator": "cpu", "enable_progress_bar": False,
                                    "logger": False, "enable_checkpointing": False,
                                    "enable_model_summary": False})
started = time.perf_counter()
model.fit(series)
print(json.dumps({"fit_s": time.perf_counter() - started, "epochs": epochs}))
""",
}


def peer(code: str, values_path: Path, steps: int) -> dict[str, float]:
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run(
            [
                str(VENV / "bin" / "pip"),
                "install",
                "-q",
                "-c",
                str(ROOT / "constraints.txt"),
                "torch==2.13.0",
                "neuralforecast",
                "darts",
            ],
            check=True,
        )
    out = subprocess.run(
        [str(python), "-c", code, str(values_path), str(steps)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    ).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import numpy as np
    import torch

    from seqcast.data import load_dataset
    from seqcast.forecasters.registry import create

    torch.set_num_threads(1)
    train = load_dataset("synthetic").series[0].values[:1000]
    forecaster = create(
        "rnn", window=20, season=1, batch_size=32, lr=1e-3, epochs=args.epochs, patience=0, seed=1
    )
    started = time.perf_counter()
    forecaster.fit([train], 1)
    mine = time.perf_counter() - started
    steps = args.epochs * 31  # 980 windows in batches of 32
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.npy"
        np.save(path, train[:, 0].astype(np.float64))
        for name, code in PEERS.items():
            theirs = peer(code, path, steps)["fit_s"]
            rows.append(f"| {name} | {mine:.2f} s | {theirs:.2f} s | {mine / theirs:.3f} |")
            print(f"  {name}: {theirs:.2f} s", flush=True)
    print(f"fit, 2 x RNN(40), {steps} steps of 32 windows, one thread:")
    print("| peer | seqcast | peer time | ratio |")
    print("| --- | --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
