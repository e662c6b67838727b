"""What a run looks at: a test item or an image file prepared for the run's model (predict, cam,
features, locate), a class given by name, and the image as the model sees it.

A test-set image is used as it is. An image file is made like the run's training images
(ninlab.data.images.read_file): the run's channels and input size, made square as its folder
images were (the run's `fit`), and by default (invert and trim "auto") inverted and cut to its
object when its training images call for it, as `training_look` measures them. Its `Picked.prep`
says what was done; `save_input` writes the result for a person to see.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from ninlab.data import Dataset, load_dataset, resize
from ninlab.data.images import Look, Preparation, look_from_mean, measure_look, read_file
from ninlab.errors import NinlabError
from ninlab.files import atomic_write
from ninlab.runs.run import Run

SHOW_SIDE = 256  # least side in pixels of the picture `save_input` writes


@dataclass
class Picked:
    """One image to look at: uint8 (1, C, H, W), its true class when known, and names for it."""

    image: torch.Tensor
    label: int | None
    name: str  # "test image 3" or the file's path, for printing
    tag: str  # "3" or the file's stem, for output file names
    prep: Preparation | None = None  # how an image file was prepared (None: a test-set image)


def dataset_image(data: Dataset, index: int) -> Picked:
    image, label = data.test_item(index)
    return Picked(image, label, f"test image {index}", str(index))


def training_look(run: Run, data: Dataset | None = None, data_dir=None) -> Look:
    """How the run's training images look (ninlab.data.images.measure_look): measured on the
    training images of `data`, or of the run's data set read as the run read it (looked for in
    data_dir first, never downloaded; a folder from its cache, or decoded again); when it cannot
    be read, guessed from the run's mean (`look_from_mean`: Fashion-MNIST's 0.286 says a dark
    background), with no trimming. Measuring beats the mean: a folder of dark items filling
    white product photos has a dark mean and light backgrounds."""
    if data is None:
        cfg = run.config
        try:
            data = load_dataset(cfg.dataset, data_dir=data_dir or cfg.data_dir,
                                download_ok=False, folder=cfg.folder_options())  # fmt: skip
        except NinlabError:
            return look_from_mean(cfg.mean)
    return measure_look(data.train_images)


def file_image(
    run: Run,
    path: str | Path,
    native: bool = False,
    invert: str = "auto",
    trim: str = "auto",
    look: Look | None = None,
) -> Picked:
    """An image file at the run's input size and channels (native: at its own size), made like
    its training images (`look`, default `training_look(run)`; see read_file for invert and
    trim: "auto", "yes" or "no"), with what was done in `prep`."""
    if look is None and "auto" in (invert, trim):
        look = training_look(run)
    size = None if native else run.config.input_size
    mode = "L" if run.config.in_chans == 1 else "RGB"
    pixels, prep = read_file(path, mode, size, run.config.fit, invert, trim, look or Look())
    return Picked(pixels.unsqueeze(0), None, str(path), Path(path).stem, prep)


def pick_image(
    run: Run,
    index: int | None = None,
    image: str | Path | None = None,
    data_dir=None,
    native: bool = False,
    invert: str = "auto",
    trim: str = "auto",
) -> Picked:
    """A test-set image (by index) or an image file at the run's input size and channels (or,
    native, a file at its own size), made like the training images (see `file_image`)."""
    if (index is None) == (image is None):
        raise NinlabError("give exactly one of --image PATH or --index N.")
    indices, paths = [] if index is None else [index], [image] if image else []
    return pick_images(run, indices, paths, data_dir, native, invert, trim)[0]


def pick_images(
    run: Run,
    indices: Sequence[int] = (),
    paths: Sequence[str | Path] = (),
    data_dir=None,
    native: bool = False,
    invert: str = "auto",
    trim: str = "auto",
) -> list[Picked]:
    """Test-set images by index (the run's data set is read only when there are some, or for
    the training look of files under "auto"), then image files (see `file_image`)."""
    data = run.dataset(data_dir) if indices else None
    auto = paths and "auto" in (invert, trim)
    look = training_look(run, data, data_dir) if auto else None
    files = [file_image(run, p, native, invert, trim, look) for p in paths]
    for one, tag in zip(files, unique_tags(paths), strict=True):
        one.tag = tag
    return [dataset_image(data, i) for i in indices] + files


def unique_tags(paths: Sequence[str | Path]) -> list[str]:
    """A tag per file for output names, distinct among them: its stem ("shoe"); where stems
    repeat, its name with the dot a dash ("x-png", "x-jpg"); where names repeat too (the same
    name in two folders), that and its place in the list ("x-png-1", "x-png-2")."""
    stems = [Path(p).stem for p in paths]
    names = [Path(p).name.replace(".", "-") for p in paths]
    tags = [s if stems.count(s) == 1 else n for s, n in zip(stems, names, strict=True)]
    return [t if tags.count(t) == 1 else f"{t}-{i + 1}" for i, t in enumerate(tags)]


def input_path(path: str | Path, tag: str, many: bool) -> Path:
    """Where `save_input` writes the input of the image tagged `tag`: `path` itself, or for one
    of many images PATH-STEM-TAG.png beside it (--show x.png: x-0.png, x-shoe.png)."""
    path = Path(path)
    return path.with_name(f"{path.stem}-{tag}{path.suffix or '.png'}") if many else path


def save_input(image: torch.Tensor, path: str | Path) -> Path:
    """Write uint8 (1, C, H, W) or (C, H, W) pixels as a PNG for a person to see: enlarged by
    the whole factor that makes its shorter side at least SHOW_SIDE px, each pixel a square
    (nearest neighbour, no smoothing). Returns the path."""
    x = image.reshape(image.shape[-3:])  # C x H x W
    scale = max(1, -(-SHOW_SIDE // min(x.shape[-2:])))
    pixels = x.permute(1, 2, 0).contiguous().numpy()  # H x W x C
    picture = Image.fromarray(pixels[:, :, 0] if x.shape[0] == 1 else pixels)
    picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    return atomic_write(path, lambda tmp: picture.save(tmp, format="PNG"))


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
