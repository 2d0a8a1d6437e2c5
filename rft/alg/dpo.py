"""DPO and its variants on preference pairs (x, y_w, y_l) (docs/algorithms.md §11).

One step-based module runs ``alg=dpo`` (sigmoid loss), ``alg=ipo``, ``alg=hinge`` and
``alg=dpo_ref_free``; ``alg.loss`` and ``alg.reference_free`` pick the formula of
``rft.core.dpo``, and the batch loss is its mean over pairs.

Before training (``prepare()``, which train() calls once before fit):
  1. the pairs: ``alg.pairs.source=task`` takes the task's own (prompt, chosen, rejected) rows
     (task=jsonl with task.chosen_key / task.rejected_key); ``sampled`` draws
     ``pairs.samples_per_prompt`` completions of ``pairs.policy`` (null: the initial policy, else
     a run or policy folder) for each train prompt, scores them with the configured reward and
     keeps best vs worst, dropping prompts whose best and worst score the same (ties). Either way
     ``pairs.n_prompts`` > 0 keeps a seeded subset;
  2. π_ref's sequence log-probs of every chosen and rejected completion, ONCE (not with
     ``alg.reference_free``): training then runs only the policy;
  3. the step budget: ``alg.max_steps`` (or ``dataset_epochs · ceil(N / batch_size)`` when -1).

Results shared across runs (the run's result store, rft.store: ``store.*``), keyed by what
determines them (and the run environment: precision, threads, versions, ...):
  dpo/pairs      the sampling policy's weights, the reward, the prompts, samples_per_prompt,
                 the generation settings, the task's lengths, the seed (texts and scores)
  dpo/ref_logps  π_ref's weights, the pair texts, the task's lengths
A rerun, a resume or another job on the same pairs reads them back and runs neither the
sampler, the reward nor π_ref; with store.reuse=false they are computed again.
The pairs themselves go to ``<run>/preference_pairs.jsonl`` (prompt, chosen, rejected and, when
sampled, reward_chosen / reward_rejected): the A-LoL family learns from the same samples with
``alg.data_path=<it> alg.data_completion_keys=[chosen]``.

Each step: B pairs drawn by the step-based base's sampler (rft.alg.steps: seeded permutation
passes, a pure function of (seed, step), so a resumed run sees the same batches); chosen and rejected go through ONE
forward pass of the policy (the 2B sequences concatenated: one padding width, one graph).

Logged once at step 0: pairs/n and, for sampled pairs, pairs/n_prompts, pairs/ties_dropped,
pairs/reward_gap_{mean,min,max}, pairs/reward_chosen_mean, pairs/reward_rejected_mean; budget/*.
Per step: loss/policy, rewards/{chosen,rejected,accuracies,margins} (batch means, the formulas
of rft.core.dpo.preference_rewards), policy/logp_chosen, policy/logp_rejected (sums over tokens).

Continuations are cut to task.max_new_tokens tokens and end with EOS only when shorter, as the
A-LoL family's and SFT's targets.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import Tensor

from rft.alg.steps import StepModule, base_steps
from rft.config import choice
from rft.core import logprobs_from_logits, sequence_logprob
from rft.core.dpo import preference_loss, preference_rewards
from rft.device import hardware_device
from rft.errors import ConfigError, DataError
from rft.io import write_json_atomic, write_text_atomic
from rft.progress import batch_starts
from rft.rng import offline_pairs_rng, preference_sample_seed
from rft.rollout.prompts import encode_continuations, encode_prompts
from rft.store.cached import cached_tensor
from rft.store.fingerprint import policy_parts, reward_parts, strings_fingerprint
from rft.store.keys import result_key, task_decoding

log = logging.getLogger(__name__)


@dataclass
class PreferencePair:
    prompt: str
    chosen: str
    rejected: str
    meta: dict = field(default_factory=dict)


def sequence_logps(lm, prompts: list[str], conts: list[str], task, device) -> tuple[Tensor, Tensor]:
    """log π(y|x) summed over the continuation tokens, and the token counts, each (n,): one
    forward pass of ``lm`` over all n (prompt, continuation) rows. The same function scores
    π_ref's cache and the policy in training, so at step 1 (π_θ = π_ref) Δ is 0 up to rounding."""
    tok = lm.tokenizer
    p_ids, p_mask = encode_prompts(
        tok, prompts, task.prompt_max_tokens, device, task.prompt_truncation
    )
    c_ids, c_mask = encode_continuations(tok, conts, task.max_new_tokens, device=device)
    logits, _ = lm(p_ids, p_mask, c_ids, c_mask)
    logp = logprobs_from_logits(logits, c_ids)  # (n, T)
    return sequence_logprob(logp, c_mask), c_mask.sum(-1).float()


