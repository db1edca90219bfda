"""``dnn``: a dense network on the window, 10-10-1 by default as in the course."""

from __future__ import annotations

import warnings
from typing import Any, ClassVar, Self

from seqcast.errors import DataError
from seqcast.forecasters.base import ModelOptions
from seqcast.forecasters.inputs import InputSpec
from seqcast.forecasters.neural import NeuralForecaster
from seqcast.networks import DenseConfig, DenseNet

__all__ = ["DenseForecaster"]


class DenseForecaster(NeuralForecaster):
    """Two hidden ReLU layers of 10 units on the flat window and seasonal inputs."""

    name = "dnn"
    network_keys: ClassVar[tuple[str, ...]] = ("hidden_size", "num_layers", "dropout")
    preset: ClassVar[dict[str, Any]] = {"hidden_size": 10, "num_layers": 2, "dropout": 0.0}

    hidden_size: int
    num_layers: int
    dropout: float

    @classmethod
    def from_options(cls, options: ModelOptions) -> Self:
        """As for every neural model; the recurrent layers' options are named in a warning,
        not dropped silently (a leaderboard may pass them to dnn and rnn alike)."""
        given = options.given()
        if unused := [f"--{key}" for key in ("cell", "bidirectional") if key in given]:
            warnings.warn(
                f"dnn has no recurrent layers; {', '.join(unused)} not used",
                UserWarning,
                stacklevel=2,
            )
        return super().from_options(options)

    def _check_hyperparameters(self) -> None:
        super()._check_hyperparameters()
        if self.seq2seq:
            raise DataError("--seq2seq needs a recurrent model; dnn sees the window at once")

    def build_network(self, spec: InputSpec) -> DenseNet:
        return DenseNet(
            DenseConfig(
                input_size=spec.input_size,
                window=spec.window,
                season_size=spec.season_size,
                horizon=spec.horizon,
                n_targets=spec.n_targets,
                hidden_sizes=(self.hidden_size,) * self.num_layers,
                dropout=self.dropout,
            )
        )
