"""The report's document model (headings, paragraphs, warnings, tables, figures) and formatting.

Sections build lists of `Block`s; `render` turns one list into Markdown and into HTML.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blastscan.report.paper import NA


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Figure:
    path: Path
    caption: str


@dataclass
class Block:
    kind: str  # "h1" | "h2" | "h3" | "p" | "warn" | "table" | "figure"
    content: Any


def _h(level: int, text: str) -> Block:
    return Block(f"h{level}", text)


def _p(text: str) -> Block:
    return Block("p", text)


def fmt_pct(prop: dict[str, Any] | None, ci: bool = True) -> str:
    """A proportion from metrics.json as '99.94% (99.78-99.99)'; '-' when absent."""
    if not prop:
        return "-"
    text = f"{100 * prop['value']:.2f}%"
    if ci and "low" in prop:
        text += f" ({100 * prop['low']:.2f}–{100 * prop['high']:.2f})"
    return text


def fmt_paper(value: float | None) -> str:
    return NA if value is None else f"{value:.2f}%"


def fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{sec:02d}" if hours else f"{minutes}:{sec:02d} min"
