"""``python -m seqcast``: the command line."""

from seqcast.cli import main

main()
