"""`train --resume` after a SIGKILL at any point ends bit-identical to an uninterrupted run.

A real `python -m blastscan train` process is killed with SIGKILL (no cleanup handlers run)
several times in a row, at moments drawn from a seeded RNG: some at a random time, some just
after a temporary file appears (mid-write of a checkpoint, a JSON file or the bundle). Each
kill is followed by `--resume`; after the last one the run is resumed to the end and compared
with an uninterrupted run of the same seed, tensor by tensor.

One chain of kills costs about one run plus a process start per kill, which keeps the file
near a minute on two busy cores.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from helpers import make_image_folder
from safetensors import safe_open
from safetensors.torch import load_file

from blastscan.outputs import is_temporary

EPOCHS = 2
TRAIN_OPTIONS = [
    "--epochs", str(EPOCHS), "--batch-size", "8", "--image-size", "32", "--val-fraction", "0.2",
    "--seed", "7", "--device", "cpu", "--quiet",
]  # fmt: skip


@dataclass(frozen=True)
class Kill:
    """When to kill: `after` seconds from the start, then (if `mid_write`) at the next temp file."""

    after: float
    mid_write: bool
    write_delay: float = 0.0  # seconds after the temp file appears: deeper into the write


def train_command(data: Path, out: Path, cache: Path, resume: bool) -> list[str]:
    command = [sys.executable, "-m", "blastscan", "train", "--data", str(data), "--out", str(out)]
    command += [*TRAIN_OPTIONS, "--cache-dir", str(cache)]
    return command + (["--resume"] if resume else [])


def temp_files(run: Path) -> set[Path]:
    """What an interrupted write leaves: hidden `.name.XXXX.tmp`, `.tmpXXXX` files or folders."""
    return {p for p in run.rglob(".*") if is_temporary(p.name)}


def long_writes(run: Path) -> set[Path]:
    """Temp files of a checkpoint (160 MB) or the bundle: the widest windows to land in."""
    return set((run / "checkpoints").glob(".*")) | set(run.glob(".bundle.*"))


def run_until(command: list[str], run: Path, kill: Kill) -> bool:
    """Start `command`, SIGKILL it at `kill`; True if it was killed, False if it ended first."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    start, left_over = time.monotonic(), long_writes(run)  # from the previous kill
    while process.poll() is None and time.monotonic() - start < kill.after:
        time.sleep(0.01)
    while kill.mid_write and process.poll() is None and not long_writes(run) - left_over:
        time.sleep(0.002)
    if process.poll() is None and kill.write_delay:
        time.sleep(kill.write_delay)
    if process.poll() is not None:
        _, stderr = process.communicate()
        assert process.returncode == 0, stderr.decode()
        return False
    process.send_signal(signal.SIGKILL)
    process.wait()
    return True


def tensors(run: Path, name: str) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoints" / f"{name}.safetensors"))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("kill") / "data", per_class=5, size=32)


@pytest.fixture(scope="module")
def uninterrupted(data: Path, tmp_path_factory) -> tuple[Path, float]:
    """The reference run, and how long it took (the range the kill times are drawn from)."""
    root = tmp_path_factory.mktemp("whole")
    start = time.monotonic()
    done = subprocess.run(
        train_command(data, root / "run", root / "cache", resume=False), capture_output=True
    )
    assert done.returncode == 0, done.stderr.decode()
    return root / "run", time.monotonic() - start


def kill_plan(rng: random.Random, duration: float) -> list[Kill]:
    """Four kills: early (most likely before the first checkpoint), then mid-write, at any
    time, and mid-write again; each time drawn from `rng` within the uninterrupted duration."""

    def mid_write() -> Kill:
        return Kill(rng.uniform(0.0, 0.5 * duration), True, rng.uniform(0.0, 0.3))

    early = Kill(rng.uniform(0.0, 0.3 * duration), mid_write=False)
    anytime = Kill(rng.uniform(0.0, duration), mid_write=False)
    return [early, mid_write(), anytime, mid_write()]


def assert_run_directory_is_clean(run: Path) -> None:
    """No temp file or half-written file: every JSON parses and every safetensors opens."""
    assert temp_files(run) == set()
    for path in run.rglob("*.json"):
        json.loads(path.read_text())
    for path in run.rglob("*.safetensors"):
        with safe_open(str(path), "pt") as handle:  # checks the header against the file size
            assert handle.keys()


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume_gives_identical_weights(
    data: Path, uninterrupted: tuple[Path, float], tmp_path: Path
):
    reference, duration = uninterrupted
    run, cache = tmp_path / "run", tmp_path / "cache"
    rng = random.Random(20261125)
    killed = []
    for i, kill in enumerate(kill_plan(rng, duration)):
        if not run_until(train_command(data, run, cache, resume=i > 0), run, kill):
            break
        killed.append(kill)
    assert killed, "no kill landed before the run ended"
    done = subprocess.run(train_command(data, run, cache, resume=True), capture_output=True)
    assert done.returncode == 0, f"{killed}: {done.stderr.decode()}"

    for name in ("final", "last"):
        expected, got = tensors(reference, name), tensors(run, name)
        assert expected.keys() == got.keys()
        for key in expected:
            assert torch.equal(expected[key], got[key]), f"{name} {key} after kills {killed}"
    history = json.loads((run / "history.json").read_text())
    assert [row["epoch"] for row in history] == list(range(1, EPOCHS + 1))
    assert_run_directory_is_clean(run)


def test_a_torn_checkpoint_loads_the_epoch_of_its_tensors(tmp_path: Path):
    """The two files of a checkpoint are replaced one after the other; whichever is stale after
    a kill between them, the tensors and the epoch loaded together belong together."""
    from blastscan.training import load_checkpoint, save_checkpoint

    def state(epoch: int) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        model = torch.nn.Linear(3, 2)
        torch.nn.init.constant_(model.weight, float(epoch))
        return model, torch.optim.SGD(model.parameters(), lr=0.1)

    path = tmp_path / "last.safetensors"
    save_checkpoint(path, *state(0), {"epoch": 0, "history": []})
    old_json = path.with_suffix(".json").read_text()
    save_checkpoint(path, *state(1), {"epoch": 1, "history": [{"epoch": 1}]})
    path.with_suffix(".json").write_text(old_json)  # tensors of epoch 1, JSON of epoch 0
    model = torch.nn.Linear(3, 2)
    assert load_checkpoint(path, model)["epoch"] == 1 and model.weight.eq(1).all()


def test_stale_temporaries_are_removed_and_nothing_else(tmp_path: Path):
    from blastscan.outputs import remove_stale_temporaries

    keep = [tmp_path / "config.json", tmp_path / "checkpoints" / "last.safetensors"]
    stale = [
        tmp_path / "checkpoints" / ".last.safetensors.a1b2c3.tmp",
        tmp_path / "checkpoints" / ".tmpXy12Ab",
        tmp_path / ".bundle.k3j4.tmp" / "weights.safetensors",
        tmp_path / ".bundle.old-4242" / "bundle.json",
    ]
    for path in keep + stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    remove_stale_temporaries(tmp_path)
    assert all(p.exists() for p in keep) and temp_files(tmp_path) == set()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints", "config.json"]
