"""The bundle's file format: its file names, bundle.json, hashes and the atomic writes.

Layout (see docs/reference/bundle.md): `bundle.json` (format, classes, input, versions, metrics and the
sha256 of every other file), `MODEL_CARD.md`, `model.safetensors` (CNN weights), optionally
`ood.safetensors` (OOD detector), `classical.safetensors` + `classifier.skops` (mRMR columns,
scaler, classifier), `model.onnx` and `model.int8.onnx`. Every file is read once and checked against its sha256
in bundle.json before it is parsed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from blastscan.errors import BlastscanError
from blastscan.outputs import atomic_write_bytes, atomic_write_json, umask

FORMAT = "blastscan-bundle"
FORMAT_VERSION = 1
MANIFEST = "bundle.json"
CARD = "MODEL_CARD.md"
WEIGHTS = "model.safetensors"
OOD_ARRAYS = "ood.safetensors"
CLASSICAL_ARRAYS = "classical.safetensors"
CLASSIFIER = "classifier.skops"
ONNX = "model.onnx"
INT8_ONNX = "model.int8.onnx"  # QDQ int8, calibrated on training images (bundle --int8)

# Types a classifier file may contain beyond skops' own trusted scikit-learn/numpy types.
# Only blastscan's own estimators (classify.py) are added; anything else fails to load.
TRUSTED_TYPES = [
    "blastscan.classify.MatlabSVC",
    "blastscan.classify._BinaryLearner",
    "blastscan.classify.KernelNB",
    "blastscan.classify.Float32MLPClassifier",
    "blastscan.classify.squared_inverse",
]
DEFAULT_DATA = "Peripheral blood smear images of acute lymphoblastic leukemia and benign cases."
INPUT_SPEC = {
    "layout": "NCHW",
    "dtype": "float32",
    "channels": "RGB",
    "range": [0.0, 1.0],
    "mean": [0.0, 0.0, 0.0],
    "std": [1.0, 1.0, 1.0],
    "decode": "EXIF orientation applied; alpha composited on white; gray/CMYK/16-bit to RGB8",
    "resize": "bilinear (PIL) to size x size, whole image, no crop",
}


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def versions(extra: bool = False) -> dict[str, str]:
    """Library versions that produced the files; skops and scikit-learn when a classifier is in."""
    from importlib.metadata import PackageNotFoundError, version

    names = ["blastscan", "torch", "numpy", "safetensors"] + (
        ["scikit-learn", "skops"] if extra else []
    )
    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "unknown"
    return out


def read_manifest(path: str | Path) -> dict[str, Any]:
    """bundle.json of a bundle folder, with its format checked."""
    root = Path(path)
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise BlastscanError(
            f"{root}: not a model bundle (no {MANIFEST}); make one with blastscan bundle"
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BlastscanError(f"{manifest_path}: unreadable ({exc}); re-create the bundle") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BlastscanError(f"{manifest_path}: not a {FORMAT} file")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BlastscanError(
            f"{root}: bundle format version {manifest.get('format_version')!r}, this blastscan "
            f"reads version {FORMAT_VERSION}; re-create the bundle with this blastscan's "
            "`blastscan bundle`"
        )
    return manifest


def read_verified(root: Path, manifest: dict[str, Any], name: str) -> bytes:
    """A file's bytes, read once and checked against bundle.json's sha256 before parsing."""
    files = manifest.get("files") or {}
    if name not in files:
        raise BlastscanError(f"{root}: bundle.json lists no {name}")
    if Path(name).name != name or name.startswith("."):
        raise BlastscanError(f"{root}: bundle.json names {name!r}, which is not a plain file name")
    try:
        data = (root / name).read_bytes()
    except OSError as exc:
        raise BlastscanError(
            f"{root / name}: missing or unreadable ({exc}); re-create the bundle"
        ) from exc
    if sha256_bytes(data) != files[name]:
        raise BlastscanError(
            f"{root / name}: sha256 does not match bundle.json; the file was changed or damaged "
            "(tampered?); re-create or re-download the bundle"
        )
    return data


def add_file(root: str | Path, name: str, data: bytes, section: str, info: dict[str, Any]) -> None:
    """Add (or replace) a file in a bundle and record it: the file first, then bundle.json."""
    root = Path(root)
    manifest = read_manifest(root)
    atomic_write_bytes(root / name, data)
    manifest.setdefault("files", {})[name] = sha256_bytes(data)
    manifest["files"] = dict(sorted(manifest["files"].items()))
    manifest[section] = info
    atomic_write_json(root / MANIFEST, manifest)


def readable_modes(folder: Path) -> None:
    """mkdtemp makes a private (0700) folder; a bundle is meant to be shared."""
    mask = umask()
    folder.chmod(0o777 & ~mask)
    for item in folder.iterdir():
        item.chmod(0o666 & ~mask)


def check_replaceable(out: Path, overwrite: bool) -> None:
    """--overwrite replaces an old bundle or an empty folder, never a run or a folder of runs."""
    if not overwrite:
        raise BlastscanError(f"{out}: already exists; choose another --out or pass --overwrite")
    if not out.is_dir() or not ((out / MANIFEST).is_file() or not any(out.iterdir())):
        raise BlastscanError(
            f"{out}: not a bundle (no {MANIFEST}), so --overwrite will not delete it; "
            "choose another --out"
        )


def swap_into_place(tmp: Path, out: Path) -> None:
    """Rename the finished folder to `out`; an old bundle there is moved aside, then removed."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
