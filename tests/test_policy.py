"""PolicyLM.forward: the logits and hidden states it returns for a padded (prompt, completion)
batch equal those of an unpadded forward pass over each example alone."""

from __future__ import annotations

import pytest
import torch

from rft.model.build import frozen_copy, load_policy
from tests.conftest import compose_cfg


def padded_batch(tok, prompts: list[list[int]], completions: list[list[int]]):
    """Prompts left-padded, completions right-padded, as the rollout code builds them."""
    P = max(map(len, prompts))
    T = max(map(len, completions))
    pad = tok.pad_token_id
    p_ids = torch.tensor([[pad] * (P - len(p)) + p for p in prompts])
    p_mask = torch.tensor([[0] * (P - len(p)) + [1] * len(p) for p in prompts])
    c_ids = torch.tensor([c + [pad] * (T - len(c)) for c in completions])
    c_mask = torch.tensor([[1] * len(c) + [0] * (T - len(c)) for c in completions])
    return p_ids, p_mask, c_ids, c_mask


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_forward_matches_unpadded_passes(arch):
    torch.manual_seed(0)
    policy = load_policy(compose_cfg("model=tiny", f"model.tiny.arch={arch}").model)
    prompts = [[10, 11, 12, 13, 14], [20, 21]]
    completions = [[30, 31], [40, 41, 42, 43]]
    batch = padded_batch(policy.tokenizer, prompts, completions)
    with torch.no_grad():
        logits, hidden = policy(*batch, return_hidden=True)
        assert logits.shape[:2] == batch[2].shape and hidden.shape[:2] == batch[2].shape
        for i, (p, c) in enumerate(zip(prompts, completions)):
            out = policy.model(torch.tensor([p + c]), output_hidden_states=True)
            # the state before completion token t is the prompt plus y_<t
            want_logits = out.logits[0, len(p) - 1 : len(p) + len(c) - 1]
            want_hidden = out.hidden_states[-1][0, len(p) - 1 : len(p) + len(c) - 1]
            torch.testing.assert_close(logits[i, : len(c)], want_logits, atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(hidden[i, : len(c)], want_hidden, atol=1e-5, rtol=1e-4)


def test_bf16_reference_logits_are_a_dense_tensor():
    """The frozen bf16 reference's logits come out as one dense (B, T, V) tensor. A strided slice
    of the hidden states made PyTorch's CPU bf16 matmul copy the lm_head weight once per batch row
    (+0.9 GB per scoring batch for SmolLM2); the positions are now an index tensor."""
    policy = load_policy(compose_cfg("model=tiny", "model.tiny.arch=llama").model)
    ref = frozen_copy(policy, torch.bfloat16)
    batch = padded_batch(policy.tokenizer, [[1, 2, 3], [4, 5]], [[6, 7, 8], [9]])
    with torch.no_grad():
        logits, _ = ref(*batch)
        full, _ = policy(*batch)
    assert logits.dtype == torch.bfloat16 and logits.is_contiguous()
    torch.testing.assert_close(logits.float(), full, atol=0.1, rtol=0.05)


def test_disable_dropout_zeroes_module_and_float_rates():
    """Llama-style attention keeps its dropout rate as a float used in train mode only, which
    training now uses: with disable_dropout both kinds are zero and train-mode passes repeat."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from rft.model.load import disable_dropout

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        attention_dropout=0.5,
    )
    model = LlamaForCausalLM(cfg).train()
    ids = torch.randint(0, 64, (2, 12))
    assert not torch.equal(model(ids).logits, model(ids).logits)  # the float rate is live
    disable_dropout(model)
    rates = [m.attention_dropout for m in model.modules() if hasattr(m, "attention_dropout")]
    assert rates and all(r == 0.0 for r in rates)
    assert torch.equal(model(ids).logits, model(ids).logits)


@pytest.fixture(scope="module")
def t5_like(tmp_path_factory):
    """A tiny random T5 with a tokenizer that, like T5's, appends </s> (pad 0 = decoder start,
    eos 1); see tests/learning/commongen.py."""
    from tests.learning.commongen import build_t5_like_tokenizer

    tok = build_t5_like_tokenizer(tmp_path_factory.mktemp("t5tok"))
    return load_policy(compose_cfg("model=tiny_t5", f"model.tiny.tokenizer={tok}").model)


def test_seq2seq_forward_matches_unpadded_passes_with_the_encoders_eos(t5_like):
    """A padded batch's logits / decoder states equal plain transformers on each example alone:
    encoder = prompt + </s> (what T5's tokenizer gives), decoder = start token + y_<t. A tokenizer
    that appends nothing (GPT-2's) gets no EOS."""
    policy = t5_like
    tok, config = policy.tokenizer, policy.model.config
    assert policy.encoder_eos and (config.decoder_start_token_id, tok.eos_token_id) == (0, 1)
    prompts = ["generate a sentence with: dog frisbee catch.", "lake row"]
    p = [tok(x, add_special_tokens=False)["input_ids"] for x in prompts]
    completions = [[7, 8, 9], [10, 11, 12, 13, 1]]
    batch = padded_batch(tok, p, completions)
    with torch.no_grad():
        logits, hidden = policy(*batch, return_hidden=True)
        for i, (x, y) in enumerate(zip(p, completions)):
            out = policy.model(
                input_ids=torch.tensor([tok(prompts[i])["input_ids"]]),  # x + [</s>]
                decoder_input_ids=torch.tensor([[0, *y[:-1]]]),
                output_hidden_states=True,
            )
            assert tok(prompts[i])["input_ids"] == [*x, 1]
            torch.testing.assert_close(logits[i, : len(y)], out.logits[0], atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(
                hidden[i, : len(y)], out.decoder_hidden_states[-1][0], atol=1e-5, rtol=1e-4
            )
    assert not load_policy(compose_cfg("model=tiny_t5").model).encoder_eos  # GPT-2 tokenizer


@pytest.mark.parametrize("num_beams", [1, 5])
def test_seq2seq_decoding_matches_plain_generate(t5_like, num_beams):
    """Greedy and 5-beam decoding of a left-padded batch give, row by row, what transformers'
    generate gives the example alone (prompt + </s>), without the decoder start token."""
    from rft.config import GenerationConfig
    from rft.rollout.prompts import encode_prompts

    policy, tok = t5_like, t5_like.tokenizer
    prompts = ["generate a sentence with: dog frisbee catch.", "lake row boat"]
    ids, mask = encode_prompts(tok, prompts, 20)
    gen = GenerationConfig(do_sample=False, num_beams=num_beams)
    c = policy.generate(ids, mask, 8, 5, gen)
    for i, text in enumerate(prompts):
        want = policy.model.generate(
            input_ids=torch.tensor([tok(text)["input_ids"]]),
            max_new_tokens=8,
            min_new_tokens=5,
            do_sample=False,
            num_beams=num_beams,
        )[0, 1:]
        n = int(c.mask[i].sum())
        assert c.ids[i, :n].tolist() == want[:n].tolist() and n >= 5


def test_generate_caches_autocast_casts_for_the_call_only(monkeypatch):
    """Under an autocast that does not cache (Lightning's), generate casts each weight once for
    the whole call instead of once per decoding step, samples what per-step casting samples,
    and leaves no cast behind: a forward after an in-place update (an optimizer step) sees the
    new weights."""
    import contextlib

    from torch.utils._python_dispatch import TorchDispatchMode

    import rft.model.generate as policy_module

    policy = load_policy(compose_cfg("model=tiny", "model.tiny.arch=llama").model)
    gen = compose_cfg("model=tiny").alg.generation
    ids = torch.randint(5, 50, (2, 5), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    weight_casts = []

    class CountWeightCasts(TorchDispatchMode):  # fp32 -> bf16 copies of 2-D tensors (weights)
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if (
                func is torch.ops.aten._to_copy.default
                and args[0].dtype == torch.float32
                and args[0].dim() == 2
                and kwargs.get("dtype") == torch.bfloat16
            ):
                weight_casts.append(tuple(args[0].shape))
            return func(*args, **kwargs)

    def sample(cache: bool):
        if not cache:  # as before: every decoding step casts every weight
            monkeypatch.setattr(
                policy_module, "cached_autocast_casts", lambda device: contextlib.nullcontext()
            )
        weight_casts.clear()
        torch.manual_seed(0)
        with CountWeightCasts():
            out = policy.generate(ids, mask, 6, 6, gen)
        monkeypatch.undo()
        return out, len(weight_casts)

    with torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False):  # one training step
        (cached, n_cached), (plain, n_plain) = sample(cache=True), sample(cache=False)
        assert torch.equal(cached.ids, plain.ids)
        assert 0 < n_cached < n_plain / 3  # 6 steps: once per call, not once per step
        with torch.no_grad():
            for p in policy.model.parameters():  # an in-place update, as an optimizer makes
                if p.dim() == 2:
                    p.copy_(torch.randn_like(p))
        after, _ = sample(cache=True)  # a second generation in the same outer context
        fresh, _ = sample(cache=False)  # the new weights, cast afresh at every step
    assert not torch.equal(after.ids, cached.ids)
    assert torch.equal(after.ids, fresh.ids)  # not the casts of the weights before the update


class WrappingTokenizer:
    """BART's scheme: a text is ``<s> text </s>`` (bos 0, pad 1, eos 2, words from 10)."""

    bos_token_id, pad_token_id, eos_token_id = 0, 1, 2

    def __call__(self, text, add_special_tokens=True):
        bare = [10 + i for i, _ in enumerate(text.split())]
        return {"input_ids": [0, *bare, 2] if add_special_tokens else bare}


def test_a_bart_style_encoder_reads_each_prompt_between_bos_and_eos():
    from rft.model.policy import PolicyLM

    policy = PolicyLM(torch.nn.Linear(1, 1), WrappingTokenizer(), kind="seq2seq")
    assert (policy.encoder_bos, policy.encoder_eos) == (True, True)
    ids = torch.tensor([[1, 1, 5, 6], [7, 8, 9, 4]])  # left-padded
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    enc_ids, enc_mask = policy.encoder_inputs(ids, mask)
    assert enc_ids.tolist() == [[1, 1, 0, 5, 6, 2], [0, 7, 8, 9, 4, 2]]
    assert enc_mask.tolist() == [[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]]
    causal = PolicyLM(torch.nn.Linear(1, 1), WrappingTokenizer(), kind="causal")
    assert causal.encoder_inputs(ids, mask)[0] is ids  # a causal prompt stays as it is
