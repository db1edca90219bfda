"""The recurrent network: a recurrent stack with a dense output layer.

It maps a batch of windows (B, L, F_in) and seasonal vectors (B, S) to forecasts (B, T, Ft)
in the scaled, level-shifted space; :mod:`seqcast.forecasters.neural` handles the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from seqcast import _native as native
from seqcast.networks.ridge import ridge_fit

__all__ = ["CELLS", "RecurrentConfig", "RecurrentNet"]

CELLS: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


@dataclass(frozen=True)
class RecurrentConfig:
    """Hyperparameters of :class:`RecurrentNet`.

    Attributes:
        input_size: channels per step F_in.
        window: input length L.
        season_size: length S of the seasonal vector given to the output layer (0: none).
        horizon: forecast length T.
        n_targets: target channels Ft.
        cell: ``rnn`` (tanh), ``lstm`` or ``gru``.
        hidden_size: units H per layer and direction.
        num_layers: stacked recurrent layers; each passes its whole sequence to the next.
        bidirectional: run each layer both ways over the window.
        dropout: dropout between recurrent layers.
        conv_channels: filters of a causal Conv1D in front of the stack (0: none).
        conv_kernel: its kernel size.
        skip: give the output layer the flat window too (a linear shortcut).
    """

    input_size: int
    window: int
    season_size: int
    horizon: int
    n_targets: int
    cell: str = "rnn"
    hidden_size: int = 40
    num_layers: int = 2
    bidirectional: bool = False
    dropout: float = 0.0
    conv_channels: int = 0
    conv_kernel: int = 5
    skip: bool = True


class RecurrentNet(nn.Module):
    """[causal Conv1D] → num_layers × recurrent layer → dense output layer.

    The output layer sees the last step's state of the top layer (both directions when
    bidirectional), the seasonal vector, and (``skip``) the flat window.
    """

    def __init__(self, config: RecurrentConfig) -> None:
        super().__init__()
        self.config = config
        features = config.input_size
        self.conv: nn.Conv1d | None = None
        if config.conv_channels:
            self.conv = nn.Conv1d(features, config.conv_channels, config.conv_kernel)
            features = config.conv_channels
        cell: Any = CELLS[config.cell]
        self.rnn: nn.RNNBase = cell(
            input_size=features,
            hidden_size=config.hidden_size,
            num_layers=config.num_layers,
            batch_first=True,
            bidirectional=config.bidirectional,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
        )
        #: nn.RNN's weights in its flat order, layer by layer, each direction's four.
        self.weight_names = [
            f"{kind}_l{layer}{suffix}"
            for layer in range(config.num_layers)
            for suffix in ("", "_reverse")[: 2 if config.bidirectional else 1]
            for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        ]
        directions = 2 if config.bidirectional else 1
        head_in = config.hidden_size * directions + config.season_size
        if config.skip:
            head_in += config.window * config.input_size
        self.head = nn.Linear(head_in, config.horizon * config.n_targets)
        self.step_head = nn.Linear(
            config.hidden_size * directions, config.horizon * config.n_targets
        )

    def init_linear(self, window: torch.Tensor, season: torch.Tensor, target: torch.Tensor) -> None:
        """Starts the output layer at the ridge least-squares fit on the seasonal inputs and the
        window, with little weight on the recurrent state yet: training begins from the best linear
        forecaster and adds to it. Shapes: (N, L, F_in), (N, S), (N, T, Ft)."""
        hidden = self.head.in_features - self.config.season_size
        if self.config.skip:
            hidden -= self.config.window * self.config.input_size
        parts = [season] + ([window.flatten(1)] if self.config.skip else [])
        weight, bias = ridge_fit(torch.cat(parts, dim=1), target.flatten(1))
        with torch.no_grad():
            self.head.weight[:, :hidden] *= 0.1  # small, not zero: the state must get gradients
            self.head.weight[:, hidden:] = weight
            self.head.bias[:] = bias

    def sequence(self, window: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """The top layer's output at every step: (B, L, F_in) -> (B, L, H·directions); with
        ``last_only`` a unidirectional stack may return the last step alone, (B, 1, H)."""
        x = window
        if self.conv is not None:
            # Left padding only, so step s never sees steps after s: (B, L, F) -> (B, F, L).
            x = nn.functional.pad(x.transpose(1, 2), (self.config.conv_kernel - 1, 0))
            x = torch.relu(self.conv(x)).transpose(1, 2)  # (B, C_conv, L) -> (B, L, C_conv)
        config = self.config
        weights = [getattr(self.rnn, name) for name in self.weight_names]
        # Dropout between layers is the module's alone; else the compiled recurrence where the
        # switch allows it.
        dropout = bool(config.dropout and self.training and config.num_layers > 1)
        if not dropout and native.compiled(x, *weights, cell=config.cell):
            return native.recurrent_stack(
                x, weights, config.cell, config.num_layers, config.bidirectional,
                last_only and not config.bidirectional,
            )  # fmt: skip
        output, _ = self.rnn(x)
        return output  # type: ignore[no-any-return]

    def forward(
        self, window: torch.Tensor, season: torch.Tensor, steps: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Forecasts from windows (B, L, F_in) and seasonal vectors (B, S): (B, T, Ft).

        With ``steps`` it also returns a forecast from every step's state, (B, L, T, Ft), for
        sequence-to-sequence training.
        """
        # (B, L, H·dirs); the last step alone, (B, 1, H), when that is all the head reads.
        sequence = self.sequence(window, last_only=not (steps or self.config.bidirectional))
        if self.config.bidirectional:
            half = self.config.hidden_size
            # Forward direction's last step, backward direction's first (both saw everything).
            last = torch.cat([sequence[:, -1, :half], sequence[:, 0, half:]], dim=1)
        else:
            last = sequence[:, -1]
        parts = [last, season]
        if self.config.skip:
            parts.append(window.flatten(1))  # (B, L, F_in) -> (B, L·F_in)
        shape = (-1, self.config.horizon, self.config.n_targets)
        if not last.requires_grad:
            out = self.head(torch.cat(parts, dim=1))  # (B, H·dirs + S [+ L·F_in]) -> (B, O)
        else:
            # The same value, but autograd forms dL/d(input) for the state alone, not for the
            # seasonal values and the window that need none: the output layer sees the state
            # detached (its weight's gradient is whole), and a term whose value is 0 carries
            # dL/d(state) = dL/d(out) · W_state. A large layer's backward pass (ETTh1: 2,056
            # inputs, 672 outputs) spent most of its time on the unneeded product.
            out = self.head(torch.cat([last.detach(), *parts[1:]], dim=1))
            state_weight = self.head.weight[:, : last.shape[1]].detach()  # (O, H·dirs)
            out = out + nn.functional.linear(last - last.detach(), state_weight)
        forecast: torch.Tensor = out.reshape(shape)
        if not steps:
            return forecast
        per_step = self.step_head(sequence)  # (B, L, T·Ft)
        return forecast, per_step.reshape(window.shape[0], window.shape[1], *shape[1:])
