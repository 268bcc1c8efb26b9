"""Atomic file writing: every file blastscan writes appears complete or not at all."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` on a temporary file beside `path`, then rename it into place.

    The rename is atomic on POSIX, so a killed process leaves the previous file or none.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def is_temporary(name: str) -> bool:
    """Whether a file name is one of the temporary names that the writes here use."""
    return name.startswith(".") and (
        name.endswith(".tmp") or name.startswith(".tmp") or ".old-" in name
    )


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete what writes killed mid-way left anywhere under `folder`; returns what went.

    A SIGKILL skips the clean-up in `atomic_write`, so its `.name.XXXX.tmp` file stays behind,
    and safetensors' `save_file` leaves its own `.tmpXXXXXX` beside it; `bundle.write_bundle`
    leaves a `.name.XXXX.tmp` folder or a `.name.old-PID` folder. Call this only while no other
    process writes there (a run directory, as its run starts).
    """
    folder = Path(folder)
    stale = [p for p in folder.rglob(".*") if is_temporary(p.name)] if folder.is_dir() else []
    for path in sorted(stale, key=lambda p: len(p.parts)):  # parents first
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return stale


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def to_json(obj: Any) -> str:
    """The JSON text blastscan writes (numpy scalars and arrays, and paths, allowed)."""
    return json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n"


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, to_json(obj))


def atomic_save_npy(path: Path, array) -> None:
    """A .npy file (no pickle), written atomically."""
    import numpy as np

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.save(handle, array, allow_pickle=False)

    atomic_write(path, write)


def atomic_save_npz(path: Path, **arrays) -> None:
    """An .npz of plain arrays (loadable with allow_pickle=False), written atomically."""
    import numpy as np

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)

    atomic_write(path, write)


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
