"""The neural forecasters (PyTorch)."""
