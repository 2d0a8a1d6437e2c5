"""Helpers for runs on the CommonGen fixture (tests/task/fixtures/commongen: made-up concept
sets in the release's file layout) with a tiny T5 whose tokenizer behaves like T5's.

The tokenizer is word-level over the fixture's words with T5's special tokens: ``<pad>`` = 0
(also the decoder start token, as T5 builds it), ``</s>`` = 1, appended to every encoded text
when special tokens are added (T5's post-processor), ``<unk>`` = 2. A random policy over ~100
words emits reference words often, so ``reference_words`` (the share of a completion's words
that occur in its references) is dense from the first rollout. The reward records what it was
given, so tests can check that every caller passes each prompt's grouped references.
"""

from __future__ import annotations

import json
from pathlib import Path

FIXTURE = Path(__file__).resolve().parents[1] / "task" / "fixtures" / "commongen"
CALLS: list[tuple[list[str], list[str], list]] = []  # (prompts, completions, references) per call


def fixture_texts() -> list[str]:
    texts = ["generate a sentence with: ."]
    for split in ("dev", "test"):
        for line in (FIXTURE / f"commongen.{split}.jsonl").read_text().splitlines():
            row = json.loads(line)
            texts += [row["concept_set"].replace("#", " ").replace("_", " "), *row["scene"]]
    texts += (FIXTURE / "commongen" / "commongen.train.tgt.txt").read_text().split("\n")
    texts += (FIXTURE / "commongen" / "commongen.train.src_alpha.txt").read_text().split("\n")
    return texts


def build_t5_like_tokenizer(folder: Path) -> Path:
    """The word-level tokenizer described in the module docstring, save_pretrained."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "</s>", "<unk>"]
    pre = pre_tokenizers.Whitespace()
    words = sorted({w for t in fixture_texts() for w, _ in pre.pre_tokenize_str(t)})
    vocab = {w: i for i, w in enumerate(specials + words)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre
    core.decoder = decoders.WordPiece(prefix="##")  # joins words with single spaces
    core.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)]
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
    folder.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(folder)
    return folder


def reference_words(prompts, completions, references) -> list[float]:
    """Share of a completion's words found in its references (a list, or one string); records
    the call in ``CALLS``.

    >>> reference_words(["p", "p"], ["a dog runs", "red"], [["The dog runs.", "A cat"], "a cat"])
    [1.0, 0.0]
    """
    CALLS.append((list(prompts), list(completions), list(references)))
    out = []
    for c, refs in zip(completions, references):
        refs = [refs] if isinstance(refs, str) else list(refs or [])
        vocab = {w.strip(".,").lower() for r in refs for w in r.split()}
        words = [w.strip(".,").lower() for w in c.split()]
        out.append(sum(w in vocab for w in words) / len(words) if words else 0.0)
    return out


def commongen_overrides(tok: Path, *extra: str) -> list[str]:
    """task=commongen on the fixture with model=tiny_t5 and the T5-like tokenizer, sized to run
    in seconds: 2 iterations / steps, small batches, 2-prompt evaluations."""
    from tests.conftest import tiny_overrides

    return tiny_overrides(
        None,
        "task=commongen",
        f"task.data_dir={FIXTURE}",
        "task.max_new_tokens=20",  # CommonGen's own lengths (GRUE), over the tiny runs' 8
        "task.min_new_tokens=5",
        "task.n_eval_prompts=2",
        "task.n_test_prompts=2",
        "model=tiny_t5",
        f"model.tiny.tokenizer={tok}",
        "hardware.torch_threads=1",
        "eval.samples_per_prompt=1",
        "eval.before_training=false",
        "checkpoint.every_n_iterations=100",
        "task.metrics=[meteor,cider,coverage]",  # the grouped-reference ones, without BERTScore's load
        "reward=custom",
        "reward._target_=tests.learning.commongen.reference_words",
        *extra,
    )
