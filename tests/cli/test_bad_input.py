"""Bad and odd input: every case is handled (converted, rotated, skipped and reported) or is one
line `error: <file>: <what>; <fix>` with exit code 2 and no traceback. docs/reference/bad-input.md is the
table of these cases.

One tiny training run (module fixture, through the CLI) covers the dataset cases at once: its
folder mixes readable odd images with broken ones under non-ASCII, space-containing names, and
the same run checks that train and extract never modify their input folder.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from helpers import make_image_folder
from PIL import Image, ImageFile
from typer.testing import CliRunner

from blastscan import data as D
from blastscan.cli import app
from blastscan.errors import BlastscanError
from blastscan.features import load_features

runner = CliRunner()
CLASS_A, CLASS_B = "blast cells ü", "normal 正常"  # not Kaggle names: generic one-folder-per-class
RED, BLUE = (255, 0, 0), (0, 0, 255)


# ------------------------------------------------------------------ making odd files


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def jpeg_bytes(size=(48, 40), colour=(200, 60, 90)) -> bytes:
    return encode(Image.new("RGB", size, colour), "JPEG", quality=90)


def png16_rgb(width: int, height: int, rgb16: tuple[int, int, int]) -> bytes:
    """A 16-bit-per-channel RGB PNG, written by hand (Pillow cannot write one)."""
    row = b"\x00" + struct.pack(f">{3 * width}H", *(rgb16 * width))

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


def tiff16_rgb(width: int, height: int, rgb16: tuple[int, int, int]) -> bytes:
    """A baseline uncompressed 16-bit RGB TIFF, written by hand (Pillow cannot write one)."""
    pixels = struct.pack(f"<{3 * width * height}H", *(rgb16 * (width * height)))
    n_entries = 10
    bits_at = 8 + 2 + 12 * n_entries + 4
    data_at = bits_at + 6
    entries = [  # (tag, type, count, value): 3 = SHORT, 4 = LONG
        (256, 3, 1, width),
        (257, 3, 1, height),
        (258, 3, 3, bits_at),
        (259, 3, 1, 1),
        (262, 3, 1, 2),
        (273, 4, 1, data_at),
        (277, 3, 1, 3),
        (278, 3, 1, height),
        (279, 4, 1, len(pixels)),
        (284, 3, 1, 1),
    ]
    ifd = struct.pack("<H", n_entries)
    for tag, kind, count, value in entries:
        packed = (
            struct.pack("<HH", value, 0) if kind == 3 and count == 1 else struct.pack("<I", value)
        )
        ifd += struct.pack("<HHI", tag, kind, count) + packed
    ifd += struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<3H", 16, 16, 16) + pixels


def exif_rotated_jpeg() -> bytes:
    """40 wide x 20 high, left half red, right half blue, EXIF orientation 6 (turn 90 deg CW)."""
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20], pixels[:, 20:] = RED, BLUE
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(Image.fromarray(pixels), "JPEG", quality=95, exif=exif.tobytes())


def solid_png(side: int) -> bytes:
    """A huge solid PNG that costs almost nothing to write (1-bit, compresses to ~KB)."""
    return encode(Image.new("1", (side, side), 1), "PNG")


BROKEN = {  # file name -> bytes; each must be skipped and reported, never crash a run
    "zero byte.jpg": b"",
    "truncated.jpg": jpeg_bytes()[:300],
    "text file.jpg": b"this is not a JPEG, just text\n",
    "bomb 20000x20000.png": solid_png(20_000),
}
READABLE_A = {
    "alpha.png": encode(Image.new("RGBA", (24, 24), (255, 0, 0, 0)), "PNG"),
    "gray.png": encode(Image.new("L", (24, 24), 77), "PNG"),
    "cmyk.jpg": encode(Image.new("CMYK", (24, 24), (0, 255, 255, 0)), "JPEG", quality=95),
}
READABLE_B = {
    "16bit.png": encode(Image.fromarray(np.full((24, 24), 200 * 257, np.uint16)), "PNG"),
    "16bit rgb.tif": tiff16_rgb(24, 24, (200 * 257, 100 * 257, 50 * 257)),
    "one pixel.png": encode(Image.new("RGB", (1, 1), (10, 20, 30)), "PNG"),
    "exif rotated.jpg": exif_rotated_jpeg(),
    "ünïcödé 名前 1.png": encode(Image.new("RGB", (24, 24), (120, 130, 140)), "PNG"),
}


def snapshot(folder: Path) -> dict[str, tuple]:
    """Every path under `folder` with its kind, bytes' hash, size and mtime (ns)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        st = p.stat()
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        out[str(p.relative_to(folder))] = (digest, st.st_size if p.is_file() else 0, st.st_mtime_ns)
    return out


