"""Show where a data set's files were found, its sizes, image shape and classes.

Examples:
  ninlab data fashion-mnist
  ninlab data mnist --data-dir ~/datasets
"""

from __future__ import annotations

from ninlab.cli.options import add_data_dir
from ninlab.data import DATASETS, load_dataset


def add_arguments(p) -> None:
    p.add_argument("name", nargs="?", default="fashion-mnist", help=f"one of {', '.join(DATASETS)}")
    add_data_dir(p)


def run(args) -> int:
    ds = load_dataset(args.name, data_dir=args.data_dir)
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
