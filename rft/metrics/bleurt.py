"""BLEURT (Sellam et al., ACL 2020), as RL4LMs would compute it through HF's ``bleurt`` script
(docs/grue-tasks.md §2.4): the learned score of each (reference, completion) pair, the corpus
value their mean. No active GRUE config computes it (its lines are commented out); HF's script
with no config name uses BLEURT-base-128.

Here it runs on the PyTorch port (the ``bleurt-pytorch`` package; Google's original is
TensorFlow and not on PyPI) with a ported checkpoint from the hub or a local folder
(``bleurt_checkpoint``; default ``lucadiliello/bleurt-base-128``, the port of BLEURT-base-128).
Where the package or the checkpoint is missing (no network) the metric is not computed:
rft.metrics reports it in ``MetricScores.unavailable`` with the reason, once per process, never
as a 0. HF's script takes one reference per prediction; with several, rft keeps the best score.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from rft.metrics.base import MetricUnavailable

CHECKPOINT = "lucadiliello/bleurt-base-128"


@functools.cache
def scorer(checkpoint: str = CHECKPOINT, device: str | None = None):
    """(tokenizer, model, device), loaded once per process, or the MetricUnavailable saying why
    not (kept, so the hub is not asked again)."""
    import torch

    try:
        from bleurt_pytorch import BleurtForSequenceClassification, BleurtTokenizer
    except ImportError:
        return MetricUnavailable(
            "bleurt needs the bleurt-pytorch package (pip install bleurt-pytorch==0.0.1, or "
            "pip install -e '.[bleurt]'); n/a, not 0."
        )
    try:
        tok = BleurtTokenizer.from_pretrained(checkpoint)
        net = BleurtForSequenceClassification.from_pretrained(checkpoint).eval()
    except Exception as e:  # noqa: BLE001 - offline / missing: the metric is n/a
        first = (str(e).strip().splitlines() or [""])[0][:160]
        return MetricUnavailable(
            f"bleurt needs the checkpoint {checkpoint!r}, which could not be loaded "
            f"({type(e).__name__}: {first}); n/a, not 0. Offline, point "
            "task.metric_options.bleurt_checkpoint at a local copy."
        )
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return tok, net.to(dev), dev


def bleurt(
    completions: Sequence[str],
    references: Sequence[Sequence[str]],
    checkpoint: str = CHECKPOINT,
    batch_size: int = 32,
    device: str | None = None,
) -> list[float]:
    """One BLEURT score per completion, the best over its references."""
    import torch

    loaded = scorer(checkpoint, device)
    if isinstance(loaded, MetricUnavailable):
        raise loaded
    tok, net, dev = loaded
    pairs = [(i, r, h) for i, (h, refs) in enumerate(zip(completions, references)) for r in refs]
    best = [float("-inf")] * len(completions)
    with torch.no_grad():
        for s in range(0, len(pairs), batch_size):
            chunk = pairs[s : s + batch_size]
            enc = tok(
                [r for _, r, _ in chunk],
                [h for _, _, h in chunk],
                padding="longest",
                truncation=True,
                return_tensors="pt",
            )
            scores = net(**{k: v.to(dev) for k, v in enc.items()}).logits.flatten().tolist()
            for (i, _, _), v in zip(chunk, scores):
                best[i] = max(best[i], float(v))
    return best