def assert_one_line_error(result, *fragments: str) -> str:
    """Exit 2, no traceback, one `error: ...` line that contains every fragment."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.output
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


# ------------------------------------------------------------------ the messy dataset, one run


@pytest.fixture(scope="module")
def messy(tmp_path_factory) -> dict:
    """Train (1 epoch, 32 px) and extract through the CLI on a folder of odd and broken files."""
    base = tmp_path_factory.mktemp("bad-input")
    root = make_image_folder(base / "smear data – ü 血液", classes=(CLASS_A, CLASS_B), per_class=4)
    for folder, files in (
        (CLASS_A, {**READABLE_A, **dict(list(BROKEN.items())[:2])}),
        (CLASS_B, {**READABLE_B, **dict(list(BROKEN.items())[2:])}),
    ):
        for name, content in files.items():
            (root / folder / name).write_bytes(content)
    old = time.time() - 3600  # an hour-old mtime makes any write or touch show
    for p in root.rglob("*"):
        os.utime(p, (old, old))
    before = snapshot(root)
    env = {"BLASTSCAN_CACHE": str(base / "default-cache")}  # nothing goes to ~/.cache
    t0 = time.perf_counter()
    train = runner.invoke(
        app,
        [
            "train",
            "--data",
            str(root),
            "--out",
            str(base / "run"),
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--image-size",
            "32",
            "--quiet",
        ],
        env=env,
    )
    t1 = time.perf_counter()
    extract = runner.invoke(
        app,
        [
            "extract",
            "--model",
            str(base / "run"),
            "--data",
            str(root),
            "--out",
            str(base / "features.npz"),
            "--cache-dir",
            str(base / "cache"),
            "--quiet",
        ],
        env=env,
    )
    t2 = time.perf_counter()
    return {
        "root": root,
        "base": base,
        "run": base / "run",
        "features": base / "features.npz",
        "before": before,
        "after": snapshot(root),
        "train": train,
        "extract": extract,
        "seconds": (t1 - t0, t2 - t1),
    }


def test_train_and_extract_never_modify_the_input_folder(messy):
    assert messy["train"].exit_code == 0 and messy["extract"].exit_code == 0
    assert messy["after"] == messy["before"], "listing, bytes or mtimes of the dataset changed"


def test_messy_folder_trains_and_extracts_with_broken_files_skipped_and_reported(messy):
    for step in ("train", "extract"):
        result = messy[step]
        assert result.exit_code == 0, result.output
        assert "Traceback" not in result.output
        warned = [
            line for line in result.output.splitlines() if line.startswith("warning: skipped ")
        ]
        assert len(warned) == len(BROKEN), result.output
        for name in BROKEN:
            assert any(name in line for line in warned), (name, warned)
    skipped = {
        Path(s["path"]).name: s["reason"]
        for s in json.loads((messy["run"] / "dataset.json").read_text())["skipped"]
    }
    assert set(skipped) == set(BROKEN)
    assert "unknown format or not an image" in skipped["zero byte.jpg"]
    assert "unknown format or not an image" in skipped["text file.jpg"]
    assert "truncated" in skipped["truncated.jpg"].lower()
    assert "too large to decode safely" in skipped["bomb 20000x20000.png"]
    features = load_features(messy["features"])
    n_readable = 8 + len(READABLE_A) + len(READABLE_B)
    assert features["X"].shape == (n_readable, 1000)
    assert list(features["classes"]) == [CLASS_A, CLASS_B]  # unknown names: alphabetical, as is
    names = {Path(p).name for p in features["paths"]}
    assert set(READABLE_A) | set(READABLE_B) <= names and not set(BROKEN) & names


def test_manifest_records_sizes_after_conversion_and_rotation(messy):
    import csv

    with open(messy["run"] / "manifest.csv", encoding="utf-8") as handle:
        rows = {Path(r["path"]).name: r for r in csv.DictReader(handle)}
    assert (rows["exif rotated.jpg"]["width"], rows["exif rotated.jpg"]["height"]) == ("20", "40")
    assert (rows["one pixel.png"]["width"], rows["one pixel.png"]["height"]) == ("1", "1")
    assert rows["ünïcödé 名前 1.png"]["class"] == CLASS_B


# ------------------------------------------------------------------ decoding, case by case


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_unreadable_bytes_are_a_blastscan_error(name: str, tmp_path: Path):
    path = tmp_path / f"dir with space é/{name}"
    path.parent.mkdir()
    path.write_bytes(BROKEN[name])
    with pytest.raises(BlastscanError) as info:
        D.open_rgb(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert "re-export it as JPEG/PNG" in message or "downscale it" in message


def test_alpha_is_composited_on_white():
    assert np.asarray(D.open_rgb(READABLE_A["alpha.png"])).min() == 255
    half = encode(Image.new("RGBA", (2, 2), (0, 0, 0, 128)), "PNG")
    assert abs(int(np.asarray(D.open_rgb(half))[0, 0, 0]) - 127) <= 1


def test_grayscale_and_cmyk_convert_to_the_right_colours():
    assert np.asarray(D.open_rgb(READABLE_A["gray.png"]))[0, 0].tolist() == [77, 77, 77]
    red = np.asarray(D.open_rgb(READABLE_A["cmyk.jpg"]))[5, 5].astype(int)
    assert red[0] > 240 and red[1] < 15 and red[2] < 15, red


@pytest.mark.parametrize("name", ["16bit.png", "16bit rgb.tif"])
def test_16_bit_images_read_as_their_8_bit_export(name: str):
    """v * 255 / 65535, no per-image contrast stretch: 200*257 must read 200, not 255."""
    pixel = np.asarray(D.open_rgb(READABLE_B[name]))[3, 3].tolist()
    assert pixel == ([200, 200, 200] if name == "16bit.png" else [200, 100, 50])


def test_16_bit_rgb_png_reads_as_8_bit():
    assert np.asarray(D.open_rgb(png16_rgb(5, 4, (200 * 257, 100 * 257, 50 * 257))))[
        1, 1
    ].tolist() == [200, 100, 50]


def test_1x1_image_is_resized_like_any_other():
    array = D.load_image_array(READABLE_B["one pixel.png"], 32)
    assert array.shape == (32, 32, 3) and (array == [10, 20, 30]).all()


def test_exif_orientation_is_applied():
    image = np.asarray(D.open_rgb(READABLE_B["exif rotated.jpg"]))
    assert image.shape == (40, 20, 3)  # turned: now 20 wide, 40 high
    top, bottom = image[5, 10].astype(int), image[-5, 10].astype(int)
    assert top[0] > 200 and top[2] < 50, top  # left (red) half went to the top
    assert bottom[2] > 200 and bottom[0] < 50, bottom
    loaded = D.load_image_array(READABLE_B["exif rotated.jpg"], 32)  # what training sees
    assert loaded[2, 16, 0] > 200 and loaded[-3, 16, 2] > 200


def test_20000x20000_is_refused_from_its_header_fast_and_without_decoding(monkeypatch):
    data = BROKEN["bomb 20000x20000.png"]
    assert len(data) < 200_000  # the file is small; decoding would need 400 Mpx
    calls = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: calls.append(1))
    start = time.perf_counter()
    with pytest.raises(BlastscanError, match="too large to decode safely"):
        D.open_rgb(data)
    assert time.perf_counter() - start < 2.0 and not calls


def test_bomb_between_one_and_two_limits_is_refused_even_without_the_warning_filter(monkeypatch):
    """Pillow only warns between MAX_IMAGE_PIXELS and twice that; the warning filter is process
    state that threads race on, so the explicit header check must refuse on its own."""
    side = int(Image.MAX_IMAGE_PIXELS**0.5) + 100
    assert Image.MAX_IMAGE_PIXELS < side * side < 2 * Image.MAX_IMAGE_PIXELS
    data = solid_png(side)
    with pytest.raises(BlastscanError, match="too large"):
        D.open_rgb(data)
    monkeypatch.setattr(warnings, "simplefilter", lambda *a, **k: None)  # filter lost to a race
    calls = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: calls.append(1))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
        with pytest.raises(BlastscanError, match="too large"):
            D.open_rgb(data)
    assert not calls


def test_missing_file_is_a_clear_error(tmp_path: Path):
    with pytest.raises(BlastscanError, match="cannot read the file .*; check the path"):
        D.open_rgb(tmp_path / "nope.png")


# ------------------------------------------------------------------ dataset folders


def train_args(data: Path, out: Path) -> list[str]:
    return [
        "train",
        "--data",
        str(data),
        "--out",
        str(out),
        "--epochs",
        "1",
        "--image-size",
        "32",
        "--quiet",
        "--cache-dir",
        str(out.parent / "cache"),
    ]


def test_empty_class_folder_is_a_one_line_error(tmp_path: Path):
    root = make_image_folder(tmp_path / "d", classes=("a", "b"), per_class=2)
    (root / "empty").mkdir()
    (root / "empty" / "notes.txt").write_text("no images here")
    result = runner.invoke(app, train_args(root, tmp_path / "run"))
    assert_one_line_error(
        result, str(root), "empty", "hold no images", "add images or remove the folder"
    )


def test_class_folder_of_only_unreadable_files_is_a_one_line_error(tmp_path: Path):
    root = make_image_folder(tmp_path / "d", classes=("a", "b"), per_class=2)
    (root / "c").mkdir()
    (root / "c" / "x.jpg").write_bytes(b"")
    result = runner.invoke(app, train_args(root, tmp_path / "run"))
    assert "warning: skipped" in result.output and "x.jpg" in result.output
    assert_one_line_error(result, "no readable image in class folder(s) ['c']")


def test_one_class_is_a_one_line_error(tmp_path: Path):
    root = make_image_folder(tmp_path / "d", classes=("only",), per_class=3)
    result = runner.invoke(app, train_args(root, tmp_path / "run"))
    assert_one_line_error(result, "found 1 class folder(s)", "needs at least two")


def test_a_teacher_that_is_not_a_run_is_a_one_line_error(tmp_path: Path):
    root = make_image_folder(tmp_path / "d", classes=("a", "b"), per_class=3)
    args = train_args(root, tmp_path / "run") + ["--teacher", str(tmp_path / "nope")]
    result = runner.invoke(app, args)
    assert_one_line_error(result, str(tmp_path / "nope"), "no checkpoint there")


# ------------------------------------------------------------------ features files


def features_file(path: Path, n: int = 12, width: int = 1000, **override) -> Path:
    rng = np.random.default_rng(0)
    y = np.arange(n) % 2
    arrays = {
        "X": rng.normal(size=(n, width)).astype(np.float32) + y[:, None],
        "y": y,
        "classes": np.array(["a", "b"]),
        "display_names": np.array(["A", "B"]),
        "logits": np.zeros((n, 2), np.float32),
        "paths": np.array([f"{i}.png" for i in range(n)]),
    }
    arrays.update(override)
    np.savez(path, **arrays)
    return path


def test_features_with_nan_are_refused_by_select_and_evaluate(tmp_path: Path):
    X = np.ones((12, 1000), np.float32)
    X[3, 7] = np.nan
    path = features_file(tmp_path / "nan.npz", X=X)
    for args in (
        ["select", str(path), "--out", str(tmp_path / "s.json")],
        ["evaluate", str(path), "--out", str(tmp_path / "ev"), "--folds", "2"],
    ):
        assert_one_line_error(
            runner.invoke(app, args), str(path), "1 rows hold NaN or inf", "re-extract"
        )


def test_features_of_any_width_work_in_select(tmp_path: Path):
    """select/evaluate fit mRMR and the classifiers on the file itself, so 999 columns are as
    consistent as 1000: accepted, and the selection indexes that file's 999 columns."""
    path = features_file(tmp_path / "w999.npz", width=999)
    result = runner.invoke(
        app, ["select", str(path), "--out", str(tmp_path / "s.json"), "--n-features", "5"]
    )
    assert result.exit_code == 0, result.output
    assert "kept 5 of 999 features" in result.output
    selection = json.loads((tmp_path / "s.json").read_text())
    assert sorted(selection["ranking"]) == list(range(999))


