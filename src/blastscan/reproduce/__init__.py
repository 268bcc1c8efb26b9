"""`blastscan reproduce`: the paper's whole method, end to end, into one run directory.

options (what to run) -> run (the stages, in order, resumable) with cnn (train or reuse the
CNN, line its split up with the features), extras (calibration, colour baseline, coverage,
group protocol) and strict (one CNN per outer fold).
"""

from blastscan.reproduce.cnn import cnn_summary, run_split_indices
from blastscan.reproduce.extras import COLOUR_SIZE, group_protocol
from blastscan.reproduce.options import PROTOCOLS, ReproduceOptions, quick_options
from blastscan.reproduce.run import reproduce, write_run_bundle
from blastscan.reproduce.strict import run_strict

__all__ = [
    "COLOUR_SIZE",
    "PROTOCOLS",
    "ReproduceOptions",
    "cnn_summary",
    "group_protocol",
    "quick_options",
    "reproduce",
    "run_split_indices",
    "run_strict",
    "write_run_bundle",
]
