"""Exceptions and warnings that carry a message meant for the user.

Library messages name the argument (``window must be at least 1, got 0``) and list the
arguments they name in :attr:`SeqcastError.arguments`; the command line prints them with its
own flags (``--window must be at least 1, got 0``), as one line on stderr with a non-zero exit.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = [
    "DataError",
    "ModelFormatError",
    "NotFittedError",
    "SeqcastError",
    "SeqcastWarning",
    "TrainingWarning",
]


class SeqcastError(Exception):
    """A mistake in the user's input or request, explained in one sentence.

    Args:
        message: the sentence.
        arguments: the names of the arguments the sentence mentions (whole words), for a
            front end that calls them something else; an entry of several words (``"loss
            huber"``) names its first word only where the whole phrase stands (the word
            alone may be an ordinary noun elsewhere in the sentence).
    """

    def __init__(self, message: str = "", *, arguments: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.arguments = arguments


class DataError(SeqcastError, ValueError):
    """The data or a setting cannot be used as given: the message names the file, column, row
    or argument and what was expected."""


class NotFittedError(SeqcastError, RuntimeError):
    """A forecaster was asked to predict before ``fit``."""


class ModelFormatError(SeqcastError):
    """A saved model folder is missing, tampered with or from an incompatible version."""


class SeqcastWarning(UserWarning):
    """A legal but suspicious setting; like :class:`SeqcastError`, it lists the arguments its
    message names."""

    def __init__(self, message: str, *, arguments: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.arguments = arguments


class TrainingWarning(SeqcastWarning, RuntimeWarning):
    """Training stopped abnormally (it diverged); the best weights so far were kept."""
