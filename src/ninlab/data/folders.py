"""A folder of your own images as a data set, decoded once into a cached uint8 tensor.

Layouts (class names are the sub-folder names, sorted; files are found at any depth below them):
  DIR/<class>/...                  a seeded, stratified share (`val_split`) of every class is
                                   held out as the test set
  DIR/train/<class>/... beside DIR/test/<class>/... (or DIR/val/<class>/...)

Reading takes two passes over the files, each in parallel processes when that pays:
1. the census reads every header: size and colour mode (PIL decodes nothing yet). It fixes the
   defaults: the mode of most images ("L" or "RGB") and the side S = the median shorter side,
   clipped to 16..64 px so that a photo folder trains in minutes on a CPU;
2. decoding prepares every image as `ninlab.data.images.prepare` does (S x S, aspect kept by
   padding or cropping) into one (N, C, S, S) uint8 tensor.
Files that cannot be read (empty, truncated, not images, decompression bombs) are skipped and
listed. A file whose header reads but whose data does not (a truncated PNG) leaves the census when
decoding finds it, so that every count and default is of the images read; should that change a
default, the folder is decoded again. Both passes are cached under ~/.cache/ninlab/folders/: the
census by the file list (paths, sizes, modification times), the tensor by that and the options,
so a second run starts in seconds and a changed folder is read again. The cache holds at most
NINLAB_CACHE_MAX bytes (default 2G), the least recently used entries deleted first
(ninlab.data.cache); `ninlab data --clear-cache` empties it. The tensor must fit in memory:
N x C x S x S bytes, refused with one sentence above half of the memory available.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ninlab.data import cache
from ninlab.data.dataset import Dataset
from ninlab.data.images import (
    FITS,
    MODES,
    UnreadableImage,
    mode_of,
    open_image,
    prepare,
    to_tensor,
    too_large,
    unreadable,
)
from ninlab.data.inflate import available_memory
from ninlab.errors import NinlabError
from ninlab.files import atomic_write, write_text
from ninlab.progress import bar as progress_bar
from ninlab.terminal import fill

VERSION = 1  # of the cache's layout and of the decoding: a change re-reads every folder
TEST_DIRS = ("test", "val")
SIZE_RANGE = (16, 64)  # the default S: the median shorter side, clipped to this
FEW = 10  # a class with fewer training images than this is warned about
PROBE = 64  # files read in this process to time the pace, before deciding on a pool
POOL_WORTH_S = 5.0  # the rest go to a pool of processes when they would take longer than this


@dataclass(frozen=True)
class FolderOptions:
    """How a folder's images become tensors (the run records them, so eval reads the same)."""

    image_size: int | None = None  # side S of the decoded images; None = from the census
    image_mode: str | None = None  # "L" or "RGB"; None = the mode of most images
    fit: str = "pad"  # non-square images: "pad" (keep everything) or "crop" (centre square)
    val_split: float = 0.1  # no test/ folder: the share of each class held out for testing
    seed: int = 0  # draws that split

    def check(self) -> None:
        if self.image_size is not None and not 8 <= self.image_size <= 1024:
            raise NinlabError(f"--image-size must be 8..1024 pixels (got {self.image_size}).")
        if self.image_mode not in (None, *MODES):
            raise NinlabError(f"unknown image mode {self.image_mode!r}; choose L or RGB.")
        if self.fit not in FITS:
            raise NinlabError(f"unknown fit {self.fit!r}; choose {' or '.join(FITS)}.")
        if not 0 < self.val_split < 1:
            raise NinlabError(f"--val-split must be between 0 and 1 (got {self.val_split}).")


@dataclass
class Layout:
    """The files of a folder: paths relative to it, class index and split of each."""

    root: Path
    classes: tuple[str, ...]
    paths: list[str]
    labels: list[int]
    splits: list[str] | None  # "train"/"test" per file; None: the test set is drawn
    test_dir: str | None = None  # "test" or "val" in the train/ + test/ layout


