"""Show a data set: where its files were found, its sizes, image shape and classes. For a folder
of your own images: the census (images per class and split, sizes, colour modes, unreadable
files), how the images are read for training, and where the decoded cache is.

A folder is decoded once into ~/.cache/ninlab/folders (under $XDG_CACHE_HOME when it is set).
That cache holds at most $NINLAB_CACHE_MAX bytes (default 2G; e.g. 500M, or 0 to keep only what
a run uses), the least recently used folders deleted first; --clear-cache empties it.

Examples:
  ninlab data fashion-mnist
  ninlab data mnist --data-dir ~/datasets --wide
  ninlab data ~/photos
  ninlab data ~/photos --json
  NINLAB_CACHE_MAX=500M ninlab data ~/photos
  ninlab data --clear-cache
"""

from __future__ import annotations

import json
from pathlib import Path

from ninlab.cli.options import add_data_dir, add_json, add_wide
from ninlab.data import DATASETS, cache, load_dataset
from ninlab.data.folders import cache_root, folder_census, is_folder_name
from ninlab.terminal import WIDTH, wrap


def add_arguments(p) -> None:
    p.add_argument("name", nargs="?", default="fashion-mnist", metavar="NAME|DIR",
                   help=f"one of {', '.join(DATASETS)}, or a folder of images")  # fmt: skip
    add_data_dir(p)
    add_wide(p)
    add_json(p)
    p.add_argument("--clear-cache", action="store_true",
                   help="delete every folder decoded in the cache, then stop")  # fmt: skip


def run(args) -> int:
    if args.clear_cache:
        print(clear_cache())
        return 0
    if args.name not in DATASETS and is_folder_name(args.name):
        census = folder_census(args.name)
        print(json.dumps(census, indent=2) if args.json else format_census(census, args.width))
        return 0
    ds = load_dataset(args.name, data_dir=args.data_dir)
    if args.json:
        print(json.dumps({"name": ds.name, "sources": ds.sources,
                          "image_shape": list(ds.image_shape), "classes": [
                              {"name": c, "train": int((ds.train_labels == k).sum()),
                               "test": int((ds.test_labels == k).sum())}
                              for k, c in enumerate(ds.classes)]}, indent=2))  # fmt: skip
        return 0
    print(format_dataset(ds, args.width))
    return 0


def clear_cache() -> str:
    """Empty the folder cache; the line that says what went."""
    folder = cache_root()
    entries, files, size = cache.clear(folder)
    if not files:
        return f"the folder cache {_home(str(folder))} is empty; nothing to delete."
    amount = f"{size / 2**20:,.1f} MiB" if size >= 2**20 else f"{size:,} bytes"
    return (
        f"deleted {entries:,} entr{'y' if entries == 1 else 'ies'} ({files:,} "
        f"file{'s' * (files != 1)}, {amount}) from {_home(str(folder))}."
    )


def format_dataset(ds, width: int | None = WIDTH) -> str:
    """A built-in data set as text: its files, sizes, image shape and classes. In `width`
    columns a file is named by its path alone (its name starts with the file's key), one a
    line; width None puts the key before each path."""
    lines = [f"data set     {ds.name}"]
    for k, (fname, path) in enumerate(ds.sources.items()):
        if width is None:
            lines.append(f"  {fname:<26} {path}")
        else:
            shown = path if Path(path).name.startswith(fname) else f"{fname}: {path}"
            lines.append(f"{'files' if k == 0 else '':<13}{shown}")
    lines += [
        f"train        {len(ds.train_images):,} images",
        f"test         {len(ds.test_images):,} images",
        f"image shape  {'x'.join(map(str, ds.image_shape))} (C x H x W), uint8",
    ]
    train_counts = ds.train_labels.bincount(minlength=ds.num_classes).tolist()
    test_counts = ds.test_labels.bincount(minlength=ds.num_classes).tolist()
    w = max(len(c) for c in ds.classes)
    lines.append(f"\n{'id':>3}  {'class':<{w}}  {'train':>7}  {'test':>6}")
    for i, name in enumerate(ds.classes):
        lines.append(f"{i:>3}  {name:<{w}}  {train_counts[i]:>7,}  {test_counts[i]:>6,}")
    return "\n".join(lines)


def format_census(c: dict, width: int | None = WIDTH) -> str:
    """The census of a folder as text, each line wrapped to `width` columns (None: unwrapped)
    under its label."""
    read = c["read_as"]
    why = "; ".join(f"{k.replace('image_', '')}: {v}" for k, v in read["why"].items())
    rows = [
        ("folder", c["folder"]),
        ("layout", c["layout"]),
        ("files", f"{c['files']:,}: {c['images']:,} images, {len(c['skipped']):,} unreadable"),
        ("width", f"{'/'.join(map(str, c['width'])) or '-'} px (min/median/max)"),
        ("height", f"{'/'.join(map(str, c['height'])) or '-'} px"),
        ("modes", ", ".join(f"{m} {n:,}" for m, n in c["modes"].items())),
        ("read as", f"{read['image_size']}x{read['image_size']} {read['image_mode']}, "
                    f"{'padded' if read['fit'] == 'pad' else 'centre-cropped'} to a square"),
        *([("", f"({why})")] if why else []),
    ]  # fmt: skip
    cache = f"{_home(c['cache'])} ({c['cache_mib']} MiB)"
    if width is None or 13 + len(cache) <= width:
        rows.append(("cache", cache))
    else:  # the size on a line of its own, not "(4.4" and "MiB)"
        rows += [("cache", _home(c["cache"])), ("", f"({c['cache_mib']} MiB)")]
    if c["skipped"]:
        shown = list(c["skipped"].items())[:5]
        rows += [("unreadable", f"{p}: {r}") for p, r in shown]
        if len(c["skipped"]) > len(shown):
            rows.append(("", f"... {len(c['skipped']) - len(shown):,} more"))
        rows.append(("", f"the whole list: {_home(c['skipped_list'])}"))
    lines = [line for label, text in rows for line in wrap(text, width, f"{label:<13}", " " * 13)]
    name_width = max(len(k["name"]) for k in c["classes"])
    lines += ["", f"{'id':>3}  {'class':<{name_width}}  {'train':>7}  {'test':>6}  {'skipped':>7}"]
    for i, k in enumerate(c["classes"]):
        lines.append(f"{i:>3}  {k['name']:<{name_width}}  {k['train']:>7,}  {k['test']:>6,}  "
                     f"{k['skipped']:>7,}")  # fmt: skip
    return "\n".join(lines)


def _home(path: str) -> str:
    """A path under the home folder as ~/... (as a shell takes it), 10 or more columns shorter."""
    home = str(Path.home())
    return "~" + path[len(home) :] if path.startswith(home + "/") else path