def bare_npy(path: Path) -> None:
    with open(path, "wb") as handle:  # np.save(path) would append .npy to the name
        np.save(handle, np.zeros((3, 3)))


@pytest.mark.parametrize(
    ("case", "make", "fragment"),
    [
        ("zero-byte", lambda p: p.write_bytes(b""), "not a readable features file"),
        (
            "truncated",
            lambda p: p.write_bytes(features_file(p).read_bytes()[:2000]),
            "not a readable features file",
        ),
        (
            "bare array",
            lambda p: bare_npy(p),
            "not a readable features file",
        ),
        ("text X", lambda p: features_file(p, X=np.full((12, 3), "a")), "need numeric X"),
        (
            "float labels",
            lambda p: features_file(p, y=np.linspace(0, 1, 12)),
            "need numeric X and integer y",
        ),
        ("one class", lambda p: features_file(p, y=np.zeros(12, np.int64)), "at least two classes"),
        ("1-D X", lambda p: features_file(p, X=np.zeros(12)), "X has shape (12,)"),
        ("no rows", lambda p: features_file(p, n=0), "0 rows of 0 class(es)"),
        (
            "labels past classes",
            lambda p: features_file(p, y=np.arange(12) % 3),
            "labels y outside 0..1",
        ),
        (
            "paths mismatch",
            lambda p: features_file(p, paths=np.array(["a"])),
            "paths has 1 rows for 12 labels",
        ),
    ],
)
def test_damaged_features_files_are_one_line_errors(case, make, fragment, tmp_path: Path):
    path = tmp_path / "f.npz"
    make(path)
    result = runner.invoke(app, ["select", str(path), "--out", str(tmp_path / "s.json")])
    assert_one_line_error(result, str(path), fragment)