@dataclass
class Census:
    """What the headers say: (width, height, PIL mode) per readable file, and the unreadable."""

    layout: Layout
    headers: dict[str, tuple[int, int, str]]
    bad: dict[str, str]  # relative path -> why it was skipped

    def without(self, bad: dict[str, str]) -> Census:
        """The census with the files of `bad` (path -> why) moved from the readable to the bad."""
        headers = {p: h for p, h in self.headers.items() if p not in bad}
        return Census(self.layout, headers, {**self.bad, **bad})

    def default_size(self) -> tuple[int, str]:
        """S and why."""
        if not self.headers:
            return SIZE_RANGE[0], "no readable image to measure"
        median = int(statistics.median(min(w, h) for w, h, _ in self.headers.values()))
        size = min(max(median, SIZE_RANGE[0]), SIZE_RANGE[1])
        if size == median:
            return size, "the median shorter side"
        return (
            size,
            f"the median shorter side ({median} px) clipped to {SIZE_RANGE[0]}..{SIZE_RANGE[1]}",
        )

    def default_mode(self) -> tuple[str, str]:
        counts = Counter(mode_of(m) for _, _, m in self.headers.values())
        mode, n = max(counts.items(), key=lambda kv: (kv[1], kv[0])) if counts else ("L", 0)
        return mode, f"the mode of {n:,} of {len(self.headers):,} images"


def is_folder_name(name: str) -> bool:
    """Whether a --dataset value names a folder (an existing path, or one written as a path)."""
    return Path(name).expanduser().exists() or "/" in name or name.startswith((".", "~"))


def _files(d: Path) -> list[str]:
    """Visible files at any depth below d, sorted, relative to d."""
    out = []
    for dirpath, dirnames, filenames in os.walk(d, followlinks=True):
        dirnames[:] = sorted(n for n in dirnames if not n.startswith("."))
        rel = Path(dirpath).relative_to(d)
        out += [str(rel / f) for f in sorted(filenames) if not f.startswith(".")]
    return out


def _class_dirs(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))


def scan(root: str | Path) -> Layout:
    """The classes and files of a folder in either layout (see the module doc)."""
    root = Path(root).expanduser()
    if not root.exists():
        raise NinlabError(f"folder {root} does not exist.")
    if not root.is_dir():
        raise NinlabError(
            f"{root} is a file, not a folder; pass a folder with one sub-folder of images per "
            "class."
        )
    top = _class_dirs(root)
    test_dir = next((t for t in TEST_DIRS if t in top), None)
    split = "train" in top and test_dir is not None
    if split:
        classes = _class_dirs(root / "train")
        extra = sorted(set(_class_dirs(root / test_dir)) - set(classes))
        if extra:
            raise NinlabError(
                f"{root / test_dir / extra[0]} has no counterpart in {root / 'train'}; the test "
                "classes must be training classes."
            )
        parts = [("train", "train"), (test_dir, "test")]
    else:
        classes, parts = top, [("", None)]
    if not classes:
        raise NinlabError(
            f"{root} has no sub-folders; put the images of each class in a folder of its own "
            "(DIR/cat/1.png, DIR/dog/2.png, ...)."
        )
    paths, labels, splits = [], [], []
    for sub, name in parts:
        for k, c in enumerate(classes):
            d = root / sub / c
            found = [str(Path(sub, c, f)) for f in _files(d)] if d.is_dir() else []
            paths += found
            labels += [k] * len(found)
            splits += [name] * len(found)
    if not paths:
        raise NinlabError(f"{root} holds no files in its class folders ({', '.join(classes)}).")
    return Layout(root, tuple(classes), paths, labels, splits if split else None, test_dir)


# ---- the two passes, in parallel where it pays ----


def _header(path: str) -> tuple[int, int, str] | str:
    try:
        with open_image(path) as img:
            return (*img.size, img.mode)
    except UnreadableImage as e:
        return e.why


def _decode(job: tuple[str, str, int, str]) -> bytes | str:
    path, mode, size, fit = job
    try:
        img = open_image(path)
    except UnreadableImage as e:
        return e.why
    with img:
        try:
            return to_tensor(prepare(img, mode, size, fit)).numpy().tobytes()
        except (OSError, ValueError, SyntaxError) as e:  # corrupt image data, found decoding
            return unreadable(path, e).why
        except MemoryError:
            return too_large(path, img).why


