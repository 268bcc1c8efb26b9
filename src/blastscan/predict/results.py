"""What a prediction run gives back: CSV and JSON text, the results file and a terminal table."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blastscan.bundle.heads import HEAD_CNN, OUT_OF_DISTRIBUTION, UNCHECKED
from blastscan.errors import BlastscanError
from blastscan.outputs import atomic_write_text, to_json
from blastscan.predict.run import PredictRun

if TYPE_CHECKING:
    from blastscan.bundle import Bundle


def csv_text(run: PredictRun) -> str:
    """One row per file, unreadable ones included with an `error` and no prediction."""
    columns = list(dict.fromkeys(k for row in run.rows for k in row)) or ["path", "predicted"]
    columns.append("error")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in run.rows:
        writer.writerow({**{k: _cell(v) for k, v in row.items()}, "error": ""})
    for path, reason in run.unreadable:
        writer.writerow({"path": path, "error": reason})
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value


def json_text(run: PredictRun, bundle: Bundle) -> str:
    payload = {
        "bundle": str(bundle.path),
        "engine": run.engine,
        "classes": bundle.display_names,
        "ood_threshold": bundle.ood.threshold if bundle.ood else None,
        "predictions": run.rows,
        "unreadable": [{"path": p, "reason": r} for p, r in run.unreadable],
        "seconds": run.seconds,
    }
    return to_json(payload, indent=1)


def write_results(path: str | Path, run: PredictRun, bundle: Bundle) -> Path:
    """CSV or JSON by the file's suffix, written atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise BlastscanError(f"{path}: --out must end in .csv or .json")
    atomic_write_text(path, csv_text(run) if suffix == ".csv" else json_text(run, bundle))
    return path


def results_table(run: PredictRun, limit: int = 50):
    """A rich table of the first `limit` predictions and every unreadable file."""
    from rich.table import Table

    table = Table(title=f"{len(run.rows)} image(s), {len(run.unreadable)} unreadable")
    table.add_column("file", overflow="fold", ratio=3)
    for name in ("class", "p", "head"):
        table.add_column(name, no_wrap=True)
    table.add_column("OOD / reason", overflow="fold", ratio=2)
    for row in run.rows[:limit]:
        head = "cnn" if row["head"] == HEAD_CNN else "clf"
        table.add_row(
            _short(row["path"]), _class_cell(row), f"{row['probability']:.2f}", head, _flag(row)
        )
    if len(run.rows) > limit:
        table.add_row(f"... {len(run.rows) - limit} more (see --out)", "", "", "", "")
    for path, reason in run.unreadable:
        table.add_row(_short(path), "[red]unreadable[/red]", "", "", reason)
    table.caption = "head: clf = features+classifier, cnn = CNN softmax"
    if any(row.get("ood") == UNCHECKED for row in run.rows):  # must not read as "ok"
        table.caption += "; no OOD check in this bundle (make it with blastscan bundle --data)"
    return table


def _class_cell(row: dict[str, Any]) -> str:
    """A flagged image's class is not to be trusted: say so, with the nearest class beside it."""
    if row.get("ood") is True:
        return f"[red]{OUT_OF_DISTRIBUTION}[/red]"
    return row["predicted"]


def _flag(row: dict[str, Any]) -> str:
    if row.get("ood") == UNCHECKED:
        return "[yellow]unchecked[/yellow]"
    if row.get("ood"):
        return f"[red]OOD[/red] {row['ood_reason']}; nearest {row['nearest']}"
    return "ok"


def _short(path: str) -> str:
    """Folder and file name: enough to find the image, short enough for a terminal."""
    p = Path(path)
    return f"{p.parent.name}/{p.name}" if p.parent.name else p.name
