"""Where training runs: the CPU (the compiled recurrence) or a CUDA GPU (PyTorch's layers)."""

from __future__ import annotations

import torch

from seqcast.errors import DataError

__all__ = ["training_device"]


def training_device(name: str) -> torch.device:
    """The device for ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (``cuda`` where PyTorch sees a
    GPU, else ``cpu``). Asked for ``cuda`` without one, it says so rather than falling back.

    Raises:
        DataError: an unknown name, or ``cuda`` where PyTorch sees no GPU (or not that one).
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    kind, _, index = name.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise DataError(
            f"unknown device '{name}'; choose from cpu, cuda (or cuda:N), auto",
            arguments=("device",),
        )
    if not torch.cuda.is_available():
        raise DataError(
            f"device '{name}' asked for, but PyTorch sees no CUDA GPU here (torch "
            f"{torch.__version__}); use device cpu or auto",
            arguments=("device",),
        )
    if index and int(index) >= torch.cuda.device_count():
        raise DataError(
            f"device '{name}' asked for, but PyTorch sees {torch.cuda.device_count()} GPU(s)",
            arguments=("device",),
        )
    return torch.device(name)
