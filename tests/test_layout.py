"""The layout's limits (docs/architecture.md): one package per stage, imports one way, small files."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "anatlearn"


def modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the package."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imports_of(path: Path, names: set[str]) -> set[str]:
    """The anatlearn modules a file imports, at any depth (lazy imports inside functions count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in names else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {n for n in found if n in names}


def stage(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "anatlearn"


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_stages_import_one_way():
    """No circle between stages (the command line sits on top: nothing imports it)."""
    mods = modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        src = stage(name)
        graph.setdefault(src, set()).update(stage(m) for m in imports_of(path, set(mods)) if stage(m) != src)
    graph.pop("anatlearn", None)  # the package root only re-exports
    graph.pop("__main__", None)  # `python -m anatlearn`: the entry point
    assert not any("cli" in deps for s, deps in graph.items() if s != "cli")
    assert find_cycle(graph) is None, find_cycle(graph)


def test_modules_import_one_way_within_a_stage():
    """No circle between the modules of one stage (a package's __init__ re-exporting its modules aside)."""
    mods = modules()
    graph = {name: {m for m in imports_of(path, set(mods)) if not (path.name == "__init__.py" or
                                                                   mods[m].name == "__init__.py")}
             for name, path in mods.items()}
    assert find_cycle(graph) is None, find_cycle(graph)


def test_size_limits():
    top = sorted(p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert len(top) <= 8, top
    big = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert big == {}


def test_train_and_study_functions_are_short():
    """No function on the train or study path is over 80 lines."""
    long = {}
    for folder in ("pretrain", "study", "losses", "finetune"):
        for path in (PACKAGE / folder).glob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    n = node.end_lineno - node.lineno + 1
                    if n > 80:
                        long[f"{folder}/{path.name}:{node.name}"] = n
    assert long == {}
