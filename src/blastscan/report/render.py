"""One list of blocks rendered twice: Markdown (figures linked) and self-contained HTML (embedded)."""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path

from blastscan.report.blocks import Block, Figure, Table


def render_markdown(blocks: list[Block], run_dir: Path) -> str:
    out = []
    for b in blocks:
        if b.kind.startswith("h"):
            out.append(f"{'#' * int(b.kind[1])} {b.content}")
        elif b.kind == "p":
            out.append(b.content)
        elif b.kind == "warn":
            out.append(f"> ⚠ {b.content}")
        elif b.kind == "table":
            out.append(_md_table(b.content))
        elif b.kind == "figure":
            rel = os.path.relpath(b.content.path, run_dir)
            out.append(f"![{b.content.caption}]({Path(rel).as_posix()})\n\n*{b.content.caption}*")
    return "\n\n".join(out) + "\n"


def _md_table(t: Table) -> str:
    def row(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    lines = [row(t.header), "|" + "---|" * len(t.header)] + [row(r) for r in t.rows]
    if t.caption:
        lines += ["", f"*{t.caption}*"]
    return "\n".join(lines)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;
margin:2rem auto;padding:0 1rem;color:#1d2330;line-height:1.5}
h1{font-size:1.6rem;border-bottom:2px solid #2b6cb0;padding-bottom:.3rem}
h2{font-size:1.25rem;margin-top:2.2rem;color:#2b4c7e}h3{font-size:1.05rem;margin-top:1.4rem}
table{border-collapse:collapse;margin:.8rem 0;font-size:.9rem}
th,td{border:1px solid #cfd6e0;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#eef3f9}tr:nth-child(even) td{background:#fafbfd}
caption{caption-side:bottom;font-size:.85rem;color:#4a5568;text-align:left;padding-top:.3rem}
.warn{background:#fff5e6;border-left:4px solid #dd6b20;padding:.6rem .9rem;margin:.8rem 0}
figure{margin:1rem 0}figure img{max-width:100%;border:1px solid #e2e8f0}
figcaption{font-size:.85rem;color:#4a5568}
"""


def render_html(blocks: list[Block], title: str) -> str:
    body = []
    for b in blocks:
        if b.kind.startswith("h"):
            body.append(f"<{b.kind}>{_inline(b.content)}</{b.kind}>")
        elif b.kind == "p":
            body.append(f"<p>{_inline(b.content)}</p>")
        elif b.kind == "warn":
            body.append(f'<div class="warn">⚠ {_inline(b.content)}</div>')
        elif b.kind == "table":
            body.append(_html_table(b.content))
        elif b.kind == "figure":
            body.append(_html_figure(b.content))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _inline(text: str) -> str:
    """Escape, then turn the few Markdown marks we use (**bold**, `code`) into tags."""
    out, parts = [], html.escape(str(text)).split("**")
    for i, part in enumerate(parts):
        out.append(f"<strong>{part}</strong>" if i % 2 else part)
    code = "".join(out).split("`")
    return "".join(f"<code>{c}</code>" if i % 2 else c for i, c in enumerate(code))


def _html_table(t: Table) -> str:
    head = "".join(f"<th>{_inline(h)}</th>" for h in t.header)
    rows = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in t.rows)
    caption = f"<caption>{_inline(t.caption)}</caption>" if t.caption else ""
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _html_figure(f: Figure) -> str:
    try:
        data = base64.b64encode(Path(f.path).read_bytes()).decode("ascii")
    except OSError:
        return f"<p>(figure missing: {html.escape(str(f.path))})</p>"
    mime = {".svg": "image/svg+xml", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}.get(
        Path(f.path).suffix.lower(), "image/png"
    )
    caption = _inline(f.caption)
    return (
        f'<figure><img src="data:{mime};base64,{data}" alt="{html.escape(f.caption)}">'
        f"<figcaption>{caption}</figcaption></figure>"
    )
