"""Verifier rewards: a program checks the completion's final answer against the gold one
(docs/verifiable-and-remote.md §A1-A3): ``reward=exact_match | math_verify | reasoning_gym |
answer_format`` (and ``reward=code_execution``, rft/reward/code.py).

Each is a ``Verifier``: ``verdicts(prompts, completions, references)`` gives one ``Verdict``
per completion (the reward, whether it counts as correct, the extracted answer or None when
there is none in the asked format); calling it returns the rewards, as every rft reward does,
and counts the unparsable answers, which ``pop_stats()`` returns as ``unparsable_share`` (the
mechanism of rft/reward/base.py). A task that declares itself verifiable
(rft/task/verifiable.py) uses one as its check in evaluation: pass@k, maj@k and the format-error
share come from the verdicts, whatever reward trains.

``references`` holds per completion what ``Example.reward_references`` gives: a verifiable
task's ``Gold`` (a string, the gold answer, carrying the generator's entry or the code problem
where the checker needs them), or, from another task (``task=jsonl`` with a reference column),
a plain string. A missing one is a RewardError naming the fix, never a 0.

Model text and ``eval``: exact match and the format reward only compare strings. math-verify
parses LaTeX with its ANTLR grammar and passes only text made of digits, ``.``, whitespace and
``+-*/^()×÷`` to sympy's ``parse_expr`` (its own expression regex), on the main thread with its
own timeouts (5 s). reasoning-gym's scorers run in this process only for generators whose
scorer compares strings or decimals (its default scorer, and ``IN_PROCESS_SCORERS``, read in
reasoning-gym 0.1.25); every other generator's scorer (countdown and puzzle24 call sympy's
``parse_expr`` = ``eval`` on the answer, n_queens and others ``eval`` it) runs in the sandbox
(rft/sandbox.py).
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import pickle
import re
import secrets
import sys
import threading
from dataclasses import dataclass

from rft.errors import ConfigError, RewardError
from rft.reward import answers
from rft.sandbox import sandbox_limits

log = logging.getLogger(__name__)


class Gold(str):
    """A gold answer: the string exact match and math-verify compare with, carrying what a
    task-specific checker needs in ``entry`` (reasoning-gym's entry, HumanEval's problem).

    >>> g = Gold("42", {"answer": "42"}); g == "42", g.entry["answer"]
    (True, '42')
    """

    entry: dict | None

    def __new__(cls, answer: str, entry: dict | None = None):
        self = super().__new__(cls, answer)
        self.entry = entry
        return self

    def __reduce__(self):  # pickles (DDP gathers, sandbox payloads) with its entry
        return (Gold, (str(self), self.entry))


@dataclass
class Verdict:
    """One completion checked: its reward, whether it counts as correct (a pass), and the
    answer found in it (None: none in the asked format, an unparsable answer). ``status``
    says more where the check can end in several ways (code execution: ``passed``,
    ``timeout``, ...)."""

    score: float
    correct: bool
    answer: str | None
    status: str = ""


def gold_of(reference, i: int, name: str) -> str:
    """The gold answer of one completion: a string, or the first of a list of them."""
    if isinstance(reference, (list, tuple)):
        reference = next((r for r in reference if r is not None), None)
    if reference is None:
        raise RewardError(
            f"reward={name} checks answers against a gold answer, but completion {i} has "
            "none: the task gives no references. Use a verifiable task (task=reasoning_gym, "
            "gsm8k, humaneval) or task=jsonl with the answer column as task.reference_key."
        )
    return reference


class Verifier:
    """Base class: subclasses implement ``verdicts``."""

    name = "verifier"
    votable = True  # its answers are short strings a majority vote (maj@k) can count

    def __init__(self) -> None:
        self._n = self._unparsable = self._correct = 0

    def verdicts(self, prompts: list[str], completions: list[str], references) -> list[Verdict]:
        raise NotImplementedError

    def __call__(self, prompts, completions, references=None) -> list[float]:
        completions = ["" if c is None else str(c) for c in completions]
        references = [None] * len(completions) if references is None else list(references)
        out = self.verdicts(list(prompts), completions, references)
        self._n += len(out)
        self._unparsable += sum(v.answer is None for v in out)
        self._correct += sum(v.correct for v in out)
        return [float(v.score) for v in out]

    def pop_stats(self) -> dict[str, float]:
        """Shares over the completions scored since the last call (rft/reward/base.py):
        ``unparsable_share`` (no answer in the asked format) and ``correct_share``."""
        if not self._n:
            return {}
        out = {
            "unparsable_share": self._unparsable / self._n,
            "correct_share": self._correct / self._n,
        }
        self._n = self._unparsable = self._correct = 0
        return out


def _check_format(fmt, key: str, allowed=answers.FORMATS) -> str:
    fmt = str(getattr(fmt, "value", fmt))
    if fmt not in allowed:
        raise ConfigError(f"{key}={fmt!r}: choose one of {list(allowed)}.")
    return fmt


# ------------------------------------------------------------------------------ format
class AnswerFormatReward(Verifier):
    """1 when the completion gives an answer in the asked format (an ``<answer>`` tag, a
    ``\\boxed{}``, a ``####`` line), else 0: a term of ``reward=weighted_sum`` beside a
    correctness reward, which teaches the format without gating the correctness on it
    (docs/verifiable-and-remote.md §A3: gating can zero every group early).

    >>> r = AnswerFormatReward("tag")
    >>> r(["p"] * 3, ["<answer>7</answer>", "7", "<answer></answer>"], None)
    [1.0, 0.0, 1.0]
    """

    name = "answer_format"

    def __init__(self, format: str = "tag"):
        super().__init__()
        self.format = _check_format(format, "reward.format")

    def verdicts(self, prompts, completions, references):
        out = []
        for c in completions:
            a = answers.extract(c, self.format)
            out.append(Verdict(float(a is not None), a is not None, a))
        return out


# ------------------------------------------------------------------------------ exact match
class ExactMatchReward(Verifier):
    """1 when the extracted answer equals the gold one, else 0. Numbers compare as numbers
    (``numeric``: "1,000" = "1000.0"), other strings after stripping, and case-insensitively
    unless ``case_sensitive``.

    >>> r = ExactMatchReward("tag")
    >>> r(["p"] * 4, ["<answer>1,000</answer>", "<answer>Paris</answer>", "1000", "<answer>999</answer>"],
    ...   ["1000", "paris", "1000", "1000"])
    [1.0, 1.0, 0.0, 0.0]
    """

    name = "exact_match"

    def __init__(self, format: str = "tag", numeric: bool = True, case_sensitive: bool = False):
        super().__init__()
        self.format = _check_format(format, "reward.format")
        self.numeric, self.case_sensitive = bool(numeric), bool(case_sensitive)

    def canonical(self, text: str) -> str:
        if self.numeric and (n := answers.normalize_number(text)) is not None:
            return n
        s = " ".join(text.split())
        return s if self.case_sensitive else s.casefold()

    def verdicts(self, prompts, completions, references):
        out = []
        for i, (c, ref) in enumerate(zip(completions, references)):
            gold = gold_of(ref, i, self.name)
            a = answers.extract(c, self.format)
            ok = a is not None and self.canonical(a) == self.canonical(str(gold))
            out.append(Verdict(float(ok), ok, a))
        return out


# ------------------------------------------------------------------------------ math-verify
class MathVerifyReward(Verifier):
    """1 when math-verify finds the completion's answer equal to the gold one (numbers,
    fractions, LaTeX expressions, sets), else 0.

    ``format``: where the answer is (tag | boxed | hash: the extracted text is parsed, a
    completion without one is unparsable) or ``any``: the answer in the first of those formats
    the completion has, else math-verify's own search over the whole completion ("final answer
    is", "answer:", else the last number). Its search alone misses an ``<answer>`` tag. The gold
    is parsed once per distinct string; ``verify(gold, answer)`` is called gold first (it is
    asymmetric, §A2).

    >>> r = MathVerifyReward("tag")
    >>> r(["p"] * 3, ["<answer>0.5</answer>", "<answer>\\\\frac{1}{2}</answer>", "<answer>2</answer>"],
    ...   ["1/2", "0.5", "3"])
    [1.0, 1.0, 0.0]
    >>> MathVerifyReward("any")(["p"] * 3, ["<answer>3</answer>", "so 4 - 1 = 3.", "#### 3"], ["3"] * 3)
    [1.0, 1.0, 1.0]
    """

    name = "math_verify"

    def __init__(self, format: str = "tag", timeout_s: int = 5):
        super().__init__()
        self.format = _check_format(format, "reward.format", (*answers.FORMATS, "any"))
        self.timeout_s = int(timeout_s)
        self._warned_thread = False
        import math_verify  # noqa: F401  (fail at build time when it is missing)

    def _timeouts(self) -> int | None:
        # math-verify's timeouts use SIGALRM, which only the main thread may set (§A2); rft
        # scores on the main thread, a caller that does not loses the timeouts, and is told
        if threading.current_thread() is threading.main_thread():
            return self.timeout_s
        if not self._warned_thread:
            self._warned_thread = True
            log.warning(
                "reward=math_verify called off the main thread: math-verify's timeouts need "
                "SIGALRM, so answers are parsed without one (a pathological answer can hang)."
            )
        return None

    @functools.lru_cache(maxsize=4096)  # noqa: B019 (one reward per run; golds repeat)
    def _gold(self, gold: str, timeout: int | None):
        from math_verify import parse

        for text in (gold, f"${gold}$", f"\\boxed{{{gold}}}"):
            parsed = parse(text, parsing_timeout=timeout)
            if parsed:
                return parsed
        raise RewardError(
            f"reward=math_verify: the gold answer {gold!r} does not parse as maths, so no "
            "completion could match it. Check the task's answers, or use reward=exact_match."
        )

    def verdicts(self, prompts, completions, references):
        from math_verify import parse, verify

        t = self._timeouts()
        out = []
        for i, (c, ref) in enumerate(zip(completions, references)):
            gold = self._gold(str(gold_of(ref, i, self.name)), t)
            if self.format == "any":
                # a marked answer first: math-verify's own search does not see inside an
                # <answer> tag ("<answer>3</answer>" parses to nothing), so a policy that learns
                # the task's format would score 0
                a = next(filter(None, (answers.extract(c, f) for f in answers.FORMATS)), None)
            else:
                a = answers.extract(c, self.format)
            pred = []
            if a is not None:
                pred = parse(f"\\boxed{{{a}}}", parsing_timeout=t) or parse(a, parsing_timeout=t)
            elif self.format == "any":
                pred = parse(c, parsing_timeout=t)
            if not pred:
                out.append(Verdict(0.0, False, None))
                continue
            if _is_number(gold[0]) and not _is_number_answer(pred):
                # the problem restated ("7 + 8 =" for 15): math-verify keeps "7 + 8" unevaluated
                # and verifies it equal to 15, a reward GRPO learned to collect (docs/results.md,
                # issue #26). A number's answer must be a number (or a plain fraction).
                out.append(Verdict(0.0, False, str(pred[-1])))
                continue
            ok = bool(verify(gold, pred, timeout_seconds=t))
            out.append(Verdict(float(ok), ok, str(pred[-1]) if len(pred) > 1 else str(pred[0])))
        return out


_FRACTION = re.compile(r"^\s*-?\d+\s*/\s*\d+\s*$")


def _is_number(x) -> bool:
    return bool(getattr(x, "is_Number", False))


def _is_number_answer(pred: list) -> bool:
    """math-verify's parse of an answer is a number (sympy evaluates \\frac{30}{2} to 15), or a
    plain fraction "3/4"; not an expression left unevaluated such as "7 + 8" or "3*5"."""
    return _is_number(pred[0]) or bool(_FRACTION.match(str(pred[-1])))


# ------------------------------------------------------------------------------ reasoning-gym
# Scorers read in reasoning-gym 0.1.25 that only compare strings or Decimals (besides the
# package's default scorer, which every generator that does not override it uses): safe to run
# on model text in this process. Every other generator's scorer runs in the sandbox.
IN_PROCESS_SCORERS = frozenset(
    {"chain_sum", "products", "decimal_chain_sum", "gsm_symbolic", "spell_backward"}
)

_SCORER_PROGRAM = r"""
import base64, json, pickle, signal, sys

