import pytest
import torch

from ninlab.data import write_idx


@pytest.fixture(autouse=True)
def _isolate(monkeypatch, tmp_path_factory):
    """No test reads the user's cache, NINLAB_DATA, or fights over threads."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("NINLAB_DATA", raising=False)
    torch.manual_seed(0)


def make_idx_dataset(root, n_train=60, n_test=20, num_classes=10, size=28, gz=True):
    """A small random IDX data set laid out like Fashion-MNIST's files; returns the tensors."""
    root.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(1)
    tensors = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = torch.randint(0, 256, (n, size, size), generator=g, dtype=torch.uint8)
        labels = (torch.arange(n) % num_classes).to(torch.uint8)
        ext = ".gz" if gz else ""
        write_idx(root / f"{prefix}-images-idx3-ubyte{ext}", images)
        write_idx(root / f"{prefix}-labels-idx1-ubyte{ext}", labels)
        tensors[prefix] = (images, labels)
    return tensors
