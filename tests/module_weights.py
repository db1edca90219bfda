"""Two PyTorch modules compared weight by weight: the flat optimiser's and the training loop's
results against torch.optim's."""

from __future__ import annotations

import torch
from torch import nn


def assert_same_weights(a: nn.Module, b: nn.Module, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(x, y, rtol=rtol, atol=atol, msg=name)
