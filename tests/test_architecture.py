"""The shape of the house, checked: layers import downwards only (LAYERS, the order written once),
the run directory has one owner, and command-line verbs stay thin. Read from the source with
`ast`, nothing is imported."""

import ast
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ninlab.cli import main

SRC = Path(__file__).resolve().parents[1] / "src"
MODULES = {
    ".".join(p.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__"): p
    for p in sorted((SRC / "ninlab").rglob("*.py"))
}
# The layers, lowest first: a module imports only from its own layer or a lower one. A layer is a
# package, or for the ground floor a list of modules; `ninlab` itself (the public API) and
# `ninlab.__main__` stand above them all.
LAYERS = [
    ("ground", ("ninlab.errors", "ninlab.version", "ninlab.progress", "ninlab.terminal",
                "ninlab.files", "ninlab.checksum", "ninlab.lock", "ninlab.plotting")),
    ("data", ("ninlab.data",)),
    ("models", ("ninlab.models",)),
    ("analysis", ("ninlab.analysis",)),
    ("train", ("ninlab.train",)),
    ("convert", ("ninlab.convert",)),
    ("runs", ("ninlab.runs",)),
    ("locate", ("ninlab.locate",)),
    ("claims", ("ninlab.claims",)),
    ("viz", ("ninlab.viz",)),
    ("explore", ("ninlab.explore",)),
    ("cli", ("ninlab.cli",)),
    ("top", ("ninlab", "ninlab.__main__")),
]  # fmt: skip
LAZY_IMPORTS = {
    ("ninlab.convert.export", "onnxruntime"),  # optional: ninlab[onnx]
    ("ninlab.data.backdrop", "scipy"),  # 0.4 s after torch; only photos and scenes need it
    ("ninlab.explore.server", "uvicorn"),  # optional: ninlab[explore]
    ("ninlab.explore.server", "ninlab.explore.app"),  # Starlette, optional: ninlab[explore]
}
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


def layer(module: str) -> int:
    """The index in LAYERS of the layer `module` belongs to."""
    found = [i for i, (_, heads) in enumerate(LAYERS) for h in heads
             if module == h or module.startswith(h + ".") and h != "ninlab"]  # fmt: skip
    assert len(found) == 1, f"{module} belongs to {len(found)} layers; place it in LAYERS"
    return found[0]


def test_every_module_has_one_layer():
    assert {m: layer(m) for m in MODULES}
    assert LAYERS[layer("ninlab.runs.store")][0] == "runs"
    assert LAYERS[layer("ninlab")][0] == "top"
    assert LAYERS[layer("ninlab.checksum")][0] == "ground"


def test_layers_import_downwards_only():
    upward = sorted((m, d) for m, deps in GRAPH.items() for d in deps if layer(d) > layer(m))
    assert upward == []


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


@pytest.mark.slow
def test_the_cli_starts_without_the_lazy_imports():
    """What LAZY_IMPORTS keeps out of the module top stays out of every command's start: a
    fresh interpreter that imports the CLI has not loaded scipy or onnxruntime."""
    lazy = sorted({name for _, name in LAZY_IMPORTS})
    code = f"import sys, ninlab.cli; print([m for m in {lazy!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_only_runs_names_the_run_directory_files():
    owners = {
        (module, node.value)
        for module, path in MODULES.items()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and node.value in RUN_FILES
    }
    assert {m for m, _ in owners} == {"ninlab.runs.store"}


VERBS = sorted(m for m in MODULES if m.startswith("ninlab.cli.") and m != "ninlab.cli.options")


@pytest.mark.parametrize("verb", VERBS)
def test_cli_verbs_are_thin(verb):
    tree = ast.parse(MODULES[verb].read_text())
    run = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "run")
    assert run.end_lineno - run.lineno + 1 <= 30
    assert ast.get_docstring(tree) and "Examples:" in ast.get_docstring(tree)
    # verbs call the library, never one another
    assert not {d for d in GRAPH[verb] if d.startswith("ninlab.cli.") and d != "ninlab.cli.options"}


def _holds_pixels(value) -> bool:
    """An image in any form the pixels take on their way: a tensor or array of 2 or more
    dimensions, a PIL image, or a picked image (`.image`)."""
    if isinstance(value, torch.Tensor | np.ndarray):
        return value.ndim >= 2
    return isinstance(value, Image.Image) or isinstance(getattr(value, "image", None), torch.Tensor)


def pixel_path(argv: list[str]) -> list[str]:
    """The ninlab modules whose functions the pixels of an image file are handed to, in order,
    while the command `argv` runs: from the first call with the decoded file (a PIL image) to
    the model's forward pass, every call of a ninlab function with an image among its arguments
    (sys.setprofile), consecutive repeats collapsed."""
    path: list[str] = []

    def watch(frame, event, arg):
        module = frame.f_globals.get("__name__", "")
        if event != "call" or not module.startswith("ninlab.") or module.startswith("ninlab.cli"):
            return
        args = frame.f_code.co_varnames[: frame.f_code.co_argcount]
        values = [frame.f_locals.get(a) for a in args]
        if path or any(isinstance(v, Image.Image) for v in values):
            if not any(_holds_pixels(v) for v in values):
                return
            if not path or path[-1] != module:
                path.append(module)
            if frame.f_code.co_name == "forward" and module.startswith("ninlab.models"):
                sys.setprofile(None)  # at the model: the path ends

    sys.setprofile(watch)
    try:
        main(argv)
    finally:
        sys.setprofile(None)
    return path


@pytest.mark.slow
def test_the_pixels_of_predict_go_back_up_the_layers_at_most_twice(tmp_path, capsys):
    """`ninlab predict RUN photo.png`: the picture goes down from the verb to be decoded, up to
    the run that prepares it, and down again to the model; at most two steps up the layers."""
    from .conftest import make_run_dir

    make_run_dir(tmp_path / "run")
    Image.fromarray(np.full((40, 30), 200, np.uint8)).save(tmp_path / "photo.png")
    path = pixel_path(["predict", str(tmp_path / "run"), str(tmp_path / "photo.png")])
    assert "ninlab.data.images" in path and path[-1].startswith("ninlab.models")
    ups = [(a, b) for a, b in pairwise(path) if layer(b) > layer(a)]
    assert len(ups) <= 2, f"{len(ups)} steps up: {' -> '.join(path)}"


def test_the_tests_mirror_the_packages():
    """tests/PACKAGE/ for every package of ninlab, and no test folder that is not one."""
    tests = Path(__file__).resolve().parent
    packages = {p.parent.name for p in (SRC / "ninlab").glob("*/__init__.py")}
    folders = {p.parent.name for p in tests.glob("*/__init__.py")}
    assert folders == packages
