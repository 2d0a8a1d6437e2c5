"""Device and precision for work done outside Lightning's fit (offline precomputation,
extraction): the accelerator and autocast dtype the run's ``hardware`` config trains with."""

from __future__ import annotations

import contextlib
import logging

import torch

log = logging.getLogger("rft")

# hardware.precision values Lightning accepts, and ours
PRECISIONS = ("auto", "32-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true")


def autocast_dtype(precision) -> torch.dtype | None:
    """The dtype Lightning's ``precision`` computes matmuls in: bf16-mixed / bf16-true -> bf16,
    16-mixed / 16-true -> fp16, 32-true -> None (no autocast)."""
    return {"bf16": torch.bfloat16, "16": torch.float16}.get(str(precision).split("-")[0])


def native_cpu_matmul(dtype: torch.dtype) -> bool:
    """Whether this CPU multiplies ``dtype`` (bf16 / fp16) matrices in hardware-speed kernels.

    PyTorch routes CPU bf16/fp16 matmuls to oneDNN, which needs AVX-512 (bf16; native with
    AVX512-BF16 or AMX) or AVX512-FP16 / AMX-FP16 (fp16). Without them, e.g. on AVX2-only
    CPUs (most laptops, AMD before Zen 4), it falls back to slow generic kernels. Measured on a
    2-core AVX2 EPYC: 2048² matmuls at 0.28 GFLOP/s in bf16 against 166 in fp32; a SmolLM2-135M
    forward of 8 × 112 tokens in 11 s under bf16 autocast against 1.8 s in fp32, and a PPO
    update micro-batch (forward, backward, AdamW) in 167 s against 5.2 s."""
    if dtype == torch.float32:
        return True
    check = {
        torch.bfloat16: "_is_mkldnn_bf16_supported",
        torch.float16: "_is_mkldnn_fp16_supported",
    }.get(dtype)
    try:
        return bool(getattr(torch.ops.mkldnn, check)())
    except (AttributeError, RuntimeError, TypeError):  # a build without oneDNN, or a new name
        return "AVX512" in torch.backends.cpu.get_cpu_capability()


def on_gpu(hw) -> bool:
    """Whether ``hw`` (a hardware config) runs on a CUDA GPU."""
    accel = str(hw.get("accelerator", "cpu"))
    return accel in ("gpu", "cuda") or (accel == "auto" and torch.cuda.is_available())


def resolve_precision(hw) -> str:
    """``hw.precision`` with ``auto`` made concrete for this machine: bf16-mixed on a GPU that
    supports bf16 (16-mixed on older ones) and on a CPU with native bf16 matmuls, 32-true on a
    CPU without them. An explicit half precision on a CPU that would run it in the slow
    fallback (``native_cpu_matmul``) is kept, with a warning that says what to set instead."""
    precision = str(hw.get("precision", "auto"))
    if precision not in PRECISIONS:
        from rft.errors import ConfigError

        raise ConfigError(
            f"hardware.precision={precision!r}: choose one of {', '.join(PRECISIONS)} "
            "(auto: bf16-mixed where the hardware multiplies bf16 natively, else 32-true on a "
            "CPU and 16-mixed on a GPU)."
        )
    if on_gpu(hw):
        if precision == "auto":
            bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
            return "bf16-mixed" if bf16 else "16-mixed"
        return precision
    if precision == "auto":
        return "bf16-mixed" if native_cpu_matmul(torch.bfloat16) else "32-true"
    dtype = autocast_dtype(precision)
    if dtype is not None and not native_cpu_matmul(dtype):
        log.warning(
            "hardware.precision=%s, but this CPU (%s) has no native %s matmul: PyTorch runs "
            "them in generic kernels, and training steps take ~30x as long as in fp32. Set "
            "hardware.precision=auto (or hardware=cpu_fp32) unless you need %s here.",
            precision,
            torch.backends.cpu.get_cpu_capability(),
            dtype,
            precision,
        )
    return precision


@contextlib.contextmanager
def hardware_device(cfg, lm: torch.nn.Module):
    """Move ``lm`` to the configured accelerator and enter the configured autocast; yields the
    device. The model goes back to the CPU afterwards (where Lightning expects it)."""
    hw = cfg.hardware
    device = torch.device("cuda" if on_gpu(hw) and torch.cuda.is_available() else "cpu")
    dtype = autocast_dtype(hw.precision)
    lm.to(device)
    try:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            yield device
    finally:
        lm.to("cpu")
