"""Weight files for DarkNet-19: Darknet's binary `.weights` format and safetensors.

Darknet's format has no library reader in Python (it is a raw float dump whose layout is
defined by the cfg), so it is parsed here: a header of int32 major, minor, revision and
`seen` (int64 from version 0.2 on, int32 before), then per conv layer in cfg order the
biases, for batch-normalised layers the scales, rolling means and rolling variances, and
finally the weights in (out, in, kh, kw) order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

from blastscan.errors import BlastscanError

# Loaders take any module with DarkNet19's `conv_layers()` (the cfg order of its convolutions),
# so this file does not import the architecture that calls it.
HEADER_DTYPE = np.dtype("<i4")


def _expected_floats(model: nn.Module) -> int:
    total = 0
    for conv, bn in model.conv_layers():
        total += conv.weight.numel() + conv.out_channels  # weights + biases (or BN betas)
        if bn is not None:
            total += 3 * bn.num_features  # scales, rolling mean, rolling variance
    return total


def _read_header(raw: bytes, path: Path) -> tuple[tuple[int, int, int, int], int]:
    if len(raw) < 16:
        raise BlastscanError(
            f"{path}: too short for a Darknet .weights header; is it a weights file?"
        )
    major, minor, revision = np.frombuffer(raw[:12], dtype=HEADER_DTYPE)
    if major * 10 + minor >= 2:
        seen = int(np.frombuffer(raw[12:20], dtype="<i8")[0])
        offset = 20
    else:
        seen = int(np.frombuffer(raw[12:16], dtype=HEADER_DTYPE)[0])
        offset = 16
    return (int(major), int(minor), int(revision), seen), offset


def load_darknet_weights(model: nn.Module, path: str | Path) -> tuple[int, int, int, int]:
    """Load a Darknet `.weights` file into the conv layers; the K-class head stays as it is.

    Returns the header (major, minor, revision, seen). A file of the wrong size is an error
    that says how many bytes were expected, so a cfg mismatch never loads silently.
    """
    path = Path(path)
    raw = path.read_bytes()
    header, offset = _read_header(raw, path)
    floats = np.frombuffer(raw, dtype="<f4", offset=offset) if len(raw) > offset else np.empty(0)
    if (len(raw) - offset) % 4 or floats.size != (expected := _expected_floats(model)):
        raise BlastscanError(
            f"{path}: holds {len(raw) - offset:,} bytes of weights after the header, DarkNet-19 "
            f"needs {4 * expected:,}; use the darknet19.weights that matches darknet19.cfg"
        )
    cursor = 0

    def take(tensor: torch.Tensor) -> None:
        nonlocal cursor
        n = tensor.numel()
        chunk = torch.from_numpy(floats[cursor : cursor + n].copy()).view_as(tensor)
        with torch.no_grad():
            tensor.copy_(chunk)
        cursor += n

    for conv, bn in model.conv_layers():
        if bn is not None:
            for tensor in (bn.bias, bn.weight, bn.running_mean, bn.running_var):
                take(tensor)
        else:
            take(conv.bias)
        take(conv.weight)
    return header


def save_darknet_weights(
    model: nn.Module, path: str | Path, header: tuple[int, int, int, int] = (0, 2, 0, 0)
) -> None:
    """Write the conv layers in Darknet's `.weights` format (the head is not part of it)."""
    major, minor, revision, seen = header
    parts = [np.array([major, minor, revision], dtype=HEADER_DTYPE).tobytes()]
    seen_dtype = "<i8" if major * 10 + minor >= 2 else "<i4"
    parts.append(np.array([seen], dtype=seen_dtype).tobytes())
    for conv, bn in model.conv_layers():
        tensors = (
            [bn.bias, bn.weight, bn.running_mean, bn.running_var] if bn is not None else [conv.bias]
        )
        tensors.append(conv.weight)
        parts.extend(t.detach().cpu().numpy().astype("<f4").tobytes() for t in tensors)
    from blastscan.outputs import atomic_write_bytes

    atomic_write_bytes(Path(path), b"".join(parts))


def load_safetensors_weights(model: nn.Module, path: str | Path, strict_head: bool = False) -> None:
    """Load a PyTorch state dict saved as safetensors (ours or converted from elsewhere).

    A head whose class count differs from the model's is skipped, so a checkpoint trained on
    other classes still initialises the backbone (fine-tuning); every other key must match.
    """
    path = Path(path)
    try:
        state = load_file(str(path))
    except Exception as exc:  # safetensors raises several types for a bad file
        raise BlastscanError(
            f"{path}: not a readable safetensors file ({exc}); re-export it"
        ) from exc
    state = {k.removeprefix("model."): v for k, v in state.items() if not k.startswith("optim.")}
    own = model.state_dict()
    head_keys = [k for k in state if k.startswith("head.")]
    if not strict_head and any(k in own and own[k].shape != state[k].shape for k in head_keys):
        for key in head_keys:
            state.pop(key)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("head.")]
    if missing or unexpected:
        raise BlastscanError(
            f"{path}: does not match DarkNet-19 (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )


def load_pretrained(model: nn.Module, path: str | Path) -> None:
    """Dispatch on the file: `.safetensors` checkpoints or Darknet `.weights` files."""
    path = Path(path)
    if not path.is_file():
        raise BlastscanError(
            f"{path}: no such weights file; pass a Darknet .weights or a .safetensors"
        )
    if path.suffix == ".safetensors":
        load_safetensors_weights(model, path)
    else:
        load_darknet_weights(model, path)
