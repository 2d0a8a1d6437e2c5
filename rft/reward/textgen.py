"""Rewards from text-generation metrics against the prompt's references (docs/algorithms.md §12):
``reward=meteor | rouge | bleu | cider | spider | bertscore | coverage``, and the other GRUE
tasks' ``sacrebleu | ter | chrf | rouge_l_max | parent | intent_accuracy | bleurt``
(docs/grue-tasks.md §2; the last three read ``Example.meta`` or a hub model, see each class).

Each is a class built from its config (rft/config.py, the text-generation reward schemas) and
called once per batch, ``fn(prompts, completions, references) -> one float per completion``,
with one metric call for the whole batch (rft.metrics). ``references`` holds, per completion,
what ``Example.reward_references`` gives: the list of all references of the prompt (CommonGen)
or a single string; a reward that needs references and gets None (or an empty list) raises
RewardError naming the mismatch, never scores 0. An empty completion scores what the metric
gives it, 0 for all of these (nothing matches), without an error.

``repeat_penalty`` (every reward): RL4LMs' CommonGen shaping (``common_gen_repeat_penalty``),
-1 added when the completion contains, ignoring case, the whole concept string of the prompt,
the prompt prefix, "generate" or "sentence" (substrings, as RL4LMs tests them); else 0. It and
``coverage`` read the concepts from the GRUE prompt "generate a sentence with: c1 c2 c3." (the
prefix is a knob); a prompt of another shape raises RewardError.

Differences from RL4LMs / RLGF (TRIL), all deliberate:
- references: every reward scores against all of a prompt's references (max over them, the
  CIDEr-D mean over them), as rft.metrics does; RL4LMs trains on one (concepts, reference) row
  at a time and its ROUGE reward keeps only the first reference.
- ``rouge``: the variant is a knob, default rouge1, the one RL4LMs' CommonGen config names for
  its ROUGE reward (``rouge_type: "rouge1"``).
- ``cider``: idf over the batch's distinct reference groups, each prompt once whatever its
  number of samples (``idf: batch``, as RL4LMs' and TRIL's batched rewards take it from the
  batch; rft.metrics.cider says how they count repeats): a completion's reward then depends on
  the rest of the batch, and a batch of one prompt gets 0; or over a fixed corpus of reference
  groups read once
  (``idf: references`` + ``idf_references``: a JSONL file, one JSON list of references per line
  or an object with a ``references`` or ``scene`` list, e.g. CommonGen's own JSONL).
- ``spider``: RLGF's SPIDEr reward is spice_coeff · SPICE + cider_coeff · CIDEr (TRIL's CommonGen
  config: 1 and 1). SPICE cannot run here (Java + CoreNLP), so ``spider`` is cider_coeff · CIDEr-D
  alone until SPICE exists; it warns so once. It is named spider only to match the paper's
  config; read its numbers as CIDEr-D.
- ``bleu``: RL4LMs' BLEU reward is sentence-level tensorflow/nmt BLEU (unsmoothed: 0 without a
  shared 4-gram, which is most short outputs); ``implementation: sacrebleu`` gives sacreBLEU's
  smoothed sentence BLEU instead (RL4LMs' ``sacre_bleu`` reward).
- ``bertscore``: all-MiniLM-L6-v2, not roberta-large (rft.metrics.bertscore).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from rft.errors import ConfigError, RewardError

log = logging.getLogger(__name__)

PREFIX = "generate a sentence with: "  # GRUE / RL4LMs CommonGen prompt prefix
_warned: set[str] = set()


def concept_string(prompt: str, prefix: str = PREFIX) -> str:
    """The concepts of a GRUE CommonGen prompt as written there.

    >>> concept_string("generate a sentence with: dog frisbee catch.")
    'dog frisbee catch'
    """
    i = prompt.find(prefix)
    rest = prompt[i + len(prefix) :].strip() if i >= 0 else ""
    if i < 0 or not rest.endswith(".") or not rest[:-1].strip():
        raise RewardError(
            f"prompt {prompt[:100]!r} is not a CommonGen prompt {prefix!r} + concepts + '.': the "
            "coverage reward and repeat_penalty read the concepts from it. Use task=commongen, set "
            "reward.prompt_prefix to the task's prefix, or turn reward.repeat_penalty off."
        )
    return rest[:-1].strip()


def repeat_penalties(
    prompts: Sequence[str], completions: Sequence[str], prefix: str = PREFIX
) -> list[float]:
    """RL4LMs' CommonGen repeat penalty: -1 or 0 per completion.

    >>> p = "generate a sentence with: dog frisbee catch."
    >>> repeat_penalties([p] * 3, ["A dog catches a frisbee.", "dog frisbee catch", "Sentence."])
    [0.0, -1.0, -1.0]
    """
    out = []
    for prompt, text in zip(prompts, completions):
        t = text.lower()
        bad = (concept_string(prompt, prefix).lower(), prefix.lower(), "generate", "sentence")
        out.append(-1.0 if any(b in t for b in bad) else 0.0)
    return out


class MetricReward:
    """Shared by the metric rewards: the references check, the optional repeat penalty and one
    ``score`` call per batch. A reward that also reads each example's ``meta`` (``needs_meta``:
    the key it reads) gets it as ``score(..., meta=[dict, ...])``, taken from the references
    (rft.task.base.ReferenceList carries it)."""

    name = "metric"
    needs_references = True
    needs_meta: str | None = None

    def __init__(self, repeat_penalty: bool = False, prompt_prefix: str = PREFIX):
        self.repeat_penalty = bool(repeat_penalty)
        self.prompt_prefix = prompt_prefix

    def __call__(self, prompts, completions, references=None) -> list[float]:
        prompts, completions = list(prompts), ["" if c is None else str(c) for c in completions]
        refs = self.references(prompts, references) if self.needs_references else None
        extra = {"meta": self.metas(prompts, references)} if self.needs_meta else {}
        scores = [float(s) for s in self.score(prompts, completions, refs, **extra)]
        if self.repeat_penalty:
            pen = repeat_penalties(prompts, completions, self.prompt_prefix)
            scores = [s + p for s, p in zip(scores, pen)]
        return scores

    def references(self, prompts: list[str], references) -> list[list[str]]:
        """Each prompt's references as a non-empty list (a single string is one)."""
        references = [None] * len(prompts) if references is None else list(references)
        out = []
        for i, refs in enumerate(references):
            refs = [refs] if isinstance(refs, str) else [r for r in (refs or []) if r is not None]
            if not refs:
                raise RewardError(
                    f"reward={self.name} scores completions against reference texts, but prompt "
                    f"{i} ({prompts[i][:80]!r}) has none: the task gives no references. Use a "
                    "task with references (task=commongen, or task=jsonl with "
                    "task.reference_key), or a reward that needs none (e.g. reward=coverage)."
                )
            out.append([str(r) for r in refs])
        return out

    def metas(self, prompts: list[str], references) -> list[dict]:
        """Each prompt's ``Example.meta``, which must hold ``needs_meta``."""
        references = [None] * len(prompts) if references is None else list(references)
        out = []
        for i, refs in enumerate(references):
            meta = getattr(refs, "meta", None)
            if not meta or self.needs_meta not in meta:
                raise RewardError(
                    f"reward={self.name} reads each prompt's {self.needs_meta!r} (Example.meta), "
                    f"but prompt {i} ({prompts[i][:80]!r}) comes without it. Use the task it is "
                    f"made for ({self.task_hint})."
                )
            out.append(meta)
        return out

    task_hint = ""

    def score(self, prompts: list[str], completions: list[str], references) -> list[float]:
        raise NotImplementedError


