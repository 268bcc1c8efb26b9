"""torchrun with two CPU processes (gloo) against one process: training, extract, predict."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import make_image_folder

ARGS = ["--epochs", "2", "--batch-size", "16", "--image-size", "32", "--val-fraction", "0",
        "--lr", "0.002", "--quiet"]  # fmt: skip


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    env = {**os.environ, **env} if env else None
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600, env=env)
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


def torchrun_cmd(*args: str) -> list[str]:
    """`torchrun --nproc-per-node=2 -m blastscan ARGS`, or a skip without torchrun."""
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun not installed beside this Python")
    return [str(torchrun), "--nproc-per-node=2", "-m", "blastscan", *args]


@pytest.mark.slow
def test_two_process_extract_writes_the_single_process_file(tmp_path: Path):
    from blastscan.features import load_features
    from blastscan.training import TrainConfig, train

    # 3 classes x 5 images: 15, so the ranks get 8 and 7 images
    data = make_image_folder(tmp_path / "data", classes=("Benign", "Early", "Pre"), per_class=5)
    config = TrainConfig(epochs=1, batch_size=8, image_size=32, val_fraction=0.0, test_size=0.4)
    train(data, tmp_path / "run", config, cache_dir=tmp_path / "c", show_progress=False)
    common = ["--model", str(tmp_path / "run"), "--data", str(data), "--quiet"]
    cache = ["--cache-dir", str(tmp_path / "c")]
    # eager PyTorch differs by ~1e-5 (relative) between 1 and 2 intra-op threads, whatever the
    # sharding: the reference runs with the thread count of one of two ranks on this node
    one_rank_threads = {"LOCAL_WORLD_SIZE": "2"}
    single = [sys.executable, "-m", "blastscan", "extract", *common, *cache, "--out", "one.npz"]
    run(single, tmp_path, one_rank_threads)
    (tmp_path / "two").mkdir()
    out = tmp_path / "two" / "features.npz"
    run(torchrun_cmd("extract", *common, *cache, "--out", str(out)), tmp_path)

    one, two = load_features(tmp_path / "one.npz"), load_features(out)
    assert [p.name for p in (tmp_path / "two").iterdir()] == ["features.npz"]  # rank 0's only
    for key in ("paths", "y", "sha256", "classes"):
        assert two[key].tolist() == one[key].tolist()
    np.testing.assert_allclose(two["X"], one["X"], atol=1e-5)
    np.testing.assert_allclose(two["logits"], one["logits"], atol=1e-5)


@pytest.mark.slow
def test_two_process_predict_writes_the_single_process_results(tmp_path: Path):
    from bundle_helpers import tiny_bundle
    from PIL import Image

    from blastscan.data.synthetic import synthetic_smears

    bundle = tiny_bundle(tmp_path)
    images = tmp_path / "images"
    (images / "sub").mkdir(parents=True)
    for i, smear in enumerate(synthetic_smears(7, 48, seed=3)):
        Image.fromarray(smear).save(images / ("sub" if i % 3 else ".") / f"smear-{i}.png")
    (images / "sub" / "broken.png").write_bytes(b"not a png")
    args = ["predict", str(bundle), str(images), str(tmp_path / "missing"), "--quiet"]
    run([sys.executable, "-m", "blastscan", *args, "--out", "one.json"], tmp_path)
    run(torchrun_cmd(*args, "--out", "two.json"), tmp_path)

    one = json.loads((tmp_path / "one.json").read_text())
    two = json.loads((tmp_path / "two.json").read_text())
    assert two["unreadable"] == one["unreadable"] and len(one["unreadable"]) == 2
    assert [r["path"] for r in two["predictions"]] == [r["path"] for r in one["predictions"]]
    assert len(one["predictions"]) == 7
    for a, b in zip(one["predictions"], two["predictions"], strict=True):
        assert a["class"] == b["class"] and a["ood"] == b["ood"]
        np.testing.assert_allclose(b["probability"], a["probability"], atol=1e-5)
        np.testing.assert_allclose(b["ood_distance"], a["ood_distance"], rtol=1e-5)


_FAULTS = """
import resource, sys
import numpy as np
from blastscan.runtime.distributed import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else False
block = int(sys.argv[2])

def faults_of_three_steps():  # blocks above glibc's mmap threshold, as activations are
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(3):
        a, b = np.ones(block, np.uint8), np.ones(block, np.uint8)
        del a, b
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

faults_of_three_steps()
print(applied, faults_of_three_steps())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
@pytest.mark.parametrize(
    "block_bytes",
    [100_000_000, 1_200_000_000],  # 2 x 1.2 GB: past the largest positive trim threshold
    ids=["100MB", "2x1.2GB"],
)
def test_keep_freed_memory_reuses_large_blocks_instead_of_faulting_them_in_again(block_bytes):
    def steady_state_faults(mode: str) -> tuple[str, int]:
        out = subprocess.run(
            [sys.executable, "-c", _FAULTS, mode, str(block_bytes)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        applied, faults = out.stdout.split()
        return applied, int(faults)

    applied, kept = steady_state_faults("keep")
    if applied != "True":
        pytest.skip("this C library has no mallopt (not glibc)")
    _, default = steady_state_faults("default")
    assert default > 100  # glibc's default unmaps every freed block and faults it in again
    assert kept < 0.1 * default
