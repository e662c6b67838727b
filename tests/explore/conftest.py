import pytest
import torch

from ..conftest import make_idx_dataset, make_run_dir


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A folder with a run of untrained nin_fast weights (root / "run", reading its data from
    root / "data") and a random Fashion-MNIST of 60 training and 20 test images (labels 0..9 in
    turn), one per test module."""
    root = tmp_path_factory.mktemp("explore")
    make_idx_dataset(root / "data" / "fashion-mnist", n_train=60, n_test=20)
    torch.manual_seed(0)
    make_run_dir(root / "run", data_dir=str(root / "data"))
    return root
