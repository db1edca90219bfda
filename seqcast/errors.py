"""Exceptions that carry a message meant for the user.

The command line prints a :class:`SeqcastError` as one line on stderr and exits non-zero;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["DataError", "ModelFormatError", "NotFittedError", "SeqcastError"]


class SeqcastError(Exception):
    """A mistake in the user's input or request, explained in one sentence."""


class DataError(SeqcastError, ValueError):
    """The data cannot be used as given: the message names file, column, row and expectation."""


class NotFittedError(SeqcastError, RuntimeError):
    """A forecaster was asked to predict before ``fit``."""


class ModelFormatError(SeqcastError):
    """A saved model folder is missing, tampered with or from an incompatible version."""