def _choice(value, allowed: tuple[str, ...], key: str) -> str:
    """An Enum member or a string from the config, as a plain string, checked."""
    v = str(getattr(value, "value", value))
    if v not in allowed:
        raise ConfigError(f"{key}={v!r}: choose one of {list(allowed)}")
    return v


class MeteorReward(MetricReward):
    """nltk METEOR, max over the references (RL4LMs' CommonGen PPO reward, with
    ``repeat_penalty``). WordNet is loaded when the reward is built, so a machine without it
    fails before training starts."""

    name = "meteor"

    def __init__(self, wordnet_dir: str | None = None, **kw):
        super().__init__(**kw)
        from rft.metrics import wordnet

        self.wordnet_dir = wordnet_dir
        wordnet.load(wordnet_dir)

    def score(self, prompts, completions, references):
        from rft.metrics.meteor import meteor

        return meteor(completions, references, self.wordnet_dir)


class RougeReward(MetricReward):
    """ROUGE F-measure (stemmed) of one variant, max over the references.

    >>> r = RougeReward(variant="rouge1")
    >>> r(["p"], ["the cat sat"], [["the cat sat down", "a dog"]])  # P 1, R 3/4: F = 6/7
    [0.8571428571428571]
    """

    name = "rouge"
    VARIANTS = ("rouge1", "rouge2", "rougeL", "rougeLsum")

    def __init__(self, variant: str = "rouge1", **kw):
        super().__init__(**kw)
        self.variant = _choice(variant, self.VARIANTS, "reward.variant")

    def score(self, prompts, completions, references):
        from rft.metrics.rouge import rouge

        return rouge(completions, references, types=(self.variant,))[self.variant]


