"""The run directory's one owner, `ninlab.runs`: its files written and read back, and a run written
by ninlab before the package moved (tests/fixtures/run-before-the-move: vgg_gap, 512 training and
200 test images of Fashion-MNIST, killed as its second epoch's evaluation began) still read by
eval, report and --resume."""

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from ninlab.cli import main
from ninlab.errors import NinlabError
from ninlab.runs import (
    CHECKPOINT,
    check_run,
    default_out,
    load_run,
    read_checkpoint,
    read_config,
    read_facts,
    read_metrics,
    session,
    train_run,
)
from ninlab.runs.store import write_config
from ninlab.train import TrainConfig, resolve

BEFORE = Path(__file__).resolve().parents[1] / "fixtures" / "run-before-the-move"
FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture
def old_run(tmp_path):
    """A copy of the run written before the move (its data: Debian's Fashion-MNIST, which CI
    installs)."""
    if not (FASHION / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("needs Debian's dataset-fashion-mnist (CI installs it)")
    return Path(shutil.copytree(BEFORE, tmp_path / "run"))


def test_the_old_run_reads_whole():
    assert set(check_run(BEFORE).values()) == {"ok"}
    assert read_config(BEFORE).model == "vgg_gap" and read_config(BEFORE).limit_test == 200
    assert [r["epoch"] for r in read_metrics(BEFORE)] == [1]
    assert read_checkpoint(BEFORE)["epoch"] == 1
    assert read_facts(BEFORE)[0]["last_epoch"] == 1


@pytest.mark.slow
def test_the_old_run_evaluates_to_its_recorded_accuracy(old_run, capsys):
    """The best weights (epoch 1) on the same 200 test images: 21 right, as training measured."""
    assert main(["eval", str(old_run), "--limit-test", "200", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["correct"], result["images"]) == (21, 200)
    assert result["accuracy"] == pytest.approx(read_metrics(old_run)[0]["test_acc"])


@pytest.mark.slow
def test_the_old_run_makes_a_report(old_run, tmp_path, capsys):
    out = tmp_path / "report.html"
    assert main(["report", str(old_run), "--limit", "100", "--out", str(out)]) == 0
    page = out.read_text()
    assert "vgg_gap" in page and "T-shirt/top" in page


@pytest.mark.slow
def test_the_old_run_resumes_and_keeps_its_first_epoch(old_run, capsys):
    first = read_metrics(old_run)[0]
    assert main(["train", "--resume", str(old_run)]) == 0
    assert "resuming" in capsys.readouterr().out
    rows = read_metrics(old_run)
    assert [r["epoch"] for r in rows] == [1, 2] and rows[0] == first
    assert read_checkpoint(old_run)["epoch"] == 2
    assert [s["last_epoch"] for s in read_facts(old_run)] == [1, 2]
    assert load_run(old_run, "final").config.epochs == 2


def test_a_new_run_never_overwrites_one(tmp_path):
    out = tmp_path / "run"
    shutil.copytree(BEFORE, out)
    with pytest.raises(NinlabError, match=r"already holds a run; continue it with `ninlab train "
                       r"--resume .*run` or pass another --out"):  # fmt: skip
        train_run(TrainConfig(epochs=1), out, log=None)
    assert (out / CHECKPOINT).is_file()  # untouched
    (tmp_path / "file").write_text("x")
    with pytest.raises(NinlabError, match="is a file, not a folder; pass a folder path"):
        train_run(TrainConfig(epochs=1), tmp_path / "file", log=None)


def test_the_config_goes_round_the_file(tmp_path):
    cfg = TrainConfig(epochs=3, lr=0.2, classes=["a", "b"], in_chans=1)
    write_config(tmp_path, cfg)
    assert read_config(tmp_path) == cfg
    assert json.loads((tmp_path / "config.json").read_text())["lr"] == 0.2


def test_a_run_goes_to_a_named_folder_by_default():
    out = default_out(TrainConfig(model="vgg_gap"))
    assert out.parent == Path("runs") and out.name.startswith("vgg_gap-fashion-mnist-")


@pytest.mark.slow
def test_the_curves_are_drawn_first_last_and_when_time_has_passed(data_dir, tmp_path, monkeypatch):
    """With CURVES_EVERY out of reach, 4 epochs draw curves.png twice (after epochs 1 and 4),
    and the picture of the last shows all four (the writer records what it drew)."""
    drawn = []
    real = session.save_png
    monkeypatch.setattr(session, "CURVES_EVERY", 1e9)
    monkeypatch.setattr(session, "save_png", lambda f, path: (drawn.append(path), real(f, path)))
    cfg = resolve("fast", data_dir=str(data_dir), epochs=4, limit_train=100, batch_size=50,
                  limit_test=50, threads=1)  # fmt: skip
    history, out = train_run(cfg, tmp_path / "r", progress=False, log=None)
    assert len(history) == 4
    assert drawn == [out / "curves.png"] * 2
    monkeypatch.setattr(session, "CURVES_EVERY", 0.0)
    drawn.clear()
    train_run(replace(cfg, epochs=3), tmp_path / "s", progress=False, log=None)
    assert len(drawn) == 3
