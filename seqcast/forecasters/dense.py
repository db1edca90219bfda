"""``dnn``: a dense network on the window, 10-10-1 by default as in the course."""

from __future__ import annotations

from collections.abc import Sequence

from seqcast.errors import DataError
from seqcast.forecasters.inputs import InputSpec
from seqcast.forecasters.neural import NeuralForecaster
from seqcast.networks import DenseConfig, DenseNet

__all__ = ["DenseForecaster"]


class DenseForecaster(NeuralForecaster):
    """Two hidden ReLU layers of 10 units on the flat window and seasonal inputs.

    Args:
        hidden_size: units of each hidden layer.
        num_layers: hidden layers.
        dropout: dropout after each hidden layer.
        **: the settings every neural forecaster takes (:class:`NeuralForecaster`).
    """

    name = "dnn"

    def __init__(
        self,
        *,
        window: int = 20,
        horizon: int = 1,
        season: int = 1,
        epochs: int = 200,
        batch_size: int = 32,
        lr: float = 1e-3,
        loss: str = "huber",
        optimizer: str = "adam",
        patience: int = 20,
        seed: int = 0,
        seq2seq: bool = False,
        schedule: str = "plateau",
        transform: str = "auto",
        scaling: str = "auto",
        ensemble: int = 1,
        sampling: str = "windows",
        likelihood: str = "none",
        quantile_levels: Sequence[float] | None = None,
        calibrate_intervals: bool = True,
        device: str = "cpu",
        hidden_size: int = 10,
        num_layers: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(
            window=window, horizon=horizon, season=season, epochs=epochs, batch_size=batch_size,
            lr=lr, loss=loss, optimizer=optimizer, patience=patience, seed=seed, seq2seq=seq2seq,
            schedule=schedule, transform=transform, scaling=scaling, ensemble=ensemble,
            sampling=sampling, likelihood=likelihood, quantile_levels=quantile_levels,
            calibrate_intervals=calibrate_intervals,
            device=device,
        )  # fmt: skip
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.dropout = dropout

    def _check_hyperparameters(self) -> None:
        super()._check_hyperparameters()
        self._check_network(self.hidden_size, self.num_layers, self.dropout)
        if self.seq2seq:
            raise DataError(
                "seq2seq needs a recurrent model; dnn sees the window at once",
                arguments=("seq2seq",),
            )

    def build_network(self, spec: InputSpec, outputs: int = 1) -> DenseNet:
        return DenseNet(
            DenseConfig(
                input_size=spec.input_size,
                window=spec.window,
                season_size=spec.season_size,
                horizon=spec.horizon,
                n_targets=spec.n_targets * outputs,
                hidden_sizes=(self.hidden_size,) * self.num_layers,
                dropout=self.dropout,
            )
        )
