"""The recurrent forecasters: ``rnn`` (the default), ``lstm``, ``gru`` and ``cnn-lstm``."""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

from seqcast.errors import DataError
from seqcast.forecasters.inputs import InputSpec
from seqcast.forecasters.neural import NeuralForecaster
from seqcast.networks import CELLS, RecurrentConfig, RecurrentNet

__all__ = ["CNNLSTMForecaster", "GRUForecaster", "LSTMForecaster", "RNNForecaster"]


class RNNForecaster(NeuralForecaster):
    """Two SimpleRNN (tanh) layers of 40 units and a dense output layer.

    The first layer passes its whole output sequence to the second; the output layer maps the
    last state (with the seasonal inputs and the window) to the T-step forecast.

    Example:
        >>> RNNForecaster(window=20, season=365).context_length
        385
    """

    name = "rnn"
    network_keys: ClassVar[tuple[str, ...]] = (
        "cell", "hidden_size", "num_layers", "bidirectional", "dropout", "conv_channels",
    )  # fmt: skip
    preset: ClassVar[dict[str, Any]] = {
        "cell": "rnn",
        "hidden_size": 40,
        "num_layers": 2,
        "bidirectional": False,
        "dropout": 0.0,
        "conv_channels": 0,
    }

    def _check_hyperparameters(self) -> None:
        super()._check_hyperparameters()
        if self.cell not in CELLS:
            raise DataError(f"unknown --cell '{self.cell}'; choose from {', '.join(CELLS)}")
        if self.dropout and self.num_layers == 1:
            warnings.warn(
                "--dropout acts between recurrent layers and has no effect with --num-layers 1",
                UserWarning,
                stacklevel=3,
            )
        if self.seq2seq and self.bidirectional:
            raise DataError(
                "--seq2seq cannot be combined with --bidirectional: the backward direction "
                "would see the targets of earlier steps"
            )

    def build_network(self, spec: InputSpec) -> RecurrentNet:
        return RecurrentNet(
            RecurrentConfig(
                input_size=spec.input_size,
                window=spec.window,
                season_size=spec.season_size,
                horizon=spec.horizon,
                n_targets=spec.n_targets,
                cell=self.cell,
                hidden_size=self.hidden_size,
                num_layers=self.num_layers,
                bidirectional=self.bidirectional,
                dropout=self.dropout,
                conv_channels=self.conv_channels,
            )
        )

    cell: str
    hidden_size: int
    num_layers: int
    bidirectional: bool
    dropout: float
    conv_channels: int


class LSTMForecaster(RNNForecaster):
    """Two LSTM layers of 40 units (the course's 2 × bidirectional LSTM(32) is
    ``--hidden-size 32 --bidirectional``)."""

    name = "lstm"
    preset: ClassVar[dict[str, Any]] = {**RNNForecaster.preset, "cell": "lstm"}


class GRUForecaster(RNNForecaster):
    """Two GRU layers of 40 units."""

    name = "gru"
    preset: ClassVar[dict[str, Any]] = {**RNNForecaster.preset, "cell": "gru"}


class CNNLSTMForecaster(RNNForecaster):
    """A causal Conv1D of 32 filters (kernel 5, ReLU) in front of two LSTM layers of 40 units."""

    name = "cnn-lstm"
    preset: ClassVar[dict[str, Any]] = {**RNNForecaster.preset, "cell": "lstm", "conv_channels": 32}