def test_evaluate_with_more_folds_than_images_per_class(tmp_path: Path):
    path = features_file(tmp_path / "f.npz", width=4)
    result = runner.invoke(
        app, ["evaluate", str(path), "--out", str(tmp_path / "ev"), "--folds", "10"]
    )
    assert_one_line_error(result, "--folds 10 is more than the 6 images", "use --folds 6 or fewer")


def test_select_with_unknown_estimator(tmp_path: Path):
    path = features_file(tmp_path / "f.npz", width=4)
    result = runner.invoke(
        app, ["select", str(path), "--out", str(tmp_path / "s.json"), "--estimator", "knn"]
    )
    assert_one_line_error(result, "unknown --estimator 'knn'", "adaptive, plugin")


def test_a_threshold_that_keeps_no_feature_is_a_one_line_error(tmp_path: Path):
    path = features_file(tmp_path / "f.npz", width=6)
    for protocol in ("paper", "in-fold"):
        result = runner.invoke(
            app,
            ["evaluate", str(path), "--out", str(tmp_path / protocol), "--folds", "2"]
            + ["--protocol", protocol, "--threshold", "1e9"],
        )
        assert_one_line_error(result, "mRMR kept no feature", "lower --threshold")


def test_outputs_that_cannot_be_written_fail_first_and_in_one_line(tmp_path: Path):
    path = features_file(tmp_path / "f.npz", width=6)
    folder = tmp_path / "taken"
    folder.mkdir()
    result = runner.invoke(app, ["select", str(path), "--out", str(folder)])
    assert_one_line_error(result, str(folder), "is a folder")
    for command, suffix in (("select", ".json"), ("extract", ".npz")):
        result = runner.invoke(
            app,
            [command, *([str(path)] if command == "select" else ["--model", "r", "--data", "d"])]
            + ["--out", str(tmp_path / "wrong.csv")],
        )
        assert_one_line_error(result, "wrong.csv", f"--out must end in {suffix}")
    assert not (tmp_path / "wrong.csv").exists()
    result = runner.invoke(
        app, ["select", str(path), "--out", str(tmp_path / "s.json"), "--figure", "f.foo"]
    )
    assert_one_line_error(result, "f.foo", "--figure must end in one of", ".png")
    assert not (tmp_path / "s.json").exists()  # refused before the work, not after it
    result = runner.invoke(app, ["predict", str(tmp_path / "no-bundle"), "x.png", "--out", "r.txt"])
    assert_one_line_error(result, "r.txt", "--out must end in .csv or .json")
    result = runner.invoke(app, ["extract", "--model", "r", "--data", "d", "--out", str(folder)])
    assert_one_line_error(result, str(folder), "is a folder")


