"""The paper's Figure 5: mRMR scores sorted from best to worst, with the threshold line."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from blastscan.errors import BlastscanError
from blastscan.outputs import atomic_write


def plot_mrmr_scores(scores: np.ndarray, threshold: float, path: str | Path) -> Path:
    """The paper's Figure 5: scores sorted from best to worst, with the threshold line, as PNG.

    Uses the Agg canvas directly, so no global matplotlib backend is touched.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    values = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    if not np.isfinite(values).all():
        raise BlastscanError("mRMR scores must be finite; refit the selector with this version")
    ranks = np.arange(1, len(values) + 1)
    fig = Figure(figsize=(7, 4), dpi=150)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(ranks, values, color="tab:blue", lw=1.2, label="mRMR score")
    kept = int((values > threshold).sum())
    ax.axhline(threshold, color="tab:red", ls="--", lw=1, label=f"threshold {threshold:g}")
    ax.set(
        xlabel="feature rank",
        ylabel="score (nats)",
        xlim=(0, len(values) + 1),
        title=f"mRMR scores, sorted: {kept} of {len(values)} above the threshold",
    )
    ax.legend(loc="upper right")
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format=figure_format(path)))
    return path


def figure_format(path: str | Path) -> str:
    """The image format a figure path's suffix names; checked before the work that draws it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fmt = Path(path).suffix.lstrip(".").lower()
    supported = FigureCanvasAgg.get_supported_filetypes()
    if fmt not in supported:
        raise BlastscanError(
            f"{path}: --figure must end in one of .{', .'.join(sorted(supported))}"
        )
    return fmt
