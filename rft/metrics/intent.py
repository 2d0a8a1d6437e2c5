"""DailyDialog intent accuracy, as RL4LMs scores it (``IntentAccuracyDailyDialog``;
docs/grue-tasks.md §2.7).

A 4-way RoBERTa classifier, ``rajkumarrrk/roberta-daily-dialog-intent-classifier`` (fine-tuned
by RL4LMs' authors from cardiffnlp/twitter-roberta-base-emotion on DailyDialog with context
size 1), reads the last utterance of the prompt followed directly by the generation:
``last_utt + generation``, where last_utt is the last non-empty piece of
``prompt.split("<EOU>")`` (its trailing space included). It was trained on
``last_utt + "<EOU>" + reference``: the missing ``<EOU>`` is RL4LMs' own mismatch, kept for
parity. Inputs are truncated at the classifier's maximum length and padded per batch. A
completion scores 1 when the argmax label equals the gold intent - 1 (act 1 inform .. 4
commissive -> label 0 .. 3), else 0; the corpus value is the mean.

The classifier comes from the hub (or a local folder: ``intent_model``). Where it cannot be
loaded (no network) the metric is not computed: rft.metrics reports it in
``MetricScores.unavailable`` with the reason, once per process, never as a 0.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from rft.metrics.base import MetricUnavailable

MODEL = "rajkumarrrk/roberta-daily-dialog-intent-classifier"
EOU = "<EOU>"


def classifier_input(prompt: str, completion: str) -> str:
    """What the classifier reads: the prompt's last non-empty utterance, then the completion.

    >>> classifier_input("Hi . <EOU> How are you ?  <EOU>", "Fine .")
    ' How are you ?  Fine .'
    """
    history = [u for u in prompt.split(EOU) if u != ""]
    return (history[-1] if history else "") + completion


@functools.cache
def classifier(model: str = MODEL, device: str | None = None):
    """(tokenizer, model, device), loaded once per process; a failure is a MetricUnavailable
    whose reason is kept (a second call does not try the hub again)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(model)
        net = AutoModelForSequenceClassification.from_pretrained(model).eval()
    except Exception as e:  # noqa: BLE001 - offline / missing: the metric is n/a
        first = (str(e).strip().splitlines() or [""])[0][:160]
        return MetricUnavailable(
            f"intent_accuracy needs the classifier {model!r}, which could not be loaded "
            f"({type(e).__name__}: {first}); n/a, not 0. With a network it is fetched from the "
            "hub; offline, point task.metric_options.intent_model at a local copy."
        )
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return tok, net.to(dev), dev


def intent_accuracy(
    prompts: Sequence[str],
    completions: Sequence[str],
    intents: Sequence[int],
    model: str = MODEL,
    batch_size: int = 32,
    device: str | None = None,
) -> list[float]:
    """1.0 or 0.0 per completion: does the classifier's label equal the gold intent - 1?"""
    import torch

    loaded = classifier(model, device)
    if isinstance(loaded, MetricUnavailable):
        raise loaded
    tok, net, dev = loaded
    texts = [classifier_input(p, c) for p, c in zip(prompts, completions)]
    out: list[float] = []
    with torch.no_grad():
        for s in range(0, len(texts), batch_size):
            enc = tok(texts[s : s + batch_size], return_tensors="pt", truncation=True, padding=True)
            pred = net(**{k: v.to(dev) for k, v in enc.items()}).logits.argmax(-1).tolist()
            gold = [int(i) - 1 for i in intents[s : s + batch_size]]
            out += [float(p == g) for p, g in zip(pred, gold)]
    return out
