"""Writing outputs safely: every file blastscan writes appears complete or not at all, JSON
without bare NaN, and output paths checked before any work starts."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from blastscan.errors import BlastscanError


def check_output_file(path: Path, suffixes: tuple[str, ...] = ()) -> Path:
    """Refuse, before any long work, an output path that cannot become the file asked for."""
    path = Path(path)
    if path.is_dir():
        raise BlastscanError(f"{path}: is a folder; give --out a file name inside it")
    if suffixes and path.suffix.lower() not in suffixes:
        raise BlastscanError(f"{path}: --out must end in {' or '.join(suffixes)}")
    _check_writable_under(path, path.parents)
    return path


def check_output_dir(path: Path) -> Path:
    """Refuse, before any long work, an output folder that is a file or cannot be created."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise BlastscanError(f"{path}: is a file; --out takes a folder (created if missing)")
    _check_writable_under(path, (path, *path.parents))
    return path


def _check_writable_under(path: Path, candidates: Iterable[Path]) -> None:
    """The nearest existing folder among `candidates` must let us write into it."""
    parent = next((p for p in candidates if p.exists()), Path("."))
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise BlastscanError(f"{path}: cannot be written under {parent}; choose another --out")


def umask() -> int:
    """The process's umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` on a temporary file beside `path`, then rename it into place.

    The rename is atomic on POSIX, so a killed process leaves the previous file or none. An
    operating-system refusal (a folder in the way, no permission, a full disk) becomes a
    one-line BlastscanError naming the file.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _cannot_write(path, exc) from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        tmp.chmod(0o666 & ~umask())  # mkstemp's 0600 would make every output private
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _cannot_write(path, exc) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _cannot_write(path: Path, exc: OSError) -> BlastscanError:
    reason = exc.strerror or str(exc)
    return BlastscanError(f"{path}: cannot write it ({reason}); free space or choose another --out")


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


def to_json(obj: Any, indent: int = 2) -> str:
    """The JSON text blastscan writes (numpy scalars and arrays, and paths, allowed).

    NaN and infinities become null: bare NaN is not JSON (JavaScript's JSON.parse and strict
    parsers reject it), and allow_nan=False makes any that slipped past a ValueError here.
    """
    text = json.dumps(
        finite_json(obj), indent=indent, sort_keys=False, allow_nan=False, default=_json_default
    )
    return text + "\n"


def finite_json(obj: Any) -> Any:
    """`obj` with numpy values as Python ones and every non-finite float as None, recursively."""
    import numpy as np

    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return finite_json(obj.tolist())
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer | np.bool_):
        return obj.item()
    return obj


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
    """What `finite_json` leaves for json to ask about: paths (numpy is converted already)."""
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
