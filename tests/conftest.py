"""Shared test helpers: compose configs in-process and build small tasks.

Tests use tiny random models (model=tiny / tiny_t5) and a small JSONL task written to a temp
folder, so they need no network and no large data. Tests that read the real IMDB files look for
them in $RFT_DATA_DIR or ../shared/data and skip (with the reason) when absent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

import rft  # noqa: F401  (registers schemas)

# Tiny models gain nothing from several threads, and OpenMP threads of parallel processes
# (CLI subprocess tests, a training run beside the suite) slow each other down badly.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def private_store(tmp_path, monkeypatch):
    """Each test's runs share a result store of their own (rft.store), never the user's
    ~/.cache/rft/store: a test sees exactly the reuse it sets up."""
    monkeypatch.setenv("RFT_STORE_DIR", str(tmp_path / "store"))


@pytest.fixture(autouse=True)
def one_thread():
    """Every test on one torch thread, and a test that changes it (hardware.torch_threads)
    does not leak its setting into the next."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"

WORDS = (
    "the film was good bad great awful lovely boring fun dull story actor plot scene "
    "music ending long short happy sad"
).split()


def imdb_dir() -> Path | None:
    for cand in (os.environ.get("RFT_DATA_DIR"), REPO.parent / "shared" / "data"):
        if cand and (Path(cand) / "imdb" / "train.jsonl.gz").is_file():
            return Path(cand)
    return None


