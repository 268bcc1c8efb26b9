"""Which number format a network runs in, per device, from what the host's CPU can do.

fp32 was assumed the fastest CPU path; that holds only where the CPU has no bf16 matrix
engine. `auto` picks bf16 where the CPU has AMX or AVX512-BF16 (oneDNN then runs convolutions
and matmuls natively in bf16) and fp32 elsewhere, where bf16 is emulated and slower. On CUDA
`auto` keeps the bf16 autocast blastscan always used there. int8 (ONNX Runtime, runtime.quantize)
is fast only where VNNI or AMX-INT8 exists; `Capability.int8_native` says whether it does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path

import torch

from blastscan.errors import BlastscanError

PRECISIONS = ("auto", "fp32", "bf16")
MATRIX_FLAGS = ("amx_bf16", "amx_int8", "amx_tile", "avx512_bf16", "avx512_vnni", "avx_vnni")
BF16_FLAGS = ("amx_bf16", "avx512_bf16")
INT8_FLAGS = ("amx_int8", "avx512_vnni", "avx_vnni")


@dataclass(frozen=True)
class Capability:
    """What the CPU offers a network: torch's dispatch level and the matrix-engine flags."""

    torch_cpu_capability: str
    flags: tuple[str, ...]

    @property
    def bf16_native(self) -> bool:
        return any(f in self.flags for f in BF16_FLAGS)

    @property
    def int8_native(self) -> bool:
        return any(f in self.flags for f in INT8_FLAGS)

    def describe(self) -> str:
        found = ", ".join(self.flags) or "none of " + ", ".join(MATRIX_FLAGS)
        return f"torch CPU capability {self.torch_cpu_capability}; matrix flags: {found}"


@dataclass(frozen=True)
class Precision:
    """The format chosen, what was asked for, and why: recorded in a run's config and log."""

    name: str  # "fp32" or "bf16"
    requested: str
    reason: str
    capability: Capability = field(compare=False)

    @property
    def bf16(self) -> bool:
        return self.name == "bf16"

    def record(self) -> dict:
        return {"precision": self.name, "requested": self.requested, "reason": self.reason,
                **asdict(self.capability)}  # fmt: skip


def cpu_flags(cpuinfo: str | None = None) -> tuple[str, ...]:
    """The matrix-engine flags in /proc/cpuinfo (none where there is no such file)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return ()
    words: set[str] = set()
    for line in cpuinfo.splitlines():
        if line.split(":")[0].strip() in ("flags", "Features"):
            words.update(line.split(":", 1)[1].split())
    return tuple(f for f in MATRIX_FLAGS if f in words)


@cache
def host_capability() -> Capability:
    """This host's capability, read once per process."""
    try:
        level = str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):  # older torch
        level = "unknown"
    return Capability(level, cpu_flags())


def resolve_precision(
    requested: str | None, device: torch.device | str, capability: Capability | None = None
) -> Precision:
    """The precision to run in on `device`: `requested` checked, `auto` decided from the host."""
    requested = (requested or "auto").lower()
    if requested not in PRECISIONS:
        raise BlastscanError(f"--precision {requested}: choose one of {', '.join(PRECISIONS)}")
    device = torch.device(device)
    cap = capability or host_capability()
    if device.type == "cuda":
        name = "fp32" if requested == "fp32" else "bf16"
        why = "asked for" if requested != "auto" else "auto on CUDA: bf16 autocast, as always"
        return Precision(name, requested, why, cap)
    if device.type != "cpu":
        if requested == "bf16":
            raise BlastscanError(f"--precision bf16: not supported on {device.type}; use fp32")
        return Precision("fp32", requested, f"{device.type}: fp32 only", cap)
    if requested == "fp32":
        return Precision("fp32", requested, "asked for", cap)
    if requested == "bf16":
        why = "asked for" if cap.bf16_native else (
            "asked for; this CPU has no AMX or AVX512-BF16, so bf16 is emulated (slower than fp32)"
        )  # fmt: skip
        return Precision("bf16", requested, why, cap)
    if cap.bf16_native:
        native = ", ".join(f for f in cap.flags if f in BF16_FLAGS)
        return Precision("bf16", requested, f"auto: the CPU has {native}", cap)
    return Precision("fp32", requested, "auto: the CPU has no AMX or AVX512-BF16", cap)


def autocast(device: torch.device, precision: Precision | str | None):
    """The autocast context for a forward pass: bf16 where chosen, a no-op for fp32; None or
    "auto" is the command's choice (`current_precision`)."""
    name = precision.name if isinstance(precision, Precision) else precision
    if name in (None, "auto"):
        name = current_precision(device)
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=name == "bf16")


_CURRENT: list[Precision] = []  # process-wide: serve's and robustness's worker threads see it


@contextlib.contextmanager
def use_precision(precision: Precision | None) -> Iterator[None]:
    """Run the block's inference (runtime.infer), in every thread, in `precision`: what a
    command's --precision sets once, so the heads, OOD and robustness deep inside need no
    extra argument."""
    if precision is None:
        yield
        return
    _CURRENT.append(precision)
    try:
        yield
    finally:
        _CURRENT.pop()


def current_precision(device: torch.device) -> str:
    """The format inference on `device` runs in: the command's choice, else today's default
    (bf16 autocast on CUDA, fp32 elsewhere)."""
    if _CURRENT:
        return _CURRENT[-1].name if device.type in ("cpu", "cuda") else "fp32"
    return "bf16" if device.type == "cuda" else "fp32"
