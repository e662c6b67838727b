"""Shuffled mini-batches from in-memory tensors, reproducible from a seed and an epoch number."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from ninlab.data.transforms import to_device


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A generator fixed by (seed, epoch) alone, so a resumed run sees the same batches."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


class BatchLoader:
    """Yields (images uint8, labels) batches; the order of epoch e is fixed by (seed, e).

    The whole data set stays one tensor (optionally on the training device); a batch is a gather
    of shuffled indices, so there are no workers and no per-sample Python.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
    ):
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels = images, labels
        self.batch_size, self.shuffle, self.drop_last, self.seed = (
            batch_size,
            shuffle,
            drop_last,
            seed,
        )
        self.epoch = 0

    def __len__(self) -> int:
        n = len(self.images)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.images)
        if self.shuffle:
            order = torch.randperm(n, generator=epoch_generator(self.seed, self.epoch))
            order = to_device(order, self.images.device)
        else:
            order = None
        for i in range(len(self)):
            if order is None:
                sl = slice(i * self.batch_size, (i + 1) * self.batch_size)
                yield self.images[sl], self.labels[sl]
            else:
                idx = order[i * self.batch_size : (i + 1) * self.batch_size]
                yield self.images[idx], self.labels[idx]
