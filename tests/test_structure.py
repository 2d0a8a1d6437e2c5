"""The shape of the package: no import circles (function-level imports included), no function
over 60 lines, the rollout layer free of algorithms, and every alg= option built on one of the
two family bases with its checks declared on the class."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import CONF, REPO, compose_cfg

RFT = REPO / "rft"
MAX_FUNCTION_LINES = 60


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(RFT.rglob("*.py"))}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Every rft module ``path`` imports, at any depth of its code (function bodies too): a
    ``from a.b import c`` counts as a.b.c when that is a module, else a.b."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package (rft's own code has none)
                mod = module_name(path).split(".")
                pkg = mod if path.name == "__init__.py" else mod[:-1]
                base = ".".join(pkg[: len(pkg) - node.level + 1] + ([base] if base else []))
            for a in node.names:
                sub = f"{base}.{a.name}"
                if sub in known:
                    out.add(sub)
                elif base in known:
                    out.add(base)
    return out


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports_of(path, known) - {name} for name, path in mods.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` (a list of modules, first = last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m) :] + [m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (found := visit(n)):
            return found
    return None


def test_no_import_circles_anywhere_in_rft():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_the_circle_finder_finds_one():
    # the test above can fail: a planted circle through a function-level import is found
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_package_imports_are_resolved_into_submodules(tmp_path):
    known = {"rft.model", "rft.model.lora", "rft.alg.ppo"}
    src = tmp_path / "x.py"
    src.write_text("def f():\n    from rft.model import lora\n    import rft.alg.ppo\n")
    assert imports_of(src, known) == {"rft.model.lora", "rft.alg.ppo"}


def test_the_rollout_layer_imports_no_algorithm():
    graph = import_graph()
    for name, deps in graph.items():
        if name.startswith(("rft.rollout", "rft.model")):
            assert not {d for d in deps if d.startswith("rft.alg")}, (name, deps)


def long_functions(root: Path = RFT) -> list[str]:
    """``file:line name (n lines)`` of every function under ``root`` longer than the limit
    (docstring included)."""
    out = []
    for p in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    out.append(f"{p.relative_to(root)}:{node.lineno} {node.name} ({n} lines)")
    return out


def test_no_function_is_over_60_lines():
    assert long_functions() == []


def test_the_length_check_sees_a_long_function(tmp_path):
    (tmp_path / "m.py").write_text("def f():\n" + "    x = 1\n" * 60 + "def g():\n    pass\n")
    assert long_functions(tmp_path) == ["m.py:1 f (61 lines)"]


# ------------------------------------------------------------------------------ algorithms
ALG_OPTIONS = sorted(p.stem for p in (CONF / "alg").glob("*.yaml"))


@pytest.mark.parametrize("alg", ALG_OPTIONS)
def test_every_alg_option_is_built_on_a_family_base(alg):
    from rft.alg.online import OnlineRL
    from rft.alg.schemas import OnlineConfig, StepConfig
    from rft.alg.steps import StepModule
    from rft.train import algorithm_class

    cfg = compose_cfg(f"alg={alg}")
    cls = algorithm_class(cfg)
    assert issubclass(cls, (OnlineRL, StepModule)), cls
    assert "check_config" in vars(cls) or any("check_config" in vars(b) for b in cls.__mro__[1:])
    # the module's base and its schema's base agree
    schema = cfg.alg._metadata.object_type
    want = OnlineConfig if issubclass(cls, OnlineRL) else StepConfig
    assert issubclass(schema, want), (alg, schema)
