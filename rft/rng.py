"""Named random streams: every seed rft derives from the run's ``seed``, in one place.

Each stream is a pure function of (seed, where in the run): a resumed run redraws exactly what
an uninterrupted one drew, and two streams never share numbers by accident. The formulas are
the ones the code used before the streams got names (offsets such as ``seed + 104_729`` and
stream words such as ``[seed, 7, step]``), so every result stays bit-identical. A new stream
gets a new function here with a word or offset no other stream uses.

    stream                  numbers                                       drawn by
    iteration_seed          (seed·1_000_003 + it·7_919 + 17) mod 2^63     (the base of the next three)
    rollout_seed            iteration_seed(seed, it)                      torch, one PPO iteration
    probe_seed              iteration_seed(seed + 1, it)                  torch, gradient probe
    restart_generator       iteration_seed(seed, it) + 5                  guided restarts, k
    cg_init_generator       iteration_seed(seed, it) + 23                 TRPO's CG start x₀
    schedule_rng            default_rng([seed, it, 4])                    guided LOLS coin
    prompt_batch_rng        default_rng([seed, it, rank])                 RL prompt batch
    dynamic_sampling_rng    default_rng([seed, it, 11, round, rank])      extra prompts (DAPO filter)
    remote_request_seeds    default_rng([seed, it, 13, call])             remote guide requests
    step_batch_rng          default_rng([seed + rank, data_epoch])        SFT / offline permutations
    good_priority_rng       default_rng([seed + rank, 7, step])           offline weighted draws
    offline_pairs_rng       default_rng([seed, 3])                        offline pair subset
    data_subset_rng         default_rng([seed, 99])                       SFT data_frac subset
    value_head_init_seed    seed                                          V_ref head init (forked)
    value_sample_seed       seed + 104_729                                π_ref samples for V_ref
    value_fit_seed          seed                                          V_ref hold-out, batches
    preference_sample_seed  seed + 7_727                                  DPO's sampled pairs
    extract_rng / _seed     default_rng(seed) / seed                      extraction prompts, samples
    controlled_*_seed       seed, seed + 1, seed + 2                      rft.diagnostics.controlled

(The evaluation seed is ``eval.seed``, deliberately independent of the training seed.)
"""

from __future__ import annotations

import numpy as np
import torch

# Words appended to (seed, iteration) or (seed, step) to keep per-iteration streams apart.
SCHEDULE_WORD = 4
RESTART_OFFSET = 5
CG_INIT_OFFSET = 23
GOOD_PRIORITY_WORD = 7
OFFLINE_PAIRS_WORD = 3
DATA_SUBSET_WORD = 99
PROBE_SEED_OFFSET = 1
DYNAMIC_SAMPLING_WORD = 11
REMOTE_REQUEST_WORD = 13
VALUE_SAMPLE_OFFSET = 104_729
PREFERENCE_SAMPLE_OFFSET = 7_727


def iteration_seed(seed: int, iteration: int) -> int:
    """A 63-bit seed for one iteration of a run."""
    return (seed * 1_000_003 + iteration * 7_919 + 17) % (2**63)


# ------------------------------------------------------------------------------ RL iterations
def rollout_seed(seed: int, iteration: int) -> int:
    """torch's global RNG at the start of a PPO iteration (sampling, minibatch order)."""
    return iteration_seed(seed, iteration)


def probe_seed(seed: int, iteration: int) -> int:
    """The vanishing-gradient probe's forked RNG (diag.probe_every)."""
    return iteration_seed(seed + PROBE_SEED_OFFSET, iteration)


def restart_generator(seed: int, iteration: int) -> torch.Generator:
    """Guided PPO's restart flags and roll-in lengths k of one iteration."""
    return torch.Generator().manual_seed(iteration_seed(seed, iteration) + RESTART_OFFSET)


def cg_init_generator(seed: int, iteration: int) -> torch.Generator:
    """TRPO's conjugate-gradient start x₀ = 1e-4 · N(0, I) of one iteration (CPU generator)."""
    return torch.Generator().manual_seed(iteration_seed(seed, iteration) + CG_INIT_OFFSET)


