"""Show a data set: where its files were found, its sizes, image shape and classes. For a folder
of your own images: the census (images per class and split, sizes, colour modes, unreadable
files), how the images are read for training, and where the decoded cache is.

Examples:
  ninlab data fashion-mnist
  ninlab data mnist --data-dir ~/datasets
  ninlab data ~/photos
  ninlab data ~/photos --json
"""

from __future__ import annotations

import json

from ninlab.cli.options import add_data_dir, add_json
from ninlab.data import DATASETS, load_dataset
from ninlab.data.folders import folder_census, is_folder_name


def add_arguments(p) -> None:
    p.add_argument("name", nargs="?", default="fashion-mnist", metavar="NAME|DIR",
                   help=f"one of {', '.join(DATASETS)}, or a folder of images")  # fmt: skip
    add_data_dir(p)
    add_json(p)


def run(args) -> int:
    if args.name not in DATASETS and is_folder_name(args.name):
        census = folder_census(args.name)
        print(json.dumps(census, indent=2) if args.json else format_census(census))
        return 0
    ds = load_dataset(args.name, data_dir=args.data_dir)
    if args.json:
        print(json.dumps({"name": ds.name, "sources": ds.sources,
                          "image_shape": list(ds.image_shape), "classes": [
                              {"name": c, "train": int((ds.train_labels == k).sum()),
                               "test": int((ds.test_labels == k).sum())}
                              for k, c in enumerate(ds.classes)]}, indent=2))  # fmt: skip
        return 0
    print(f"data set     {ds.name}")
    for fname, path in ds.sources.items():
        print(f"  {fname:<26} {path}")
    print(f"train        {len(ds.train_images):,} images")
    print(f"test         {len(ds.test_images):,} images")
    print(f"image shape  {'x'.join(map(str, ds.image_shape))} (C x H x W), uint8")
    train_counts = ds.train_labels.bincount(minlength=ds.num_classes).tolist()
    test_counts = ds.test_labels.bincount(minlength=ds.num_classes).tolist()
    width = max(len(c) for c in ds.classes)
    print(f"\n{'id':>3}  {'class':<{width}}  {'train':>7}  {'test':>6}")
    for i, name in enumerate(ds.classes):
        print(f"{i:>3}  {name:<{width}}  {train_counts[i]:>7,}  {test_counts[i]:>6,}")
    return 0


def format_census(c: dict) -> str:
    """The census of a folder as text."""
    read = c["read_as"]
    why = "; ".join(f"{k.replace('image_', '')}: {v}" for k, v in read["why"].items())
    lines = [
        f"folder       {c['folder']}",
        f"layout       {c['layout']}",
        f"files        {c['files']:,}: {c['images']:,} images, {len(c['skipped']):,} unreadable",
        f"width        {'/'.join(map(str, c['width'])) or '-'} px (min/median/max)",
        f"height       {'/'.join(map(str, c['height'])) or '-'} px",
        "modes        " + ", ".join(f"{m} {n:,}" for m, n in c["modes"].items()),
        f"read as      {read['image_size']}x{read['image_size']} {read['image_mode']}, "
        f"{'padded' if read['fit'] == 'pad' else 'centre-cropped'} to a square",
        *([f"             ({why})"] if why else []),
        f"cache        {c['cache']} ({c['cache_mib']} MiB)",
    ]
    if c["skipped"]:
        shown = list(c["skipped"].items())[:5]
        lines += [f"unreadable   {p}: {r}" for p, r in shown]
        if len(c["skipped"]) > len(shown):
            lines.append(f"             ... {len(c['skipped']) - len(shown):,} more")
        lines.append(f"             the whole list: {c['skipped_list']}")
    width = max(len(k["name"]) for k in c["classes"])
    lines += ["", f"{'id':>3}  {'class':<{width}}  {'train':>7}  {'test':>6}  {'skipped':>7}"]
    for i, k in enumerate(c["classes"]):
        lines.append(f"{i:>3}  {k['name']:<{width}}  {k['train']:>7,}  {k['test']:>6,}  "
                     f"{k['skipped']:>7,}")  # fmt: skip
    return "\n".join(lines)
