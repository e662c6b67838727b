import gzip
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch


def write_idx(path, tensor: torch.Tensor, compress: bool | None = None) -> Path:
    """Write a uint8 tensor as an IDX file (gzip when the name ends in .gz), as the data sets
    ship them: a 4-byte magic (0, 0, 8 for uint8, the number of dimensions), each dimension as a
    big-endian 32-bit count, then the bytes."""
    path = Path(path)
    array = tensor.numpy().astype(np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    data = header + array.tobytes()
    if compress if compress is not None else path.suffix == ".gz":
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI (CI=true) a skipped test is a failure: .ci/run installs everything the tests need
    (Chromium, the data set, onnx and onnxruntime), so a skip there would hide a check that did
    not run. Only the test for machines with CUDA may skip: CI has no GPU."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") == "true" and report.skipped and not hasattr(report, "wasxfail"):
        if "this machine has CUDA" not in str(report.longrepr):
            report.outcome = "failed"
            report.longrepr = f"skipped in CI, where everything the tests need is installed: " \
                f"{report.longrepr}"  # fmt: skip


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


def make_run_dir(path, model_name="nin_fast", classes=None, **config):
    """A run directory as `ninlab train` leaves it (config + weights), with untrained weights."""
    import json

    from ninlab.data import DATASETS
    from ninlab.models import create_model, default_in_chans
    from ninlab.runs import save_weights
    from ninlab.train import TrainConfig

    path.mkdir(parents=True, exist_ok=True)
    classes = list(classes or DATASETS["fashion-mnist"].classes)
    model = create_model(model_name, num_classes=len(classes))
    cfg = {
        "model": model_name,
        "dataset": "fashion-mnist",
        "classes": classes,
        "in_chans": default_in_chans(model_name),
        "input_size": model.default_input_size[-1],
        "mean": [0.5],
        "std": [0.5],
    }
    cfg.update(config)
    (path / "config.json").write_text(json.dumps(cfg, indent=2))
    save_weights(model, path / "best.safetensors", TrainConfig.from_dict(cfg))
    save_weights(model, path / "final.safetensors", TrainConfig.from_dict(cfg))
    return model.eval(), cfg


def sigterm_after_first_epoch(cmd, out, env=None, wait=90):
    """Start `cmd`, send SIGTERM once `out` holds an epoch's metrics; (exit status, stdout,
    stderr)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + wait
    while not (out / "metrics.jsonl").exists() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=wait)
    return proc.returncode, stdout, stderr
