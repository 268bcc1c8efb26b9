"""torchrun with two CPU processes (gloo) against one process with the same global batch."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import make_image_folder

ARGS = ["--epochs", "2", "--batch-size", "16", "--image-size", "32", "--val-fraction", "0",
        "--lr", "0.002", "--quiet"]  # fmt: skip


def run(cmd: list[str], cwd: Path) -> str:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result.stderr


@pytest.mark.slow
def test_two_process_training_matches_one_process(tmp_path: Path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists() and not shutil.which("torchrun"):
        pytest.skip("torchrun not installed beside this Python")
    data = make_image_folder(tmp_path / "data", per_class=12)
    common = ["--data", str(data), "--cache-dir", str(tmp_path / "cache"), *ARGS]
    run(
        [sys.executable, "-m", "blastscan", "train", "--out", str(tmp_path / "one"), *common],
        tmp_path,
    )
    log = run(
        [
            str(torchrun),
            "--nproc-per-node=2",
            "-m",
            "blastscan",
            "train",
            "--out",
            str(tmp_path / "two"),
            *common,
        ],
        tmp_path,
    )
    checksums = re.findall(r"rank (\d) weights checksum (\S+)", log)
    assert sorted(r for r, _ in checksums) == ["0", "1"] and checksums[0][1] == checksums[1][1]

    one = json.loads((tmp_path / "one" / "history.json").read_text())
    two = json.loads((tmp_path / "two" / "history.json").read_text())
    assert [h["epoch"] for h in two] == [1, 2]
    # Same images, split and order: only batch-norm differs (each rank normalises its own half
    # of the global batch; SyncBatchNorm has no CPU backend), so losses agree loosely.
    for a, b in zip(one, two, strict=True):
        assert abs(a["train_loss"] - b["train_loss"]) < 0.15
    for name in ("split.json", "manifest.csv"):
        assert (tmp_path / "one" / name).read_text() == (tmp_path / "two" / name).read_text()
    assert json.loads((tmp_path / "two" / "metrics.json").read_text())["n_test"] == 16
