"""Writing a bundle: weights, heads and OOD detector as safetensors and skops, bundle.json and
the model card, built in a temporary folder and renamed into place."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from blastscan.bundle.card import model_card
from blastscan.bundle.format import (
    CARD,
    CLASSICAL_ARRAYS,
    CLASSIFIER,
    FORMAT,
    FORMAT_VERSION,
    INPUT_SPEC,
    MANIFEST,
    OOD_ARRAYS,
    TRUSTED_TYPES,
    WEIGHTS,
    check_replaceable,
    readable_modes,
    sha256_bytes,
    swap_into_place,
    versions,
)
from blastscan.bundle.heads import HEAD_CLASSICAL, HEAD_CNN, ClassicalHead
from blastscan.bundle.ood import OODDetector
from blastscan.errors import BlastscanError
from blastscan.models.input_norm import input_norm_name
from blastscan.outputs import to_json


def write_bundle(
    out_dir: str | Path,
    model: torch.nn.Module,
    meta: dict[str, Any],
    *,
    classical: ClassicalHead | Any | None = None,
    ood: OODDetector | None = None,
    metrics: dict[str, Any] | None = None,
    card_facts: dict[str, Any] | None = None,
    overwrite: bool = False,
    decides: str | None = None,
) -> Path:
    """Write a bundle folder atomically: built in a temporary folder beside it, then renamed.

    `meta` is a checkpoint's metadata (classes, display_names, image_size, config, history);
    `classical` a ClassicalHead or a fitted `make_classifier` pipeline; `metrics` the held-out
    test metrics; `card_facts` extra lines for the model card (e.g. {"data": "..."});
    `decides` the deciding head (default: the classical head when there is one).
    """
    out = Path(out_dir)
    if out.exists():
        check_replaceable(out, overwrite)
    classes = list(meta["classes"])
    if classical is not None and not isinstance(classical, ClassicalHead):
        classical = ClassicalHead.from_pipeline(classical, classes)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        files = _write_files(tmp, model, classical, ood)
        manifest = _manifest(meta, classical, ood, metrics, card_facts, decides)
        card = model_card(manifest)
        (tmp / CARD).write_text(card, encoding="utf-8")
        files[CARD] = sha256_bytes(card.encode("utf-8"))
        manifest["files"] = dict(sorted(files.items()))
        (tmp / MANIFEST).write_text(to_json(manifest), encoding="utf-8")
        readable_modes(tmp)
        swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _write_files(
    tmp: Path, model: torch.nn.Module, classical: ClassicalHead | None, ood: OODDetector | None
) -> dict[str, str]:
    from safetensors.numpy import save as save_arrays
    from safetensors.torch import save as save_tensors

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    blobs = {WEIGHTS: save_tensors(state, metadata={"format": FORMAT})}
    if ood is not None:
        blobs[OOD_ARRAYS] = save_arrays(ood.to_arrays())
    if classical is not None:
        blobs[CLASSICAL_ARRAYS] = save_arrays(_classical_arrays(classical))
        blobs[CLASSIFIER] = _dump_classifier(classical.classifier)
    for name, data in blobs.items():
        (tmp / name).write_bytes(data)
    return {name: sha256_bytes(data) for name, data in blobs.items()}


def _classical_arrays(head: ClassicalHead) -> dict[str, np.ndarray]:
    arrays = {
        "columns": head.columns.astype(np.int64),
        "scaler_mean": head.scaler_mean.astype(np.float64),
        "scaler_scale": head.scaler_scale.astype(np.float64),
        "class_index": head.class_index.astype(np.int64),
    }
    if head.scores is not None:
        arrays["scores"] = np.asarray(head.scores, dtype=np.float64)
    return arrays


def _dump_classifier(classifier: Any) -> bytes:
    """skops bytes, refused at write time if loading would need a type outside the allow-list."""
    import skops.io as sio

    data = sio.dumps(classifier)
    untrusted = set(sio.get_untrusted_types(data=data)) - set(TRUSTED_TYPES)
    if untrusted:
        raise BlastscanError(
            f"the classifier holds types a bundle may not load: {sorted(untrusted)}; "
            "use a blastscan.classify preset"
        )
    return data


def _manifest(meta, classical, ood, metrics, card_facts, decides=None) -> dict[str, Any]:
    history = meta.get("history") or []
    config = meta.get("config") or {}
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": (card_facts or {}).get("name", "DarkNet-19 ALL subtype classifier"),
        "architecture": "darknet19",
        "classes": list(meta["classes"]),
        "display_names": list(meta.get("display_names") or meta["classes"]),
        "input": {
            "size": int(meta["image_size"]),
            **INPUT_SPEC,
            "input_norm": input_norm_name(config),
        },
        "outputs": {"features": 1000, "logits": len(meta["classes"])},
        "heads": {
            "cnn": True,
            "classical": classical is not None,
            "decides": HEAD_CLASSICAL
            if classical is not None and decides != HEAD_CNN
            else HEAD_CNN,
        },
        "versions": versions(extra=classical is not None),
        "training": {
            "config": config,
            "epochs": len(history),
            "git_commit": meta.get("git_commit"),
            "last_epoch": history[-1] if history else None,
            "bn_statistics": meta.get("bn_statistics"),
        },
        "metrics": metrics or {},
        "card_facts": card_facts or {},
    }
    if classical is not None:
        manifest["classical"] = {
            "name": classical.name,
            "n_features": int(len(classical.columns)),
            "n_inputs": classical.n_inputs,
            "selection": "mRMR" if classical.scores is not None else "none",
            "mrmr": classical.mrmr,
            "trusted_types": TRUSTED_TYPES,
        }
    if ood is not None:
        manifest["ood"] = ood.summary()
    return manifest
