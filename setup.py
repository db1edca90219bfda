"""Builds seqcast's one compiled part, the recurrence of RNN and LSTM layers (plain C, no
PyTorch headers). ``optional``: without a C compiler seqcast installs and runs on PyTorch alone."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "seqcast._native._recurrence",
            sources=["seqcast/_native/recurrence.c"],
            extra_compile_args=["-O3", "-std=c11"],
            optional=True,
        )
    ]
)
