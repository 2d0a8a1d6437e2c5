"""V_ref(x): the frozen reference policy's value of a prompt, the baseline of A-LoL's
advantage A = R(x, y) - V_ref(x) (docs/algorithms.md §3).

The head follows the reference code's ``ValueHeadAttention``: one learned query attends over
π_ref's last-layer hidden states of the prompt (8 heads, fewer when the hidden size is not
divisible by 8), then a linear map and ``sigmoid · max_value``. It is fitted by MSE to the
rewards of π_ref's own samples for validation prompts; the epoch with the lowest MSE on a
held-out share of those prompts is kept.

Differences from the reference code (also listed in rft/alg/alol.py):
- the attention gets the prompt's padding mask (the reference code attends to pad positions);
- the best epoch is chosen on held-out prompts, not on the training MSE;
- π_ref's hidden states are computed once per prompt and reused across epochs (frozen model).
"""

from __future__ import annotations

import copy
import logging
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rft.model.policy import PolicyLM
from rft.optim import adamw
from rft.progress import batch_starts
from rft.rollout.prompts import encode_prompts

log = logging.getLogger(__name__)


def n_heads_for(hidden_size: int, wanted: int = 8) -> int:
    """The largest head count ≤ ``wanted`` that divides ``hidden_size``."""
    return next(h for h in range(min(wanted, hidden_size), 0, -1) if hidden_size % h == 0)


class PromptValueHead(nn.Module):
    """(B, P, H) prompt states + (B, P) mask -> (B,) values in (0, max_value)."""

    def __init__(
        self, hidden_size: int, max_value: float = 1.0, n_heads: int = 8, dropout: float = 0.1
    ):
        super().__init__()
        self.max_value = max_value
        self.dropout = nn.Dropout(dropout)
        self.query = nn.Parameter(torch.randn(hidden_size))  # reference code: randn(hidden)
        self.attn = nn.MultiheadAttention(
            hidden_size, n_heads_for(hidden_size, n_heads), batch_first=True
        )
        self.linear = nn.Linear(hidden_size, 1)

    def forward(self, hidden: Tensor, mask: Tensor) -> Tensor:
        h = self.dropout(hidden.to(self.linear.weight.dtype))  # (B, P, H)
        q = self.query.expand(h.shape[0], 1, -1)  # (B, 1, H)
        out, _ = self.attn(q, h, h, key_padding_mask=~mask.bool(), need_weights=False)  # (B, 1, H)
        return (
            torch.sigmoid(self.linear(self.dropout(out)).squeeze(-1).squeeze(-1)) * self.max_value
        )  # (B,)


@torch.no_grad()
def prompt_hidden_states(lm: PolicyLM, ids: Tensor, mask: Tensor) -> Tensor:
    """π's last-layer hidden states of left-padded prompts (B, P) -> (B, P, H).

    Causal LMs get position ids from the mask cumsum, as PolicyLM.forward (and generate) use;
    seq2seq models give their encoder's output for the input PolicyLM gives it (prompt + EOS
    for T5), cut back to the prompt's P positions so the states match ``mask``.
    """
    if lm.is_seq2seq:
        enc_ids, enc_mask = lm.encoder_inputs(ids, mask)
        out = lm.model.get_encoder()(input_ids=enc_ids, attention_mask=enc_mask)
        return out.last_hidden_state[:, : ids.shape[1]]
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    out = lm.model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=pos,
        output_hidden_states=True,
        logits_to_keep=1,
    )
    return out.hidden_states[-1]


@torch.no_grad()
def prompt_features(
    lm: PolicyLM,
    prompts: list[str],
    max_tokens: int,
    batch_size: int,
    device: torch.device,
    truncation: str = "left",
) -> tuple[Tensor, Tensor]:
    """Prompt states of every prompt, left-padded to a common width P: (N, P, H) float32 and
    (N, P) mask, on the CPU. ``truncation``: the task's prompt_truncation."""
    feats, masks = [], []
    for s in batch_starts(len(prompts), batch_size, "V_ref: prompt states"):
        chunk = prompts[s : s + batch_size]
        ids, mask = encode_prompts(lm.tokenizer, chunk, max_tokens, device, truncation)
        feats.append(prompt_hidden_states(lm, ids, mask).float().cpu())
        masks.append(mask.cpu())
    width = max(f.shape[1] for f in feats)
    feats = [F.pad(f, (0, 0, width - f.shape[1], 0)) for f in feats]  # pad the P dim on the left
    masks = [F.pad(m, (width - m.shape[1], 0)) for m in masks]
    return torch.cat(feats), torch.cat(masks)


