"""A Hugging Face sequence classifier as reward: R = P(label | text), scored in batches.

GRUE IMDB uses ``lvwerra/distilbert-imdb`` on prompt + continuation. Any local folder with a
sequence-classification model works offline.
"""

from __future__ import annotations

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

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

    def _label_index(self, label: str) -> int:
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
            probs = self.model(**enc).logits.float().softmax(-1)[:, self.label_index]
            out += probs.cpu().tolist()
        return out