class DPO(StepModule):
    @classmethod
    def check_config(cls, cfg) -> None:
        """Ranges a schema cannot express; each message names the key and the fix."""
        super().check_config(cfg)
        a, p = cfg.alg, cfg.alg.pairs
        loss_name, source = choice(a.loss), choice(p.source)
        checks = [
            (a.kl.beta > 0, f"alg.kl.beta={a.kl.beta}: must be > 0."),
            (
                0 <= a.label_smoothing < 0.5,
                f"alg.label_smoothing={a.label_smoothing}: must be in [0, 0.5).",
            ),
            (
                a.label_smoothing == 0 or loss_name == "sigmoid",
                f"alg.label_smoothing={a.label_smoothing} applies to alg.loss=sigmoid only "
                f"(alg.loss={loss_name}): set alg.label_smoothing=0.",
            ),
            (p.n_prompts != 0, "alg.pairs.n_prompts=0: use -1 for all or a positive count."),
        ]
        if source == "sampled":
            checks.append(
                (
                    p.samples_per_prompt >= 2,
                    f"alg.pairs.samples_per_prompt={p.samples_per_prompt}: ranking needs ≥ 2 "
                    "completions per prompt.",
                )
            )
        else:
            checks.append(
                (
                    p.policy is None,
                    f"alg.pairs.policy={p.policy!r} samples pairs only with "
                    "alg.pairs.source=sampled: set that, or alg.pairs.policy=null.",
                )
            )
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)

    def __init__(self, cfg, task, policy, ref, reward_fn, run_dir):
        super().__init__(cfg, task, policy, ref, reward_fn, run_dir)
        a = self.a = cfg.alg
        self.loss_name, self.source = choice(a.loss), choice(a.pairs.source)
        if ref is None and not a.reference_free:
            raise ConfigError(
                f"alg={a.name}: the frozen reference policy is missing; it is needed unless "
                "alg.reference_free=true."
            )
        self.reward_id = OmegaConf.to_yaml(cfg.reward, resolve=True)
        self.max_grad_norm = a.max_grad_norm
        self.ref_logps: Tensor | None = None  # (N, 2): chosen, rejected

    # ------------------------------------------------------------------ prepare
    def prepare(self) -> None:
        """The pairs, π_ref's log-probs, the budget and preference_summary.json (module
        docstring); run once, before the trainer is built (it needs the budget)."""
        t0 = time.perf_counter()
        if self.source == "task":
            self.pairs = self.task_pairs()
        else:
            self.pairs = self.sampled_pairs()
        self.stats["pairs/n"] = len(self.pairs)
        self.items = self.pairs
        if not self.a.reference_free:
            self.ref_logps = self.reference_logps()
        n_steps = base_steps(
            len(self.pairs), self.a.batch_size, self.a.max_steps, self.a.dataset_epochs
        )
        self.set_budget(n_steps, self.a.eval_every)
        self.stats["budget/max_steps"] = self.max_steps
        log.info(
            "%s: %d optimizer steps over %d pairs", self.a.name, self.max_steps, len(self.pairs)
        )
        self.stats["time/preference_prep_s"] = time.perf_counter() - t0
        self._write_pairs()
        write_json_atomic(
            self.run_dir / "preference_summary.json",
            {"alg": self.a.name, "loss": self.loss_name, "source": self.source, **self.stats},
        )

    def _write_pairs(self) -> None:
        """<run>/preference_pairs.jsonl: the pairs this run learns from (prompt, chosen,
        rejected and, for sampled pairs, their rewards), so other algorithms can learn from the
        same samples (the A-LoL family: alg.data_path=<it> alg.data_completion_keys=[chosen])."""
        scalar = (str, int, float, bool, type(None))
        lines = []
        for p in self.pairs:
            meta = {k: v for k, v in p.meta.items() if isinstance(v, scalar)}
            row = {**meta, "prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected}
            lines.append(json.dumps(row, ensure_ascii=False))
        write_text_atomic(self.run_dir / "preference_pairs.jsonl", "\n".join(lines) + "\n")

    def _subset(self, items: list) -> list:
        """The first pairs.n_prompts items of a seeded permutation, in data order."""
        n = self.a.pairs.n_prompts
        if 0 < n < len(items):
            keep = np.sort(offline_pairs_rng(self.cfg.seed).permutation(len(items))[:n])
            items = [items[i] for i in keep]
        return items

    def task_pairs(self) -> list[PreferencePair]:
        rows = [e for e in self.task.train if "chosen" in e.meta and "rejected" in e.meta]
        if not rows:
            raise DataError(
                f"task={self.task.name}: the train split has no preference pairs. For task=jsonl "
                "name the columns with task.chosen_key=<field> task.rejected_key=<field>; for any "
                "task, build pairs from the policy's own samples ranked by the reward with "
                "alg.pairs.source=sampled."
            )
        return [
            PreferencePair(e.prompt, e.meta["chosen"], e.meta["rejected"], dict(e.meta))
            for e in self._subset(rows)
        ]

    def _sampling_policy(self):
        """The policy that samples the pairs."""
        folder = self.a.pairs.policy
        if folder:
            from rft.model.build import load_policy

            lm = load_policy(self.cfg.model, init_from=str(folder))
            lm.requires_grad_(False)
            lm.eval()
        else:  # the initial policy: π_ref is its frozen copy (the policy where there is none)
            lm = self.ref if self.ref is not None else self.policy
        return lm

    def sampled_pairs(self) -> list[PreferencePair]:
        c, t, p = self.cfg, self.task, self.a.pairs
        examples = self._subset(list(self.task.train))
        prompts = [e.prompt for e in examples]
        lm = self._sampling_policy()
        key = result_key(
            "dpo/pairs",
            c,
            sampler=policy_parts(lm),
            reward=reward_parts(c.reward),
            prompts=strings_fingerprint(prompts),
            samples_per_prompt=p.samples_per_prompt,
            generation=p.generation,
            task=task_decoding(t),
            seed=c.seed,
        )

        def compute() -> dict:
            with hardware_device(c, lm) as device:
                texts, scores = self._sample_and_score(lm, examples, device)
            return {"texts": texts, "scores": scores}

        sampled, _ = cached_tensor(self.store, key, compute, what="preference_pairs")
        texts, scores = sampled["texts"], sampled["scores"]
        return self._rank(prompts, texts, scores)

    def _sample_and_score(self, lm, examples, device) -> tuple[list[str], Tensor]:
        """k completions per prompt (prompt-major order) and their rewards (N·k,)."""
        t, p, bs = self.task, self.a.pairs, self.a.score_batch_size
        k = p.samples_per_prompt
        idx = [i for i in range(len(examples)) for _ in range(k)]
        texts: list[str] = []
        log.info("DPO: sampling %d completions for each of %d prompts", k, len(examples))
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(preference_sample_seed(self.cfg.seed))
            for s in batch_starts(len(idx), bs, "sampling pairs"):
                ids, mask = encode_prompts(
                    lm.tokenizer,
                    [examples[i].prompt for i in idx[s : s + bs]],
                    t.prompt_max_tokens,
                    device,
                    t.prompt_truncation,
                )
                comp = lm.generate(ids, mask, t.max_new_tokens, t.min_new_tokens, p.generation)
                texts += lm.tokenizer.batch_decode(comp.ids, skip_special_tokens=True)
        scores = []
        for s in batch_starts(len(idx), bs, "scoring pairs"):
            chunk = idx[s : s + bs]
            with torch.autocast(device.type, enabled=False):  # the reward in full precision
                r = self.reward_fn(
                    [examples[i].prompt for i in chunk],
                    texts[s : s + bs],
                    [examples[i].reward_references for i in chunk],
                )
            scores.append(torch.as_tensor(r, dtype=torch.float32))
        return texts, torch.cat(scores)

    def _rank(self, prompts: list[str], texts: list[str], scores: Tensor) -> list[PreferencePair]:
        """Best vs worst completion of each prompt; prompts whose best and worst score the same
        (ties) or whose best or worst is empty are dropped, and counted."""
        k = self.a.pairs.samples_per_prompt
        grid = scores.view(len(prompts), k)
        pairs, gaps, best_r, worst_r, ties, empty = [], [], [], [], 0, 0
        for i, prompt in enumerate(prompts):
            row = grid[i]
            b, w = int(row.argmax()), int(row.argmin())  # the first of equal scores
            if not bool(row[b] > row[w]):
                ties += 1
                continue
            chosen, rejected = texts[i * k + b], texts[i * k + w]
            if not chosen.strip() or not rejected.strip():
                empty += 1
                continue
            meta = {
                "prompt_index": i,
                "reward_chosen": float(row[b]),
                "reward_rejected": float(row[w]),
            }
            pairs.append(PreferencePair(prompt, chosen, rejected, meta))
            gaps.append(float(row[b] - row[w]))
            best_r.append(float(row[b]))
            worst_r.append(float(row[w]))
        self.stats.update(
            {
                "pairs/n_prompts": len(prompts),
                "pairs/ties_dropped": ties,
                "pairs/empty_dropped": empty,
            }
        )
        if not pairs:
            raise DataError(
                f"alg.pairs.source=sampled: all {len(prompts)} prompts gave ties ({ties}) or empty "
                f"completions ({empty}) among their {k} samples, so there is no preference pair. "
                "Raise alg.pairs.samples_per_prompt, sample more diversely "
                "(alg.pairs.generation), or use a reward that separates completions."
            )
        g = torch.tensor(gaps)
        self.stats.update(
            {
                "pairs/reward_gap_mean": g.mean().item(),
                "pairs/reward_gap_min": g.min().item(),
                "pairs/reward_gap_max": g.max().item(),
                "pairs/reward_chosen_mean": float(np.mean(best_r)),
                "pairs/reward_rejected_mean": float(np.mean(worst_r)),
            }
        )
        log.info(
            "DPO: %d pairs from %d prompts (%d ties, %d empty dropped); reward gap mean %.4g",
            len(pairs),
            len(prompts),
            ties,
            empty,
            self.stats["pairs/reward_gap_mean"],
        )
        return pairs

    def reference_logps(self) -> Tensor:
        """π_ref's (log π_ref(y_w|x), log π_ref(y_l|x)) for every pair, (N, 2); cached."""
        c, t = self.cfg, self.task
        key = result_key(
            "dpo/ref_logps",
            c,
            reference=policy_parts(self.ref),
            pairs=strings_fingerprint([[p.prompt, p.chosen, p.rejected] for p in self.pairs]),
            task=task_decoding(t),
        )
        logps, _ = cached_tensor(self.store, key, self._reference_logps, what="ref_logps")
        return logps

    def _reference_logps(self) -> Tensor:
        c, t = self.cfg, self.task
        out = []
        bs = max(1, self.a.score_batch_size // 2)  # pairs per batch: 2 sequences each
        with hardware_device(c, self.ref) as device, torch.no_grad():
            for s in batch_starts(len(self.pairs), bs, "π_ref log-probs"):
                chunk = self.pairs[s : s + bs]
                logp, _ = sequence_logps(
                    self.ref,
                    [p.prompt for p in chunk] * 2,
                    [p.chosen for p in chunk] + [p.rejected for p in chunk],
                    t,
                    device,
                )
                out.append(logp.float().cpu().view(2, len(chunk)).T)
        return torch.cat(out)

    # ------------------------------------------------------------------ loss
    def training_step(self, batch, batch_idx):
        a, pairs = self.a, [self.pairs[i] for i in batch]
        n = len(pairs)
        logp, lengths = sequence_logps(
            self.policy,
            [p.prompt for p in pairs] * 2,
            [p.chosen for p in pairs] + [p.rejected for p in pairs],
            self.task,
            self.device,
        )  # (2B,): the chosen rows, then the rejected ones
        pc, pr = logp[:n], logp[n:]
        rc = rr = None
        if self.ref_logps is not None:
            ref = self.ref_logps[torch.as_tensor(batch, dtype=torch.long)].to(self.device)
            rc, rr = ref[:, 0], ref[:, 1]
        loss = preference_loss(
            pc,
            pr,
            rc,
            rr,
            loss=self.loss_name,
            beta=a.kl.beta,
            label_smoothing=a.label_smoothing,
            reference_free=a.reference_free,
            chosen_len=lengths[:n],
            rejected_len=lengths[n:],
        ).mean()
        self.optimizer_step_clipped(loss)

        rewards = preference_rewards(
            pc, pr, rc, rr, beta=a.kl.beta, reference_free=a.reference_free
        )
        stats = {
            "loss/policy": loss.item(),
            **{k: v.mean().item() for k, v in rewards.items()},
            "policy/logp_chosen": pc.detach().mean().item(),
            "policy/logp_rejected": pr.detach().mean().item(),
        }
        self.finish_step(stats, self.step_of(batch_idx))
