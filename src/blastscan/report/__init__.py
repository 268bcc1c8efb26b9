"""The run report: every table and figure of the paper, our numbers beside the paper's.

`write_report` renders one list of blocks twice, to report.md (figures linked) and to a
self-contained report.html (figures embedded as base64), so the two never disagree. It reads
the metrics.json structure documented in docs/reference/metrics.md; any protocol present under
metrics["protocols"] gets its own columns, so strict/holdout/group protocols sit beside the
paper's. Paper numbers we do not have are shown as NA, never guessed.

- `paper`: what the paper states (`PAPER`, `NA`).
- `blocks`: the document model (`Block`, `Table`, `Figure`) and number formatting.
- `protocols`: reading protocols out of metrics.json; what each one leaked.
- `sections_paper`, `sections_extra`: the paper's sections, and those beyond it.
- `render`: Markdown and HTML; `build`: `build_report`, `write_report`.
"""

from blastscan.report.blocks import Block, Figure, Table, fmt_paper, fmt_pct, fmt_seconds
from blastscan.report.build import build_report, write_report
from blastscan.report.paper import FEATURE_SET_LABEL, NA, PAPER, TABLE2_ROWS
from blastscan.report.protocols import leakage, protocol_statement
from blastscan.report.render import render_html, render_markdown

__all__ = [
    "FEATURE_SET_LABEL",
    "NA",
    "PAPER",
    "TABLE2_ROWS",
    "Block",
    "Figure",
    "Table",
    "build_report",
    "fmt_paper",
    "fmt_pct",
    "fmt_seconds",
    "leakage",
    "protocol_statement",
    "render_html",
    "render_markdown",
    "write_report",
]