@torch.no_grad()
def predict_values(
    head: PromptValueHead,
    lm: PolicyLM,
    prompts: list[str],
    max_tokens: int,
    batch_size: int,
    device: torch.device,
    truncation: str = "left",
) -> Tensor:
    """V_ref(x) for each prompt, (N,) float32 on the CPU. ``truncation``: the task's
    prompt_truncation."""
    head.eval().to(device)
    out = []
    for s in batch_starts(len(prompts), batch_size, "V_ref(x)"):
        chunk = prompts[s : s + batch_size]
        ids, mask = encode_prompts(lm.tokenizer, chunk, max_tokens, device, truncation)
        hidden = prompt_hidden_states(lm, ids, mask).float()
        with torch.autocast(device.type, enabled=False):
            out.append(head(hidden, mask).float().cpu())
    head.cpu()
    return torch.cat(out) if out else torch.zeros(0)


@torch.no_grad()
def sample_rewards(
    lm: PolicyLM,
    reward_fn,
    prompts: list[str],
    references: list,
    *,
    k: int,
    generation,
    prompt_max_tokens: int,
    max_new_tokens: int,
    min_new_tokens: int,
    batch_size: int,
    seed: int,
    device: torch.device,
    prompt_truncation: str = "left",
) -> tuple[Tensor, Tensor]:
    """π's own samples for each prompt, scored: (rewards (N·k,), prompt index (N·k,)).

    The RNG is forked and seeded, so the samples depend on ``seed`` only."""
    idx = [i for i in range(len(prompts)) for _ in range(k)]
    texts: list[str] = []
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for s in batch_starts(len(idx), batch_size, "sampling"):
            ids, mask = encode_prompts(
                lm.tokenizer,
                [prompts[i] for i in idx[s : s + batch_size]],
                prompt_max_tokens,
                device,
                prompt_truncation,
            )
            comp = lm.generate(ids, mask, max_new_tokens, min_new_tokens, generation)
            texts += lm.tokenizer.batch_decode(comp.ids, skip_special_tokens=True)
    scores = []
    # the reward in full precision, as for the train pairs
    for s in batch_starts(len(idx), batch_size, "scoring"):
        chunk = idx[s : s + batch_size]
        with torch.autocast(device.type, enabled=False):
            scores.append(
                torch.as_tensor(
                    reward_fn(
                        [prompts[i] for i in chunk],
                        texts[s : s + batch_size],
                        [references[i] for i in chunk],
                    ),
                    dtype=torch.float32,
                )
            )
    return torch.cat(scores), torch.tensor(idx)


def fit_value_head(
    head: PromptValueHead,
    feats: Tensor,
    mask: Tensor,
    targets: Tensor,
    prompt_idx: Tensor,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    holdout_frac: float,
    seed: int,
) -> dict:
    """Fit ``head`` by MSE to ``targets`` (S,) of samples whose prompt states are
    ``feats[prompt_idx]`` ((N, P, H), mask (N, P)); load the best epoch's weights into ``head``.

    A seeded ``holdout_frac`` of the PROMPTS (all their samples) is held out and picks the best
    epoch; with fewer than 2 prompts everything trains and the training MSE picks it.
    Returns val_mse (best), val_mse_init (before training), val_mse_const (predicting the training
    mean), train_mse (best epoch), best_epoch (0 = the untrained head) and per-epoch history.
    """
    # the head trains in fp32 whatever the run's precision (features are on the CPU)
    with torch.autocast("cpu", enabled=False):
        return _fit(
            head, feats, mask, targets, prompt_idx, epochs, lr, batch_size, holdout_frac, seed
        )


