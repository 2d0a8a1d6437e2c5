"""The golden table: every ``alg=`` option's final metrics and per-iteration records on one
fixed-seed tiny run, recorded once and compared ever after.

It pins behaviour across refactors: a change that is meant to restructure code, not to change
what it computes, must leave every number here as it was. Record (only when a change of numbers
is intended, and say so in the commit):

    python -m tests.alg.golden --record            # rewrites tests/alg/golden.json
    python -m tests.alg.golden --check [ALG ...]   # compare, exactly (tolerance 0)

``tests/alg/test_golden.py`` compares with a small relative tolerance: another CPU's kernels
(another SIMD width) round float sums differently, and CI need not run on the machine that
recorded the table. ``--check`` (the tool for a refactor) demands bit-identical numbers. The
table holds the torch / transformers / lightning versions it was recorded with; under other
versions the test skips with that reason (a library's new sampler or kernel is not a
regression of rft's: record again).

Each case is the smallest budget that still runs every phase of its family: rollouts or steps,
a periodic val evaluation, a checkpoint each iteration, the initial and final test evaluations.
The cases use knob names as the config spells them today; renaming a knob means editing the
case here, never the recorded numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from pathlib import Path

GOLDEN = Path(__file__).with_name("golden.json")

WORDS = (
    "good great fine nice fun happy lovely bright bad awful dull boring sad ugly grim dark".split()
)


def write_data(path: Path, n: int = 40, seed: int = 0) -> Path:
    """n rows with every column some family reads: prompt, reference, chosen / rejected
    (preference), label (classifier)."""
    rng = random.Random(seed)
    with open(path, "w") as f:
        for i in range(n):
            words = lambda k: " ".join(rng.choice(WORDS) for _ in range(k))  # noqa: E731
            row = {
                "prompt": f"Review {i}: {words(rng.randint(3, 6))}",
                "reference": words(rng.randint(2, 6)),  # rewards that vary (A-LoL)
                "chosen": words(rng.randint(2, 4)),
                "rejected": "the end " + words(3),
                "label": i % 2,
            }
            f.write(json.dumps(row) + "\n")
    return path


def base(data: Path) -> list[str]:
    return [
        "task=jsonl",
        f"task.path={data}",
        "task.max_new_tokens=6",
        "task.min_new_tokens=2",
        "task.val_fraction=0.2",
        "task.test_fraction=0.1",
        "task.n_eval_prompts=2",
        "task.n_test_prompts=3",
        "model=tiny",
        "logger=none",
        "hardware=cpu_fp32",
        "hardware.torch_threads=1",
        "eval.batch_size=4",
        "eval.n_samples_table=2",
        "eval.samples_per_prompt=2",
        "checkpoint.every_n_iterations=1",
        "reward=custom",
        "reward._target_=rft.reward.basic.length_reward",
        "+reward.target_words=3",
        "seed=3",
        "store.reuse=false",  # computed here, whatever an earlier run left in the store
        "store.publish=false",
    ]


ONLINE = (
    "alg.n_iterations=3",
    "alg.rollout_prompts=4",
    "alg.minibatch_size=4",
    "alg.eval_every=2",
    "alg.lr=1e-3",
    "alg.score_batch_size=4",
)
PPO = (*ONLINE, "alg.update_epochs=2")
GROUP = (*ONLINE, "alg.samples_per_prompt=2", "alg.micro_batch_size=2")
STEPS = ("alg.max_steps=4", "alg.batch_size=4", "alg.eval_every=2", "alg.lr=1e-3")
OFFLINE = (
    *STEPS,
    "alg.n_train_pairs=16",
    "alg.score_batch_size=8",
    "alg.value.n_prompts=4",
    "alg.value.epochs=2",
    "alg.value.batch_size=2",
)
PREFERENCE = (*STEPS, "task.chosen_key=chosen", "task.rejected_key=rejected")
REWARD_MODELS = (
    "alg.backbone=tiny_bert",
    "alg.max_steps=4",
    "alg.batch_size=4",
    "alg.eval_every=2",
    "alg.lr=1e-3",
    "task.reference_key=null",
    "eval.before_training=false",
)

CASES: dict[str, tuple[str, ...]] = {
    "ppo": PPO,
    "nlpo": (*PPO, "alg.target_update_iterations=2", "alg.min_tokens_to_keep=10"),
    "a2c": (*ONLINE, "alg.minibatch_size=3"),
    "trpo": (
        *ONLINE,
        "alg.update_epochs=2",
        "alg.micro_batch_size=3",
        "alg.cg_max_steps=5",
        "alg.fisher_fraction=0.5",
    ),
    "ppo_pp": (*PPO, "alg.restart_prob.ppo_pp=0.5"),
    "aggrevated": PPO,
    "lols": PPO,
    "dlols": (*PPO, "alg.schedule.switch_iteration=1"),
    **{g: GROUP for g in ("grpo", "dr_grpo", "rloo", "reinforce_pp", "gspo")},
    "dapo": (*GROUP, "alg.max_sampling_rounds=2"),
    "sft": STEPS,
    **{
        o: OFFLINE
        for o in (
            "nll",
            "wbc",
            "r_gold",
            "r_lol",
            "a_lol",
            "a_lol_ref_free",
            "a_lol_seq",
            "a_lol_kl",
        )
    },
    **{p: PREFERENCE for p in ("dpo", "ipo", "hinge", "dpo_ref_free")},
    "reward_classifier": REWARD_MODELS,
    "reward_model": (*REWARD_MODELS, "task.chosen_key=chosen", "task.rejected_key=rejected"),
}


def overrides(alg: str, data: Path) -> list[str]:
    return [*base(data), f"alg={alg}", *CASES[alg]]


def kept(key: str) -> bool:
    """Numbers that describe what was computed, not how long it took."""
    return not (key.startswith(("time/", "reused/")) or "_per_s" in key)


def numbers(row: dict) -> dict:
    return {k: v for k, v in row.items() if isinstance(v, (int, float)) and kept(k)}


def run_case(alg: str, workdir: Path) -> dict:
    """Train the golden case of ``alg`` in ``workdir``; its final metrics, every history row's
    numbers and the sampled completions of its evaluations."""
    from rft.train import train
    from tests.conftest import compose_cfg

    data = write_data(workdir / "data.jsonl")
    run = workdir / "run"
    metrics = train(compose_cfg(*overrides(alg, data)), run_dir=run)
    history = [numbers(json.loads(line)) for line in open(run / "history.jsonl")]
    samples = []
    if (run / "samples.jsonl").is_file():
        samples = [json.loads(line).get("completion") for line in open(run / "samples.jsonl")]
    return {"metrics": numbers(metrics), "history": history, "samples": samples}


def differences(want, got, rel: float = 0.0, path: str = "") -> list[str]:
    """Where ``got`` differs from ``want`` (numbers within ``rel`` relative tolerance, or an
    absolute 1e-7 for numbers near 0, count as equal)."""
    if isinstance(want, dict) and isinstance(got, dict):
        out = [f"{path}/{k}: missing" for k in want if k not in got]
        out += [f"{path}/{k}: new" for k in got if k not in want]
        for k in want.keys() & got.keys():
            out += differences(want[k], got[k], rel, f"{path}/{k}")
        return out
    if isinstance(want, list) and isinstance(got, list):
        if len(want) != len(got):
            return [f"{path}: {len(want)} entries recorded, {len(got)} now"]
        return [
            d
            for i, (w, g) in enumerate(zip(want, got))
            for d in differences(w, g, rel, f"{path}[{i}]")
        ]
    if isinstance(want, (int, float)) and isinstance(got, (int, float)):
        same = want == got or (rel > 0 and math.isclose(want, got, rel_tol=rel, abs_tol=1e-7))
        same = same or (isinstance(want, float) and math.isnan(want) and math.isnan(got))
        return [] if same else [f"{path}: recorded {want!r}, now {got!r}"]
    return [] if want == got else [f"{path}: recorded {want!r}, now {got!r}"]


def library_versions() -> dict[str, str]:
    """The libraries whose kernels and samplers the recorded numbers depend on."""
    import lightning
    import torch
    import transformers

    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "lightning": lightning.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    import tempfile

    import torch

    p = argparse.ArgumentParser(
        prog="python -m tests.alg.golden", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--record", action="store_true", help="rewrite tests/alg/golden.json")
    p.add_argument("--check", action="store_true", help="compare with tolerance 0")
    p.add_argument("algs", nargs="*", help="only these alg= options (default: all)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    algs = args.algs or list(CASES)
    table = json.loads(GOLDEN.read_text()) if GOLDEN.is_file() else {}
    failed = 0
    for alg in algs:
        with tempfile.TemporaryDirectory() as d:
            got = run_case(alg, Path(d))
        if args.record:
            table[alg] = got
            table["_versions"] = library_versions()
            GOLDEN.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
            print(f"{alg}: recorded ({len(got['history'])} history rows)")
            continue
        diffs = differences(table.get(alg, {}), got)
        failed += bool(diffs)
        print(f"{alg}: {'identical' if not diffs else f'{len(diffs)} differences'}")
        for d in diffs[:20]:
            print("   ", d)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
