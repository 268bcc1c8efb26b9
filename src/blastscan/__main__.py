"""`python -m blastscan`: the same command line as `blastscan`."""

from blastscan.cli import main

main()
