"""The recurrent forecasters: ``rnn`` (the default), ``lstm``, ``gru`` and ``cnn-lstm``.

One class, :class:`RNNForecaster`; the others are the same class with other defaults (the
registry and saved models know them by name).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from functools import partialmethod

from seqcast.errors import DataError, SeqcastWarning
from seqcast.forecasters.inputs import InputSpec
from seqcast.forecasters.neural import NeuralForecaster
from seqcast.networks import CELLS, RecurrentConfig, RecurrentNet

__all__ = ["CNNLSTMForecaster", "GRUForecaster", "LSTMForecaster", "RNNForecaster"]


class RNNForecaster(NeuralForecaster):
    """Two SimpleRNN (tanh) layers of 40 units and a dense output layer.

    The first layer passes its whole output sequence to the second; the output layer maps the
    last state (with the seasonal inputs and the window) to the T-step forecast.

    Args:
        cell: ``rnn`` (tanh), ``lstm`` or ``gru``.
        hidden_size: units H per layer and direction.
        num_layers: stacked recurrent layers.
        bidirectional: run each layer both ways over the window.
        dropout: dropout between recurrent layers.
        conv_channels: filters of a causal Conv1D (kernel 5, ReLU) in front (0: none).
        **: the settings every neural forecaster takes (:class:`NeuralForecaster`).

    Example:
        >>> RNNForecaster(window=20, season=365).context_length
        385
    """

    name = "rnn"

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
        cell: str = "rnn",
        hidden_size: int = 40,
        num_layers: int = 2,
        bidirectional: bool = False,
        dropout: float = 0.0,
        conv_channels: int = 0,
    ) -> None:
        super().__init__(
            window=window, horizon=horizon, season=season, epochs=epochs, batch_size=batch_size,
            lr=lr, loss=loss, optimizer=optimizer, patience=patience, seed=seed, seq2seq=seq2seq,
            schedule=schedule, transform=transform, scaling=scaling, ensemble=ensemble,
            sampling=sampling, likelihood=likelihood, quantile_levels=quantile_levels,
            calibrate_intervals=calibrate_intervals,
            device=device,
        )  # fmt: skip
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.dropout = dropout
        self.conv_channels = conv_channels

    def _check_hyperparameters(self) -> None:
        super()._check_hyperparameters()
        self._check_network(self.hidden_size, self.num_layers, self.dropout)
        if self.cell not in CELLS:
            raise DataError(
                f"unknown cell '{self.cell}'; choose from {', '.join(CELLS)}", arguments=("cell",)
            )
        if self.conv_channels < 0:
            raise DataError(
                f"conv_channels must be 0 or more, got {self.conv_channels}",
                arguments=("conv_channels",),
            )
        if self.dropout and self.num_layers == 1:
            warnings.warn(
                SeqcastWarning(
                    "dropout acts between recurrent layers and has no effect with num_layers 1",
                    arguments=("dropout", "num_layers"),
                ),
                stacklevel=3,
            )
        if self.seq2seq and self.bidirectional:
            raise DataError(
                "seq2seq cannot be combined with bidirectional: the backward direction "
                "would see the targets of earlier steps",
                arguments=("seq2seq", "bidirectional"),
            )

    def build_network(self, spec: InputSpec, outputs: int = 1) -> RecurrentNet:
        return RecurrentNet(
            RecurrentConfig(
                input_size=spec.input_size,
                window=spec.window,
                season_size=spec.season_size,
                horizon=spec.horizon,
                n_targets=spec.n_targets * outputs,
                cell=self.cell,
                hidden_size=self.hidden_size,
                num_layers=self.num_layers,
                bidirectional=self.bidirectional,
                dropout=self.dropout,
                conv_channels=self.conv_channels,
            )
        )


class LSTMForecaster(RNNForecaster):
    """Two LSTM layers of 40 units (the course's 2 × bidirectional LSTM(32) is
    ``LSTMForecaster(hidden_size=32, bidirectional=True)``)."""

    name = "lstm"
    __init__ = partialmethod(RNNForecaster.__init__, cell="lstm")


class GRUForecaster(RNNForecaster):
    """Two GRU layers of 40 units."""

    name = "gru"
    __init__ = partialmethod(RNNForecaster.__init__, cell="gru")


class CNNLSTMForecaster(RNNForecaster):
    """A causal Conv1D of 32 filters (kernel 5, ReLU) in front of two LSTM layers of 40 units."""

    name = "cnn-lstm"
    __init__ = partialmethod(RNNForecaster.__init__, cell="lstm", conv_channels=32)
