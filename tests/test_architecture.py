"""The shape of the house, checked: layers import downwards only, the run directory has one owner,
and command-line verbs stay thin. Read from the source with `ast`, nothing is imported."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
MODULES = {
    ".".join(p.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__"): p
    for p in sorted((SRC / "ninlab").rglob("*.py"))
}
LAZY_IMPORTS = {("ninlab.convert.export", "onnxruntime")}  # optional: ninlab[onnx]
RUN_FILES = ("config.json", "metrics.jsonl", "metrics.csv", "checkpoint.pt", "best.safetensors",
             "final.safetensors", "curves.png", "confusion.png")  # fmt: skip


def _imports(module: str) -> set[str]:
    """The ninlab modules `module` imports: `from ninlab.a import b` counts as ninlab.a.b when
    that is a module, else as ninlab.a."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "ninlab"}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "ninlab":
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                found.add(sub if sub in MODULES else node.module)
    return found - {module}


GRAPH = {m: _imports(m) for m in MODULES}


def test_the_graph_is_read():
    assert "ninlab.runs" in GRAPH["ninlab.cli.evaluate"]
    assert "ninlab.train.config" in GRAPH["ninlab.train.loop"]
    assert len(GRAPH) > 50


def test_no_module_imports_the_package_top():
    assert [m for m, deps in GRAPH.items() if "ninlab" in deps and m != "ninlab.__main__"] == []


def test_no_import_loops():
    """No cycle in the module graph (Tarjan's strongly connected components, any length)."""
    index, low, stack, on_stack, loops = {}, {}, [], set(), []

    def visit(m):
        index[m] = low[m] = len(index)
        stack.append(m)
        on_stack.add(m)
        for d in GRAPH.get(m, ()):
            if d not in index:
                visit(d)
                low[m] = min(low[m], low[d])
            elif d in on_stack:
                low[m] = min(low[m], index[d])
        if low[m] == index[m]:
            component = []
            while True:
                d = stack.pop()
                on_stack.discard(d)
                component.append(d)
                if d == m:
                    break
            if len(component) > 1:
                loops.append(sorted(component))

    for m in GRAPH:
        if m not in index:
            visit(m)
    assert loops == []


def test_imports_sit_at_the_top_of_modules():
    inner = set()
    for module, path in MODULES.items():
        for fn in ast.walk(ast.parse(path.read_text())):
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                for node in ast.walk(fn):
                    if isinstance(node, ast.Import | ast.ImportFrom):
                        names = [node.module] if isinstance(node, ast.ImportFrom) else []
                        names += [a.name for a in node.names]
                        inner.add((module, names[0]))
    assert inner == LAZY_IMPORTS


def test_only_runs_names_the_run_directory_files():
    owners = {
        (module, node.value)
        for module, path in MODULES.items()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and node.value in RUN_FILES
    }
    assert {m for m, _ in owners} == {"ninlab.runs"}


VERBS = sorted(m for m in MODULES if m.startswith("ninlab.cli.") and m != "ninlab.cli.options")


@pytest.mark.parametrize("verb", VERBS)
def test_cli_verbs_are_thin(verb):
    tree = ast.parse(MODULES[verb].read_text())
    run = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "run")
    assert run.end_lineno - run.lineno + 1 <= 30
    assert ast.get_docstring(tree) and "Examples:" in ast.get_docstring(tree)
    # verbs call the library, never one another
    assert not {d for d in GRAPH[verb] if d.startswith("ninlab.cli.") and d != "ninlab.cli.options"}