def main():
    token, per_item_s, items = pickle.loads(base64.b64decode(sys.stdin.buffer.read()))
    import reasoning_gym

    def alarm(*_):
        raise TimeoutError("scorer took too long")

    signal.signal(signal.SIGALRM, alarm)
    fns, out = {}, []
    for name, answer, entry in items:
        if name not in fns:
            fns[name] = reasoning_gym.get_score_answer_fn(name)
        signal.alarm(per_item_s)
        try:
            out.append([float(fns[name](answer, entry)), "ok"])
        except TimeoutError:
            out.append([0.0, "timeout"])
        except BaseException as e:  # the scorer's own failure on this answer
            out.append([0.0, "scorer_error: " + type(e).__name__])
        finally:
            signal.alarm(0)
    sys.stdout.write("\n" + token + json.dumps(out) + "\n")
    sys.stdout.flush()

main()
"""


@functools.cache
def default_scorer(name: str):
    """reasoning-gym's scorer of generator ``name`` and whether it is safe in this process."""
    import reasoning_gym
    from reasoning_gym.dataset import ProceduralDataset
    from reasoning_gym.factory import DATASETS

    if name not in DATASETS:
        raise RewardError(
            f"reward=reasoning_gym: an entry names the generator {name!r}, which reasoning-gym "
            "does not have. The entries must come from task=reasoning_gym."
        )
    cls = DATASETS[name][0]
    safe = cls.score_answer is ProceduralDataset.score_answer or name in IN_PROCESS_SCORERS
    return reasoning_gym.get_score_answer_fn(name), safe