class BleuReward(MetricReward):
    """Sentence BLEU-4 of each completion against its references."""

    name = "bleu"
    IMPLEMENTATIONS = ("nmt", "sacrebleu")

    def __init__(self, implementation: str = "nmt", **kw):
        super().__init__(**kw)
        self.implementation = _choice(implementation, self.IMPLEMENTATIONS, "reward.implementation")

    def score(self, prompts, completions, references):
        from rft.metrics.bleu import sentence_nmt_bleu, sentence_sacrebleu

        if self.implementation == "nmt":
            return sentence_nmt_bleu(completions, references)
        return sentence_sacrebleu(completions, references)


def read_reference_groups(path: str | Path, key: str = "reward.idf_references") -> list[list[str]]:
    """Reference groups from a JSONL file: each line a JSON list of strings, or an object with
    a ``references`` or ``scene`` list (CommonGen's JSONL)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"{key}={str(path)!r}: no such file (a JSONL of reference groups)")
    groups = []
    with p.open() as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            refs = row if isinstance(row, list) else row.get("references", row.get("scene"))
            if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
                raise ConfigError(
                    f"{key}: {p}:{n} is neither a JSON list of strings nor an object with a "
                    "`references` or `scene` list of strings"
                )
            groups.append(refs)
    return groups


class CiderReward(MetricReward):
    """CIDEr-D of each completion against its references (x10 scale: CommonGen outputs score
    about 0-3)."""

    name = "cider"
    IDF = ("batch", "references")

    def __init__(self, idf: str = "batch", idf_references: str | None = None, **kw):
        super().__init__(**kw)
        self.idf_mode = _choice(idf, self.IDF, "reward.idf")
        self.idf = None
        if self.idf_mode == "references":
            if not idf_references:
                raise ConfigError(
                    "reward.idf=references needs reward.idf_references: a JSONL file of "
                    "reference groups (e.g. the train references) to take the idf from"
                )
            from rft.metrics.cider import CiderIdf

            self.idf = CiderIdf(read_reference_groups(idf_references))

    def score(self, prompts, completions, references):
        from rft.metrics.cider import cider_d

        return cider_d(completions, references, self.idf)


class SpiderReward(CiderReward):
    """RLGF's SPIDEr reward without SPICE: cider_coeff · CIDEr-D (see the module docstring)."""

    name = "spider"

    def __init__(self, cider_coeff: float = 1.0, **kw):
        super().__init__(**kw)
        self.cider_coeff = float(cider_coeff)
        if "spider" not in _warned:
            _warned.add("spider")
            log.warning(
                "reward=spider: SPICE is unavailable (it needs Java and Stanford CoreNLP), so "
                "this reward is %s x CIDEr-D only, not SPICE + CIDEr as in RLGF.",
                self.cider_coeff,
            )

    def score(self, prompts, completions, references):
        return [self.cider_coeff * s for s in super().score(prompts, completions, references)]


