"""rft.remote.guide: RLGF's guide served over the OpenAI-compatible API by a real loopback
server (tests/remote/server.py). A tiny model served remotely gives, token for token, what the
same model gives as the local guide; text answers are re-encoded with the policy tokenizer;
requests carry per-row seeds; a repeated (resumed) run is answered from the cache."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf, open_dict

from rft.alg.schemas import GuideConfig
from rft.config import GenerationConfig, ModelConfig, RemoteGuideConfig
from rft.errors import ConfigError, RemoteError
from rft.model.load import load_model
from rft.model.policy import PolicyLM
from rft.remote.guide import RemoteGuide, check_remote_guide
from rft.rng import remote_request_seeds
from rft.rollout.guide import decode_rows, sample
from rft.rollout.prompts import encode_prompts
from tests.remote.server import FakeServer, model_generator

T, MIN = 8, 2
GREEDY = GenerationConfig(do_sample=False)
PROMPTS = ["A short prompt", "Another, longer prompt here about a film", "x", "The plot"]


@pytest.fixture(scope="module")
def lm() -> PolicyLM:
    torch.manual_seed(0)
    model, tok = load_model(OmegaConf.structured(ModelConfig(name="tiny", loader="tiny")))
    return PolicyLM(model, tok).eval()


def remote_cfg(url: str, **kw):
    base = {"base_url": url, "model": "guide", "backoff_s": 0.001, "jitter": 0.0, "cache_dir": None}
    return OmegaConf.merge(OmegaConf.structured(RemoteGuideConfig), {**base, **kw})


def guide(url, tok, generation=GREEDY, seed=0, **kw) -> RemoteGuide:
    return RemoteGuide(remote_cfg(url, **kw), generation, tok, T, MIN, seed)


def local_rows(lm, p_ids, p_mask, forced=None, k=None):
    """The local guide's greedy answer, one prompt at a time (no padding)."""
    out = []
    for i in range(len(p_ids)):
        ids = p_ids[i : i + 1][:, p_mask[i].bool()]
        f = None if forced is None else forced[i : i + 1]
        kk = None if k is None else k[i : i + 1]
        c = sample(lm, ids, torch.ones_like(ids), T, MIN, GREEDY, f, kk)
        out.append(c.ids[0][c.mask[0].bool()].tolist())
    return out


def rows(ids, mask):
    return [r[m.bool()].tolist() for r, m in zip(ids, mask)]


def test_served_model_equals_the_local_guide_token_for_token(lm):
    tok = lm.tokenizer
    p_ids, p_mask = encode_prompts(tok, PROMPTS, 16)
    forced = torch.tensor([[11, 12, 13, 14], [21, 22, 0, 0], [0, 0, 0, 0], [31, 0, 0, 0]])
    k = torch.tensor([4, 2, 0, 1])
    with FakeServer(generator=model_generator(lm)) as srv:
        g = guide(srv.url, tok, prompt_format="token_ids", max_concurrency=1)  # posts in order
        ids, mask, texts = g.roll_in(p_ids, p_mask, iteration=0)
        out = g.roll_out(p_ids, p_mask, forced, k, iteration=0)
        sent = srv.posts()
    assert rows(ids, mask) == local_rows(lm, p_ids, p_mask)
    assert texts == [tok.decode(r, skip_special_tokens=True) for r in rows(ids, mask)]
    assert rows(out.ids, out.mask) == local_rows(lm, p_ids, p_mask, forced, k)
    assert [r[:ki] for r, ki in zip(rows(out.ids, out.mask), k.tolist())] == [
        [11, 12, 13, 14],
        [21, 22],
        [],
        [31],
    ]
    # what was sent: the policy's prompt ids (+ its k ids), T - k tokens, min_tokens, ids back
    b = sent[4 + 1]["body"]  # roll-out row 1
    assert b["prompt"] == p_ids[1][p_mask[1].bool()].tolist() + [21, 22]
    assert (b["max_tokens"], b["temperature"]) == (T - 2, 0.0) and "min_tokens" not in b
    assert b["return_token_ids"] is True and b["add_special_tokens"] is False
    assert (sent[0]["body"]["max_tokens"], sent[0]["body"]["min_tokens"]) == (T, MIN)


