"""`blastscan` command line: each command is a thin shell over the library API.

The commands live one group per module (training, features, reproduce, product, robustness);
this module makes the typer `app` and registers them in the order `blastscan --help` lists.
"""

from __future__ import annotations

import sys

import typer

from blastscan.cli import features, product, reproduce, robustness, training
from blastscan.cli.common import CacheOpt, DataOpt, friendly_errors

__all__ = ["CacheOpt", "DataOpt", "app", "friendly_errors", "main"]

app = typer.Typer(
    help="Detect acute lymphoblastic leukemia and its B-cell subtypes in blood smear images.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _group() -> None:
    """Detect acute lymphoblastic leukemia and its B-cell subtypes in blood smear images."""


COMMANDS = (  # (name, function), in the order of `blastscan --help`
    ("train", training.train),
    ("extract", features.extract),
    ("select", features.select),
    ("evaluate", features.evaluate),
    ("reproduce", reproduce.reproduce),
    ("bundle", product.bundle_cmd),
    ("predict", product.predict),
    ("explain", product.explain),
    ("export", product.export),
    ("serve", product.serve),
    ("robustness", robustness.robustness),
    ("compare", robustness.compare),
)
for _name, _command in COMMANDS:
    app.command(_name)(_command)


def main() -> None:  # pragma: no cover - console entry point
    app(prog_name="blastscan")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