class BertScoreReward(MetricReward):
    """BERTScore F1 (all-MiniLM-L6-v2), max over the references; the model is loaded once, when
    the reward is built."""

    name = "bertscore"

    def __init__(
        self,
        model: str | None = None,
        num_layers: int = 6,
        batch_size: int = 64,
        device: str | None = None,
        **kw,
    ):
        super().__init__(**kw)
        from rft.metrics.bertscore import scorer

        self.model, self.num_layers = model, int(num_layers)
        self.batch_size, self.device = int(batch_size), device
        scorer(model, self.num_layers, device)

    def score(self, prompts, completions, references):
        from rft.metrics.bertscore import bertscore_f1

        return bertscore_f1(
            completions,
            references,
            model=self.model,
            num_layers=self.num_layers,
            batch_size=self.batch_size,
            device=self.device,
        )


class CoverageReward(MetricReward):
    """RLGF's concept coverage: the share of the prompt's concepts (Porter stems) in the output.

    >>> r = CoverageReward()
    >>> r(["generate a sentence with: dog frisbee catch."], ["The dogs are catching it."], None)
    [0.6666666666666666]
    """

    name = "coverage"
    needs_references = False

    def score(self, prompts, completions, references):
        from rft.metrics.coverage import coverage

        concepts = [concept_string(p, self.prompt_prefix).split() for p in prompts]
        return coverage(completions, concepts)


# ------------------------------------------------------ the other GRUE tasks' rewards (§2)
class SacreBleuReward(MetricReward):
    """RL4LMs' ``sacre_bleu`` reward: sacreBLEU corpus BLEU / 100 of the completion alone (exp
    smoothing, no effective order), ``tokenize`` 13a or intl (the vanishing-gradient paper's
    IWSLT runs: intl; its ToTTo runs: 13a).

    >>> r = SacreBleuReward()
    >>> [round(x, 6) for x in r(["p"], ["the cat sat on the mat"], [["the cat sat on the mat"]])]
    [1.0]
    """

    name = "sacrebleu"
    TOKENIZERS = ("13a", "intl", "none", "zh", "char", "ja-mecab", "ko-mecab", "spm", "flores101")

    def __init__(self, tokenize: str = "13a", **kw):
        super().__init__(**kw)
        self.tokenize = _choice(tokenize, self.TOKENIZERS, "reward.tokenize")

    def score(self, prompts, completions, references):
        from rft.metrics.bleu import segment_sacrebleu

        return segment_sacrebleu(completions, references, self.tokenize)


class TerReward(MetricReward):
    """RL4LMs' ``ter`` reward (GRUE IWSLT): 1 - TER / 100 of the completion alone against its
    references, case-insensitive; negative when the edits outnumber the reference's words.

    >>> TerReward()(["p"], ["the cat sat"], [["the cat sat on the mat"]])  # 3 edits / 6 words
    [0.5]
    """

    name = "ter"

    def score(self, prompts, completions, references):
        from rft.metrics.ter import segment_ter

        return [1.0 - t for t in segment_ter(completions, references)]


class ChrfReward(MetricReward):
    """RL4LMs' ``chrf`` reward: chrF / 100 of the completion alone (unused by GRUE)."""

    name = "chrf"

    def score(self, prompts, completions, references):
        from rft.metrics.chrf import segment_chrf

        return segment_chrf(completions, references)


class RougeLMaxReward(MetricReward):
    """RL4LMs' ``rouge_l_max`` reward (GRUE NarrativeQA): py-rouge's ROUGE-L F with GRUE's
    arguments, the best over the references (rft.metrics.rouge_l_max). The stemming table is
    checked when the reward is built."""

    name = "rouge_l_max"

    def __init__(self, **kw):
        super().__init__(**kw)
        from rft.metrics.rouge_l_max import stem_table

        stem_table()

    def score(self, prompts, completions, references):
        from rft.metrics.rouge_l_max import rouge_l_max

        return rouge_l_max(completions, references)


