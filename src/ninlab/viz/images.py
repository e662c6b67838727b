"""What every picture needs: the image to explain (a test-set index or a file), a class given by
name, and the image as the model sees it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ninlab.data import Dataset, resize
from ninlab.data.images import load_image
from ninlab.errors import NinlabError
from ninlab.runs import Run


@dataclass
class Picked:
    """One image to look at: uint8 (1, C, H, W), its true class when known, and names for it."""

    image: torch.Tensor
    label: int | None
    name: str  # "test image 3" or the file's path, for printing
    tag: str  # "3" or the file's stem, for output file names


def dataset_image(data: Dataset, index: int) -> Picked:
    image, label = data.test_item(index)
    return Picked(image, label, f"test image {index}", str(index))


def file_image(run: Run, path: str | Path, native: bool = False) -> Picked:
    """An image file at the run's input size and channels, made square as the run's folder
    images were (ninlab.data.images.prepare); native: at its own size."""
    size = None if native else run.config.input_size
    pixels = load_image(path, run.config.in_chans, size=size, fit=run.config.fit)
    return Picked(pixels, None, str(path), Path(path).stem)


def pick_image(
    run: Run,
    index: int | None = None,
    image: str | Path | None = None,
    data_dir=None,
    native: bool = False,
) -> Picked:
    """A test-set image (by index) or an image file at the run's input size and channels (or,
    native, a file at its own size)."""
    if (index is None) == (image is None):
        raise NinlabError("give exactly one of --image PATH or --index N.")
    indices, paths = [] if index is None else [index], [image] if image else []
    return pick_images(run, indices, paths, data_dir, native)[0]


def pick_images(
    run: Run,
    indices: Sequence[int] = (),
    paths: Sequence[str | Path] = (),
    data_dir=None,
    native: bool = False,
) -> list[Picked]:
    """Test-set images by index (the run's data set is read only when there are some), then
    image files."""
    data = run.dataset(data_dir) if indices else None
    files = [file_image(run, p, native) for p in paths]
    return [dataset_image(data, i) for i in indices] + files


def class_index(name: str, classes: list[str]) -> int:
    """The index of a class given by name (case, spaces, '-' and '_' do not matter)."""
    if name in classes:
        return classes.index(name)

    def norm(s: str) -> str:
        return "".join(c for c in s.lower() if c not in " -_")

    matches = [i for i, c in enumerate(classes) if norm(c) == norm(name)]
    if len(matches) == 1:
        return matches[0]
    shown = ", ".join(repr(c) for c in classes)
    raise NinlabError(f"--class {name!r} is not a class of this run; choose one of {shown}.")


def display_image(image: torch.Tensor, size: int | tuple[int, int]):
    """uint8 (C, H, W) -> float numpy (H, W) or (H, W, 3) in [0, 1], resized to the model input
    exactly as training resized it (bilinear), so that input pixels line up with the picture."""
    x = resize(image[None].float() / 255.0, size)[0].clamp(0, 1)  # C x H x W
    return x[0].numpy() if x.shape[0] == 1 else x[:3].permute(1, 2, 0).numpy()
