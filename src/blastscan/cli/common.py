"""What every command shares: one-line errors, log records on stderr, and the common options."""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from blastscan.errors import BlastscanError

F = TypeVar("F", bound=Callable)

# The head a bundle decides with unless told otherwise: the paper's best row (its Table 2),
# classify.PAPER_ROWS["SVM"] (not imported here: the CLI imports the library lazily).
DEFAULT_CLASSIFIER = "Cubic SVM"


def friendly_errors(func: F) -> F:
    """Turn a user-fixable problem into one line on stderr and exit code 2, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            with skipped_files_on_stderr():
                return func(*args, **kwargs)
        except BlastscanError as exc:
            typer.secho(f"error: {exc}", fg="red", err=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            hint = "rerun with --resume" if func.__name__ == "train" else "rerun the command"
            typer.secho(f"interrupted; completed files are kept, {hint}", err=True)
            raise typer.Exit(130) from None
        except MemoryError:
            typer.secho("error: out of memory; use a smaller --batch-size", fg="red", err=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def log_on_stderr(name: str, level: int, prefix: str = "") -> Iterator[None]:
    """Logger `name`'s records from `level` up as lines on stderr while the block runs."""
    logger = logging.getLogger(name)
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter(prefix + "%(message)s"))
    logger.addHandler(handler)
    old_level = logger.level
    if logger.getEffectiveLevel() > level:
        logger.setLevel(level)
    propagate, logger.propagate = logger.propagate, False  # once, even under a root handler
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logger.propagate = propagate


def skipped_files_on_stderr() -> contextlib.AbstractContextManager[None]:
    """The files a dataset scan skipped (unreadable images), one 'warning: ...' line each."""
    return log_on_stderr("blastscan.data", logging.WARNING, "warning: ")


def none_readable(unreadable: list[tuple[str, str]]) -> str:
    """The error when every input failed: the first file and why, and how many more."""
    if not unreadable:
        return "no readable image among the inputs"
    path, reason = unreadable[0]
    more = f" (and {len(unreadable) - 1} more unreadable)" if len(unreadable) > 1 else ""
    return f"no readable image among the inputs: {path}: {reason}{more}"


DataOpt = Annotated[
    Path, typer.Option("--data", help="Dataset folder (Kaggle layout or one folder per class).")
]
CacheOpt = Annotated[
    Path | None,
    typer.Option(
        help="Where decoded images are cached.",
        show_default="$BLASTSCAN_CACHE or ~/.cache/blastscan",
    ),
]
PrecisionOpt = Annotated[
    str,
    typer.Option(
        help="auto (bf16 where the CPU has AMX or AVX512-BF16, fp32 elsewhere; bf16 autocast "
        "on CUDA), fp32 or bf16.",
    ),
]


@contextlib.contextmanager
def chosen_precision(requested: str, device: str | None, quiet: bool = False) -> Iterator[None]:
    """Run the command's networks in the precision chosen for its device, said on stderr once."""
    from blastscan.runtime.device import pick_device
    from blastscan.runtime.precision import resolve_precision, use_precision

    chosen = resolve_precision(requested, pick_device(device))
    if not quiet:
        typer.echo(f"precision {chosen.name} ({chosen.reason})", err=True)
    with use_precision(chosen):
        yield