def test_written_files_get_the_umask_mode_not_a_private_one(tmp_path: Path):
    from blastscan.outputs import atomic_write_text, umask

    atomic_write_text(tmp_path / "r.json", "{}")
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o666 & ~umask()


# ------------------------------------------------------------------ checkpoints


def damaged_run(messy, tmp_path: Path, damage) -> Path:
    """A run directory holding only the final checkpoint (weights hard-linked, never written
    through: damage replaces files), then damaged."""
    run = tmp_path / "run copy"
    (run / "checkpoints").mkdir(parents=True)
    source = messy["run"] / "checkpoints"
    shutil.copy(source / "final.json", run / "checkpoints" / "final.json")
    os.link(source / "final.safetensors", run / "checkpoints" / "final.safetensors")
    damage(run / "checkpoints")
    return run


def truncate(path: Path, keep: int) -> None:
    """Keep the first `keep` bytes (negative: drop the last -keep) in a new file."""
    with open(path, "rb") as handle:
        data = handle.read(keep) if keep >= 0 else handle.read()[:keep]
    path.unlink()
    path.write_bytes(data)


def wrong_classes(ckpt: Path) -> None:
    meta = json.loads((ckpt / "final.json").read_text())
    (ckpt / "final.json").write_text(json.dumps({**meta, "classes": ["a", "b", "c"]}))


