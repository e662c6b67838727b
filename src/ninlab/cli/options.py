"""Options shared by several verbs, defined once."""

from __future__ import annotations

from ninlab.errors import NinlabError


def add_data_dir(p) -> None:
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        default=None,
        help="look here first for data files (default: $NINLAB_DATA, then "
        "/usr/share/datasets/NAME, ~/.cache/ninlab/NAME, then download)",
    )


def add_weights(p) -> None:
    p.add_argument(
        "--weights",
        choices=("best", "final"),
        default="best",
        help="which weights of the run to use (default best)",
    )


def add_image_source(p) -> None:
    """--image PATH | --index N, one of them required (features and cam)."""
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--image", metavar="PATH", help="an image file (PNG, JPEG, ...)")
    src.add_argument("--index", type=int, metavar="N", help="image N of the run's test set")


def add_limit(p) -> None:
    p.add_argument("--limit", type=int, metavar="N", help="the first N test images (default all)")


def check_limit(limit: int | None) -> None:
    if limit is not None and limit < 1:
        raise NinlabError(f"--limit must be at least 1 (got {limit}).")
