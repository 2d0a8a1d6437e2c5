"""A task built for learning tests: a 16-word vocabulary, half of it "good".

A random tiny GPT-2 over the real 50k GPT-2 vocabulary almost never samples any one token, so a
token-frequency reward gives it nothing to climb. Here the policy's tokenizer is word-level over
16 words plus 2 specials, so a random policy already emits good words about half the time and
the reward (the share of good words in the completion) is dense: every completion scores, and
one gradient step on its tokens visibly moves it. The complement ``1 - R`` (``flip=True``) is the
sign-flipped control: the same code path, the opposite objective.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

GOOD = "good great fine nice fun happy lovely bright".split()
BAD = "bad awful dull boring sad ugly grim dark".split()
VOCAB = GOOD + BAD
EOS = "<eos>"


def build_word_tokenizer(folder: Path) -> Path:
    """A word-level fast tokenizer over VOCAB + <eos> (also pad and bos), saved with
    save_pretrained. Its only special token is EOS, which min_new_tokens suppresses, so every
    sampled completion is exactly max_new_tokens words and re-tokenizing its text gives back its
    ids (the evaluation tests rely on that)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate([EOS, *VOCAB])}
    core = Tokenizer(models.WordLevel(vocab, unk_token=EOS))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.decoder = decoders.WordPiece(prefix="##")  # joins words with single spaces
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token=EOS, pad_token=EOS, bos_token=EOS
    )
    folder.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(folder)
    return folder


def good_share(prompts, completions, references=None, flip: bool = False) -> list[float]:
    """Share of a completion's words that are GOOD (0 for an empty one); ``flip``: 1 - that.

    >>> good_share(["p", "p"], ["good bad fun fun", ""])
    [0.75, 0.0]
    >>> good_share(["p"], ["good bad fun fun"], flip=True)
    [0.25]
    """
    out = []
    for c in completions:
        words = c.split()
        r = sum(w in GOOD for w in words) / len(words) if words else 0.0
        out.append(1.0 - r if flip and words else r)
    return out


def constant_reward(prompts, completions, references=None, value: float = 0.5) -> list[float]:
    """The same reward for every completion (a zero-variance control).

    >>> constant_reward(["p", "p"], ["a", "b"])
    [0.5, 0.5]
    """
    return [value] * len(completions)


def write_task(path: Path, n: int = 64, seed: int = 0, ref_good: float | None = None) -> Path:
    """n rows of prompt + 6-word reference, all from VOCAB. ``ref_good``: None = each reference
    has a uniformly random number of good words (offline data whose reward varies), else the
    probability that each reference word is good."""
    rng = random.Random(seed)
    with open(path, "w") as f:
        for _ in range(n):
            prompt = " ".join(rng.choice(VOCAB) for _ in range(rng.randint(3, 6)))
            p = rng.random() if ref_good is None else ref_good
            ref = " ".join(rng.choice(GOOD if rng.random() < p else BAD) for _ in range(6))
            f.write(json.dumps({"prompt": prompt, "reference": ref}) + "\n")
    return path


def reference_nll(model, tokenizer_dir: Path, path: Path) -> float:
    """Mean per-token NLL of the references given their prompts under a causal LM (a model or a
    save_pretrained folder), computed here with plain transformers, independently of rft's
    scoring code."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    if isinstance(model, (str, Path)):
        model = AutoModelForCausalLM.from_pretrained(str(model))
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for line in Path(path).read_text().splitlines():
            row = json.loads(line)
            p = tok(row["prompt"])["input_ids"]
            y = tok(row["reference"])["input_ids"]
            ids = torch.tensor([p + y])
            logp = model(ids).logits[0, :-1].log_softmax(-1)
            tgt = ids[0, 1:]
            lp = logp.gather(-1, tgt[:, None])[:, 0][len(p) - 1 :]
            total -= lp.sum().item()
            count += len(y)
    assert math.isfinite(total)
    return total / count


def word_overrides(words, data: Path | None = None, *extra: str) -> list[str]:
    """A tiny run on the word task (tests.conftest.tiny_overrides with the word tokenizer, the
    good-word reward and evaluations large enough to measure learning)."""
    from tests.conftest import tiny_overrides

    return tiny_overrides(
        data or words["task"],
        "task.val_fraction=0.2",
        "task.test_fraction=0.34",
        "task.n_eval_prompts=8",
        "task.n_test_prompts=32",
        f"model.tiny.tokenizer={words['tok']}",
        "hardware.torch_threads=1",
        "eval.batch_size=32",
        "eval.samples_per_prompt=1",  # the margins below were measured with one sample a prompt
        "eval.n_samples_table=1",
        "checkpoint.every_n_iterations=100",
        "reward=custom",
        "reward._target_=tests.learning.words.good_share",
        *extra,
    )
