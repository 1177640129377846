"""`python -m aflow`: the same command line as the `aflow` script."""

from aflow.cli import main

main()
