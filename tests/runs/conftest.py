import pytest

from ..conftest import make_idx_dataset


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A random Fashion-MNIST of 300 training and 100 test images (NINLAB_DATA layout), one per
    module: the tiny runs the kill and integrity tests repeat."""
    root = tmp_path_factory.mktemp("data")
    make_idx_dataset(root / "fashion-mnist", n_train=300, n_test=100)
    return root
