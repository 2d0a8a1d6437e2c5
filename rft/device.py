"""Device and precision for work done outside Lightning's fit (offline precomputation,
extraction): the accelerator and autocast dtype the run's ``hardware`` config trains with."""

from __future__ import annotations

import contextlib

import torch


def autocast_dtype(precision) -> torch.dtype | None:
    """The dtype Lightning's ``precision`` computes matmuls in: bf16-mixed / bf16-true -> bf16,
    16-mixed / 16-true -> fp16, 32-true -> None (no autocast)."""
    return {"bf16": torch.bfloat16, "16": torch.float16}.get(str(precision).split("-")[0])


@contextlib.contextmanager
def hardware_device(cfg, lm: torch.nn.Module):
    """Move ``lm`` to the configured accelerator and enter the configured autocast; yields the
    device. The model goes back to the CPU afterwards (where Lightning expects it)."""
    hw = cfg.hardware
    use_cuda = torch.cuda.is_available() and str(hw.accelerator) in ("gpu", "cuda", "auto")
    device = torch.device("cuda" if use_cuda else "cpu")
    dtype = autocast_dtype(hw.precision)
    lm.to(device)
    try:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            yield device
    finally:
        lm.to("cpu")
