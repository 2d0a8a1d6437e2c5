"""Std-aware prompt sampling: draw train prompts in proportion to their reward std.

Razin et al. (ICLR 2024, docs/algorithms.md §5): the expected policy gradient of a prompt is
bounded by the std of its reward under the policy. A prompt the policy always solves (or never
does) scores the same on all G samples, its group advantages are all zero and its rollout buys
no gradient. ``StdAwareSampler`` keeps a running estimate of each train prompt's reward std
(from the groups the training loop observes, or seeded from a ``mode=extract`` run) and draws
prompts with probability ∝ max(estimate, floor). The floor keeps every prompt drawable: a
prompt's std changes as the policy does, and a prompt that is never drawn is never re-measured.
DAPO's dynamic sampling (§9) spends generation on such prompts and then discards them; this
sampler avoids generating them in the first place, at the price of trusting stale estimates.

``statistic="learnability"`` weighs by p(1 - p) instead, p the prompt's pass rate under the
policy: the Bernoulli variance of success, the "learnability" of Foster et al. 2025 ("Learning
to Reason at the Frontier of Learnability", arXiv 2502.12272; docs/verifiable-and-remote.md
§A5), which SPEED-RL's SNR bound (≤ 4N·p(1-p)) and VCRL's normalised variance also rank by. It
is 0 for a prompt always or never solved and peaks at p = 1/2. Its observation per group is
p̂(1 - p̂) with p̂ the share of passes when the caller gives pass rates, else the group's reward
std squared, which IS p̂(1 - p̂) for rewards in {0, 1} with the population std the training loop
computes (for other rewards it is the reward variance, VCRL's statistic). So the std mode
weighs by std and this one by variance: the same ranking, with p(1-p) concentrating the draw
more strongly on the prompts at the frontier. ``floor``, ``prior`` and the estimates are on the
statistic's own scale (a variance is at most 0.25 for binary rewards).

Pure numpy: no torch, no config objects. Randomness comes only from the ``rng`` passed to
``draw`` (``rft.rng.std_sampler_rng``), so a draw is a function of (state, rng) and a resumed
run that restores ``state_dict`` draws what the uninterrupted one drew.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rft.errors import DataError

# The file mode=extract writes next to rewards.npy: which rows of which split it sampled.
EXTRACT_INDEX_FILE = "prompt_indices.json"


class StdAwareSampler:
    """Per-prompt reward-std estimates over ``n_prompts`` train prompts, and draws by them.

    Args:
        n_prompts: the size of the train split; indices are 0..n_prompts-1.
        statistic: what a prompt's weight estimates: ``"std"`` its reward std (Razin et al.)
            or ``"learnability"`` p(1-p), its pass-rate variance (Foster et al.; see the
            module docstring).
        floor: every weight is max(estimate, floor); must be > 0, or a prompt observed once
            with std 0 could never be drawn (and re-measured) again.
        prior: the estimate used for a never-seen prompt. None: the mean estimate of the seen
            prompts (1.0 while none is seen, so the first draw is uniform). A high prior
            explores unseen prompts first; a low one exploits the known informative ones.
        momentum: estimate ← momentum·old + (1 - momentum)·observed; 0 keeps only the latest
            observation. A group of G samples gives a noisy std, so some momentum smooths it,
            but the policy moves, so too much keeps a solved prompt's old high std around.
    """

    STATISTICS = ("std", "learnability")

    def __init__(
        self,
        n_prompts: int,
        floor: float,
        prior: float | None = None,
        momentum: float = 0.0,
        statistic: str = "std",
    ):
        if statistic not in self.STATISTICS:
            raise ValueError(f"statistic={statistic!r}: choose one of {list(self.STATISTICS)}")
        if int(n_prompts) != n_prompts or n_prompts < 1:
            raise ValueError(f"n_prompts={n_prompts}: need a positive number of train prompts")
        if not (np.isfinite(floor) and floor > 0):
            raise ValueError(
                f"std_sampler.floor={floor}: must be > 0, or a prompt observed with std 0 could"
                " never be drawn again to see that its std changed"
            )
        if prior is not None and not (np.isfinite(prior) and prior >= 0):
            raise ValueError(
                f"std_sampler.prior={prior}: a std estimate must be finite and >= 0 (or null:"
                " the mean estimate of the seen prompts)"
            )
        if not 0.0 <= momentum < 1.0:
            raise ValueError(
                f"std_sampler.momentum={momentum}: must be in [0, 1) (1 would freeze every"
                " estimate at its first observation)"
            )
        self.statistic = statistic
        self.n_prompts = int(n_prompts)
        self.floor = float(floor)
        self.prior = None if prior is None else float(prior)
        self.momentum = float(momentum)
        self.estimates = np.zeros(self.n_prompts, dtype=np.float64)
        self.seen = np.zeros(self.n_prompts, dtype=bool)

    # ------------------------------------------------------------------------------ weights
    def unseen_estimate(self) -> float:
        """The estimate a never-seen prompt gets: ``prior``, else the seen prompts' mean (1.0
        when none is seen: every weight equal, a uniform first draw)."""
        if self.prior is not None:
            return self.prior
        return float(self.estimates[self.seen].mean()) if self.seen.any() else 1.0

    def weights(self) -> np.ndarray:
        """max(estimate, floor) per prompt, unseen prompts at ``unseen_estimate``."""
        est = np.where(self.seen, self.estimates, self.unseen_estimate())
        return np.maximum(est, self.floor)

    def probabilities(self) -> np.ndarray:
        """p_i = w_i / Σw: the probability that prompt i is the FIRST one of a draw. The
        inclusion probability of a batch of n > 1 distinct prompts is flatter than n·p_i (a
        heavy prompt cannot be picked twice), which is what sampling without replacement
        means; both are monotone in the weights."""
        w = self.weights()
        return w / w.sum()

    # ------------------------------------------------------------------------------ draws
    def draw(self, rng: np.random.Generator, n: int, exclude: Sequence[int] = ()) -> np.ndarray:
        """n distinct train indices (none from exclude), drawn without replacement with
        p ∝ max(estimate, floor); never-seen prompts use ``prior`` (None: the mean estimate of
        the seen ones, or 1.0 when none is seen yet, so the first draw is uniform).

        Gumbel-top-k (Efraimidis & Spirakis 2006): key_i = log w_i + Gumbel noise, take the n
        largest keys in decreasing order. That is exactly sequential sampling without
        replacement ∝ w, in one vectorised pass. The rng always draws ``n_prompts`` Gumbels,
        whatever n and exclude are, so the stream it leaves behind does not depend on them.
        The order of the result is the draw order (the first is a plain categorical draw)."""
        n = int(n)
        excluded = np.zeros(self.n_prompts, dtype=bool)
        ex = np.asarray(exclude, dtype=np.int64).reshape(-1)
        if ex.size:
            if ex.min() < 0 or ex.max() >= self.n_prompts:
                raise IndexError(f"exclude holds indices outside [0, {self.n_prompts})")
            excluded[ex] = True
        available = int((~excluded).sum())
        if not 0 <= n <= available:
            raise ValueError(
                f"cannot draw {n} distinct prompts: {available} of {self.n_prompts} train prompts"
                f" are left after excluding {self.n_prompts - available}"
            )
        keys = np.log(self.weights()) + rng.gumbel(size=self.n_prompts)
        keys[excluded] = -np.inf
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        top = np.argpartition(-keys, n - 1)[:n]
        return top[np.argsort(-keys[top], kind="stable")].astype(np.int64)

    # ------------------------------------------------------------------------------ updates
    def update(
        self,
        indices: Sequence[int],
        stds: Sequence[float],
        pass_rates: Sequence[float] | None = None,
    ) -> None:
        """estimate ← momentum·old + (1-momentum)·observed (the observed value itself for a
        never-seen prompt). A prompt listed twice is updated twice, in order (as if its two
        groups had arrived one after the other).

        The observation is the group's reward std (statistic "std"), or for "learnability"
        p̂(1 - p̂) with p̂ = ``pass_rates`` (each group's share of passes, in [0, 1]) when given,
        else std² (= p̂(1 - p̂) for {0, 1} rewards and the population std)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        obs = np.asarray(stds, dtype=np.float64).reshape(-1)
        if idx.shape != obs.shape:
            raise ValueError(f"update got {idx.size} indices and {obs.size} stds")
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_prompts):
            raise IndexError(f"update got indices outside [0, {self.n_prompts})")
        bad = ~(np.isfinite(obs) & (obs >= 0))
        if bad.any():
            raise ValueError(
                f"update got stds that are not finite and >= 0: {obs[bad][:5].tolist()} (a group"
                " of one sample has no unbiased std: use G >= 2)"
            )
        if self.statistic == "learnability":
            obs = self._learnability(obs, pass_rates)
        elif pass_rates is not None:
            raise ValueError(
                "pass_rates are for statistic='learnability'; this sampler weighs by std"
            )
        m = self.momentum
        for i, s in zip(idx.tolist(), obs.tolist()):  # ≤ one batch of prompts
            self.estimates[i] = m * self.estimates[i] + (1 - m) * s if self.seen[i] else s
            self.seen[i] = True

    @staticmethod
    def _learnability(stds: np.ndarray, pass_rates: Sequence[float] | None) -> np.ndarray:
        """p̂(1 - p̂) per group: from the pass rates when given, else std²."""
        if pass_rates is None:
            return np.square(stds)
        p = np.asarray(pass_rates, dtype=np.float64).reshape(-1)
        if p.shape != stds.shape:
            raise ValueError(f"update got {stds.size} stds and {p.size} pass rates")
        if not np.all(np.isfinite(p) & (p >= 0) & (p <= 1)):
            raise ValueError(f"pass rates must be in [0, 1], got {p[:5].tolist()}")
        return p * (1 - p)

    # ------------------------------------------------------------------------------ logging
    def stats(self) -> dict[str, float]:
        """Scalars for the training log.

        sampler/seen_share: share of train prompts with an estimate.
        sampler/std_estimate_mean (statistic "std") or sampler/learnability_estimate_mean
            ("learnability"): mean estimate over the seen prompts (0.0 while none is).
        sampler/floored_share: share of the seen prompts whose estimate is at or below the
            floor (drawn only at the floor rate: believed solved or unsolvable).
        sampler/effective_prompts: 1/Σp², the number of equally likely prompts with the same
            concentration (n_prompts when uniform).
        sampler/p_max_over_uniform: max p · n_prompts (1 when uniform).
        """
        p = self.probabilities()
        seen = self.estimates[self.seen]
        return {
            "sampler/seen_share": float(self.seen.mean()),
            f"sampler/{self.statistic}_estimate_mean": float(seen.mean()) if seen.size else 0.0,
            "sampler/floored_share": float((seen <= self.floor).mean()) if seen.size else 0.0,
            "sampler/effective_prompts": float(1.0 / np.square(p).sum()),
            "sampler/p_max_over_uniform": float(p.max() * self.n_prompts),
        }

    # ------------------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """Plain lists and floats (a Lightning checkpoint stores it as it is)."""
        return {
            "n_prompts": self.n_prompts,
            "statistic": self.statistic,
            "estimates": self.estimates.tolist(),
            "seen": self.seen.tolist(),
        }

    def load_state_dict(self, d: dict) -> None:
        """Restore the estimates. The hyperparameters (floor, prior, momentum) stay the ones
        this sampler was built with: they come from the config, which may change on resume."""
        if int(d["n_prompts"]) != self.n_prompts:
            raise ValueError(
                f"sampler state is for {d['n_prompts']} train prompts, this run has"
                f" {self.n_prompts}: the train set changed since the checkpoint"
            )
        saved = d.get("statistic", "std")  # states saved before the option weighed by std
        if saved != self.statistic:
            raise ValueError(
                f"sampler state estimates {saved!r}, this sampler weighs by {self.statistic!r}:"
                " the estimates are on another scale. Resume with the same prompt sampling."
            )
        self.estimates = np.asarray(d["estimates"], dtype=np.float64).copy()
        self.seen = np.asarray(d["seen"], dtype=bool).copy()

    # ------------------------------------------------------------------------------ extract
    def seed_from_extract(self, path: str | Path) -> int:
        """Read a mode=extract run folder (or its rewards.npy path) and set the estimates of the
        train prompts it sampled to their std over K; returns how many.

        The std is the population std (ddof=0), the same plug-in estimate the extraction's own
        summary uses (``per_prompt_stats``); statistic "learnability" takes its square
        (p̂(1 - p̂) for {0, 1} rewards). Rows map to train indices through the
        ``prompt_indices.json`` the extraction writes next to rewards.npy (split, split size
        and the index of each row); an extraction made before that file existed, on another
        split or on another train set is refused with the fix, never guessed at."""
        R, index_file = read_reward_matrix(Path(path).expanduser())
        idx = read_extract_index(index_file, R.shape[0], self.n_prompts)
        std = R.astype(np.float64).std(axis=1, ddof=0)
        self.estimates[idx] = np.square(std) if self.statistic == "learnability" else std
        self.seen[idx] = True
        return int(idx.size)


