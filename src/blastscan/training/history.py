"""The per-epoch history of a run: written as JSON and CSV, read back, plotted."""

from __future__ import annotations

import math
from pathlib import Path

from blastscan.outputs import atomic_write, atomic_write_json, atomic_write_text


def write_history(out: Path, history: list[dict]) -> None:
    atomic_write_json(out / "history.json", history)
    keys = list(history[0])
    lines = [",".join(keys)] + [",".join(f"{h[k]}" for k in keys) for h in history]
    atomic_write_text(out / "history.csv", "\n".join(lines) + "\n")


def history_floats(history: list[dict]) -> list[dict]:
    """History rows with JSON's null (a NaN when written, e.g. no validation split) as NaN again."""
    return [
        {k: math.nan if v is None else v for k, v in row.items()} if isinstance(row, dict) else row
        for row in history
    ]


def plot_training_curves(history: list[dict], figures: Path) -> dict[str, Path]:
    """The paper's Figure 3 (accuracy) and Figure 4 (loss) against epoch."""
    history = history_floats(history)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    paths = {}
    for key, title, name in (
        ("accuracy", "Accuracy", "accuracy.png"),
        ("loss", "Loss", "loss.png"),
    ):
        fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
        ax.plot(epochs, [h[f"train_{key}"] for h in history], marker="o", ms=3, label="training")
        if any(not math.isnan(h[f"val_{key}"]) for h in history):
            ax.plot(
                epochs, [h[f"val_{key}"] for h in history], marker="s", ms=3, label="validation"
            )
        ax.set(xlabel="epoch", ylabel=key, title=f"DarkNet-19 training {title.lower()}")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = figures / name
        atomic_write(path, lambda tmp, fig=fig: fig.savefig(tmp, format="png"))
        plt.close(fig)
        paths[key] = path
    return paths
