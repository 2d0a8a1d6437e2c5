"""hardware.precision=auto: the precision each machine trains in (rft.device.resolve_precision).

bf16 on a CPU without native bf16 matmuls (AVX2 only) runs in PyTorch's generic fallback
kernels (an update step ~30x as long as in fp32), so auto must pick fp32 there and bf16 where the CPU has it;
an explicit bf16 there is honoured with a warning; the run's config.yaml records what it ran."""

from __future__ import annotations

import logging

import pytest
import torch
from omegaconf import OmegaConf

from rft import device
from rft.device import native_cpu_matmul, resolve_precision
from rft.errors import ConfigError
from tests.conftest import PPO_SMALL, compose_cfg, tiny_overrides


def hw(**kw):
    return OmegaConf.create({"name": "test", "accelerator": "cpu", "precision": "auto", **kw})


@pytest.mark.parametrize("native, expected", [(True, "bf16-mixed"), (False, "32-true")])
def test_auto_on_a_cpu_follows_its_bf16_support(monkeypatch, native, expected):
    monkeypatch.setattr(device, "native_cpu_matmul", lambda dtype: native)
    assert resolve_precision(hw()) == expected


def test_auto_on_this_cpu_agrees_with_torchs_own_bf16_check():
    expected = "bf16-mixed" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "32-true"
    assert resolve_precision(hw()) == expected
    assert native_cpu_matmul(torch.float32)


@pytest.mark.parametrize("bf16, expected", [(True, "bf16-mixed"), (False, "16-mixed")])
def test_auto_on_a_gpu_takes_bf16_where_supported_else_fp16(monkeypatch, bf16, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    assert resolve_precision(hw(accelerator="gpu")) == expected
    assert resolve_precision(hw(accelerator="auto")) == expected


def test_explicit_bf16_on_a_cpu_without_it_is_kept_with_a_warning_naming_the_fix(
    monkeypatch, caplog
):
    monkeypatch.setattr(device, "native_cpu_matmul", lambda dtype: dtype == torch.float32)
    with caplog.at_level(logging.WARNING, logger="rft"):
        assert resolve_precision(hw(precision="bf16-mixed")) == "bf16-mixed"
        assert resolve_precision(hw(precision="32-true")) == "32-true"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "hardware.precision=bf16-mixed" in warnings[0]
    assert "hardware.precision=auto" in warnings[0] and "hardware=cpu_fp32" in warnings[0]


def test_explicit_bf16_on_a_cpu_with_it_is_silent(monkeypatch, caplog):
    monkeypatch.setattr(device, "native_cpu_matmul", lambda dtype: True)
    with caplog.at_level(logging.WARNING, logger="rft"):
        assert resolve_precision(hw(precision="bf16-mixed")) == "bf16-mixed"
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


def test_an_unknown_precision_names_the_key_and_the_choices():
    with pytest.raises(ConfigError, match=r"hardware.precision='bf16'.*32-true.*bf16-mixed"):
        resolve_precision(hw(precision="bf16"))


def test_the_default_hardware_is_auto_and_a_run_records_the_resolved_precision(
    prompts_file, tmp_path, monkeypatch
):
    from rft.train import train

    monkeypatch.setattr(device, "native_cpu_matmul", lambda dtype: False)
    cfg = compose_cfg(*tiny_overrides(prompts_file, *PPO_SMALL), "hardware=cpu")
    assert cfg.hardware.precision == "auto"
    cfg.alg.n_iterations = 1
    train(cfg, run_dir=tmp_path / "run")
    saved = OmegaConf.load(tmp_path / "run" / "config.yaml")
    assert saved.hardware.precision == "32-true"