def test_text_answers_are_re_encoded_with_the_policy_tokenizer(lm):
    """Text in, text out (any server): the prompt as the policy reads it, + the text of its k
    tokens; the answer re-encoded, EOS where the guide stopped, the policy's k tokens kept."""
    tok = lm.tokenizer
    p_ids, p_mask = encode_prompts(tok, PROMPTS, 4)  # cut: the guide sees the policy's view
    with FakeServer() as srv:  # scripted words; stops early at random
        g = guide(srv.url, tok, max_concurrency=1)  # posts in row order
        ids, mask, texts = g.roll_in(p_ids, p_mask, iteration=3)
        forced = ids[:, :3]
        k = torch.tensor([3, 0, 1, 2])
        out = g.roll_out(p_ids, p_mask, forced, k, iteration=3)
        bodies = [r["body"] for r in srv.posts()]
        answers = [srv.generator(b, False) for b in bodies]
    policy_view = decode_rows(tok, p_ids, p_mask)
    assert [b["prompt"] for b in bodies[:4]] == policy_view
    for i in range(4):
        a = answers[i]
        want = tok(a["text"], add_special_tokens=False)["input_ids"]
        want = (want + [tok.eos_token_id] * (a["finish_reason"] == "stop"))[:T]
        assert rows(ids, mask)[i] == want and texts[i] == a["text"]
    for i, ki in enumerate(k.tolist()):
        b, a = bodies[4 + i], answers[4 + i]
        assert b["prompt"] == policy_view[i] + tok.decode(forced[i, :ki])
        assert (b["max_tokens"], b.get("min_tokens", 0)) == (T - ki, max(0, MIN - ki))
        cont = tok(a["text"], add_special_tokens=False)["input_ids"]
        cont = cont + [tok.eos_token_id] * (a["finish_reason"] == "stop")
        assert rows(out.ids, out.mask)[i] == (forced[i, :ki].tolist() + cont)[:T]
    assert any(a["finish_reason"] == "stop" for a in answers)  # the EOS path was taken
    s = g.pop_stats()
    assert s["remote/guide/requests"] == 8 and s["remote/guide/policy_tokens"] == int(
        mask.sum() + out.mask.sum() - k.sum()
    )


def test_requests_carry_per_row_seeds_and_a_repeated_run_is_free(lm, tmp_path):
    tok = lm.tokenizer
    prompts = ["same prompt"] * 3 + ["other"]  # K = 3 samples of one prompt
    p_ids, p_mask = encode_prompts(tok, prompts, 8)
    sampling = GenerationConfig(do_sample=True, top_k=50, top_p=0.92)
    with FakeServer() as srv:
        run = [guide(srv.url, tok, sampling, seed=7, cache_dir=str(tmp_path)) for _ in range(2)]
        first = run[0].roll_in(p_ids, p_mask, iteration=2)
        sent = [r["body"] for r in srv.posts()]
        second = run[1].roll_in(p_ids, p_mask, iteration=2)  # a resumed / repeated run
        assert len(srv.posts()) == 4
        run[1].roll_in(p_ids, p_mask, iteration=3)  # the next iteration asks afresh
        assert len(srv.posts()) == 8
    assert sorted(b["seed"] for b in sent) == sorted(remote_request_seeds(7, 2, 0, 4))
    assert len({b["seed"] for b in sent}) == 4
    assert (sent[0]["top_k"], sent[0]["top_p"], sent[0]["temperature"]) == (50, 0.92, 1.0)
    assert len(set(first[2][:3])) == 3  # the K samples differ
    assert torch.equal(first[0], second[0]) and first[2] == second[2]
    s = run[1].pop_stats()
    assert s["remote/guide/cache_hits"] == 4 and s["remote/guide/cache_hit_rate"] == 0.5


