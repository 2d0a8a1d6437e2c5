"""Wrong values for every knob of every schema, and what counts as a clean outcome.

The knobs come from the schemas themselves (the dataclasses of rft/config.py, walked with
their types), so a knob added tomorrow is covered without touching this file. For each knob's
type a few values that are wrong whatever the knob means: another type, a negative or zero
count, NaN and infinities, an empty string, a value outside its Enum, a path that does not
exist. Each runs in-process through ``rft.train.train(compose_cfg(...), run_dir)`` on the
smallest budget of its family (one iteration or two steps of a tiny model).

A clean outcome: a ConfigError / DataError (any RFTError) or an OmegaConf / Hydra error while
composing (run.py prints both as one ``rft: error:`` line, tests/integration/test_one_door.py),
or a run that finishes. Anything else is a traceback a user would see.

``KNOWN`` lists the overrides whose check belongs in a file being refactored (rft/alg/*,
rft/train.py): they fail today and are marked xfail by this list, with the last line of the
traceback, until the checks are added there (the lead's per-algorithm ``check_config``).
"""

from __future__ import annotations

import dataclasses
import enum
import gzip
import json
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rft.alg.schemas as S
import rft.config as C
from tests.conftest import PPO_SMALL, SFT_SMALL, tiny_overrides, write_prompts

# ------------------------------------------------------------------------------ the knobs


@dataclass(frozen=True)
class Knob:
    key: str  # dotted, e.g. alg.kl.beta
    type: Any  # the resolved annotation
    default: Any


def _hints(schema: type) -> dict[str, Any]:
    return typing.get_type_hints(schema, {**vars(C), **vars(S)})


def _unwrap(tp) -> tuple[Any, bool]:
    """(inner type, optional) of ``X | None``."""
    args = typing.get_args(tp)
    if (typing.get_origin(tp) in (typing.Union, types.UnionType)) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else Any), True
    return tp, False


def knobs(
    schema: type, prefix: str, skip: tuple[str, ...] = (), own_only: bool = False
) -> list[Knob]:
    """Every leaf knob of ``schema`` under ``prefix``, nested blocks walked; ``own_only``: only
    the fields its parent schema does not have (NLPO's on top of PPO's)."""
    out: list[Knob] = []
    hints = _hints(schema)
    inherited = set()
    if own_only:
        parent = schema.__mro__[1]
        inherited = {f.name for f in dataclasses.fields(parent)}
    for f in dataclasses.fields(schema):
        key = f"{prefix}.{f.name}" if prefix else f.name
        if f.name.startswith("_") or key in skip or f.name in inherited:
            continue
        tp, _ = _unwrap(hints[f.name])
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            out += knobs(tp, key, skip)
            continue
        default = f.default if f.default is not dataclasses.MISSING else None
        out.append(Knob(key, hints[f.name], default))
    return out


PATHLIKE = ("path", "dir", "init_from", "resume", "tokenizer", "cache", "idf_references")


def wrong_values(k: Knob) -> list[str]:
    """Override values (Hydra syntax) that are wrong for ``k`` whatever it means."""
    tp, optional = _unwrap(k.type)
    name = k.key.rsplit(".", 1)[-1]
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return ["bogus", "''", "3"]
    if tp is bool:
        return ["maybe", "2"]
    if tp is int:
        return ["-1", "0", "2.5", "abc"]
    if tp is float:
        return ["-1.0", "nan", "inf", "abc"]
    if tp is str:
        vals = ["''"]
        if any(p in name for p in PATHLIKE) or name == "name_or_path":
            vals += ["/nonexistent/rft/x", "/proc/rft_cannot_write"]
        else:
            vals += ["'!!bogus!!'"]
        return vals
    origin = typing.get_origin(tp)
    if origin is list:
        return ["[bogus]", "[]", "[1,2]", "abc"]
    if origin is dict:
        return []  # free-form (weighted_sum terms): tests/integration/test_one_door.py
    return ["-3", "abc", "[]", "{}"]  # Any: hardware.devices


# ------------------------------------------------------------------------------ the families
# name -> (schemas to walk, base overrides given the data folder). Each base finishes in about
# a second on the tiny model; the schemas' knobs are set on it one at a time.
SKIP = (
    "task.name",  # names only (logs, run folders)
    "model.name",
    "alg.name",
    "hardware.name",
    "experiment_name",
    "alg.guide.model",  # a whole model config (its knobs: the model family)
    "alg.warm_start.batch_size",
)


