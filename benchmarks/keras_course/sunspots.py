"""The course's sunspots model (course 4, week 4, "CNN + RNN + DNN" lab) trained as the lab does.

usage: python sunspots.py --seed 1 [--epochs 100] --out runs/sun_s1.json

Same data and split as seqcast's benchmark (train on the first 3,000 months, one-step forecasts
of the last 235 from the true history). The lab's settings: window 30, batch 32, shuffle buffer
1,000, Conv1D(64, kernel 3, causal, relu) → LSTM(64) → LSTM(64) → Dense(30, relu) →
Dense(10, relu) → Dense(1) → ×400, SGD(lr 8e-7, momentum 0.9), Huber loss, 100 epochs (the
lectures quote results after 500). One thread, as in ``course.py``.
"""
import argparse
import csv
import json
import time as _t
from pathlib import Path

import course as C  # sets the one-thread environment before TensorFlow loads
import numpy as np
import tensorflow as tf

DATA = Path(__file__).resolve().parents[2] / "seqcast" / "data" / "files" / "sunspots.csv"
SPLIT_TIME = 3000
WINDOW = 30


def load() -> np.ndarray:
    with open(DATA) as f:
        rows = list(csv.reader(f))[1:]
    return np.array([float(row[2]) for row in rows])


def build() -> tf.keras.Model:
    return tf.keras.models.Sequential([
        tf.keras.Input(shape=[WINDOW, 1]),
        tf.keras.layers.Conv1D(64, 3, strides=1, activation="relu", padding="causal"),
        tf.keras.layers.LSTM(64, return_sequences=True),
        tf.keras.layers.LSTM(64),
        tf.keras.layers.Dense(30, activation="relu"),
        tf.keras.layers.Dense(10, activation="relu"),
        tf.keras.layers.Dense(1),
        tf.keras.layers.Lambda(lambda x: x * 400.0),
    ])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--lr", type=float, default=8e-7)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    tf.keras.utils.set_random_seed(a.seed)
    series = load()
    train, valid = series[:SPLIT_TIME], series[SPLIT_TIME:]
    dataset = C.windowed_dataset(train[:, None], WINDOW, C.BATCH_SIZE, C.SHUFFLE_BUFFER)
    model = build()
    model.compile(loss=tf.keras.losses.Huber(),
                  optimizer=tf.keras.optimizers.SGD(learning_rate=a.lr, momentum=0.9),
                  metrics=["mae"])
    t0 = _t.perf_counter()
    history = model.fit(dataset, epochs=a.epochs, verbose=0)
    wall = _t.perf_counter() - t0
    forecast = C.model_forecast(model, series[SPLIT_TIME - WINDOW:-1, None], WINDOW, 32)[:, 0]
    assert forecast.shape == valid.shape, forecast.shape
    res = {"seed": a.seed, "epochs": a.epochs, "lr": a.lr, "val_mae": C.mae(valid, forecast),
           "finite": bool(np.all(np.isfinite(forecast))), "train_wall_s": wall,
           "final_train_mae": float(history.history["mae"][-1])}
    Path(a.out).write_text(json.dumps(res, indent=2))
    print(json.dumps(res))


if __name__ == "__main__":
    main()