def _fit(
    head, feats, mask, targets, prompt_idx, epochs, lr, batch_size, holdout_frac, seed
) -> dict:
    gen = torch.Generator().manual_seed(seed)
    tr, va, n_hold = holdout_split(feats.shape[0], prompt_idx, holdout_frac, gen)

    def mse(rows: Tensor) -> float:
        return sample_mse(head, feats, mask, targets, prompt_idx, rows)

    opt = adamw(head.parameters(), lr=lr)
    best = _snapshot(head, 0, mse(va), mse(tr))
    out = {
        "val_mse_init": best["val_mse"],
        "val_mse_const": (targets[va] - targets[tr].mean()).pow(2).mean().item(),
        "history": [],
    }
    for epoch in range(1, epochs + 1):
        head.train()
        for b in tr[torch.randperm(len(tr), generator=gen)].split(batch_size):
            loss = F.mse_loss(head(feats[prompt_idx[b]], mask[prompt_idx[b]]), targets[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        row = {"epoch": epoch, "train_mse": mse(tr), "val_mse": mse(va)}
        out["history"].append(row)
        log.info(
            "V_ref epoch %d: train MSE %.4g, held-out MSE %.4g",
            epoch,
            row["train_mse"],
            row["val_mse"],
        )
        if row["val_mse"] < best["val_mse"]:
            best = _snapshot(head, epoch, row["val_mse"], row["train_mse"])
    head.load_state_dict(best["state"])
    head.eval()
    out.update(
        val_mse=best["val_mse"],
        train_mse=best["train_mse"],
        best_epoch=best["epoch"],
        n_train=int(len(tr)),
        n_holdout=int(len(va)) if n_hold else 0,
    )
    return out


def holdout_split(
    n_prompts: int, prompt_idx: Tensor, holdout_frac: float, gen: torch.Generator
) -> tuple[Tensor, Tensor, int]:
    """(train sample rows, held-out sample rows, held-out prompt count): a ``holdout_frac``
    share of the PROMPTS, drawn from ``gen``, holds out all their samples. With too few prompts
    nothing is held out and the held-out rows are the training rows (a warning says so)."""
    perm = torch.randperm(n_prompts, generator=gen)
    n_hold = (
        min(n_prompts - 1, max(1, math.ceil(holdout_frac * n_prompts))) if holdout_frac > 0 else 0
    )
    held = torch.zeros(n_prompts, dtype=torch.bool)
    held[perm[:n_hold]] = True
    is_val = held[prompt_idx]
    tr, va = (~is_val).nonzero().flatten(), is_val.nonzero().flatten()
    if len(va) == 0:
        log.warning(
            "V_ref: %d prompt(s) are too few to hold any out; the best epoch is chosen "
            "on the training MSE",
            n_prompts,
        )
        va = tr
    return tr, va, n_hold


@torch.no_grad()
def sample_mse(
    head: PromptValueHead, feats: Tensor, mask: Tensor, targets: Tensor, prompt_idx, rows: Tensor
) -> float:
    """The head's MSE (eval mode) on the samples ``rows``, in chunks of 256."""
    head.eval()
    err = [
        (head(feats[prompt_idx[b]], mask[prompt_idx[b]]) - targets[b]).pow(2)
        for b in rows.split(256)
    ]
    return torch.cat(err).mean().item()


def _snapshot(head: PromptValueHead, epoch: int, val_mse: float, train_mse: float) -> dict:
    """A candidate best epoch: its MSEs and a copy of the head's weights."""
    return {
        "val_mse": val_mse,
        "epoch": epoch,
        "state": copy.deepcopy(head.state_dict()),
        "train_mse": train_mse,
    }


def percentiles(x: Tensor, qs=(0, 10, 25, 50, 75, 90, 100)) -> dict[str, float]:
    v = np.percentile(x.double().numpy(), qs) if len(x) else [float("nan")] * len(qs)
    return {f"p{q:02d}" if q < 100 else "p100": float(p) for q, p in zip(qs, v)}