def site_paths() -> list[str]:
    """This interpreter's package folders: what a sandboxed scorer imports reasoning-gym from."""
    return [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]


class ReasoningGymReward(Verifier):
    """reasoning-gym's own scorer of each entry's generator, on the answer extracted in
    ``format`` (the scorers expect the answer, not the completion, §A1).

    The scorers give partial credit (the default one: len(oracle)/len(answer) when the oracle
    is a substring, "16" scores 0.5 against "6"); ``binary: true`` gives 1 for a score of
    exactly 1.0 and 0 otherwise, the pass/fail a pass rate needs. A completion counts as
    correct only at a score of 1.0 either way. Generators whose scorer evaluates the answer
    run in the sandbox, all of a batch in one run (importing reasoning-gym there takes
    seconds); if that run fails, each answer is scored in its own run, so one bad answer costs
    only its own score. ``sandbox``: the limits (rft/config.py SandboxConfig)."""

    name = "reasoning_gym"

    def __init__(
        self,
        format: str = "tag",
        binary: bool = False,
        sandbox: dict | None = None,
        per_answer_timeout_s: int = 5,
    ):
        super().__init__()
        self.format = _check_format(format, "reward.format")
        self.binary = bool(binary)
        self.limits, self.max_parallel = sandbox_limits(sandbox, "reward.sandbox")
        self.per_answer_timeout_s = int(per_answer_timeout_s)
        self.status_counts: dict[str, int] = {}

    def verdicts(self, prompts, completions, references):
        scores: list[float | None] = [None] * len(completions)
        found: list[str | None] = [None] * len(completions)
        sandboxed: list[tuple[int, str, str, dict]] = []
        for i, (c, ref) in enumerate(zip(completions, references)):
            gold = gold_of(ref, i, self.name)
            entry = getattr(gold, "entry", None)
            if not entry or "source_dataset" not in entry.get("metadata", {}):
                raise RewardError(
                    f"reward=reasoning_gym needs each prompt's reasoning-gym entry, but "
                    f"completion {i}'s reference {str(gold)[:60]!r} carries none. Use "
                    "task=reasoning_gym, or reward=exact_match / math_verify for other tasks."
                )
            name = entry["metadata"]["source_dataset"]
            fn, safe = default_scorer(name)
            found[i] = answers.extract(c, self.format)
            if safe:
                scores[i] = float(fn(found[i], entry))
            elif found[i] is None:  # no model text: the scorer's own floor, in this process
                try:
                    scores[i] = float(fn(None, entry))
                except Exception:  # noqa: BLE001 - a scorer that does not expect None
                    scores[i] = 0.0
            else:
                sandboxed.append((i, name, found[i], entry))
        for i, score in self._score_sandboxed(sandboxed).items():
            scores[i] = score
        out = []
        for s, a in zip(scores, found):
            correct = s == 1.0
            out.append(Verdict(float(correct) if self.binary else float(s), correct, a))
        return out

    def _score_sandboxed(self, items: list[tuple[int, str, str, dict]]) -> dict[int, float]:
        from rft import sandbox

        if not items:
            return {}
        token = "RFT-SCORES-" + secrets.token_hex(16) + " "

        def payload(batch):
            data = [(name, a, e) for _, name, a, e in batch]
            return base64.b64encode(pickle.dumps((token, self.per_answer_timeout_s, data)))

        def parse(ex, n):
            line = next((x for x in ex.stdout.splitlines() if x.startswith(token)), None)
            if not ex.ok or line is None:
                return None
            try:
                got = json.loads(line[len(token) :])
            except ValueError:
                return None
            ok = isinstance(got, list) and len(got) == n
            ok = ok and all(
                isinstance(x, list) and len(x) == 2 and isinstance(x[0], (int, float)) for x in got
            )
            return got if ok else None

        self._check_interpreter(sandbox.isolation(self.limits.uid))
        paths = site_paths()
        whole = sandbox.run(_SCORER_PROGRAM, self.limits, stdin=payload(items), sys_path=paths)
        if "ModuleNotFoundError" in whole.stderr or "ImportError" in whole.stderr:
            raise RewardError(
                "reward=reasoning_gym: the sandbox cannot import reasoning-gym from "
                f"{paths} ({whole.stderr.strip().splitlines()[-1][:200]}). Its scorers that "
                "evaluate answers must run there; make those folders readable for the sandbox's "
                "uid (reward.sandbox.uid) or use generators whose scorers run in the trainer."
            )
        got = parse(whole, len(items))
        if got is None:  # one answer broke the run: score each on its own
            runs = sandbox.run_many(
                [_SCORER_PROGRAM] * len(items),
                self.limits,
                max_parallel=self.max_parallel,
                stdins=[payload([it]) for it in items],
                sys_path=paths,
            )
            got = []
            for ex in runs:
                one = parse(ex, 1)
                # a run that ended without printing its scores failed, whatever its exit status
                got.append(one[0] if one else [0.0, "no_result" if ex.ok else ex.status])
        out = {}
        for (i, *_), (score, status) in zip(items, got):
            self.status_counts[status] = self.status_counts.get(status, 0) + 1
            out[i] = float(score)
        return out

    @staticmethod
    def _check_interpreter(iso) -> None:
        """The sandbox imports this interpreter's packages: its Python must be the same
        major.minor, or every sandboxed answer would silently score 0."""
        if tuple(iso.python_version) != tuple(sys.version_info[:2]):
            raise RewardError(
                f"reward=reasoning_gym: the sandbox runs {iso.python} (Python "
                f"{iso.python_version[0]}.{iso.python_version[1]}), which cannot import this "
                f"Python {sys.version_info[0]}.{sys.version_info[1]}'s reasoning-gym. Make this "
                "interpreter executable for the sandbox's uid (reward.sandbox.uid), or install "
                "a matching python3 on PATH."
            )

    def pop_stats(self) -> dict[str, float]:
        out = super().pop_stats()
        n = sum(self.status_counts.values())
        if n:
            out["sandboxed_answers"] = float(n)
            out["sandboxed_failed_share"] = 1 - self.status_counts.get("ok", 0) / n
        self.status_counts = {}
        return out
