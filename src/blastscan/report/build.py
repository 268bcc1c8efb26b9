"""All sections in the paper's order, and report.md + report.html written from them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from blastscan.outputs import atomic_write_text
from blastscan.report.blocks import Block
from blastscan.report.paper import PAPER
from blastscan.report.render import render_html, render_markdown
from blastscan.report.sections_extra import (
    _calibration_section,
    _colour_section,
    _coverage_section,
    _other_figures,
    _timings_section,
)
from blastscan.report.sections_paper import (
    _cnn_section,
    _figure6_section,
    _header,
    _protocol_section,
    _selection_section,
    _table2_section,
    _table3_section,
    _table4_section,
)


def build_report(run_dir: Path, metrics: dict[str, Any], figures: dict[str, Path]) -> list[Block]:
    """All sections in the paper's order, as blocks both renderers understand."""
    return [
        *_header(metrics),
        *_protocol_section(metrics),
        *_cnn_section(metrics, figures),
        *_selection_section(metrics, figures),
        *_table2_section(metrics),
        *_table3_section(metrics),
        *_figure6_section(run_dir, metrics, figures),
        *_calibration_section(metrics, figures),
        *_coverage_section(metrics),
        *_colour_section(metrics),
        *_table4_section(metrics),
        *_timings_section(metrics),
        *_other_figures(figures),
    ]


def write_report(
    run_dir: Path, metrics: dict[str, Any], figures: dict[str, Path]
) -> tuple[Path, Path]:
    """Write report.md and a self-contained report.html into `run_dir`, each atomically.

    Confusion matrices not passed in `figures` are drawn from the metrics into run_dir/figures.
    """
    run_dir = Path(run_dir)
    figures = {k: Path(v) for k, v in (figures or {}).items()}
    blocks = build_report(run_dir, metrics, figures)
    md_path, html_path = run_dir / "report.md", run_dir / "report.html"
    atomic_write_text(md_path, render_markdown(blocks, run_dir))
    atomic_write_text(html_path, render_html(blocks, f"blastscan report: {PAPER['citation']}"))
    return md_path, html_path