@pytest.mark.parametrize(
    ("case", "damage", "fragments"),
    [
        (
            "truncated safetensors",
            lambda c: truncate(c / "final.safetensors", 5000),
            ["final.safetensors: checkpoint missing or damaged", "retrain with blastscan train"],
        ),
        (
            "truncated tensor data",
            lambda c: truncate(c / "final.safetensors", -1000),
            [
                "final.safetensors: checkpoint missing or damaged",
                "file not fully covered",
                "retrain",
            ],
        ),
        (
            "truncated header",
            lambda c: truncate(c / "final.safetensors", 20),
            ["final.safetensors: checkpoint missing or damaged", "retrain"],
        ),
        (
            "zero-byte safetensors",
            lambda c: truncate(c / "final.safetensors", 0),
            ["final.safetensors: checkpoint missing or damaged", "retrain"],
        ),
        (
            "missing JSON",
            lambda c: (c / "final.json").unlink(),
            ["final.json: missing or damaged metadata", "restore the run's checkpoints/ folder"],
        ),
        (
            "corrupted JSON",
            lambda c: (c / "final.json").write_text('{"classes": ['),
            ["final.json: missing or damaged metadata", "retrain"],
        ),
        (
            "weights of another model",
            wrong_classes,
            ["final.safetensors: weights do not fit the model", "head", "retrain"],
        ),
        (
            "no checkpoints at all",
            lambda c: shutil.rmtree(c),
            ["last.safetensors: no checkpoint there", "pass a training run directory (--model)"],
        ),
    ],
)
def test_damaged_checkpoint_in_extract_is_a_one_line_error(
    messy, tmp_path: Path, case, damage, fragments
):
    run = damaged_run(messy, tmp_path, damage)
    result = runner.invoke(
        app,
        [
            "extract",
            "--model",
            str(run),
            "--data",
            str(messy["root"]),
            "--out",
            str(tmp_path / "f.npz"),
            "--quiet",
        ],
    )
    assert_one_line_error(result, str(run), *fragments)
    assert not (tmp_path / "f.npz").exists()


