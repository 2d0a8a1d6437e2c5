"""A Hugging Face sequence classifier as reward: R = P(label | text), scored in batches.

GRUE IMDB uses ``lvwerra/distilbert-imdb`` on prompt + continuation. Any local folder with a
sequence-classification model works offline, among them the ``<run>/reward_model`` folders that
``alg=reward_classifier`` and ``alg=reward_model`` write. A model with a single output (a
Bradley–Terry reward model) has no probabilities: its reward is the raw score (the logit), and
``reward.label`` is not used.
"""

from __future__ import annotations

import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from rft.errors import ConfigError


class ClassifierReward:
    def __init__(
        self,
        model: str,
        label: str = "POSITIVE",
        include_prompt: bool = True,
        batch_size: int = 32,
        max_length: int = 512,
        device: str | None = None,
    ):
        try:
            self._check_is_classifier(model, AutoConfig.from_pretrained(model))
            self.tokenizer = AutoTokenizer.from_pretrained(model)
            self.model = AutoModelForSequenceClassification.from_pretrained(model).eval()
        except OSError as e:
            raise ConfigError(
                f"reward.model={model!r} could not be loaded ({str(e).splitlines()[0]}). Without a "
                "network use a local folder, or reward=sentiment_vader."
            ) from None
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model.to(self.device)
        self.label_index = self._label_index(label)
        self.include_prompt = include_prompt
        self.batch_size = batch_size
        self.max_length = max_length

    @staticmethod
    def _check_is_classifier(model: str, config) -> None:
        """A causal LM folder loads into AutoModelForSequenceClassification with a freshly
        initialised head (only a warning): the reward would be noise. Refuse it."""
        archs = getattr(config, "architectures", None) or []
        if archs and not any(a.endswith("ForSequenceClassification") for a in archs):
            raise ConfigError(
                f"reward.model={model!r} is not a sequence classifier (its config.json names "
                f"{archs}); reward=classifier would score with an untrained head. Point it at a "
                "...ForSequenceClassification model, or train one on your data with "
                "alg=reward_classifier (labels) or alg=reward_model (preference pairs) and use "
                "reward.model=<run>/reward_model."
            )

    def _label_index(self, label: str) -> int:
        if self.model.config.num_labels == 1:
            return 0  # a scalar scorer: its one output is the reward (see the module docstring)
        id2label = {int(k): str(v) for k, v in self.model.config.id2label.items()}
        if str(label).isdigit() and int(label) in id2label:
            return int(label)
        for i, name in id2label.items():
            if name.lower() == str(label).lower():
                return i
        raise ConfigError(f"reward.label={label!r} is not a label of this model: {id2label}")

    @torch.no_grad()
    def __call__(self, prompts: list[str], completions: list[str], references=None) -> list[float]:
        texts = (
            [p + c for p, c in zip(prompts, completions)] if self.include_prompt else completions
        )
        out: list[float] = []
        for s in range(0, len(texts), self.batch_size):
            enc = self.tokenizer(
                texts[s : s + self.batch_size],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=self.max_length,
            ).to(self.device)
            logits = self.model(**enc).logits.float()
            if logits.shape[-1] == 1:  # a Bradley–Terry scorer: the raw score
                out += logits[:, 0].cpu().tolist()
                continue
            probs = logits.softmax(-1)[:, self.label_index]
            out += probs.cpu().tolist()
        return out
