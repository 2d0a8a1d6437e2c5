"""Keys: named components, one digest per content whatever the order, readable differences."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

from omegaconf import OmegaConf

from rft.store.key import Key, canonical_json, diff_parts, jsonable


class Color(str, Enum):
    red = "red"


def test_the_digest_depends_on_content_not_on_order_or_container_type():
    a = Key("evaluation", {"eval": {"seed": 7919, "batch_size": 32}, "threads": 2})
    b = Key(
        "evaluation", OmegaConf.create({"threads": 2, "eval": {"batch_size": 32, "seed": 7919}})
    )
    assert a.digest == b.digest and len(a.digest) == 32
    assert Key("other", a.parts).digest != a.digest  # the kind is part of the key


def test_every_value_change_changes_the_digest():
    base = {"lr": 1e-5, "seed": 0, "flag": True, "name": "x", "none": None, "list": [1, 2]}
    digests = {Key("k", base).digest}
    for change in (
        {"lr": 1.0000000000000002e-5},  # one ulp: floats are written exactly
        {"seed": 1},
        {"flag": False},
        {"name": "y"},
        {"none": 0},
        {"list": [2, 1]},
        {"extra": 1},
    ):
        digests.add(Key("k", {**base, **change}).digest)
    assert len(digests) == 8


def test_jsonable_turns_config_types_into_plain_data():
    cfg = OmegaConf.create({"a": "${b}", "b": 3, "t": [1, 2]})
    assert jsonable({"cfg": cfg, "c": Color.red, "p": Path("/x"), "t": (1, 2)}) == {
        "cfg": {"a": 3, "b": 3, "t": [1, 2]},
        "c": "red",
        "p": "/x",
        "t": [1, 2],
    }
    assert canonical_json({"x": float("nan")}) == '{"x":"nan"}'  # strict JSON, still distinct


def test_diff_names_nested_components():
    a = {"eval": {"seed": 1, "generation": {"top_k": 50}}, "threads": 1, "only_a": 0}
    b = {"eval": {"seed": 2, "generation": {"top_k": 0}}, "threads": 1, "only_b": 0}
    assert diff_parts(a, b) == ["eval.generation.top_k", "eval.seed", "only_a", "only_b"]
    assert Key("k", a).diff(a) == []
