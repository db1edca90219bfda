"""The networks: ``nn.Module``s that map windows (B, L, F_in) and seasonal vectors (B, S) to
forecasts (B, T, Ft) in the scaled space. ``forward`` and the least-squares start of the output
layer, nothing else: the forecasters prepare the inputs, the training code trains."""

from seqcast.networks.dense import DenseConfig, DenseNet
from seqcast.networks.distribution import (
    NegativeBinomialLoss,
    NegativeBinomialNet,
    StudentTLoss,
    StudentTNet,
)
from seqcast.networks.quantile import PinballLoss, QuantileNet
from seqcast.networks.recurrent import CELLS, RecurrentConfig, RecurrentNet
from seqcast.networks.ridge import ridge_fit

#: Any network; each takes (window, season) and has ``init_linear``.
ForecastNet = RecurrentNet | DenseNet | QuantileNet | StudentTNet | NegativeBinomialNet

__all__ = [
    "CELLS",
    "DenseConfig",
    "DenseNet",
    "ForecastNet",
    "NegativeBinomialLoss",
    "NegativeBinomialNet",
    "PinballLoss",
    "QuantileNet",
    "RecurrentConfig",
    "RecurrentNet",
    "StudentTLoss",
    "StudentTNet",
    "ridge_fit",
]