def _map(fn: Callable, jobs: Sequence, desc: str, progress: bool) -> list:
    """fn over jobs with a progress bar. The first few run here; the rest go to a pool of
    processes when, at that pace, they would take longer than starting the pool (~2 s)."""
    bar = progress_bar(len(jobs), desc, "img", progress)
    with bar:
        out, t0 = [], time.perf_counter()
        for job in jobs[:PROBE]:
            out.append(fn(job))
            bar.update(1)
        rest = jobs[PROBE:]
        pace = (time.perf_counter() - t0) / max(1, len(out))
        workers = min(os.cpu_count() or 1, 8)
        if workers > 1 and pace * len(rest) > POOL_WORTH_S:
            ctx = multiprocessing.get_context("forkserver")  # no fork() of a threaded process
            with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
                for r in pool.map(fn, rest, chunksize=32):
                    out.append(r)
                    bar.update(1)
        else:
            for job in rest:
                out.append(fn(job))
                bar.update(1)
        return out


# ---- the cache ----


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ninlab" / "folders"


def _file_key(layout: Layout) -> str:
    """SHA-256 of the file list: relative paths, sizes and modification times."""
    h = hashlib.sha256(f"v{VERSION}".encode())
    for rel in layout.paths:
        st = (layout.root / rel).stat()
        h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def take_census(layout: Layout, progress: bool = True) -> tuple[Census, str]:
    """The census of a folder (from the cache when its files did not change), and its key."""
    key = _file_key(layout)
    cached = cache_root() / f"{key}.census.json"
    try:
        d = json.loads(cached.read_text())
        headers = {k: tuple(v) for k, v in d["headers"].items()}
        cache.touch(cached)
        return Census(layout, headers, d["bad"]), key
    except (OSError, ValueError, KeyError, TypeError):
        pass
    paths = [str(layout.root / p) for p in layout.paths]
    results = _map(_header, paths, "reading headers", progress)
    headers = {p: r for p, r in zip(layout.paths, results, strict=True) if isinstance(r, tuple)}
    bad = {p: r for p, r in zip(layout.paths, results, strict=True) if isinstance(r, str)}
    census = Census(layout, headers, bad)
    _save_census(census, key)
    return census, key


def _save_census(census: Census, key: str) -> None:
    _write_cache(cache_root() / f"{key}.census.json", lambda tmp: Path(tmp).write_text(json.dumps(
        {"headers": census.headers, "bad": census.bad}, separators=(",", ":"))))  # fmt: skip


def _write_cache(path: Path, write: Callable[[str], object]) -> None:
    """Write a cache file; a cache that cannot be written costs time, not the run."""
    try:
        atomic_write(path, write)
    except NinlabError:  # CannotWrite, or a file where the cache folder should be
        pass


def resolve(census: Census, options: FolderOptions) -> tuple[FolderOptions, dict[str, str]]:
    """The options with their defaults filled in from the census, and why each default."""
    options.check()
    why = {}
    size, mode = options.image_size, options.image_mode
    if size is None:
        size, why["image_size"] = census.default_size()
    if mode is None:
        mode, why["image_mode"] = census.default_mode()
    return FolderOptions(size, mode, options.fit, options.val_split, options.seed), why


def _check_memory(root: Path, n: int, c: int, s: int) -> None:
    need, have = n * c * s * s, available_memory()
    if need > have / 2:
        raise NinlabError(
            f"the {n:,} images of {root} at {c}x{s}x{s} take {need / 2**20:,.1f} MiB as one "
            f"uint8 tensor, more than half of the {have / 2**20:,.1f} MiB of memory available; "
            "pass a smaller --image-size, or train on a part of the folder."
        )


