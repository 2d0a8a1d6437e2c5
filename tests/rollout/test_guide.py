"""Guide plumbing (rft/rollout/guide.py): forced-prefix sampling on a tiny model, tokenizer
conversion, guide loading."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from rft.alg.schemas import GuideConfig
from rft.config import GenerationConfig, ModelConfig, TinyModelConfig
from rft.model.load import load_model
from rft.model.policy import PolicyLM
from rft.rollout.guide import (
    convert_completions,
    load_guide,
    same_tokenizer,
    sample,
)
from rft.rollout.prompts import encode_continuations, encode_prompts
from tests.rollout.byte_tokenizer import build_byte_tokenizer


def tiny(arch: str = "gpt2", tokenizer: str | None = None, kind: str = "causal") -> PolicyLM:
    cfg = OmegaConf.structured(ModelConfig(name="tiny", loader="tiny", kind=kind))
    cfg.tiny.arch, cfg.tiny.tokenizer = arch, tokenizer
    model, tok = load_model(cfg)
    return PolicyLM(model, tok, kind=kind)


@pytest.fixture(scope="module")
def gpt2() -> PolicyLM:
    return tiny()


@pytest.fixture(scope="module")
def byte_tok_dir(tmp_path_factory):
    return str(build_byte_tokenizer(tmp_path_factory.mktemp("byte_tok")))


SAMPLING = GenerationConfig(do_sample=True, top_k=50, top_p=0.92, temperature=1.5)
GREEDY = GenerationConfig(do_sample=False)


@pytest.mark.parametrize("generation", [SAMPLING, GREEDY], ids=["sampling", "greedy"])
def test_forced_prefix_is_copied_then_sampling_is_free(gpt2, generation):
    torch.manual_seed(0)
    p_ids, p_mask = encode_prompts(
        gpt2.tokenizer, ["A short prompt", "Another, longer prompt here", "x"], 16
    )
    forced = torch.tensor([[9999, 123, 40000, 7, 5000], [31337, 2, 0, 0, 0], [0, 0, 0, 0, 0]])
    k = torch.tensor([5, 2, 0])
    c = sample(gpt2, p_ids, p_mask, 8, 8, generation, forced, k)
    assert c.ids.shape == (3, 8) and c.mask.sum().item() == 24
    assert c.ids[0, :5].tolist() == [9999, 123, 40000, 7, 5000]
    assert c.ids[1, :2].tolist() == [31337, 2]
    if not generation.do_sample:  # after the prefix the policy continues as it would by itself
        free = sample(gpt2, p_ids, p_mask, 8, 8, generation)
        assert torch.equal(c.ids[2], free.ids[2])  # k = 0: untouched
        ids0 = torch.cat([p_ids[:1], forced[:1]], 1)
        mask0 = torch.cat([p_mask[:1], torch.ones_like(forced[:1])], 1)
        cont = sample(gpt2, ids0, mask0, 3, 3, generation)
        assert torch.equal(c.ids[0, 5:], cont.ids[0])


def test_forced_prefix_seq2seq(tmp_path):
    t5 = tiny("t5", kind="seq2seq")
    p_ids, p_mask = encode_prompts(t5.tokenizer, ["a prompt", "b"], 16)
    c = sample(
        t5,
        p_ids,
        p_mask,
        6,
        6,
        SAMPLING,
        torch.tensor([[11, 12, 13], [14, 0, 0]]),
        torch.tensor([3, 1]),
    )
    assert c.ids[0, :3].tolist() == [11, 12, 13] and c.ids[1, 0] == 14


def test_same_tokenizer(gpt2, byte_tok_dir):
    assert same_tokenizer(gpt2.tokenizer, tiny().tokenizer)
    assert not same_tokenizer(gpt2.tokenizer, tiny("llama", byte_tok_dir).tokenizer)


def test_convert_completions_through_text(gpt2, byte_tok_dir):
    src, dst = (
        gpt2.tokenizer,
        load_model(
            OmegaConf.structured(
                ModelConfig(
                    name="b",
                    loader="tiny",
                    tiny=TinyModelConfig(arch="llama", tokenizer=byte_tok_dir),
                )
            )
        )[1],
    )
    texts = [" the film was great", " boring plot, sad ending and more words"]
    ids, mask = encode_continuations(src, texts, 6, eos=[True, False], width=6)
    assert ids[0, mask[0].sum() - 1] == src.eos_token_id  # short row: EOS appended
    out, out_mask = convert_completions(src, dst, ids, mask, 40)
    back = [
        dst.decode(r[m.bool()].tolist(), skip_special_tokens=True) for r, m in zip(out, out_mask)
    ]
    assert back[0] == texts[0]
    assert back[1] == src.decode(ids[1].tolist())  # the 6-token cut of the second text
    n0 = out_mask[0].sum()
    assert out[0, n0 - 1] == dst.eos_token_id  # a finished sequence stays finished
    assert out_mask[1, -1] == 0 and out[1, mask[1].sum() :].ne(dst.eos_token_id).all()
    cut, cut_mask = convert_completions(src, dst, ids, mask, 3)  # re-encoded rows are cut to width
    assert cut.shape == (2, 3) and cut_mask.sum(-1).tolist() == [3, 3]


def test_load_guide_defaults_to_the_reference(gpt2, byte_tok_dir):
    ref = gpt2
    model_cfg = OmegaConf.structured(ModelConfig(name="tiny", loader="tiny"))
    assert load_guide(OmegaConf.structured(GuideConfig()), model_cfg, ref) is ref
    g_model = ModelConfig(
        name="g", loader="tiny", tiny=TinyModelConfig(arch="llama", tokenizer=byte_tok_dir)
    )
    g_cfg = OmegaConf.structured(GuideConfig(model=g_model))
    guide = load_guide(g_cfg, model_cfg, ref)
    assert guide is not ref and len(guide.tokenizer) == 300
    assert not any(p.requires_grad for p in guide.parameters()) and not guide.training


def test_load_guide_from_an_earlier_run(gpt2, tmp_path):
    import copy

    from rft.alg.base import save_policy_atomic

    trained = copy.deepcopy(gpt2)  # weights no seeded tiny init has: a guide that ignored
    with torch.no_grad():  # init_from and rebuilt the tiny model would differ from them
        for p in trained.model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    save_policy_atomic(trained, tmp_path / "sft_run" / "policy")  # what an SFT run leaves behind
    model_cfg = OmegaConf.structured(ModelConfig(name="tiny", loader="tiny"))
    g_cfg = OmegaConf.structured(GuideConfig(init_from=str(tmp_path / "sft_run")))
    guide = load_guide(g_cfg, model_cfg, ref=None)
    assert same_tokenizer(guide.tokenizer, gpt2.tokenizer)
    got, want = guide.model.state_dict(), trained.model.state_dict()
    assert got.keys() == want.keys()
    for k in want:
        assert torch.equal(got[k], want[k]), k
    assert not torch.equal(
        got["transformer.wte.weight"], gpt2.model.state_dict()["transformer.wte.weight"]
    )
