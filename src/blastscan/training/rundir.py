"""The run directory: refused when taken, cleaned after a kill, and the facts of what ran."""

from __future__ import annotations

import logging
import subprocess
from dataclasses import asdict
from pathlib import Path

from blastscan import data as D
from blastscan.errors import BlastscanError
from blastscan.outputs import atomic_write_json, remove_stale_temporaries
from blastscan.training.config import TrainConfig
from blastscan.training.splits import Split

log = logging.getLogger("blastscan.train")


def prepare_run_dir(out: Path, resume: bool) -> None:
    """Refuse to overwrite a run; drop the temp files of writes that a kill cut short."""
    last = out / "checkpoints" / "last.safetensors"
    if out.exists() and last.exists() and not resume:
        raise BlastscanError(
            f"{out}: already holds a training run; pass --resume or choose another --out"
        )
    remove_stale_temporaries(out)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    (out / "figures").mkdir(exist_ok=True)


def add_log_file(out: Path) -> logging.Handler:
    handler = logging.FileHandler(out / "train.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return handler


def write_run_facts(
    out: Path, config: TrainConfig, dataset: D.Dataset, groups, split: Split
) -> None:
    """What a reader needs to know what was trained on what: config, data, manifest, split."""
    atomic_write_json(out / "config.json", asdict(config))
    atomic_write_json(
        out / "dataset.json", {**D.summary(dataset), "duplicate_groups": D.group_summary(groups)}
    )
    D.write_manifest(dataset, out / "manifest.csv")
    val = [dataset.samples[i].path for i in split.val]
    D.save_split(out / "split.json", dataset, split.train, split.test, val=val, seed=config.seed)


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