def data(root: Path) -> dict[str, Path]:
    """Small files every family reads: prompts, prompts with a reward column, preference pairs,
    an IMDB folder, the CommonGen fixture."""
    root.mkdir(parents=True, exist_ok=True)
    prompts = write_prompts(root / "prompts.jsonl")
    scored = root / "scored.jsonl"
    prefs = root / "prefs.jsonl"
    with open(scored, "w") as f, open(prefs, "w") as g:
        for i, line in enumerate(prompts.read_text().splitlines()):
            row = json.loads(line)
            f.write(json.dumps({**row, "reward": (i % 5) / 4}) + "\n")
            g.write(
                json.dumps(
                    {"prompt": row["prompt"], "chosen": "good fun", "rejected": f"bad {i} dull"}
                )
                + "\n"
            )
    imdb = root / "imdb"
    imdb.mkdir(exist_ok=True)
    for split, n in (("train", 24), ("test", 12)):
        with gzip.open(imdb / f"{split}.jsonl.gz", "wt") as f:
            for i in range(n):
                text = f"review {i} of the film was good and then it was bad at the end"
                f.write(json.dumps({"text": text, "label": i % 2}) + "\n")
    commongen = Path(__file__).resolve().parents[1] / "task" / "fixtures" / "commongen"
    return {"prompts": prompts, "scored": scored, "prefs": prefs, "imdb": root, "cg": commongen}


ONE = ("alg.n_iterations=1", "eval.before_training=false", "checkpoint.save_policy=false")
LENGTH = (
    "reward=custom",
    "reward._target_=rft.reward.basic.length_reward",
    "+reward.target_words=3",
)


def _ppo(d):
    return tiny_overrides(d["prompts"], *PPO_SMALL, *ONE)


def _grpo(d):
    return tiny_overrides(
        d["prompts"],
        "alg=grpo",
        "alg.rollout_prompts=4",
        "alg.samples_per_prompt=2",
        "alg.minibatch_size=4",
        "alg.micro_batch_size=4",
        "alg.eval_every=0",
        *ONE,
        *LENGTH,
    )


def _sft(d):
    return tiny_overrides(d["prompts"], *SFT_SMALL, "eval.before_training=false")


def _nlpo(d):
    return tiny_overrides(d["prompts"], *PPO_SMALL, "alg=nlpo", *ONE)


def _guided(d):
    return tiny_overrides(
        d["prompts"],
        "alg=ppo_pp",
        "alg.rollout_prompts=4",
        "alg.minibatch_size=2",
        "alg.update_epochs=1",
        "alg.eval_every=0",
        "alg.score_batch_size=4",
        *ONE,
    )


def _alol(d):
    from tests.alg.conftest import alol_overrides

    return alol_overrides(d["scored"], "a_lol", "task.reward_key=reward")


def _dpo(d):
    from tests.alg.test_dpo import dpo_overrides

    return dpo_overrides(d["prefs"], "dpo")


def _reward_model(d):
    return [
        "task=jsonl",
        f"task.path={d['prefs']}",
        "task.reference_key=null",
        "task.chosen_key=chosen",
        "task.rejected_key=rejected",
        "task.n_eval_prompts=-1",
        "task.n_test_prompts=-1",
        "logger=none",
        "hardware=cpu_fp32",
        "eval.before_training=false",
        "alg=reward_model",
        "alg.backbone=tiny_bert",
        "alg.max_steps=2",
        "alg.batch_size=4",
    ]


def _imdb(d):
    return [
        *[
            o
            for o in _ppo(d)
            if not o.startswith(("task=", "task.path", "task.val_", "task.test_"))
        ],
        "task=imdb",
        f"task.data_dir={d['imdb']}",
        "task.n_train=16",
        "task.n_val=4",
        "task.n_test=4",
    ]


def _commongen(d):
    base = [
        o for o in _ppo(d) if not o.startswith(("task=", "task.path", "task.val_", "task.test_"))
    ]
    return [*base, "task=commongen", f"task.data_dir={d['cg']}", *LENGTH]


def _reward(option: str):
    def base(d):
        return [*_ppo(d), f"reward={option}"]

    return base


