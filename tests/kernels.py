"""Helpers for the compiled-recurrence tests: one torch thread, kernel selection, comparisons."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from seqcast._native import binding as native


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
