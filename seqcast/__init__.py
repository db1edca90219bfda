"""seqcast: time-series forecasting with recurrent networks and honest baselines."""

from seqcast._version import __version__

__all__ = ["__version__"]