def test_damaged_checkpoint_as_a_real_process(messy, tmp_path: Path):
    """The installed entry point, not CliRunner: exit status 2 and one stderr line."""
    run = damaged_run(messy, tmp_path, lambda c: truncate(c / "final.safetensors", 5000))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "blastscan",
            "extract",
            "--model",
            str(run),
            "--data",
            str(messy["root"]),
            "--out",
            str(tmp_path / "f.npz"),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert (
        len(lines) == 1
        and lines[0].startswith("error: ")
        and "checkpoint missing or damaged" in lines[0]
    )


def test_extract_with_data_of_other_classes(messy, tmp_path: Path):
    other = make_image_folder(tmp_path / "other", classes=("x", "y"), per_class=2)
    result = runner.invoke(
        app,
        [
            "extract",
            "--model",
            str(messy["run"]),
            "--data",
            str(other),
            "--out",
            str(tmp_path / "f.npz"),
            "--quiet",
        ],
    )
    assert_one_line_error(result, str(other), "differ from the model's")


@pytest.mark.parametrize(
    ("case", "fragment"),
    [
        ("truncated last checkpoint", "last.safetensors: checkpoint missing or damaged"),
        ("missing config.json", "config.json: missing or damaged"),
        ("missing split.json", "split.json: missing or damaged"),
    ],
)
def test_resume_from_a_damaged_run_is_a_one_line_error(messy, tmp_path: Path, case, fragment):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    source = messy["run"]
    shutil.copy(source / "checkpoints" / "last.json", run / "checkpoints" / "last.json")
    os.link(source / "checkpoints" / "last.safetensors", run / "checkpoints" / "last.safetensors")
    truncate(run / "checkpoints" / "last.safetensors", 4096)
    for name in ("config.json", "split.json"):
        if case != f"missing {name}":
            shutil.copy(source / name, run / name)
    result = runner.invoke(app, [*train_args(messy["root"], run), "--resume"])
    assert_one_line_error(result, fragment, "train again into a new --out")


@pytest.mark.parametrize(
    "args",
    [
        ["select", "f.npz", "--out", "s.json", "--n-features", "0"],
        ["evaluate", "f.npz", "--out", "ev", "--folds", "1"],
        ["train", "--data", "d", "--out", "r", "--image-size", "16"],
        ["train", "--data", "d", "--out", "r", "--start-image-size", "16"],
        ["train", "--data", "d", "--out", "r", "--teacher-weight", "1.5"],
        ["extract", "--model", "r", "--data", "d", "--out", "f.npz", "--batch-size", "0"],
        ["train", "--data", "d", "--out", "r", "--val-fraction", "1"],
        ["train", "--data", "d", "--out", "r", "--max-per-class", "-5"],
        ["bundle", "r", "--out", "b", "--quantile", "1.5"],
        ["bundle", "r", "--out", "b", "--n-features", "0"],
        ["predict", "b", "x.png", "--batch-size", "0"],
        ["serve", "b", "--max-concurrent", "0"],
    ],
)
def test_out_of_range_options_are_usage_errors(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "Invalid value" in result.output
