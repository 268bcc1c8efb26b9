"""Precision per device: the CPU's matrix flags decide auto, bf16 runs as autocast with fp32
weights and batch-norm statistics, and a command's choice reaches every inference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from bundle_helpers import SIZE, single_thread, tiny_model  # noqa: F401

from blastscan.data.synthetic import synthetic_smears
from blastscan.errors import BlastscanError
from blastscan.runtime import precision as P
from blastscan.runtime.infer import infer

XEON = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni amx_bf16 amx_tile amx_int8\n"
EPYC = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512bw\n"
AMX = P.Capability("AVX512", P.cpu_flags(XEON))
NONE = P.Capability("AVX2", P.cpu_flags(EPYC))
HOST = P.host_capability()
NATIVE_BF16 = pytest.mark.skipif(
    not HOST.bf16_native,
    reason=f"this CPU has no AMX or AVX512-BF16 ({HOST.describe()}): bf16 is only emulated",
)


def test_flags_are_read_from_cpuinfo():
    assert set(AMX.flags) == {"amx_bf16", "amx_int8", "amx_tile", "avx512_bf16", "avx512_vnni"}
    assert NONE.flags == () and not NONE.bf16_native and not NONE.int8_native
    assert AMX.bf16_native and AMX.int8_native


def test_auto_picks_bf16_only_where_the_cpu_has_a_bf16_engine():
    chosen = P.resolve_precision("auto", "cpu", AMX)
    assert chosen.name == "bf16" and "amx_bf16" in chosen.reason
    plain = P.resolve_precision("auto", "cpu", NONE)
    assert plain.name == "fp32" and "no AMX or AVX512-BF16" in plain.reason


def test_auto_on_this_host_follows_its_flags():
    """Here (a CPU without AMX or AVX512-BF16) that is fp32: nothing lost to emulated bf16."""
    chosen = P.resolve_precision("auto", "cpu")
    assert chosen.name == ("bf16" if HOST.bf16_native else "fp32")
    assert chosen.record()["flags"] == list(HOST.flags) or chosen.record()["flags"] == HOST.flags


def test_asked_for_bf16_without_the_hardware_says_it_is_emulated():
    chosen = P.resolve_precision("bf16", "cpu", NONE)
    assert chosen.name == "bf16" and "emulated" in chosen.reason
    assert P.resolve_precision("fp32", "cpu", AMX).name == "fp32"


def test_cuda_keeps_its_bf16_autocast_and_other_devices_fp32():
    assert P.resolve_precision("auto", "cuda", NONE).name == "bf16"
    assert P.resolve_precision("fp32", "cuda", NONE).name == "fp32"
    assert P.resolve_precision("auto", "mps", AMX).name == "fp32"
    with pytest.raises(BlastscanError, match="use fp32"):
        P.resolve_precision("bf16", "mps", AMX)


def test_an_unknown_precision_is_a_one_line_error_naming_the_choices():
    with pytest.raises(BlastscanError, match="auto, fp32, bf16"):
        P.resolve_precision("fp16", "cpu")


def test_a_commands_choice_reaches_inference_and_ends_with_it():
    model, images = tiny_model(), synthetic_smears(6, SIZE, seed=3)
    cpu = torch.device("cpu")
    fp32 = infer(model, images, 6, cpu)
    with P.use_precision(P.resolve_precision("bf16", "cpu", NONE)):
        assert P.current_precision(cpu) == "bf16"
        bf16 = infer(model, images, 6, cpu)
    assert P.current_precision(cpu) == "fp32"
    assert bf16.features.dtype == np.float32
    deviation = np.abs(bf16.features - fp32.features)
    assert deviation.max() > 0  # bf16 really ran: fp32 would give identical rows
    # a random network amplifies rounding (a trained one deviates far less: docs/reference/
    # benchmarks.md); the rows must still be the same rows
    assert np.corrcoef(bf16.features.ravel(), fp32.features.ravel())[0, 1] > 0.9
    again = infer(model, images, 6, cpu)
    np.testing.assert_array_equal(again.features, fp32.features)


def test_a_bf16_training_step_keeps_fp32_weights_statistics_and_loss():
    from blastscan.training.config import TrainConfig
    from blastscan.training.epoch import train_one_epoch

    torch.manual_seed(0)
    from blastscan.models import darknet19

    model = darknet19(4).to(memory_format=torch.channels_last)
    bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    before = bn.running_mean.clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    config = TrainConfig(batch_size=4, image_size=SIZE, epochs=1, precision="bf16")
    images, labels = synthetic_smears(8, SIZE, seed=4), np.arange(8) % 4
    loss, _, seen = train_one_epoch(
        model, optimizer, images, labels, config, 0, torch.device("cpu"), 2
    )
    assert seen == 8 and np.isfinite(loss)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert bn.running_mean.dtype == torch.float32 and not torch.equal(bn.running_mean, before)


@NATIVE_BF16
def test_onednn_takes_its_bf16_kernels_here(capfd):
    """Where the CPU has a bf16 engine, oneDNN's verbose log shows bf16 convolutions."""
    model, images = tiny_model(), synthetic_smears(2, SIZE, seed=5)
    with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
        infer(model, images, 2, torch.device("cpu"), precision="bf16")
    log = capfd.readouterr().out
    assert "convolution" in log and "bf16" in log
    if "amx_bf16" in HOST.flags:
        assert "amx" in log