def test_chat_endpoint_sends_the_prefix_as_a_partial_assistant_turn(lm):
    tok = lm.tokenizer
    p_ids, p_mask = encode_prompts(tok, PROMPTS[:2], 16)
    forced, k = torch.tensor([[11, 12], [0, 0]]), torch.tensor([2, 0])
    with FakeServer() as srv:
        g = guide(
            srv.url, tok, endpoint="chat", system_prompt="Continue the review.", vllm_extras=False
        )
        g.roll_out(p_ids, p_mask, forced, k, iteration=0)
        # the rows' requests are in flight together: tell them apart by content, not order
        b0, b1 = sorted(
            (r["body"] for r in srv.posts("/chat/completions")),
            key=lambda b: b["messages"][-1]["role"] != "assistant",
        )
        off = guide(srv.url, tok, endpoint="chat", chat_prefill=False)
        off.roll_in(p_ids, p_mask, iteration=0)  # PPO++ needs no prefill
        with pytest.raises(RemoteError, match=r"chat_prefill=false cannot continue the policy's"):
            off.roll_out(p_ids, p_mask, forced, k, iteration=0)
    view = decode_rows(tok, p_ids, p_mask)
    assert b0["messages"] == [
        {"role": "system", "content": "Continue the review."},
        {"role": "user", "content": view[0]},
        {"role": "assistant", "content": tok.decode([11, 12])},
    ]
    assert b0["continue_final_message"] is True and b0["add_generation_prompt"] is False
    assert "continue_final_message" not in b1 and b1["messages"][-1]["role"] == "user"
    assert "min_tokens" not in b0 and "top_k" not in b0  # vllm_extras=false


def test_a_server_failing_mid_run_stops_with_one_error_naming_it(lm):
    tok = lm.tokenizer
    p_ids, p_mask = encode_prompts(tok, PROMPTS, 8)
    with FakeServer() as srv:
        g = guide(srv.url, tok, max_retries=1, max_concurrency=1)
        srv.faults += ["503"] * 2
        with pytest.raises(
            RemoteError, match=r"the guide server .*: roll-in request 1 of 4 .*failed 2 times"
        ):
            g.roll_in(p_ids, p_mask, iteration=0)
        srv.faults.append("nofield")
        with pytest.raises(
            RemoteError, match=r"malformed answer to roll-in request 1 of 4: no field `choices`"
        ):
            g.roll_in(p_ids, p_mask, iteration=0)


def test_contradicting_settings_name_the_key():
    # alg.guide with its `remote` block
    cfg = OmegaConf.structured(GuideConfig)
    OmegaConf.set_struct(cfg, False)
    cfg.remote = OmegaConf.structured(RemoteGuideConfig)
    cfg.remote.base_url = "http://127.0.0.1:8000/v1"
    check_remote_guide(cfg)
    cfg.init_from = "runs/sft"
    with pytest.raises(ConfigError, match=r"alg.guide.remote.base_url=.* and a local guide"):
        check_remote_guide(cfg)
    cfg.init_from = None
    cfg.remote.endpoint, cfg.remote.prompt_format = "chat", "token_ids"
    with pytest.raises(ConfigError, match=r"prompt_format=token_ids needs endpoint=completions"):
        check_remote_guide(cfg)
    cfg.remote.endpoint, cfg.generation.num_beams, cfg.generation.do_sample = (
        "completions",
        4,
        False,
    )
    with pytest.raises(ConfigError, match=r"alg.guide.generation.num_beams=4: .*no beam search"):
        check_remote_guide(cfg)


def with_remote_guide(cfg, **remote):
    """alg.guide with its `remote` block (rft.alg.schemas.GuideConfig)."""
    with open_dict(cfg.alg.guide):
        cfg.alg.guide.remote = OmegaConf.merge(OmegaConf.structured(RemoteGuideConfig), remote)
    return cfg


def test_a_guide_server_down_at_start_fails_before_any_model_loads(tmp_path, monkeypatch):
    import rft.train
    from tests.conftest import compose_cfg, tiny_overrides, write_prompts

    def no_model(*a, **k):
        raise AssertionError("a model was loaded before the server check")

    monkeypatch.setattr(rft.train, "load_trained_policy", no_model)
    data = write_prompts(tmp_path / "p.jsonl", n=8)
    with FakeServer(models=("guide",)) as srv:
        url = srv.url
        cfg = with_remote_guide(
            compose_cfg(*tiny_overrides(data, "alg=ppo_pp")), base_url=url, model="other"
        )
        with pytest.raises(
            ConfigError, match=r"alg.guide.remote.model=other: .*serves \['guide'\]"
        ):
            rft.train.train(cfg, run_dir=tmp_path / "run")
    cfg = with_remote_guide(compose_cfg(*tiny_overrides(data, "alg=ppo_pp")), base_url=url)
    with pytest.raises(RemoteError, match=r"the guide server .* cannot be reached at start-up"):
        rft.train.train(cfg, run_dir=tmp_path / "run")
    cfg.mode = "evaluate"  # the guide is not asked outside training
    from rft.checks import preflight

    preflight(cfg)