def _decode_all(census: Census, options: FolderOptions, key: str, progress: bool, log):
    """(images, labels, files, bad) of the readable files, from the cache or decoded now."""
    layout = census.layout
    digest = hashlib.sha256(f"{key}{json.dumps(asdict(options), sort_keys=True)}".encode())
    path = cache_root() / f"{digest.hexdigest()[:24]}.safetensors"
    try:
        with safe_open(path, "pt") as f:
            meta = f.metadata()
            t = {k: f.get_tensor(k) for k in ("images", "labels")}
        cache.touch(path)
        return t["images"], t["labels"], json.loads(meta["files"]), json.loads(meta["bad"]), path
    # RuntimeError: safe_open maps the tensors by path after reading the header, and the cache
    # may have evicted the file in between (the content at a path never changes: it is keyed)
    except (OSError, SafetensorError, KeyError, ValueError, TypeError, RuntimeError):
        pass
    good = [p for p in layout.paths if p in census.headers]
    s, c = options.image_size, 1 if options.image_mode == "L" else 3
    _check_memory(layout.root, len(good), c, s)
    jobs = [(str(layout.root / p), options.image_mode, s, options.fit) for p in good]
    t0 = time.perf_counter()
    results = _map(_decode, jobs, f"decoding at {s}x{s} {options.image_mode}", progress)
    bad = dict(census.bad)
    bad.update({p: r for p, r in zip(good, results, strict=True) if isinstance(r, str)})
    label_of = dict(zip(layout.paths, layout.labels, strict=True))
    files = [p for p, r in zip(good, results, strict=True) if isinstance(r, bytes)]
    blob = b"".join(r for r in results if isinstance(r, bytes))
    images = torch.frombuffer(bytearray(blob), dtype=torch.uint8).view(len(files), c, s, s)
    labels = torch.tensor([label_of[p] for p in files], dtype=torch.int64)
    if log:
        took = time.perf_counter() - t0
        log(fill(f"decoded {len(files):,} images of {layout.root} in {took:.1f} s; cached in "
                 f"{path}", indent="  "))  # fmt: skip
    meta = {"files": json.dumps(files), "bad": json.dumps(bad)}
    _write_cache(path, lambda tmp: save_file({"images": images, "labels": labels}, tmp, meta))
    if bad:
        listing = "".join(f"{p}\t{r}\n" for p, r in bad.items())
        _write_cache(path.with_suffix(".skipped.txt"), lambda tmp: write_text(tmp, listing))
    return images, labels, files, bad, path


def load_folder(
    root: str | Path,
    options: FolderOptions | None = None,
    log: Callable[[str], None] | None = None,
    progress: bool = True,
) -> Dataset:
    """A folder of images as a Dataset (see the module doc); `log` gets what a user should know
    (how the images were prepared, files skipped, small classes)."""
    return _load(root, options, log, progress)[0]


def _load(root, options, log, progress):
    """(Dataset, Layout, Census, resolved options, why each default) of a folder."""
    cap = cache.cache_max()  # a NINLAB_CACHE_MAX that is not a size: said before any work
    layout = scan(root)
    root = layout.root.resolve()
    census, key = take_census(layout, progress)
    wanted = options or FolderOptions()
    options, why = resolve(census, wanted)
    images, labels, files, bad, cached = _decode_all(census, options, key, progress, log)
    if set(bad) != set(census.bad):  # headers that read, data that did not: out of the census
        census = census.without({p: r for p, r in bad.items() if p not in census.bad})
        _save_census(census, key)
        first = options
        options, why = resolve(census, wanted)
        if options != first:  # the unreadable files had swayed a default
            images, labels, files, bad, cached = _decode_all(census, options, key, progress, log)
    cache.evict(cache_root(), keep={key, cache.key_of(cached)}, cap=cap)
    if log:
        log(describe(root, len(files), len(layout.classes), options, why))
        if bad:
            shown = ", ".join(list(bad)[:3]) + (", ..." if len(bad) > 3 else "")
            log(fill(f"skipped {len(bad):,} unreadable file{'s' * (len(bad) > 1)} ({shown}); "
                     f"the list with reasons: {cached.with_suffix('.skipped.txt')}",
                     indent="  "))  # fmt: skip
    split_of = dict(zip(layout.paths, layout.splits, strict=True)) if layout.splits else None
    test = _test_mask(labels, files, split_of, options)
    _check_classes(layout, labels, test, bad, log)
    data = Dataset(
        name=root.name,
        classes=layout.classes,
        train_images=images[~test],
        train_labels=labels[~test],
        test_images=images[test],
        test_labels=labels[test],
        sources={"folder": str(root), "cache": str(cached)},
        root=str(root),
        files={
            "train": [f for f, t in zip(files, test.tolist(), strict=True) if not t],
            "test": [f for f, t in zip(files, test.tolist(), strict=True) if t],
        },  # fmt: skip
        skipped=bad,
    )
    return data, layout, census, options, why


def describe(root, n: int, classes: int, options: FolderOptions, why: dict) -> str:
    """How the images were prepared, and why (the defaults the census chose): two sentences,
    each wrapped to 80 columns."""
    s, mode = options.image_size, options.image_mode
    reasons = [f"{s} px: {why['image_size']}"] if "image_size" in why else []
    reasons += [f"{mode}: {why['image_mode']}"] if "image_mode" in why else []
    fit = "padded" if options.fit == "pad" else "centre-cropped"
    line = f"{n:,} images of {classes} classes in {root}, read as {s}x{s} {mode} {fit} to a square"
    why = f"({'; '.join(reasons)})"
    return fill(line, indent="  ") + (f"\n{fill(why, first='  ', indent='   ')}" if reasons else "")


