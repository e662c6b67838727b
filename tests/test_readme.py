"""Every ```python block of README.md and of every docs/*.md page runs as a reader would run it:
alone, in a fresh namespace, in an empty working directory; its test id names the page and the line
of its opening fence (`docs/library.md:12`). A block that trains keeps itself short by its own
options (`epochs=1, limit_train=...`), so the reader's copy is quick too. The data is Fashion-MNIST
where it is installed (/usr/share/datasets/fashion-mnist, as CI does), else a tiny random set in
its layout through NINLAB_DATA. A block whose first line is `# needs: ...` reads files that a
longer setting-up makes (an ONNX export, PNG files): that line names the test that runs it,
e.g. "(tests/runs/test_export_use.py runs it)", and here it is only checked that this test names
the page.
```bash and ```text blocks are not run. Every relative link of these pages and of CHANGELOG.md,
`](path)`, names a file of the repository."""

import re
import socket
from pathlib import Path

import pytest
import torch.distributed as dist

from .conftest import make_idx_dataset

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "CHANGELOG.md"]
FASHION = Path("/usr/share/datasets/fashion-mnist")
FENCE = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)
FENCED = re.compile(r"^```.*?^```$", re.S | re.M)  # any fenced block: its text is not markdown
LINK = re.compile(r"\]\(([^)\s]+)\)")  # [text](target)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(line number of the opening fence, code) of every ```python block."""
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in FENCE.finditer(text)]


def local_links(text: str) -> list[str]:
    """The targets of the markdown links outside fenced blocks that point into the repository:
    not http(s), mail or an anchor in the same page; a target's own anchor is cut off."""
    prose = FENCED.sub("", text)
    targets = [m.group(1) for m in LINK.finditer(prose)]
    return [t.split("#")[0] for t in targets if not re.match(r"(https?:|mailto:|#)", t)]


def _name(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


BLOCKS = [(f"{_name(p)}:{n}", code) for p in PAGES for n, code in python_blocks(p.read_text())]
# a block that needs files another test makes says so on its first line, "# needs: ...
# (tests/PACKAGE/test_X.py runs it)": that test runs it, and this one checks that it does
RUN_ELSEWHERE = [(where, code) for where, code in BLOCKS if code.startswith("# needs:")]
BLOCKS = [(where, code) for where, code in BLOCKS if not code.startswith("# needs:")]
LINKS = sorted({(_name(p), target) for p in PAGES for target in local_links(p.read_text())})


def test_the_blocks_are_found():
    assert len(BLOCKS) >= 3
    assert any(where.startswith("README.md:") for where, _ in BLOCKS)
    assert any(where.startswith("docs/") for where, _ in BLOCKS)
    assert python_blocks("a\n```python\nx = 1\n```\n```bash\nls\n```\n") == [(2, "x = 1\n")]


def test_the_links_are_found():
    assert len(LINKS) >= 10
    text = "[a](b.md) [c](https://x.org) [d](#top) [e](f.md#g)\n```text\n[h](i.md)\n```\n"
    assert local_links(text) == ["b.md", "f.md"]


@pytest.mark.parametrize("page, target", LINKS, ids=[f"{p}->{t}" for p, t in LINKS])
def test_a_link_names_a_file_of_the_repository(page, target):
    path = ((ROOT / page).parent / target).resolve()
    assert path.is_relative_to(ROOT), f"{page}: {target} lies outside the repository"
    assert path.is_file(), f"{page}: {target} is not a file of the repository"


@pytest.mark.parametrize("where, code", RUN_ELSEWHERE, ids=[w for w, _ in RUN_ELSEWHERE])
def test_a_block_run_elsewhere_is_run_there(where, code):
    runner = re.search(r"(tests/(?:\w+/)?test_\w+\.py) runs it", code.splitlines()[0])
    assert runner, f"{where}: say which test runs this block"
    page = where.rsplit(":", 1)[0]
    assert page in (ROOT / runner.group(1)).read_text()  # it reads the block from that page


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("where, code", BLOCKS, ids=[w for w, _ in BLOCKS])
def test_documented_block_runs(where, code, tmp_path, monkeypatch):
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
        exec(compile(code, f"{where} (a ```python block)", "exec"), {"__name__": "__main__"})
    finally:
        if dist.is_initialized():  # a block that failed half-way leaves no group behind
            dist.destroy_process_group()
