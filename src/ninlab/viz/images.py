"""What every picture needs: the image to explain (a test-set index or a file), a class given by
name, the image as the model sees it, and figures written as PNG files or bytes."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import torch

from ninlab.data import Dataset, load_dataset, resize
from ninlab.data.images import load_image
from ninlab.errors import NinlabError
from ninlab.runs import Run, atomic_write


@dataclass
class Picked:
    """One image to look at: uint8 (1, C, H, W), its true class when known, and names for it."""

    image: torch.Tensor
    label: int | None
    name: str  # "test image 3" or the file's path, for printing
    tag: str  # "3" or the file's stem, for output file names


def run_dataset(run: Run, data_dir: str | None = None) -> Dataset:
    """The data set a run was trained on (looked for in data_dir first, then the run's own)."""
    return load_dataset(
        run.config.get("dataset", "fashion-mnist"), data_dir=data_dir or run.config.get("data_dir")
    )


def dataset_image(data: Dataset, index: int) -> Picked:
    """Image `index` of the test set, with its label."""
    n = len(data.test_images)
    if not 0 <= index < n:
        raise NinlabError(
            f"--index {index} is out of range; the {data.name} test set has {n:,} images "
            f"(0..{n - 1})."
        )
    label = int(data.test_labels[index])
    return Picked(data.test_images[index : index + 1], label, f"test image {index}", str(index))


def pick_image(
    run: Run, index: int | None = None, image: str | Path | None = None, data_dir=None
) -> Picked:
    """A test-set image (by index) or an image file at the run's input size and channels."""
    if (index is None) == (image is None):
        raise NinlabError("give exactly one of --image PATH or --index N.")
    if index is not None:
        return dataset_image(run_dataset(run, data_dir), index)
    size = run.config["input_size"]
    pixels = load_image(image, run.config["in_chans"], size=size)
    return Picked(pixels, None, str(image), Path(image).stem)


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


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_png(fig, dpi: int = 100) -> bytes:
    """A matplotlib figure as PNG bytes; closes the figure."""
    buf = io.BytesIO()
    try:
        fig.savefig(buf, dpi=dpi, format="png")
    finally:
        pyplot().close(fig)
    return buf.getvalue()


def save_png(data: bytes, path: str | Path) -> Path:
    """Write PNG bytes atomically, creating the folder; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
    return path
