"""The folder cache: its size cap (NINLAB_CACHE_MAX) with the least recently used entries deleted
first, never the entries in use, `ninlab data --clear-cache`, and a census whose counts agree
when a file's header reads but its data does not (a truncated PNG)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from ninlab.cli import main
from ninlab.data import cache, folders, load_folder
from ninlab.data.cache import DEFAULT_MAX, STALE_S, cache_max


def make_folder(root, per_class=3, side=12, classes=("a", "b")):
    """Small grey PNGs, `per_class` in each class folder; the same bytes whatever `root`."""
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            Image.new("L", (side, side), 40 * i).save(root / c / f"{i}.png")
    return root


def read(root) -> set[str]:
    """Read a folder; the cache entries the read uses: its census and its decoded tensor."""
    tensor = cache.key_of(Path(load_folder(root).sources["cache"]))
    return {folders._file_key(folders.scan(root)), tensor}


def cached_keys() -> set[str]:
    return {e.key for e in cache.entries(folders.cache_root())}


def age(entry_keys: set[str], seconds: float) -> None:
    """Make the files of these entries last used `seconds` ago."""
    t = time.time() - seconds
    for e in cache.entries(folders.cache_root()):
        if e.key in entry_keys:
            for path in e.files:
                os.utime(path, (t, t))


def test_the_cap_evicts_the_least_recently_used(tmp_path, monkeypatch):
    """Four folders whose entries (a census, a tensor) take S bytes each; a cap of 2 S after A,
    B, C were read (in that order, then A again) and D is read keeps A and D: the entries of B
    and C were used least recently."""
    roots = {n: make_folder(tmp_path / n) for n in "ABCD"}
    used = {n: read(roots[n]) for n in "ABC"}
    sizes = {e.key: e.bytes for e in cache.entries(folders.cache_root())}
    size = sum(sizes[k] for k in used["A"])
    assert {sum(sizes[k] for k in used[n]) for n in "ABC"} == {size}
    for n, seconds in zip("ABC", (300, 200, 100), strict=True):
        age(used[n], seconds)
    load_folder(roots["A"])  # from the cache: marks A used now
    monkeypatch.setenv("NINLAB_CACHE_MAX", str(2 * size))
    used["D"] = read(roots["D"])
    assert cached_keys() == used["A"] | used["D"]
    assert sum(e.bytes for e in cache.entries(folders.cache_root())) == 2 * size


def test_a_cap_of_0_keeps_only_the_entries_in_use(tmp_path, monkeypatch):
    monkeypatch.setenv("NINLAB_CACHE_MAX", "0")
    a, b = make_folder(tmp_path / "a"), make_folder(tmp_path / "b")
    used = read(a)
    assert cached_keys() == used
    used = read(b)
    assert cached_keys() == used
    assert read(b) == used and cached_keys() == used  # read again from the cache


@pytest.mark.parametrize(
    "text, expected",
    [("", DEFAULT_MAX), ("0", 0), ("1500", 1500), ("500M", 500 * 2**20), ("2G", 2 * 2**30),
     ("1.5 GiB", 3 * 2**29), ("64k", 65536)],
)  # fmt: skip
def test_cache_max_reads_sizes(monkeypatch, text, expected):
    monkeypatch.setenv("NINLAB_CACHE_MAX", text)
    assert cache_max() == expected


def test_a_bad_cache_max_is_one_sentence(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NINLAB_CACHE_MAX", "lots")
    assert main(["data", str(make_folder(tmp_path / "f"))]) == 2
    err = capsys.readouterr().err
    assert err == (
        "ninlab: error: NINLAB_CACHE_MAX='lots' is not a size; give bytes or a number with K, M, "
        "G or T (2G, 500M, 0 to keep only the entries in use).\n"
    )


def test_eviction_passes_over_files_gone_and_removes_stale_temporary_files(tmp_path, monkeypatch):
    """Another process may delete a file between the listing and the unlink; a temporary file
    older than STALE_S was left by a killed writer, a newer one is being written."""
    d = tmp_path / "c"
    d.mkdir()
    for name in ("old.census.json", "new.census.json"):
        (d / name).write_bytes(bytes(100))
    stale, fresh = d / ".x.safetensors.ab12.tmp", d / ".y.safetensors.cd34.tmp"
    stale.write_bytes(bytes(10))
    fresh.write_bytes(bytes(10))
    t = time.time() - STALE_S - 60
    os.utime(stale, (t, t))
    os.utime(d / "old.census.json", (t, t))
    gone_first = cache.entries(d)[0]
    (d / "old.census.json").unlink()  # another process was quicker
    real = cache.entries
    monkeypatch.setattr(cache, "entries", lambda folder: [gone_first, *real(folder)])
    evicted = cache.evict(d, keep={"new"}, cap=0)
    assert [e.key for e in evicted] == ["old"]
    assert sorted(p.name for p in d.iterdir()) == [".y.safetensors.cd34.tmp", "new.census.json"]


@pytest.mark.slow
def test_two_processes_share_a_cache_of_cap_0(tmp_path):
    """Each process reads folders over and over while the other evicts everything it is not
    using: files vanish under both, and neither may fail."""
    roots = [make_folder(tmp_path / f"f{k}", per_class=2) for k in range(4)]
    code = ("import sys\nfrom ninlab.data import load_folder\n"
            "for _ in range(4):\n    for root in sys.argv[1:]:\n"
            "        data = load_folder(root, progress=False)\n"
            "        assert len(data.train_images) == 2\n")  # fmt: skip
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "NINLAB_CACHE_MAX": "0"}
    procs = [
        subprocess.Popen([sys.executable, "-c", code, *map(str, order)], env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for order in (roots, roots[::-1])
    ]  # fmt: skip
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err


def test_clear_cache_says_what_it_deleted(tmp_path, capsys):
    read(make_folder(tmp_path / "a"))
    read(make_folder(tmp_path / "b"))
    files = list(folders.cache_root().iterdir())
    size = sum(p.stat().st_size for p in files)
    assert main(["data", "--clear-cache"]) == 0
    out = capsys.readouterr().out
    assert out == f"deleted 4 entries ({len(files)} files, {size:,} bytes) from " \
        f"{folders.cache_root()}.\n"  # fmt: skip
    assert not list(folders.cache_root().iterdir())
    assert main(["data", "--clear-cache"]) == 0
    assert capsys.readouterr().out.endswith("is empty; nothing to delete.\n")


def test_data_help_documents_the_cache(capsys):
    with pytest.raises(SystemExit):
        main(["data", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "$NINLAB_CACHE_MAX bytes (default 2G" in text and "--clear-cache" in text


# ---- the census counts ----


def truncated_png(path, side: int) -> None:
    """A PNG whose header reads (side x side, L) but whose image data are cut short."""
    Image.effect_noise((side, side), 60).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_census_counts_agree_with_a_truncated_png(tmp_path, capsys):
    root = make_folder(tmp_path / "f", per_class=4)
    truncated_png(root / "a" / "cut.png", 12)
    (root / "b" / "empty.png").write_bytes(b"")
    for _ in range(2):  # decoded, then from the cache
        assert main(["data", str(root), "--json"]) == 0
        census = json.loads(capsys.readouterr().out)
        assert (census["files"], census["images"], len(census["skipped"])) == (10, 8, 2)
        assert census["modes"] == {"L": 8}
        assert sum(c["train"] + c["test"] for c in census["classes"]) == 8
        assert [c["skipped"] for c in census["classes"]] == [1, 1]
        assert "the mode of 8 of 8 images" in census["read_as"]["why"]["image_mode"]
        assert census["skipped"]["a/cut.png"].startswith("corrupt or truncated")
    assert main(["data", str(root)]) == 0
    text = capsys.readouterr().out
    assert "files        10: 8 images, 2 unreadable" in text and "modes        L 8\n" in text


def test_truncated_files_do_not_sway_the_defaults(tmp_path, capsys):
    """Four readable 20 px images and five truncated 60 px ones: by their headers the median
    side is 60, by the images read it is 20, which the folder is then read at."""
    root = make_folder(tmp_path / "f", per_class=2, side=20)
    for k in range(5):
        truncated_png(root / "ab"[k % 2] / f"cut{k}.png", 60)
    data = load_folder(root)
    assert data.image_shape == (1, 20, 20)
    assert main(["data", str(root), "--json"]) == 0
    census = json.loads(capsys.readouterr().out)
    assert census["width"] == [20, 20, 20] and census["read_as"]["image_size"] == 20
    assert (census["images"], len(census["skipped"])) == (4, 5)
