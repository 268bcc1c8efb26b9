"""Which device a network runs on: the one asked for, checked before torch fails late."""

from __future__ import annotations

import torch

from blastscan.errors import BlastscanError


def pick_device(requested: str | None = None) -> torch.device:
    """The device asked for, checked here: torch itself fails late, with an assertion or trace."""
    if not requested:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise BlastscanError(
            f"--device {requested}: not a device torch knows; pass cpu, cuda or cuda:N "
            "(or leave --device out)"
        ) from exc
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if not count:
            raise BlastscanError(
                f"--device {requested}: this PyTorch has no CUDA (or no GPU is visible); "
                "leave --device out or pass cpu"
            )
        if device.index is not None and device.index >= count:
            raise BlastscanError(
                f"--device {requested}: only {count} GPU(s) visible (cuda:0 to cuda:{count - 1}); "
                "pass one of them, or leave --device out"
            )
    elif device.type == "mps" and not (
        hasattr(torch.backends, "mps") and torch.backends.mps.is_available()
    ):
        raise BlastscanError(
            f"--device {requested}: MPS (Apple GPU) is not available here; "
            "leave --device out or pass cpu"
        )
    elif device.type not in ("cpu", "cuda", "mps"):
        raise BlastscanError(
            f"--device {requested}: blastscan runs on cpu, cuda or mps; "
            "leave --device out or pass cpu"
        )
    return device
