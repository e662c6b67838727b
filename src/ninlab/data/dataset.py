"""A data set in memory, whatever it was read from: uint8 images, labels and class names."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ninlab.errors import NinlabError


@dataclass
class Dataset:
    """A whole data set in memory: images (N, C, H, W) uint8, labels (N,) int64."""

    name: str
    classes: tuple[str, ...]
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    sources: dict[str, str]  # file name -> where it was read from
    # a folder of images only: the folder, which files went to which split (paths relative to
    # the folder, in the order of the tensors), and the files skipped, with the reason
    root: str | None = None
    files: dict[str, list[str]] | None = None
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_images.shape[1:])

    def test_item(self, index: int) -> tuple[torch.Tensor, int]:
        """Test image `index` as uint8 (1, C, H, W), and its label."""
        n = len(self.test_images)
        if not 0 <= index < n:
            raise NinlabError(
                f"--index {index} is out of range; the {self.name} test set has {n:,} images "
                f"(0..{n - 1})."
            )
        return self.test_images[index : index + 1], int(self.test_labels[index])
