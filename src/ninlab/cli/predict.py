"""Classify images with a trained run: the top-3 classes with their probabilities.

Images of any size and colour (PNG, JPEG, ...) are converted to the model's channels and input
size; --index N takes image N of the run's test set instead.

Examples:
  ninlab predict runs/r shoe.png bag.jpg
  ninlab predict runs/r --index 0
"""

from __future__ import annotations

import torch

from ninlab.cli.options import add_data_dir, add_weights
from ninlab.data import load_dataset
from ninlab.data.images import load_image
from ninlab.errors import NinlabError
from ninlab.runs import load_run
from ninlab.train import TrainConfig, predict_logits


def add_arguments(p) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("images", metavar="IMAGE", nargs="*", help="image files")
    p.add_argument("--index", type=int, action="append", help="test-set image N (repeatable)")
    add_data_dir(p)
    add_weights(p)


def run(args) -> int:
    if not args.images and args.index is None:
        raise NinlabError("give image files or --index N.")
    run = load_run(args.run_dir, args.weights)
    cfg = TrainConfig.from_dict(run.config)
    items = []  # (label, uint8 image at the data set's resolution, true class or None)
    if args.index is not None:
        data = load_dataset(cfg.dataset, data_dir=args.data_dir or cfg.data_dir)
        for i in args.index:
            if not 0 <= i < len(data.test_images):
                raise NinlabError(
                    f"--index {i} is out of range; the {data.name} test set has "
                    f"{len(data.test_images):,} images (0..{len(data.test_images) - 1})."
                )
            items.append((f"test image {i}", data.test_images[i : i + 1], int(data.test_labels[i])))
    native = cfg.input_size
    for path in args.images:
        items.append((path, load_image(path, cfg.in_chans, size=native), None))
    for name, image, true in items:
        probs = torch.softmax(predict_logits(run.model, image, cfg), 1)[0]
        top = probs.topk(min(3, len(probs)))
        truth = f" (true: {run.classes[true]})" if true is not None else ""
        print(f"{name}{truth}")
        for p, c in zip(top.values.tolist(), top.indices.tolist(), strict=True):
            print(f"  {run.classes[c]:<14} {100 * p:6.2f}%")
    return 0
