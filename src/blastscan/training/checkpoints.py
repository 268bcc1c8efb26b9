"""Checkpoints of a run: saved and loaded whole, and a trained network loaded back from a run."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from safetensors.torch import save_file

from blastscan.errors import BlastscanError
from blastscan.models import darknet19
from blastscan.models.input_norm import input_norm_name
from blastscan.outputs import atomic_write, atomic_write_text, to_json
from blastscan.training.config import (
    CLASS_SORTED_BN_STATISTICS,
    RELIGHTING,
    SHUFFLED_BN_STATISTICS,
)
from blastscan.training.history import history_floats

log = logging.getLogger("blastscan.train")

CHECKPOINT_FORMAT = "blastscan-checkpoint-1"
RESTART = "train again into a new --out (or delete this run directory)"


def save_checkpoint(path: Path, model: torch.nn.Module, optimizer, meta: dict) -> None:
    """Model and optimizer tensors in one safetensors file, metadata in JSON beside it.

    The two files cannot be replaced together, so the tensors' header carries the metadata too
    and is what `load_checkpoint` trusts: a kill between the two writes leaves the JSON one
    checkpoint ahead, never tensors without their epoch. The JSON goes first, so a `final` that
    exists always has its JSON (readers take the classes from it).
    """
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    for i, param in enumerate(optimizer.param_groups[0]["params"]):
        buf = optimizer.state.get(param, {}).get("momentum_buffer")
        if buf is not None:
            tensors[f"optim.{i}.momentum_buffer"] = buf.detach().cpu().contiguous()
    text = to_json({**meta, "format": CHECKPOINT_FORMAT})
    stamp = {"format": CHECKPOINT_FORMAT, "epoch": str(meta["epoch"]), "meta": text}
    atomic_write_text(path.with_suffix(".json"), text)
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=stamp))


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer=None, fix: str = RESTART) -> dict:
    """Restore model (and optimizer) from a checkpoint; returns its metadata.

    The metadata comes from the tensors' header (written with them), or from the JSON beside
    them for checkpoints older than that. A missing, truncated or mismatched checkpoint raises
    BlastscanError ending in `fix`.
    """
    from safetensors import SafetensorError, safe_open

    meta_path = path.with_suffix(".json")
    try:
        with safe_open(str(path), "pt") as handle:
            header = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
        meta = json.loads(header["meta"] if "meta" in header else meta_path.read_text())
    except (OSError, ValueError, SafetensorError) as exc:
        raise BlastscanError(f"{path}: checkpoint missing or damaged ({exc}); {fix}") from exc
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        raise BlastscanError(f"{meta_path}: not a {CHECKPOINT_FORMAT} checkpoint; {fix}")
    if isinstance(meta.get("history"), list):
        meta["history"] = history_floats(meta["history"])
    state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    expected = model.state_dict()
    wrong = [k for k in expected if k not in state or state[k].shape != expected[k].shape]
    wrong += [k for k in state if k not in expected]
    if wrong:
        raise BlastscanError(
            f"{path}: weights do not fit the model ({len(wrong)} missing, extra or mis-shaped "
            f"tensors, e.g. {wrong[0]}); {fix}"
        )
    model.load_state_dict(state)
    if optimizer is not None:
        params = optimizer.param_groups[0]["params"]
        for i, p in enumerate(params):
            key = f"optim.{i}.momentum_buffer"
            if key in tensors:
                optimizer.state[p]["momentum_buffer"] = tensors[key].to(p.device)
    return meta


def load_trained_model(run_or_checkpoint: str | Path, which: str = "final", option: str = ""):
    """A trained DarkNet-19 and its checkpoint metadata, from a run directory or a checkpoint.

    'final' is the last epoch with population batch-norm statistics; an interrupted run has
    only 'last' (and 'best'), which is used instead. `option` is the caller's flag for the run
    (e.g. "--model"), named in the error for a path that is not a run; commands that take the
    run as an argument leave it empty.
    """
    path = Path(run_or_checkpoint)
    ckpt = checkpoint_path(path, which, option)

    fix = "restore the run's checkpoints/ folder, or retrain with blastscan train"
    try:
        saved = json.loads(ckpt.with_suffix(".json").read_text())
        classes = saved["classes"]
        if not isinstance(classes, list) or len(classes) < 2:
            raise ValueError(f"classes is {classes!r}")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        meta_path = ckpt.with_suffix(".json")
        raise BlastscanError(f"{meta_path}: missing or damaged metadata ({exc}); {fix}") from exc
    model = darknet19(len(classes), input_norm=input_norm_name(saved.get("config")))
    meta = load_checkpoint(ckpt, model, fix=fix)
    stale = _stale_bn_statistics(meta)
    if stale:
        log.warning(
            "%s: its batch-norm statistics were computed over %s, which costs accuracy "
            "(CHANGELOG.md, 2026-11-25, Fixed); to recompute them: delete the run's "
            "checkpoints/final.* and run blastscan train --data DIR --out RUN --resume",
            ckpt,
            stale,
        )
    return model.to(memory_format=torch.channels_last).eval(), meta


def checkpoint_path(path: Path, which: str = "final", option: str = "") -> Path:
    """The checkpoint file to load; when a run lacks the one asked for, say which it has."""
    folder = path / "checkpoints"
    ckpt = folder / f"{which}.safetensors" if path.is_dir() else path
    if path.is_dir() and which == "final" and not ckpt.is_file():
        ckpt = folder / "last.safetensors"
    if ckpt.is_file():
        return ckpt
    have = (
        sorted(p.stem for p in folder.glob("*.safetensors") if not p.name.startswith("."))
        if path.is_dir() and folder.is_dir()
        else []
    )
    if not have:
        flag = f" ({option})" if option else ""
        raise BlastscanError(f"{ckpt}: no checkpoint there; pass a training run directory{flag}")
    if which == "final":  # the default: there is no choice to offer the caller
        raise BlastscanError(
            f"{path}: has no final or last checkpoint, only {', '.join(have)}; "
            "resume or retrain it with blastscan train"
        )
    if which == "best" and _validation_fraction(path) == 0:
        raise BlastscanError(
            f"{path}: has no best checkpoint (trained with --val-fraction 0: no validation split "
            f"to pick it); choose one of {', '.join(have)} with --checkpoint"
        )
    raise BlastscanError(
        f"{path}: has checkpoints {', '.join(have)}, no {which}; "
        "choose one of them with --checkpoint"
    )


def _validation_fraction(run: Path) -> float | None:
    """The run's --val-fraction from its config.json; None when unreadable."""
    try:
        return float(json.loads((run / "config.json").read_text())["val_fraction"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _stale_bn_statistics(meta: dict) -> str | None:
    """What was wrong with a final checkpoint's population statistics, if anything."""
    statistics = meta.get("bn_statistics")
    if statistics == CLASS_SORTED_BN_STATISTICS:
        return "class-sorted batches"
    config = meta.get("config") or {}
    relit = any(config.get(k, 0) for k in RELIGHTING)
    if statistics == SHUFFLED_BN_STATISTICS and relit:
        return "un-augmented images although training changed their light and colour"
    return None
