"""A full disk during any save (state.ckpt, policy/, evaluation files, history.jsonl,
metrics.json) stops the run with one DiskFullError naming the folder, the last checkpoint
(intact) and that the same command resumes; the rerun, once there is room, does.

Two variants: on a real small file system (a tmpfs mounted for the test, resized to leave less
room than the next write needs; skipped with the reason where mounting is not permitted), and
with the failure injected where each writer's bytes reach the disk, raising what that writer
raises on ENOSPC (torch: a RuntimeError whose context is the OSError; safetensors: its own
error with the OS message; Python: OSError), so they run everywhere.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from rft.errors import DiskFullError
from rft.io import format_bytes, is_disk_full
from rft.train import train
from tests.conftest import PPO_SMALL, compose_cfg, run_cli, tiny_overrides

ENOSPC = OSError(errno.ENOSPC, "No space left on device")


def small_run(prompts_file, *extra: str) -> list[str]:
    # every iteration checkpoints (tiny_overrides); a smaller tiny model keeps the files small
    return tiny_overrides(prompts_file, *PPO_SMALL, "model.tiny.n_embd=16", *extra)


def assert_one_disk_full_message(msg: str, run: Path, step: int, folder: Path | None = None):
    assert msg.startswith("no space left on the device while writing ")
    assert f" in {folder or run / 'checkpoints'}" in msg
    ckpt = run / "checkpoints" / "state.ckpt"
    assert f"the previous checkpoint ({ckpt}, step {step}) is intact" in msg
    assert "rerun the same command: it resumes from the last complete checkpoint" in msg


def no_temporary_files(run: Path) -> list[str]:
    return sorted(str(p.relative_to(run)) for p in run.rglob("*") if ".tmp-" in p.name)


# ------------------------------------------------------------------------------ detection
def test_is_disk_full_reads_every_writers_error_and_nothing_else(tmp_path):
    # torch.save into a file object: its RuntimeError carries the OSError as its context
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            # torch raises it so: the OSError only as its context
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576")  # noqa: B904
    except RuntimeError as e:
        torch_error = e
    assert is_disk_full(torch_error)
    # safetensors: no errno, the OS message in its text
    assert is_disk_full(Exception("Error while serializing: I/O error: No space left on device"))
    assert is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    # torch.save into a path: no errno anywhere; a full disk only when the folder has no room
    bare = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
    assert not is_disk_full(bare)
    assert not is_disk_full(bare, tmp_path)  # this test's folder has room
    # unrelated errors stay what they are
    assert not is_disk_full(RuntimeError("CUDA out of memory"), tmp_path)
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"), tmp_path)


def test_format_bytes_is_honest_for_small_and_large_sizes():
    assert format_bytes(26 * 1024**2) == "26 MiB"
    assert format_bytes(1.6 * 1024**3) == "1.6 GiB"
    assert format_bytes(900) == "900 B"


def test_the_free_space_estimate_counts_the_real_tensors(prompts_file, tmp_path, monkeypatch):
    """checkpoint_bytes at train start = the state.ckpt and policy/ one save then writes, within
    10 % (tensor bytes; the files add a little metadata and the tokenizer)."""
    from rft.callbacks import StateCheckpoint

    seen = {}
    orig = StateCheckpoint.need

    def spy(self, trainer, module):
        seen.setdefault("need", orig(self, trainer, module))
        return seen["need"]

    monkeypatch.setattr(StateCheckpoint, "need", spy)
    run = tmp_path / "run"
    train(compose_cfg(*small_run(prompts_file, "alg.n_iterations=1")), run_dir=run)
    ckpt = (run / "checkpoints" / "state.ckpt").stat().st_size
    policy = sum(p.stat().st_size for p in (run / "policy").glob("*.safetensors"))
    assert seen["need"] == pytest.approx(ckpt + policy, rel=0.1)
    assert seen["need"] > 1e6  # megabytes: the old estimate printed it as "0.0 GB"


def test_low_disk_space_warning_names_the_size_in_honest_units(
    prompts_file, tmp_path, monkeypatch, caplog
):
    import logging
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    with caplog.at_level(logging.WARNING, logger="rft.callbacks"):
        train(compose_cfg(*small_run(prompts_file, "alg.n_iterations=1")), run_dir=tmp_path / "r")
    (msg,) = [r.getMessage() for r in caplog.records if "free under" in r.getMessage()]
    assert msg.startswith("only 1000 B free under ")
    assert "0.0 GB" not in msg and " MiB (state.ckpt with the optimizer state" in msg
    assert "saves will fail" in msg


# ------------------------------------------------------------------------------ injected faults
def _fd_path(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


def inject(monkeypatch, where: str, step_seen: dict) -> None:
    """Make the write of ``where`` fail as a full disk makes it fail, once the run is past its
    second iteration (step_seen["armed"] is set by the caller's spy)."""
    if where == "state.ckpt":
        real_save = torch.save

        def save(obj, f, *a, **k):
            if step_seen.get("armed") and hasattr(f, "write"):
                f.write(b"partial")
                try:
                    raise OSError(errno.ENOSPC, "No space left on device")
                except OSError:
                    raise RuntimeError(  # noqa: B904 - as torch: the OSError is the context
                        "[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534"
                    )
            return real_save(obj, f, *a, **k)

        monkeypatch.setattr(torch, "save", save)
    elif where == "policy/":
        from transformers import PreTrainedModel

        real = PreTrainedModel.save_pretrained

        def save_pretrained(self, folder, *a, **k):
            if step_seen.get("armed"):
                Path(folder).mkdir(parents=True, exist_ok=True)
                (Path(folder) / "model.safetensors").write_bytes(b"partial")
                raise Exception(  # noqa: TRY002 - what safetensors raises is no OSError
                    "Error while serializing: I/O error: No space left on device (os error 28)"
                )
            return real(self, folder, *a, **k)

        monkeypatch.setattr(PreTrainedModel, "save_pretrained", save_pretrained)
    elif where in ("history.jsonl", "samples.jsonl"):
        real_write = os.write

        def write(fd, data):
            if step_seen.get("armed") and _fd_path(fd).endswith(where):
                real_write(fd, bytes(data[: len(data) // 2]))  # half a row, then the disk is full
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_write(fd, data)

        monkeypatch.setattr(os, "write", write)
    else:  # eval/*.json, metrics.json: write_text of a temporary sibling
        real_write_text = Path.write_text

        def write_text(self, text, *a, **k):
            if step_seen.get("armed") and where in self.name:
                real_write_text(self, text[: len(text) // 2], *a, **k)
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_write_text(self, text, *a, **k)

        monkeypatch.setattr(Path, "write_text", write_text)


@pytest.mark.parametrize(
    "where", ["state.ckpt", "policy/", "history.jsonl", "samples.jsonl", "test_", "metrics.json"]
)
def test_injected_full_disk_during_each_save_is_one_message(
    prompts_file, tmp_path, monkeypatch, where
):
    """The first run trains 2 iterations; the same folder, asked for 3, fails on a full disk
    while writing ``where`` (iteration 3's save, its history row, or the final evaluation's
    files). The last complete checkpoint stays byte-identical (or, failing after it, is the new
    one), no temporary file is left, history.jsonl keeps whole rows, and the same command
    finishes the run once the fault is gone."""
    from rft.alg.base import RFTModule

    run = tmp_path / "run"
    train(compose_cfg(*small_run(prompts_file)), run_dir=run)
    ckpt = run / "checkpoints" / "state.ckpt"
    good = ckpt.read_bytes()

    armed: dict = {}
    real_record = RFTModule.record

    def record(self, metrics, step):  # arm the fault at iteration 3 (before its history row)
        armed["armed"] = step >= 3
        return real_record(self, metrics, step)

    monkeypatch.setattr(RFTModule, "record", record)
    inject(monkeypatch, where, armed)
    cfg = compose_cfg(*small_run(prompts_file, "alg.n_iterations=3"))
    with pytest.raises(DiskFullError) as e:
        train(cfg, run_dir=run)
    msg = str(e.value)
    after_save = where in ("policy/", "test_", "metrics.json", "samples.jsonl")
    folder = run / "checkpoints" if where == "state.ckpt" else run
    folder = run / "eval" if where == "test_" else folder
    assert_one_disk_full_message(msg, run, 3 if after_save else 2, folder)
    if not after_save:
        assert ckpt.read_bytes() == good
    assert no_temporary_files(run) == []
    lines = (run / "history.jsonl").read_text().splitlines()
    assert all(json.loads(line) for line in lines)  # no half row
    monkeypatch.undo()
    metrics = train(compose_cfg(*small_run(prompts_file, "alg.n_iterations=3")), run_dir=run)
    assert "test/reward_mean" in metrics
    meta = json.loads((run / "checkpoints" / "state.json").read_text())
    assert meta == {"epoch": 2, "step": 3, "policy_exported": True}
    rows = [json.loads(x) for x in (run / "history.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows if "loss/policy" in r] == [1, 2, 3]  # none twice


def test_an_unrelated_error_inside_a_save_is_not_a_full_disk(prompts_file, tmp_path, monkeypatch):
    """torch's writer failing for another reason (here: with plenty of space) keeps its own
    RuntimeError and traceback."""
    real_save = torch.save

    def save(obj, f, *a, **k):
        if hasattr(f, "write"):
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 5")
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", save)
    with pytest.raises(RuntimeError, match="unexpected pos 5"):
        train(compose_cfg(*small_run(prompts_file)), run_dir=tmp_path / "run")


# ------------------------------------------------------------------------------ a real full disk
class SmallFS:
    """A tmpfs mounted under the test's folder; ``leave(n)`` resizes it to its current use plus
    n bytes (tmpfs rounds to pages)."""

    def __init__(self, root: Path):
        self.root = root

    def leave(self, free: int) -> None:
        size = shutil.disk_usage(self.root).used + free
        subprocess.run(
            ["mount", "-o", f"remount,size={size}", str(self.root)], check=True, capture_output=True
        )


@pytest.fixture
def small_fs(tmp_path):
    root = tmp_path / "fs"
    root.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command: the injected variants above cover this")
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", str(root)],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        pytest.skip(
            f"cannot mount a small tmpfs here ({r.stderr.strip() or r.returncode}; needs root"
            " or CAP_SYS_ADMIN): the injected variants above cover this"
        )
    try:
        yield SmallFS(root)
    finally:
        subprocess.run(["umount", "-l", str(root)], capture_output=True)


def test_real_full_disk_during_the_checkpoint_save_through_the_cli(prompts_file, small_fs):
    """On a tmpfs with less room than state.ckpt: `python run.py` ends with exit code 2 and one
    `rft: error:` line, state.ckpt is byte-identical, and the same command resumes once there
    is room."""
    run = small_fs.root / "run"
    train(compose_cfg(*small_run(prompts_file)), run_dir=run)
    ckpt = run / "checkpoints" / "state.ckpt"
    good = ckpt.read_bytes()
    small_fs.leave(len(good) // 2)
    over = [*small_run(prompts_file, "alg.n_iterations=3"), f"hydra.run.dir={run}"]
    p = run_cli(*over)
    assert p.returncode == 2, p.stderr[-3000:]
    (line,) = [x for x in p.stderr.splitlines() if x.startswith("rft: error:")]
    assert_one_disk_full_message(line.removeprefix("rft: error: "), run, 2)
    assert "Traceback" not in p.stderr
    assert ckpt.read_bytes() == good
    assert no_temporary_files(run) == []
    small_fs.leave(256 << 20)
    train(compose_cfg(*small_run(prompts_file, "alg.n_iterations=3")), run_dir=run)
    assert json.loads((run / "checkpoints" / "state.json").read_text())["step"] == 3


def test_real_full_disk_during_the_policy_export(prompts_file, small_fs):
    """LoRA: state.ckpt holds the adapters only and fits, the merged policy/ does not. The new
    checkpoint (step 3) is intact, policy/ still holds step 2's complete export, and the rerun,
    with nothing left to train, exports step 3's policy."""
    lora = ("model.lora.r=2",)
    run = small_fs.root / "run"
    train(compose_cfg(*small_run(prompts_file, *lora)), run_dir=run)
    old_policy = (run / "policy" / "model.safetensors").read_bytes()
    small_fs.leave((run / "checkpoints" / "state.ckpt").stat().st_size * 3)
    cfg = compose_cfg(*small_run(prompts_file, *lora, "alg.n_iterations=3"))
    with pytest.raises(DiskFullError) as e:
        train(cfg, run_dir=run)
    assert_one_disk_full_message(str(e.value), run, 3, folder=run)
    assert "while writing the policy/ export" in str(e.value)
    assert (run / "policy" / "model.safetensors").read_bytes() == old_policy
    assert no_temporary_files(run) == []
    small_fs.leave(256 << 20)
    train(compose_cfg(*small_run(prompts_file, *lora, "alg.n_iterations=3")), run_dir=run)
    assert (run / "policy" / "model.safetensors").read_bytes() != old_policy
    assert json.loads((run / "checkpoints" / "state.json").read_text())["policy_exported"]


def test_real_full_disk_at_any_later_write_keeps_the_checkpoint(prompts_file, small_fs):
    """Almost no room at all: whichever write comes first after the resume fails as one
    DiskFullError, and the step-2 checkpoint is byte-identical."""
    run = small_fs.root / "run"
    train(compose_cfg(*small_run(prompts_file)), run_dir=run)
    good = (run / "checkpoints" / "state.ckpt").read_bytes()
    small_fs.leave(0)
    with pytest.raises(DiskFullError) as e:
        train(compose_cfg(*small_run(prompts_file, "alg.n_iterations=3")), run_dir=run)
    assert "step 2) is intact" in str(e.value)
    assert (run / "checkpoints" / "state.ckpt").read_bytes() == good
