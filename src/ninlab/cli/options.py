"""Options shared by several verbs, defined once, one name per meaning."""

from __future__ import annotations

import argparse
import json

from ninlab.data import DATASETS
from ninlab.data.images import CHOICES
from ninlab.errors import NinlabError
from ninlab.terminal import WIDTH


def at_least(low: int):
    """An argparse type: an integer >= low (argparse then exits with one sentence, status 2)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low} (got {value})")
        return value

    return parse


def add_run_dir(p, optional: bool = False) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", nargs="?" if optional else None,
                   help="a run directory written by `ninlab train`")  # fmt: skip


def add_data_dir(p) -> None:
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        default=None,
        help="look here first for data files (default: $NINLAB_DATA, then "
        "/usr/share/datasets/NAME, ~/.cache/ninlab/NAME, then download)",
    )


def add_dataset(p, help: str) -> None:
    """--dataset (or --data): a built-in data set's name, or a folder of images."""
    names = ", ".join(DATASETS)
    p.add_argument("--dataset", "--data", dest="dataset", metavar="NAME|DIR",
                   help=f"{help}: {names}, or a folder DIR/class_name/*.png")  # fmt: skip


def add_weights(p) -> None:
    p.add_argument(
        "--weights",
        choices=("best", "final"),
        default="best",
        help="which weights of the run to use (default best)",
    )


def add_run_inputs(p, optional: bool = False) -> None:
    """RUN_DIR, --data-dir and --weights: what every verb that reads a trained run takes."""
    add_run_dir(p, optional)
    add_data_dir(p)
    add_weights(p)


def add_image_source(p) -> None:
    """--image PATH | --index N, one of them required (features and cam)."""
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--image", metavar="PATH", help="an image file (PNG, JPEG, ...)")
    src.add_argument("--index", type=int, metavar="N", help="image N of the test set")


def add_native(p) -> None:
    p.add_argument("--native", action="store_true",
                   help="run the model on the image at its own size, normalised but not resized "
                   "(models with a pooling head)")  # fmt: skip


def add_preparation(p) -> None:
    """--invert and --trim: how an image file is made like the run's training images (see
    ninlab.data.images.read_file)."""
    add_invert(p)
    p.add_argument(
        "--trim",
        choices=CHOICES,
        default="auto",
        help="cut the image to its object, padded to fill the frame as the training items do "
        "(default auto: when they are items on one background)",
    )


def add_invert(p) -> None:
    p.add_argument(
        "--invert",
        choices=CHOICES,
        default="auto",
        help="make the image dark-on-light or light-on-dark as the training images are "
        "(default auto: remove its backdrop, estimated from its border, and give the object the "
        "training items' polarity and contrast; yes or no: 255 - x or not, nothing more)",
    )


def add_show(p) -> None:
    p.add_argument(
        "--show",
        metavar="FILE",
        help="write the model's input (the prepared image, before normalisation) as a PNG, "
        "enlarged; for several images FILE-TAG.png",
    )


def add_limit(p, default: int | None = None) -> None:
    shown = f"default {default}" if default else "default all"
    p.add_argument(
        "--limit",
        type=at_least(1),
        default=default,
        metavar="N",
        help=f"the first N test images ({shown})",
    )


def add_batch_size(p, default: int, what: str = "images per forward pass") -> None:
    p.add_argument(
        "--batch-size",
        type=at_least(1),
        default=default,
        metavar="N",
        help=f"{what} (default {default})",
    )


def add_seed(p, what: str) -> None:
    p.add_argument("--seed", type=int, default=0, help=f"seed of {what} (default 0)")


def add_out(p, what: str, metavar: str = "FILE", required: bool = False) -> None:
    p.add_argument("--out", metavar=metavar, required=required, help=what)


def check_num_classes(n: int | None) -> None:
    """--num-classes, when given: a model needs at least one class (torch fails on a negative
    size)."""
    if n is not None and n < 1:
        raise NinlabError(f"--num-classes must be at least 1 (got {n}).")


def add_json(p) -> None:
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")


def add_wide(p) -> None:
    """--wide sets args.width to None (every column, lines as long as they need); the default is
    WIDTH (80 columns: long headers and names wrap, secondary columns are left out)."""
    p.add_argument("--wide", dest="width", action="store_const", const=None, default=WIDTH,
                   help=f"every column, one line per row however wide (default: fit {WIDTH} "
                   "columns)")  # fmt: skip


def json_object(text: str) -> dict:
    """argparse type: a JSON object ('{"num_classes": 10}')."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"{text!r} is not JSON ({e.msg})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"{text!r} is not a JSON object like '{{\"k\": 1}}'")
    return value


def add_model_spec(p, option: str | None = None, required: bool = True) -> None:
    """MODEL (or --model): a registry name, package.module:callable or file.py:callable, and
    --kwargs for the callable. Importing user code runs it: the help says so."""
    what = ("a name from `ninlab models`, package.module:callable or path/to/file.py:callable "
            "(importing a module or file runs its code)")  # fmt: skip
    if option:
        p.add_argument(option, dest="model", metavar="MODEL", required=required, help=what)
    else:
        p.add_argument("model", metavar="MODEL", help=what)
    example = """'{"num_classes": 10}'"""
    p.add_argument("--kwargs", type=json_object, default=None, metavar="JSON",
                   help=f"keyword arguments for the callable, e.g. {example}")  # fmt: skip