def _test_mask(labels, files, split_of, options: FolderOptions) -> torch.Tensor:
    """Which images are test images: by folder, or a seeded draw of `val_split` per class
    (at least one image of every class that has two)."""
    if split_of is not None:
        return torch.tensor([split_of[f] == "test" for f in files], dtype=torch.bool)
    test = torch.zeros(len(labels), dtype=torch.bool)
    g = torch.Generator().manual_seed(options.seed)
    for c in labels.unique().tolist():
        idx = (labels == c).nonzero().flatten()
        k = max(1, round(len(idx) * options.val_split)) if len(idx) >= 2 else 0
        test[idx[torch.randperm(len(idx), generator=g)[:k]]] = True
    return test


def _check_classes(layout: Layout, labels, test, bad, log) -> None:
    """One sentence for a class with no readable training image; a warning for small ones."""
    counts = labels[~test].bincount(minlength=len(layout.classes)).tolist()
    for name, n in zip(layout.classes, counts, strict=True):
        if n == 0:
            skipped = sum(1 for p in bad if Path(p).parts[layout.splits is not None] == name)
            why = f" ({skipped} unreadable file{'s' * (skipped != 1)} skipped)" if skipped else ""
            raise NinlabError(
                f"class {name!r} has no readable training image in {layout.root}{why}; add "
                "images to it or remove its folder."
            )
    small = [f"{c} ({n})" for c, n in zip(layout.classes, counts, strict=True) if n < FEW]
    if small and log:
        log(fill(f"warning: few training images in {', '.join(small)}; their accuracy means "
                 "little.", indent="  "))  # fmt: skip
    if not int(test.sum()):
        raise NinlabError(
            f"{layout.root} leaves no test image (every class has fewer than 2 images); add "
            "images or a test/ folder."
        )


def folder_census(
    root: str | Path, options: FolderOptions | None = None, progress: bool = True
) -> dict:
    """What `ninlab data DIR` prints: images per class and split, sizes, colour modes, skipped
    files, how the images are read and where the cache is. Reads (and caches) the folder."""
    data, layout, census, resolved, why = _load(root, options, None, progress)
    widths = [w for w, _, _ in census.headers.values()]
    heights = [h for _, h, _ in census.headers.values()]
    train = data.train_labels.bincount(minlength=data.num_classes).tolist()
    test = data.test_labels.bincount(minlength=data.num_classes).tolist()
    class_of = {p: layout.classes[k] for p, k in zip(layout.paths, layout.labels, strict=True)}
    skipped = Counter(class_of[p] for p in data.skipped)
    tensors = Path(data.sources["cache"])
    return {
        "folder": data.root,
        "layout": (
            f"train/ and {layout.paths[-1].split('/')[0]}/"
            if layout.splits
            else f"one folder per class; test: {resolved.val_split:.0%} of each class drawn "
            f"with seed {resolved.seed}"
        ),  # fmt: skip
        "classes": [
            {"name": c, "train": train[k], "test": test[k], "skipped": skipped[c]}
            for k, c in enumerate(data.classes)
        ],  # fmt: skip
        "files": len(layout.paths),
        "images": len(data.train_labels) + len(data.test_labels),
        "width": _spread(widths),
        "height": _spread(heights),
        "modes": dict(Counter(m for _, _, m in census.headers.values()).most_common()),
        "skipped": data.skipped,
        "skipped_list": str(tensors.with_suffix(".skipped.txt")) if data.skipped else None,
        "read_as": {**asdict(resolved), "why": why},
        "cache": str(tensors),
        "cache_mib": _mib(tensors),
    }


def _mib(path: Path) -> float | None:
    """The size of a cache file in MiB; None when it is not there (unwritable, or evicted by
    another process since)."""
    try:
        return round(path.stat().st_size / 2**20, 1)
    except OSError:
        return None


def _spread(values: list[int]) -> list[int]:
    """[min, median, max], or [] for no values."""
    return [min(values), int(statistics.median(values)), max(values)] if values else []