class ParentReward(MetricReward):
    """RL4LMs' ``parent`` reward: the PARENT F of the completion against its ToTTo table and
    references (rft.metrics.totto), read from ``Example.meta["raw_table"]`` (task=totto)."""

    name = "parent"
    needs_references = False
    needs_meta = "raw_table"
    task_hint = "task=totto"

    def score(self, prompts, completions, references, meta):
        from rft.metrics.totto import totto_parent

        res = totto_parent(completions, [m["raw_table"] for m in meta])
        return res["per_example"]["parent_overall_f"]


class IntentAccuracyReward(MetricReward):
    """RL4LMs' ``intent_accuracy`` reward (GRUE DailyDialog): intent_coeff · 1[the classifier
    finds the gold intent] + auto_coeff · METEOR against the reference (rft.metrics.intent;
    ``Example.meta["intent"]``, task=daily_dialog). RL4LMs' METEOR term for the k-th finished
    episode of a batch is the mean METEOR of episodes 1..k (its list grows inside the loop); rft
    uses each completion's own METEOR, and says so once. The classifier (hub id or folder) and
    WordNet are loaded when the reward is built: without them it cannot train, and says why."""

    name = "intent_accuracy"
    needs_meta = "intent"
    task_hint = "task=daily_dialog"

    def __init__(
        self,
        intent_coeff: float = 0.75,
        auto_coeff: float = 0.25,
        model: str | None = None,
        batch_size: int = 32,
        device: str | None = None,
        wordnet_dir: str | None = None,
        **kw,
    ):
        super().__init__(**kw)
        from rft.metrics import wordnet
        from rft.metrics.base import MetricUnavailable
        from rft.metrics.intent import MODEL, classifier

        self.intent_coeff, self.auto_coeff = float(intent_coeff), float(auto_coeff)
        self.model, self.batch_size, self.device = model or MODEL, int(batch_size), device
        self.wordnet_dir = wordnet_dir
        loaded = classifier(self.model, device)
        if isinstance(loaded, MetricUnavailable):
            raise ConfigError(f"reward=intent_accuracy: {loaded} (key: reward.model)")
        if self.auto_coeff:
            wordnet.load(wordnet_dir)
        if "intent_accuracy" not in _warned:
            _warned.add("intent_accuracy")
            log.info(
                "reward=intent_accuracy: the METEOR term is each completion's own METEOR, not "
                "RL4LMs' running mean over the finished episodes of a batch."
            )

    def score(self, prompts, completions, references, meta):
        from rft.metrics.intent import intent_accuracy
        from rft.metrics.meteor import meteor

        hits = intent_accuracy(
            prompts,
            completions,
            [m["intent"][0] for m in meta],
            model=self.model,
            batch_size=self.batch_size,
            device=self.device,
        )
        auto = (
            meteor(completions, references, self.wordnet_dir)
            if self.auto_coeff
            else [0.0] * len(hits)
        )
        return [self.intent_coeff * h + self.auto_coeff * a for h, a in zip(hits, auto)]


class BleurtReward(MetricReward):
    """RL4LMs' ``bleurt`` reward: the BLEURT score of the completion, best over its references
    (rft.metrics.bleurt); the package and checkpoint are loaded when the reward is built."""

    name = "bleurt"

    def __init__(
        self, checkpoint: str | None = None, batch_size: int = 32, device: str | None = None, **kw
    ):
        super().__init__(**kw)
        from rft.metrics.base import MetricUnavailable
        from rft.metrics.bleurt import CHECKPOINT, scorer

        self.checkpoint, self.batch_size, self.device = (
            checkpoint or CHECKPOINT,
            int(batch_size),
            device,
        )
        loaded = scorer(self.checkpoint, device)
        if isinstance(loaded, MetricUnavailable):
            raise ConfigError(f"reward=bleurt: {loaded} (key: reward.checkpoint)")

    def score(self, prompts, completions, references):
        from rft.metrics.bleurt import bleurt

        return bleurt(completions, references, self.checkpoint, self.batch_size, self.device)
