"""reward=code_execution (rft/reward/code.py): HumanEval's canonical solutions pass and wrong
ones fail through the sandbox; a chat reply's code block is found; an early ``exit(0)`` does
not pass; hostile completions are contained, scored 0 and reported in the reward's stats; a
program runs once however often it is scored; bad settings name the key."""

from __future__ import annotations

import os

import pytest

from rft import sandbox
from rft.errors import ConfigError, RewardError
from rft.reward import build_reward
from rft.reward.code import CodeExecutionReward, solution_program
from rft.reward.verify import Gold
from rft.task.humaneval import read_problems

PROBLEMS = read_problems()[:3]
TOY = {
    "task_id": "toy/0",
    "prompt": 'def one():\n    """Return 1."""\n',
    "entry_point": "one",
    "canonical_solution": "    return 1\n",
    "test": "def check(candidate):\n    assert candidate() == 1\n",
}


def gold(p: dict) -> Gold:
    return Gold(p["canonical_solution"], dict(p))


def test_canonical_solutions_pass_and_wrong_ones_fail():
    r = CodeExecutionReward("completion")
    comps = [p["canonical_solution"] for p in PROBLEMS] + ["    return None\n"] * 3
    refs = [gold(p) for p in PROBLEMS] * 2
    assert r(["p"] * 6, comps, refs) == [1.0] * 3 + [0.0] * 3
    stats = r.pop_stats()
    assert stats["exec/passed_share"] == 0.5 and stats["exec/failed_share"] == 0.5


def test_completion_mode_stops_at_the_next_top_level_block():
    r = CodeExecutionReward("completion")
    # the second function would break the program if it were kept
    comp = "    return 1\n\ndef broken(:\n"
    assert r(["p"], [comp], [gold(TOY)]) == [1.0]


def test_a_chat_reply_is_run_from_its_code_block():
    whole = "Here it is:\n```python\ndef one():\n    return 1\n```\nHope it helps."
    body = "```python\n    return 1\n```"
    r = CodeExecutionReward("auto")
    assert r(["p"] * 2, [whole, body], [gold(TOY)] * 2) == [1.0, 1.0]
    fenced = CodeExecutionReward("fenced")
    assert fenced(["p"], ["    return 1"], [gold(TOY)]) == [0.0]  # no block: unparsable
    assert fenced.pop_stats()["unparsable_share"] == 1.0


def test_solution_program_keeps_the_prompt_before_a_full_definition():
    prog = solution_program(TOY, "```python\ndef one():\n    return 1\n```", "auto")
    assert prog.startswith(TOY["prompt"]) and prog.rstrip().endswith("return 1")
    assert solution_program(TOY, "no code", "fenced") is None


def test_an_early_exit_zero_does_not_pass():
    r = CodeExecutionReward("completion")
    assert r(["p"], ["    return 2\nimport sys\nsys.exit(0)\n"], [gold(TOY)]) == [0.0]
    assert r(["p"], ["    return 2\nimport os\nos._exit(0)\n"], [gold(TOY)]) == [0.0]


HOSTILE = {
    "infinite_loop": ("    while True:\n        pass\n", "cpu_limit"),
    "fork_bomb": (
        "    import os, time\n    while True:\n        try:\n            os.fork()\n"
        "        except OSError:\n            time.sleep(0.01)\n",
        "timeout",
    ),
    "memory_bomb": ("    x = bytearray(8 << 30)\n    return 1\n", "memory"),
    "write_outside": ("    open({path!r}, 'w').write('x')\n    return 1\n", "failed"),
    "socket_connect": (
        "    import socket\n    socket.create_connection(('1.1.1.1', 80), timeout=2)\n"
        "    return 1\n",
        "failed",
    ),
    "kill_parent": (
        "    import os, signal\n    os.kill(os.getppid(), signal.SIGKILL)\n"
        "    os.kill({me}, signal.SIGKILL)\n    return 1\n",
        "failed",
    ),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_completions_are_contained_scored_zero_and_reported(name, tmp_path):
    iso = sandbox.isolation()
    needs = {
        "socket_connect": iso.network,
        "kill_parent": iso.pid_namespace or iso.uid is not None,
        "write_outside": iso.readonly_fs or iso.uid is not None,
    }
    if not needs.get(name, True):
        pytest.skip(f"{name}: the isolation it needs is missing here ({iso.describe()})")
    target = tmp_path / "escaped.txt"
    body, status = HOSTILE[name]
    body = body.format(path=str(target), me=os.getpid())
    # the loop must reach its 1 CPU second before the wall clock, even on a busy machine
    limits = {"cpu_s": 1, "wall_s": 15.0 if name == "infinite_loop" else 3.0}
    r = CodeExecutionReward("completion", sandbox=limits)
    assert r(["p"], [body], [gold(TOY)]) == [0.0]
    assert r.pop_stats()[f"exec/{status}_share"] == 1.0
    assert not target.exists()


def test_a_program_runs_once_however_often_it_is_scored(monkeypatch):
    calls = []
    real = sandbox.run_many

    def counting(programs, *a, **k):
        calls.append(len(programs))
        return real(programs, *a, **k)

    monkeypatch.setattr(sandbox, "run_many", counting)
    r = CodeExecutionReward("completion")
    comp = "    return 1 + 0 * 12345\n"  # a program no other test runs
    assert r(["p"] * 2, [comp, comp], [gold(TOY)] * 2) == [1.0, 1.0]
    assert r(["p"], [comp], [gold(TOY)]) == [1.0]
    assert calls == [1]


def test_the_problem_must_come_with_the_reference():
    with pytest.raises(RewardError, match="needs each prompt's problem"):
        CodeExecutionReward()(["p"], ["    return 1"], ["    return 1"])


@pytest.mark.parametrize(
    "override,message",
    [
        ("reward.extract=nope", "reward.extract='nope': choose one of"),
        ("reward.sandbox.max_parallel=0", "reward.sandbox.max_parallel=0: must be ≥ 1"),
        ("reward.sandbox.cpu_s=0", "reward.sandbox.cpu_s=0: must be ≥ 1"),
    ],
)
def test_bad_settings_name_the_key(override, message):
    from tests.conftest import compose_cfg

    cfg = compose_cfg("task=humaneval", "reward=code_execution", override)
    with pytest.raises(ConfigError, match=message):
        build_reward(cfg.reward)
