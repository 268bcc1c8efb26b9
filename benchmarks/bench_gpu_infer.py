"""Inference images/s of DarkNet-19 at 224 px on the current device (CUDA with bf16 autocast
when present), batch 256, against the naive eager fp32 NCHW baseline at batch 32."""

import json
import time

import torch

from blastscan.models import darknet19


def rate(model, batch, dtype, channels_last, steps=20):
    device = next(model.parameters()).device
    x = torch.rand(batch, 3, 224, 224, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    with torch.inference_mode(), autocast:
        for _ in range(3):
            model(x)
        torch.cuda.synchronize() if device.type == "cuda" else None
        t = time.perf_counter()
        for _ in range(steps):
            model(x)
        torch.cuda.synchronize() if device.type == "cuda" else None
    return batch * steps / (time.perf_counter() - t)


if __name__ == "__main__":
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    m = darknet19(4).to(device).eval()
    naive = rate(m, 32, torch.float32, False, steps=10)
    ml = m.to(memory_format=torch.channels_last)
    fast = rate(ml, 256, torch.bfloat16 if device.type == "cuda" else torch.float32, True)
    out = {
        "device": str(torch.cuda.get_device_name() if device.type == "cuda" else "cpu"),
        "naive_fp32_nchw_b32": naive,
        "bf16_channels_last_b256": fast,
        "ratio": fast / naive,
    }
    print(json.dumps(out, indent=1))
