"""Helpers for the tests of the compiled code: when they run, one torch thread, kernel
selection, the PyTorch modules they are compared with, and float32-against-float64 checks."""

from __future__ import annotations

import copy
import os
import platform
import shutil
from collections.abc import Iterator

import pytest
import torch
from torch import nn

from seqcast import _native as native

#: Where the compiled code must have been built: x86-64 with a C compiler, not turned off.
BUILD_EXPECTED = (
    platform.machine() == "x86_64"
    and shutil.which("cc") is not None
    and os.environ.get("SEQCAST_NATIVE", "1") != "0"
)
#: Skips a test of the compiled code only where it cannot have been built; where it should have
#: been and is missing, the tests run and fail.
needs_library = pytest.mark.skipif(
    not native.available() and not BUILD_EXPECTED, reason="compiled code not built here"
)

KERNELS = ["vector", "plain"]
MODULES: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


@pytest.fixture
def one_thread_and_vector_kernels() -> Iterator[None]:
    """Every test starts on one torch thread and ends with the vector kernels back on."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        if native.available():
            native.use_vector_kernels(True)


def select(kernel: str) -> None:
    """Switches to the named kernels; skips when this CPU has no AVX2/FMA for ``vector``."""
    active = native.use_vector_kernels(kernel == "vector")
    if kernel == "vector" and not active:
        pytest.skip("this CPU has no AVX2/FMA")
    assert active == (kernel == "vector")


def close(got: torch.Tensor, want: torch.Tensor, rtol: float = 1e-4, atol: float = 1e-5) -> None:
    """Float32 results against a (float64) oracle."""
    torch.testing.assert_close(got.detach().double(), want.detach().double(), rtol=rtol, atol=atol)


def make_module(
    cell: str, features: int, hidden: int, layers: int, bidirectional: bool, seed: int = 0
) -> nn.RNNBase:
    """A float32 ``nn.RNN``/``nn.GRU``/``nn.LSTM`` (batch first) with seeded weights."""
    torch.manual_seed(seed)
    return MODULES[cell](
        features, hidden, num_layers=layers, batch_first=True, bidirectional=bidirectional
    )


def float64_copy(module: nn.RNNBase) -> nn.RNNBase:
    """The oracle: the same module in float64 (PyTorch's own code, never the compiled one)."""
    return copy.deepcopy(module).double()


def weights_of(module: nn.RNNBase) -> list[torch.Tensor]:
    """The module's weights in the order :func:`seqcast._native.recurrent_stack` takes."""
    return list(module._flat_weights)


def run_stack(
    module: nn.RNNBase, x: torch.Tensor, weights: list[torch.Tensor] | None = None
) -> torch.Tensor:
    """:func:`seqcast._native.recurrent_stack` with ``module``'s cell, layers and directions."""
    cell = next(name for name, kind in MODULES.items() if isinstance(module, kind))
    return native.recurrent_stack(
        x,
        weights_of(module) if weights is None else weights,
        cell,
        module.num_layers,
        module.bidirectional,
    )