FAMILIES: dict[str, tuple[Any, list[tuple]]] = {
    "ppo": (
        _ppo,
        [
            (C.Config, ""),
            (C.JsonlTaskConfig, "task"),
            (C.ModelConfig, "model"),
            (S.PPOConfig, "alg"),
            (C.HardwareConfig, "hardware"),
            (C.LoggerConfig, "logger"),
        ],
    ),
    "grpo": (_grpo, [(S.GroupConfig, "alg")]),
    "sft": (_sft, [(S.SFTConfig, "alg")]),
    "nlpo": (_nlpo, [(S.NLPOConfig, "alg", True)]),
    "ppo_pp": (_guided, [(S.GuidedPPOConfig, "alg", True)]),
    "a_lol": (_alol, [(S.OfflineRLConfig, "alg")]),
    "dpo": (_dpo, [(S.DPOConfig, "alg")]),
    "reward_model": (_reward_model, [(S.BradleyTerryRewardConfig, "alg")]),
    "imdb": (_imdb, [(C.ImdbTaskConfig, "task")]),
    "commongen": (_commongen, [(C.CommongenTaskConfig, "task")]),
    "vader": (_reward("sentiment_vader"), [(C.VaderRewardConfig, "reward")]),
    "rouge": (_reward("rouge"), [(C.RougeRewardConfig, "reward")]),
    "bleu": (_reward("bleu"), [(C.BleuRewardConfig, "reward")]),
    "cider": (_reward("cider"), [(C.CiderRewardConfig, "reward")]),
}

# the root groups are chosen by name (task=, alg=, ...), their knobs are walked separately
ROOT_GROUPS = ("task", "model", "alg", "reward", "hardware", "logger")


def cases() -> list[tuple[str, str]]:
    """Every (family, override) the property test draws from, in a fixed order."""
    out = []
    for fam, (_, schemas) in FAMILIES.items():
        for schema, prefix, *own in schemas:
            for k in knobs(schema, prefix, SKIP, own_only=bool(own)):
                if k.key in ROOT_GROUPS:
                    continue
                out += [(fam, f"{k.key}={v}") for v in wrong_values(k)]
    return out


def base_overrides(family: str, d: dict[str, Path]) -> list[str]:
    return FAMILIES[family][0](d)


# ------------------------------------------------------------------------------ outcomes
def outcome(exc: BaseException | None) -> str:
    """'clean' (a finished run), 'rft' (an RFTError), 'compose' (Hydra / OmegaConf while
    composing) or 'bad: <Type: last line>'."""
    if exc is None:
        return "clean"
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from rft.errors import RFTError

    if isinstance(exc, RFTError):
        return "rft"
    if isinstance(exc, (HydraException, OmegaConfBaseException)):
        return "compose"
    last = (str(exc).strip().splitlines() or [""])[-1]
    return f"bad: {type(exc).__name__}: {last[:200]}"


# (family, override) -> the last line of today's traceback: a check that belongs in a file
# being refactored (rft/alg/*, rft/train.py). Filled from `python -m tests.integration.
# wrong_values` (which runs every case); the property test marks these xfail.
KNOWN: dict[tuple[str, str], str] = {}


def main() -> None:  # pragma: no cover - the exploration behind KNOWN, run by hand
    """Run every case once (slow: minutes) and print those that are not clean."""
    import argparse
    import tempfile
    import traceback

    from tests.conftest import compose_cfg

    ap = argparse.ArgumentParser()
    ap.add_argument("--family", nargs="*")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="rft-wrong-"))
    d = data(root / "data")
    bad = {}
    todo = [c for c in cases() if not args.family or c[0] in args.family]
    print(f"{len(todo)} cases", flush=True)
    for n, (fam, override) in enumerate(todo):
        exc = None
        try:
            from rft.train import train

            cfg = compose_cfg(*base_overrides(fam, d), override)
            train(cfg, run_dir=root / f"run{n}")
        except BaseException as e:  # noqa: BLE001
            if isinstance(e, KeyboardInterrupt):
                raise
            exc = e
        o = outcome(exc)
        print(f"{n:4d} {fam:12s} {override:50s} {o}", flush=True)
        if o.startswith("bad"):
            bad[f"{fam}|{override}"] = o
            tb = "".join(traceback.format_exception(exc)[-3:])
            print(tb, flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(bad, indent=1))


if __name__ == "__main__":  # pragma: no cover
    main()
