"""Every ```python block of README.md runs as a reader would run it: alone, in a fresh namespace,
in an empty working directory. A block that trains keeps itself short by its own options
(`epochs=1, limit_train=...`), so the reader's copy is quick too. The data is Fashion-MNIST where
it is installed (/usr/share/datasets/fashion-mnist, as CI does), else a tiny random set in its
layout through NINLAB_DATA. A block whose first line is `# needs: ...` reads files that a longer
setting-up makes (an ONNX export, PNG files): that line names the test that runs it, e.g.
"(tests/test_export_use.py runs it)", and here it is only checked that this test exists.
```bash and ```text blocks are not run."""

import re
import socket
from pathlib import Path

import pytest
import torch.distributed as dist

from .conftest import make_idx_dataset

TESTS = Path(__file__).resolve().parent
README = TESTS.parent / "README.md"
FASHION = Path("/usr/share/datasets/fashion-mnist")
FENCE = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(line number of the opening fence, code) of every ```python block."""
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in FENCE.finditer(text)]


BLOCKS = python_blocks(README.read_text())
# a block that needs files another test makes says so on its first line, "# needs: ...
# (tests/test_X.py runs it)": that test runs it, and this one checks that it does
RUN_ELSEWHERE = [(n, code) for n, code in BLOCKS if code.startswith("# needs:")]
BLOCKS = [(n, code) for n, code in BLOCKS if not code.startswith("# needs:")]


def test_the_blocks_are_found():
    assert len(BLOCKS) >= 3
    assert python_blocks("a\n```python\nx = 1\n```\n```bash\nls\n```\n") == [(2, "x = 1\n")]


@pytest.mark.parametrize("line, code", RUN_ELSEWHERE, ids=[f"line{n}" for n, _ in RUN_ELSEWHERE])
def test_a_block_run_elsewhere_is_run_there(line, code):
    runner = re.search(r"(tests/test_\w+\.py) runs it", code.splitlines()[0])
    assert runner, f"README.md line {line}: say which test runs this block"
    assert "README" in (TESTS.parent / runner.group(1)).read_text()  # it reads the block there


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("line, code", BLOCKS, ids=[f"line{n}" for n, _ in BLOCKS])
def test_readme_block_runs(line, code, tmp_path, monkeypatch):
    if not all((FASHION / f).is_file() for f in ("train-images-idx3-ubyte.gz",
                                                 "t10k-images-idx3-ubyte.gz")):  # fmt: skip
        make_idx_dataset(tmp_path / "data" / "fashion-mnist", n_train=200, n_test=100)
        monkeypatch.setenv("NINLAB_DATA", str(tmp_path / "data"))
    # a block written for torchrun finds the environment torchrun would give one process
    one = dict(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", LOCAL_WORLD_SIZE="1")
    for key, value in dict(one, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port())).items():
        monkeypatch.setenv(key, value)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    try:
        exec(compile(code, f"README.md, block at line {line}", "exec"), {"__name__": "__main__"})
    finally:
        if dist.is_initialized():  # a block that failed half-way leaves no group behind
            dist.destroy_process_group()