def schedule_rng(seed: int, iteration: int) -> np.random.Generator:
    """The guided schedule's stream for one iteration (the LOLS coin)."""
    return np.random.default_rng([seed, iteration, SCHEDULE_WORD])


def prompt_batch_rng(seed: int, iteration: int, rank: int) -> np.random.Generator:
    """The train prompts of one RL iteration. Every rank uses the rank-0 stream and takes its
    own slice of one draw (``IterationSampler``), so ranks do not repeat each other's prompts."""
    return np.random.default_rng([seed, iteration, rank])


def dynamic_sampling_rng(seed: int, iteration: int, rnd: int, rank: int) -> np.random.Generator:
    """The extra prompts of dynamic-sampling round ``rnd`` (≥ 1) of one iteration on one rank
    (rft.alg.group: groups with no reward spread are replaced by fresh prompts)."""
    return np.random.default_rng([seed, iteration, DYNAMIC_SAMPLING_WORD, rnd, rank])


def remote_request_seeds(seed: int, iteration: int, call: int, n: int) -> list[int]:
    """The seeds of one iteration's n remote-guide requests (rft.remote.guide), one per row,
    in [0, 2^31); ``call`` keeps roll-ins (0) and roll-outs (1) apart. Row i's seed does not
    depend on n. A seeded server then answers a resumed run as it answered the first one."""
    rng = np.random.default_rng([seed, iteration, REMOTE_REQUEST_WORD, call])
    return [int(x) for x in rng.integers(0, 2**31, size=n)]


# ------------------------------------------------------------------------------ step batches
def rank_seed(seed: int, rank: int) -> int:
    """The batch samplers' seed on one DDP rank (rank 0: the run's seed)."""
    return seed + rank


def step_batch_rng(sampler_seed: int, data_epoch: int) -> np.random.Generator:
    """The permutation of one pass over the data (SFT, uniform offline sampling)."""
    return np.random.default_rng([sampler_seed, int(data_epoch)])


def good_priority_rng(sampler_seed: int, step: int) -> np.random.Generator:
    """One optimizer step's weighted draws (offline good_priority sampling)."""
    return np.random.default_rng([sampler_seed, GOOD_PRIORITY_WORD, int(step)])


def offline_pairs_rng(seed: int) -> np.random.Generator:
    """Which train rows become the offline pairs when alg.n_train_pairs keeps a subset."""
    return np.random.default_rng([seed, OFFLINE_PAIRS_WORD])


def data_subset_rng(seed: int) -> np.random.Generator:
    """Which SFT pairs a data_frac < 1 keeps (nested across fractions)."""
    return np.random.default_rng([seed, DATA_SUBSET_WORD])


# ------------------------------------------------------------------------------ V_ref (A-LoL)
def value_head_init_seed(seed: int) -> int:
    """V_ref's head initialisation (under a forked RNG)."""
    return seed


def value_sample_seed(seed: int) -> int:
    """π_ref's own samples for the val prompts V_ref is fitted on."""
    return seed + VALUE_SAMPLE_OFFSET


def preference_sample_seed(seed: int) -> int:
    """torch seed of the completions that alg.pairs.source=sampled ranks into pairs (forked)."""
    return seed + PREFERENCE_SAMPLE_OFFSET


def value_fit_seed(seed: int) -> int:
    """V_ref's held-out prompts and minibatch order."""
    return seed


# ------------------------------------------------------------------------------ diagnostics
def extract_rng(seed: int) -> np.random.Generator:
    """Which prompts an extraction (mode=extract) samples."""
    return np.random.default_rng(seed)


def extract_seed(seed: int) -> int:
    """torch's global RNG for an extraction's samples."""
    return seed


def controlled_data_seed(seed: int) -> int:
    """The controlled experiment's split, labelling B and model init."""
    return seed


def controlled_pretrain_seed(seed: int) -> int:
    """The controlled experiment's pretraining batches."""
    return seed + 1


def controlled_finetune_seed(seed: int) -> int:
    """The controlled experiment's finetuning batches (the same for both methods)."""
    return seed + 2
