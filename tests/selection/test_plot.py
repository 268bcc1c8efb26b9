"""Figure 5."""

from __future__ import annotations

import numpy as np
import pytest

from blastscan.errors import BlastscanError
from blastscan.selection import plot_mrmr_scores


def test_plot_mrmr_scores_writes_png(tmp_path):
    scores = np.array([0.9, 0.5, 0.3, 0.1, 0.0])
    path = plot_mrmr_scores(scores, 0.25, tmp_path / "fig" / "mrmr.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_refuses_infinite_scores(tmp_path):
    with pytest.raises(BlastscanError, match="finite"):
        plot_mrmr_scores(np.array([0.9, np.inf]), 0.25, tmp_path / "mrmr.png")
    assert not (tmp_path / "mrmr.png").exists()