EXTRACT_HOW = (
    "run `python run.py mode=extract diag.split=train ...` with this task and give its folder"
)


def read_reward_matrix(path: Path) -> tuple[np.ndarray, Path]:
    """A mode=extract run's reward matrix [N prompts, K samples] from its folder or its
    rewards.npy, checked, and the path of the index file beside it."""
    folder = path if path.is_dir() else path.parent
    rewards = path if not path.is_dir() else path / "rewards.npy"
    how = EXTRACT_HOW
    if not rewards.is_file():
        raise DataError(
            f"std_sampler.init_from={str(path)!r}: {rewards} not found. Give the folder of a"
            f" mode=extract run (it holds rewards.npy) or that file; to make one, {how}."
        )
    try:
        R = np.load(rewards, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 (any unreadable file gets the same advice)
        raise DataError(
            f"{rewards}: not a reward matrix saved by mode=extract ({type(e).__name__}: {e})."
            f" To make one, {how}."
        ) from None
    if R.ndim != 2 or R.shape[1] < 2 or not np.issubdtype(R.dtype, np.number):
        raise DataError(
            f"{rewards}: expected a numeric [N prompts, K samples] matrix with K >= 2 (a"
            f" std needs two samples), got {R.dtype} of shape {R.shape}. To make one, {how}"
            " and diag.k_samples >= 2."
        )
    if not np.all(np.isfinite(R)):
        raise DataError(f"{rewards}: holds non-finite rewards. Rerun the extraction; {how}.")
    return R, folder / EXTRACT_INDEX_FILE


def read_extract_index(index_file: Path, n_rows: int, n_prompts: int) -> np.ndarray:
    """The train index of each of the ``n_rows`` rows of an extraction, checked against this
    run's train set of ``n_prompts`` prompts."""
    how, rewards = EXTRACT_HOW, index_file.parent / "rewards.npy"
    if not index_file.is_file():
        raise DataError(
            f"{index_file} not found: {rewards} does not say which train prompts its rows"
            f" are (extractions made before rft recorded that cannot be mapped safely). To"
            f" make one that does, {how}."
        )
    try:
        meta = json.loads(index_file.read_text())
        split, size = meta["split"], int(meta["split_size"])
        idx = np.asarray(meta["indices"], dtype=np.int64).reshape(-1)
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(
            f"{index_file}: not the index file of a mode=extract run (needs 'split',"
            f" 'split_size' and 'indices'; {type(e).__name__}: {e}). To make one, {how}."
        ) from None
    if split != "train":
        raise DataError(
            f"{index_file}: the extraction sampled the {split!r} split; the sampler needs"
            f" std estimates of TRAIN prompts. Rerun it with diag.split=train."
        )
    if size != n_prompts:
        raise DataError(
            f"{index_file}: made from a train set of {size} prompts, this run has"
            f" {n_prompts}: another task or data file. To make one for this train set, {how}."
        )
    if idx.size != n_rows:
        raise DataError(
            f"{index_file}: {idx.size} indices for the {n_rows} rows of {rewards}: the"
            f" two files come from different extractions. To make one, {how}."
        )
    if idx.size and (idx.min() < 0 or idx.max() >= size or np.unique(idx).size != idx.size):
        raise DataError(
            f"{index_file}: indices must be distinct and in [0, {size}). To make one, {how}."
        )
    return idx
