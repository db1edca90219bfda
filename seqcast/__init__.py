from seqcast._version import __version__
