"""`ninlab profile MODEL|RUN`: the table, the plot, a run's own settings, bad input."""

import json

import pytest
import torch
from PIL import Image

from ninlab.cli import main
from ninlab.train import profile as P
from ninlab.train.distributed import precision_for

from ..conftest import make_run_dir


@pytest.fixture(autouse=True)
def _no_machine_rates(monkeypatch):
    """The peak and bandwidth are measured by ninlab.train.machine (seconds); here fixed."""
    monkeypatch.setattr(P, "peak_rate", lambda precision: 100.0)
    monkeypatch.setattr(P, "copy_rate", lambda: 10.0)


@pytest.mark.slow
def test_profile_nin_fast_prints_the_table_and_writes_the_plot(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["profile", "nin_fast", "--batch-size", "16", "--steps", "2"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert max(map(len, lines)) <= 80
    assert "features.block2.cccp1" in out and "all layers" in out and "step: " in out
    precision = precision_for("auto", torch.device("cpu"))  # bf16 on a CPU with bf16 units
    peak = f"peak      100 GFLOP/s ({precision} matmul), memory 10.0 GB/s (copy): ridge at 10"
    assert peak in out
    assert "The 3 1x1 convs do" in out and "(--wide adds the type column)" in out
    assert lines[-1] == "wrote profile-nin_fast.png"
    with Image.open(tmp_path / "profile-nin_fast.png") as im:
        assert im.width >= 1000


@pytest.mark.slow
def test_a_run_is_profiled_as_it_trained(tmp_path, capsys):
    make_run_dir(tmp_path / "run", batch_size=24, precision="fp32", channels_last=False)
    assert main(["profile", str(tmp_path / "run"), "--steps", "1", "--json"]) == 0
    captured = capsys.readouterr()
    d = json.loads(captured.out)
    assert d["batch"] == 24 and d["precision"] == "fp32" and d["input_size"] == [1, 28, 28]
    assert d["plot"] == str(tmp_path / "run" / "profile.png")
    assert (tmp_path / "run" / "profile.png").is_file()
    assert captured.err.startswith("wrote ")
    assert [lay["type"] for lay in d["layers"]].count("Conv2d 1x1") == 3
    assert d["flops"] == 3 * 24 * d["summary_flops"]


def test_a_model_without_an_input_size_is_refused_in_one_sentence(tmp_path, capsys):
    (tmp_path / "net.py").write_text(
        "from torch import nn\ndef f():\n    return nn.Conv2d(3, 4, 1)\n"
    )
    assert main(["profile", f"{tmp_path}/net.py:f", "--out", str(tmp_path / "p.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "give one with --input CxHxW" in err
    assert not (tmp_path / "p.png").exists()
