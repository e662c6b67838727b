"""Data sets as whole uint8 tensors (built-in sets and folders of images), IDX/CIFAR readers,
batched transforms and a seeded loader."""

from ninlab.data.catalog import DATASETS, DatasetSpec, dataset_label, get_spec, load_dataset
from ninlab.data.dataset import Dataset
from ninlab.data.folders import FolderOptions, load_folder
from ninlab.data.idx import parse_idx, read_idx
from ninlab.data.loader import BatchLoader, epoch_generator
from ninlab.data.transforms import (
    channel_stats,
    random_erase,
    random_flip,
    random_translate,
    resize,
    shift,
    to_channels,
    to_float,
)

__all__ = [
    "DATASETS",
    "BatchLoader",
    "Dataset",
    "DatasetSpec",
    "FolderOptions",
    "channel_stats",
    "dataset_label",
    "epoch_generator",
    "get_spec",
    "load_dataset",
    "load_folder",
    "parse_idx",
    "random_erase",
    "random_flip",
    "random_translate",
    "read_idx",
    "resize",
    "shift",
    "to_channels",
    "to_float",
]