def compose_cfg(*overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def run_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python run.py ARGS`` in the repository, as a user would type it (W&B off)."""
    env = {**os.environ, "WANDB_MODE": "disabled"}
    return subprocess.run(
        [sys.executable, "run.py", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def write_prompts(path: Path, n: int = 40, seed: int = 0) -> Path:
    import random

    rng = random.Random(seed)
    with open(path, "w") as f:
        for i in range(n):
            prompt = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 10)))
            ref = " ".join(rng.choice(WORDS) for _ in range(8))
            f.write(json.dumps({"prompt": f"Review {i}: {prompt}", "reference": ref}) + "\n")
    return path


def tiny_overrides(data: Path | None, *extra: str) -> list[str]:
    """The one builder of a tiny run: a JSONL task on ``data`` (None: ``extra`` names the task),
    the tiny random model, no tracker, fp32, small evaluations, a checkpoint every iteration;
    then ``extra`` (a family's budget below, a test's own settings), which overrides them."""
    task = ["task=jsonl", f"task.path={data}"] if data is not None else []
    return [
        *task,
        "task.max_new_tokens=8",
        "task.min_new_tokens=8",
        "task.n_eval_prompts=4",
        "task.n_test_prompts=4",
        "model=tiny",
        "logger=none",
        "hardware=cpu_fp32",
        "eval.batch_size=4",
        "eval.n_samples_table=2",
        "checkpoint.every_n_iterations=1",
        *extra,
    ]


PPO_SMALL = (
    "alg=ppo",
    "alg.n_iterations=2",
    "alg.rollout_prompts=4",
    "alg.minibatch_size=2",
    "alg.eval_every=0",
    "alg.lr=1e-3",
    "alg.score_batch_size=4",
)
SFT_SMALL = ("alg=sft", "alg.max_steps=2", "alg.batch_size=4", "alg.eval_every=0", "alg.lr=1e-3")
LENGTH_REWARD = (
    "reward=custom",
    "reward._target_=rft.reward.basic.length_reward",
    "+reward.target_words=3",
)
OFFLINE_SMALL = (  # the A-LoL family (after alg=<option>)
    "alg.max_steps=2",
    "alg.batch_size=4",
    "alg.eval_every=0",
    "alg.lr=1e-3",
    "alg.n_train_pairs=12",
    "alg.score_batch_size=8",
    "alg.value.n_prompts=4",
    "alg.value.epochs=2",
    "alg.value.batch_size=2",
)
PREFERENCE_SMALL = (  # DPO and its variants (after alg=<option>)
    "alg.max_steps=2",
    "alg.batch_size=4",
    "alg.eval_every=0",
    "alg.lr=1e-3",
    "alg.score_batch_size=8",
)
REWARD_MODEL_SMALL = (
    "alg.backbone=tiny_bert",
    "alg.max_steps=2",
    "alg.batch_size=4",
    "alg.lr=1e-3",
)
GROUP_SMALL = (
    "alg.n_iterations=2",
    "alg.rollout_prompts=4",
    "alg.samples_per_prompt=2",
    "alg.minibatch_size=4",
    "alg.micro_batch_size=2",
    "alg.eval_every=0",
    "alg.lr=1e-3",
    "alg.score_batch_size=8",
    "eval.before_training=false",
    *LENGTH_REWARD,
)


@pytest.fixture
def prompts_file(tmp_path) -> Path:
    return write_prompts(tmp_path / "prompts.jsonl")


class Killed(RuntimeError):
    """The simulated kill of ``run_killed_then_resumed``."""


def run_killed_then_resumed(overrides, module_cls, kill_at: int, run_dir: Path, monkeypatch):
    """Train ``overrides`` into ``run_dir`` with ``module_cls.training_step`` raising at the
    start of (0-based) iteration ``kill_at``, as a kill would; then train again with the same
    command in the same folder (which resumes by itself from its last checkpoint). Returns the
    resumed run's metrics. Compare them, and the history, with an uninterrupted run."""
    original = module_cls.training_step

    def dies(self, batch, batch_idx):
        if self.current_epoch == kill_at:
            raise Killed("simulated kill")
        return original(self, batch, batch_idx)

    from rft.train import train

    monkeypatch.setattr(module_cls, "training_step", dies)
    with pytest.raises(Killed):
        train(compose_cfg(*overrides), run_dir=run_dir)
    monkeypatch.setattr(module_cls, "training_step", original)
    return train(compose_cfg(*overrides), run_dir=run_dir)


DDP_CPU = ("hardware.devices=2", "hardware.strategy=ddp", "hardware.torch_threads=1")


def run_ddp_cli(overrides: list[str], run_dir: Path) -> str:
    """``python run.py OVERRIDES`` under 2-process CPU DDP (gloo) into ``run_dir``; asserts it
    exits 0 and that both ranks print the same final metrics. Returns the output."""
    import re

    r = run_cli(*overrides, *DDP_CPU, f"hydra.run.dir={run_dir}")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    done = re.findall(r"Done: (.*) \| run folder", out)
    assert len(done) == 2 and done[0] == done[1], done  # one line per rank, the same metrics
    return out


# ------------------------------------------------------------------------------ run outputs
def history(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]


def initial_params(cfg) -> dict[str, torch.Tensor]:
    """The policy's weights as the run will load them (tiny models are built from a seed)."""
    from rft.model.load import load_model

    model, _ = load_model(cfg.model)
    return {k: v.clone() for k, v in model.state_dict().items()}


def changed(before: dict, folder, seq2seq: bool = False) -> int:
    """How many tensors of the saved policy in ``folder`` differ from ``before``."""
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    cls = AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM
    after = cls.from_pretrained(str(folder)).state_dict()
    return sum(not torch.equal(before[k], after[k]) for k in before if k in after)


# Lightning calls set_epoch on a loader's sampler, never on its batch sampler: these pin that
# every block / iteration draws its own data instead of replaying the first one.
def spy_batches(monkeypatch, cls, expected_batch) -> list[tuple[int, int, list, list]]:
    """Records (epoch, batch_idx, batch, the batch a fresh sampler gives for that epoch/step)."""
    seen = []
    orig = cls.training_step

    def spy(self, batch, batch_idx):
        e = self.current_epoch
        seen.append((e, batch_idx, list(batch), expected_batch(self, e, batch_idx)))
        return orig(self, batch, batch_idx)

    monkeypatch.setattr(cls, "training_step", spy)
    return seen
