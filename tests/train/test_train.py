import json
import math
import re
import signal
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

from ninlab import train as T
from ninlab.cli import main
from ninlab.data import load_dataset
from ninlab.models.whitening import PatchWhitening
from ninlab.runs import read_config, read_facts, read_metrics, resume_run, train_run
from ninlab.train import confusion_matrix, per_class_accuracy
from ninlab.train.facts import command_line

from ..conftest import make_idx_dataset, make_run_dir, sigterm_after_first_epoch

EPOCH_LINE = re.compile(
    r"^Epoch \[1/1\], Train Loss: \d+\.\d{4}, Test Loss: \d+\.\d{4}, Acc: \d+\.\d{2}%", re.M
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """2,000 train / 500 test random 28x28 images in Fashion-MNIST's layout."""
    root = tmp_path_factory.mktemp("data")
    make_idx_dataset(root / "fashion-mnist", n_train=2000, n_test=500)
    return root


@pytest.mark.slow
def test_one_epoch_writes_every_artifact(tmp_path, capsys):
    """The issue's 'done when' on the real data set when installed (else on random images)."""
    out = tmp_path / "r"
    args = ["train", "--epochs", "1", "--limit-train", "2000", "--out", str(out), "--no-progress"]
    if not Path("/usr/share/datasets/fashion-mnist").is_dir():
        args += ["--data-dir", str(_small(tmp_path))]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert EPOCH_LINE.search(printed), printed
    for name in ("config.json", "metrics.csv", "metrics.jsonl", "curves.png", "checkpoint.pt",
                 "best.safetensors", "final.safetensors"):  # fmt: skip
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "nin_fast" and config["limit_train"] == 2000
    with safe_open(str(out / "final.safetensors"), "pt") as f:
        meta = f.metadata()
    assert meta["model"] == "nin_fast" and json.loads(meta["config"])["epochs"] == 1
    row = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert row["epoch"] == 1 and 0 <= row["test_acc"] <= 1
    assert f"Acc: {100 * row['test_acc']:.2f}%" in printed
    assert (out / "metrics.csv").read_text().startswith("epoch,train_loss,train_acc,test_loss")
    with Image.open(out / "curves.png") as im:
        assert im.size[0] > 300

    assert main(["eval", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"accuracy {100 * row['test_acc']:.2f}%" in printed and "confusion matrix" in printed
    # the printed matrix: every test image once, the diagonal = the images counted right
    matrix = printed.split("predicted ->")[1].split("\n\n")[0].splitlines()[1:]
    counts = [[int(v) for v in line[16:].split()] for line in matrix]  # after "0 T-shirt/top "
    right, total = re.search(r"\(([\d,]+)/([\d,]+)\)", printed).groups()
    total = int(total.replace(",", ""))
    assert len(counts) == 10 and sum(map(sum, counts)) == total
    assert sum(counts[i][i] for i in range(10)) == int(right.replace(",", ""))
    assert round(100 * int(right.replace(",", "")) / total, 2) == round(100 * row["test_acc"], 2)
    with Image.open(out / "confusion.png") as im:
        assert im.size[0] > 300
    assert main(["predict", str(out), "--index", "0"]) == 0
    printed = capsys.readouterr().out
    assert "test image 0 (true: " in printed
    assert printed.endswith("(probabilities of one forward pass, as ninlab eval makes them)\n")


def test_confusion_matrix_by_hand():
    preds, labels = torch.tensor([0, 1, 1, 2, 2]), torch.tensor([0, 1, 2, 2, 2])
    conf = confusion_matrix(preds, labels, 3)
    assert conf.tolist() == [[1, 0, 0], [0, 1, 0], [0, 1, 2]]  # row = true class
    assert per_class_accuracy(conf).tolist() == pytest.approx([1.0, 1.0, 2 / 3])


def test_precision_recall_f1_by_hand():
    # true 0: 3 right, 1 called 1; true 1: 2 called 0, 4 right
    precision, recall, f1 = T.precision_recall_f1(torch.tensor([[3, 1], [2, 4]]))
    assert precision.tolist() == pytest.approx([3 / 5, 4 / 5])  # column sums 5 and 5
    assert recall.tolist() == pytest.approx([3 / 4, 4 / 6])  # row sums 4 and 6
    assert f1.tolist() == pytest.approx([2 * 0.6 * 0.75 / 1.35, 2 * 0.8 * (2 / 3) / (0.8 + 2 / 3)])
    precision, recall, f1 = T.precision_recall_f1(torch.tensor([[2, 0], [0, 0]]))
    assert precision.tolist() == [1.0, 0.0] and recall.tolist() == [1.0, 0.0] and f1[1] == 0


def test_smoothed_loss_floor_by_hand():
    # epsilon 0.1 over 10 classes: q = 0.91 for the label, 0.01 for each other class
    floor = -(0.91 * math.log(0.91) + 9 * 0.01 * math.log(0.01))
    assert T.smoothed_loss_floor(0.1, 10) == pytest.approx(floor) == pytest.approx(0.5003, abs=1e-4)
    assert T.smoothed_loss_floor(0.0, 10) == 0.0
    # epsilon 1: the target is uniform, so the floor is ln K
    assert T.smoothed_loss_floor(1.0, 4) == pytest.approx(math.log(4))


def test_curve_legends_come_from_the_config():
    rows = [{"epoch": e, "train_loss": 1.0 / e, "test_loss": 0.9 / e, "train_acc": 0.5,
             "test_acc": 0.4 + e / 100, "lr": 0.1, "images_per_s": 100.0 * e}
            for e in (1, 2)]  # fmt: skip

    def legend(cfg):
        ax = T.curves_figure(rows, cfg).axes[0]  # the loss panel
        return [t.get_text().replace("\n", " ") for t in ax.get_legend().get_texts()]

    long = T.resolve("long", classes=["a", "b", "c", "d"])
    assert legend(long)[0] == (
        "train loss (shifts of up to 2 px, mirror flips, 8 px cut-outs; label smoothing 0.1)"
    )
    # 4 classes, smoothing 0.1: 0.925 for the label, 0.025 for each other
    floor = -(0.925 * math.log(0.925) + 3 * 0.025 * math.log(0.025))
    assert legend(long)[2] == f"least smoothed loss ({floor:.2f})"
    seed = T.resolve("seed", classes=["a", "b"])
    assert legend(seed) == ["train loss (no augmentation; no smoothing)", "test loss (plain "
                            "cross-entropy)"]  # fmt: skip
    panels = [T.curve_figure(p, rows, seed) for p in T.PANELS]
    assert [f.axes[0].get_ylabel() for f in panels] == [
        "cross-entropy", "accuracy (%)", "learning rate", "training images / s"]  # fmt: skip


def test_command_line_as_a_shell_takes_it():
    assert command_line(["/usr/bin/ninlab", "train", "--out", "a b"]) == "ninlab train --out 'a b'"
    assert command_line(["/x/ninlab/__main__.py", "eval", "r"]) == "python -m ninlab eval r"


@pytest.mark.slow
def test_limit_test_and_the_estimate_of_an_epoch(tmp_path, data_dir, capsys):
    out = tmp_path / "r"
    args = ["train", "--epochs", "1", "--limit-train", "300", "--limit-test", "70", "--batch-size",
            "50", "--data-dir", str(data_dir), "--out", str(out), "--no-progress",
            "--threads", "1"]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "300 train / 70 test images" in printed
    # before training: training per epoch (6 steps) and testing (1 batch of 70), both timed
    estimate = r"^about [\d.]+ s per epoch here \([\d.]+ s training, [\d.]+ s testing: timed\)$"
    assert re.search(estimate, printed, re.M)
    assert read_config(out).limit_test == 70
    acc = read_metrics(out)[0]["test_acc"]
    assert round(acc * 70) == pytest.approx(acc * 70, abs=1e-4)  # a share of 70 images
    assert main(["eval", str(out), "--limit-test", "70"]) == 0
    assert f"({round(acc * 70)}/70)" in capsys.readouterr().out  # the same 70 images


def _small(tmp_path):
    make_idx_dataset(tmp_path / "d" / "fashion-mnist", n_train=2000, n_test=200)
    return tmp_path / "d"


def _cfg(data_dir, **kw):
    """A small run on the CPU (also where a GPU is: these tests check the CPU's behaviour)."""
    base = dict(epochs=2, batch_size=100, limit_train=600, threads=1, data_dir=str(data_dir),
                device="cpu")  # fmt: skip
    return T.resolve("fast", **{**base, **kw})


class StopAt(T.Callback):
    def __init__(self, epoch, step):
        self.at = (epoch, step)

    def on_batch_end(self, state):
        if (state.epoch, state.step) == self.at:
            state.request_stop("test stop")


@pytest.mark.slow
def test_resume_gives_identical_weights(tmp_path, data_dir):
    cfg = _cfg(data_dir)
    train_run(cfg, tmp_path / "full", progress=False, log=None)

    # the same run, stopped in the middle of epoch 1 (0-based), then resumed
    cut = tmp_path / "cut"
    with pytest.raises(T.Interrupted, match="stopped in epoch 2 after step 3 of 6") as stop:
        train_run(cfg, cut, progress=False, log=None, callbacks=[StopAt(1, 3)])
    assert str(stop.value).endswith(f"checkpoint written. Resume with: ninlab train --resume {cut}")
    ckpt = torch.load(cut / "checkpoint.pt", weights_only=True)
    assert (ckpt["epoch"], ckpt["step"]) == (1, 3)
    history, _ = resume_run(cut, progress=False, log=None)
    assert len(history) == 2
    # the facts of both sessions: what each trained, on what, with what
    first, second = read_facts(cut)
    assert (first["first_epoch"], first["last_epoch"]) == (1, 1)
    assert (second["first_epoch"], second["last_epoch"]) == (2, 2)
    for s in (first, second):
        assert (s["device"], s["threads"], s["processes"]) == ("cpu", 1, 1)
        assert s["precision"] == read_config(cut).precision != "auto"
        assert s["torch"] == torch.__version__ and s["ended"] >= s["started"]
        assert s["command"] == command_line()
    keys = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc")
    rows = [[{k: r[k] for k in keys} for r in read_metrics(d)] for d in (cut, tmp_path / "full")]
    assert rows[0] == rows[1]

    full = load_file(tmp_path / "full" / "final.safetensors")
    cut = load_file(tmp_path / "cut" / "final.safetensors")
    assert full.keys() == cut.keys()
    for k in full:
        assert torch.equal(full[k], cut[k]), k


@pytest.mark.slow
def test_guard_fires_on_huge_lr(tmp_path, data_dir, capsys):
    out = tmp_path / "r"
    rc = main(["train", "--data-dir", str(data_dir), "--lr", "1e4", "--epochs", "2",
               "--limit-train", "600", "--out", str(out), "--no-progress"])  # fmt: skip
    assert rc == 3
    printed = capsys.readouterr().err
    assert "training diverged" in printed or "training collapsed" in printed
    assert "--lr" in printed
    assert (out / "config.json").is_file()


class Constant(torch.nn.Module):
    """Logits 0 for every class whatever the image: dead class maps."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return torch.zeros(len(x), 10) * self.w  # N x 10, all 0, with a gradient path


def test_collapse_guard_checks_chance_loss(tmp_path, data_dir):
    """A model that always outputs zeros sits at ln(10) and predicts one class: the guard fires."""
    data = load_dataset("fashion-mnist", data_dir=data_dir)
    cfg = T.prepare_config(_cfg(data_dir, epochs=1, label_smoothing=0.0, batch_size=20), data)
    assert 600 // 20 >= T.loop.STUCK_AFTER  # 30 steps: enough to call it stuck
    with pytest.raises(T.Diverged, match=r"stuck at ln\(10\) = 2\.3026"):
        T.fit(Constant(), data, cfg, progress=False, log=None)
    assert math.isclose(math.log(10), 2.302585, rel_tol=1e-6)


def test_predict_on_png(tmp_path, capsys):
    run = tmp_path / "run"
    make_run_dir(run, "nin_fast")
    img = tmp_path / "big.png"
    Image.new("RGB", (123, 77), (250, 10, 10)).save(img)
    assert main(["predict", str(run), str(img)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("big.png: 123x77 RGB -> 28x28 L, ") and len(lines) == 5
    assert lines[4] == "(probabilities of one forward pass, as ninlab eval makes them)"
    probs = [float(line.split()[-1].rstrip("%")) for line in lines[1:4]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 100.01


@pytest.mark.slow
def test_seed_recipe_uses_224px_inputs(tmp_path, data_dir):
    cfg = T.resolve("seed", data_dir=str(data_dir), limit_train=200, threads=2)
    assert (cfg.model, cfg.batch_size, cfg.lr, cfg.momentum, cfg.epochs) == (
        "nin_seed",
        64,
        0.1,
        0,
        10,
    )
    data = load_dataset("fashion-mnist", data_dir=data_dir)
    cfg = T.prepare_config(cfg, data)
    assert (cfg.mean, cfg.std, cfg.input_size) == ([0.5], [0.5], 224)
    model = T.build_model(cfg)
    shapes = []
    model.register_forward_pre_hook(lambda m, args: shapes.append(tuple(args[0].shape)))
    with pytest.raises(T.Interrupted):
        T.fit(model, data, cfg, callbacks=[StopAt(0, 2)], progress=False, log=None)
    assert shapes == [(64, 1, 224, 224)] * 2
    x = T.to_input(data.train_images[:1], cfg)
    # uint8 0 -> -1 and 255 -> +1 with mean 0.5, std 0.5
    assert x.min() >= -1 and x.max() <= 1
    assert T.resolve("d2l").model == "nin_d2l" and T.resolve("d2l").init == "xavier"


@pytest.mark.slow
def test_long_recipe_trains_nin_wide_with_cutout(data_dir):
    cfg = T.resolve("long", data_dir=str(data_dir), epochs=1, limit_train=200, threads=1)
    assert (cfg.model, cfg.cutout, cfg.flip, cfg.tta_flip) == ("nin_wide", 8, True, True)
    data = load_dataset("fashion-mnist", data_dir=data_dir)
    cfg = T.prepare_config(cfg, data)
    only_cutout = replace(cfg, translate=0, flip=False)
    x = T.to_input(data.train_images[:50], only_cutout, torch.Generator().manual_seed(0))
    erased = (x == 0).sum((1, 2, 3))  # normalised random pixels are never exactly 0 otherwise
    assert ((erased >= 16) & (erased <= 64)).all()  # an 8x8 square, at least a 4x4 corner of it
    history = T.fit(T.build_model(cfg), data, cfg, progress=False, log=None)
    assert len(history) == 1 and history[0]["train_loss"] < 10


class CentrePixel(torch.nn.Module):
    """Logits (the centre pixel, 0) of 3 x 3 inputs: a model whose outputs one can work out."""

    def forward(self, x):
        centre = x[:, 0, 1, 1]
        return torch.stack([centre, torch.zeros_like(centre)], 1)


CPU = torch.device("cpu")


def test_shift_averaged_probabilities_by_hand():
    cfg = T.TrainConfig(mean=[0.0], std=[1.0], input_size=3, in_chans=1, classes=["a", "b"],
                        tta_shift=True)  # fmt: skip
    images = torch.zeros(3, 1, 3, 3, dtype=torch.uint8)
    images[0, 0, 1, 1] = 255  # the centre: 1.0 as input, 0 (black) once shifted away
    images[1, 0, 0, 1] = 255  # top middle: only the shift down brings it to the centre
    images[2] = 255  # white: every shift keeps a white centre
    p = T.predict_logits(CentrePixel(), images, cfg, CPU).softmax(1)[:, 0]
    s = 1 / (1 + math.exp(-1))  # softmax([1, 0])[0] = 0.7311
    by_hand = [(2 * s + 4 * 0.5) / 6, (2 * 0.5 + s + 3 * 0.5) / 6, s]  # 0.5770, 0.5385, 0.7311
    assert torch.allclose(p, torch.tensor(by_hand), atol=1e-6)
    plain = T.predict_logits(CentrePixel(), images, replace(cfg, tta_shift=False), CPU)
    assert torch.allclose(plain.softmax(1)[:, 0], torch.tensor([s, 0.5, s]), atol=1e-6)


@pytest.mark.slow
def test_whiten_recipe_fits_its_stem_and_shifts_the_last_evaluation(tmp_path, data_dir, capsys):
    cfg = T.resolve("whiten", data_dir=str(data_dir), epochs=2, limit_train=600, threads=1,
                    device="cpu")  # fmt: skip
    assert (cfg.model, cfg.lr, cfg.tta_shift) == ("nin_whiten", 0.1, True)
    lines = []
    history, _ = train_run(cfg, tmp_path / "r", progress=False, log=lines.append)
    assert "fitted 1 patch-whitening layer to the first 600 training images" in lines
    said = "the accuracy below averages each test image and its four 1-px shifts (tta_shift)"
    assert lines.count(said) == 1 and lines[lines.index(said) + 1].startswith("Epoch [2/2]")
    # the stem: fitted to the first 600 training images as the model sees them, then frozen
    data = load_dataset("fashion-mnist", data_dir=data_dir)
    stem = PatchWhitening(1, 2)
    stem.fit(T.to_input(data.train_images[:600], read_config(tmp_path / "r")))
    saved = load_file(tmp_path / "r" / "final.safetensors")
    assert torch.allclose(saved["features.block1.conv.weight"], stem.weight, atol=1e-6)
    assert saved["features.block1.conv.fitted"].item()
    # eval loads the weights (not refitted) and averages the shifts as the last epoch did
    assert main(["eval", str(tmp_path / "r")]) == 0
    assert f"accuracy {100 * history[-1]['test_acc']:.2f}%" in capsys.readouterr().out


class Precision(T.Callback):
    def on_epoch_end(self, state):
        self.seen = state.config.precision


@pytest.mark.slow
def test_a_run_records_its_precision_and_an_old_auto_run_resumes_in_fp32(tmp_path, data_dir):
    cut = tmp_path / "cut"
    with pytest.raises(T.Interrupted):
        train_run(_cfg(data_dir), cut, progress=False, log=None, callbacks=[StopAt(0, 3)])
    ckpt = torch.load(cut / "checkpoint.pt", weights_only=True)
    assert ckpt["config"]["precision"] == T.precision_for("auto", torch.device("cpu"))
    del ckpt["ninlab_sha256"]  # a checkpoint of that time had no checksum
    ckpt["config"]["precision"] = "auto"  # as written before "auto" meant bf16 on such CPUs
    torch.save(ckpt, cut / "checkpoint.pt")
    seen = Precision()
    resume_run(cut, progress=False, log=None, callbacks=[seen])
    assert seen.seen == "fp32"


@pytest.mark.slow
def test_sigterm_checkpoints_and_says_how_to_resume(tmp_path, data_dir):
    out = tmp_path / "r"
    rc, stdout, stderr = sigterm_after_first_epoch(
        [sys.executable, "-m", "ninlab", "train", "--data-dir", str(data_dir), "--epochs", "30",
         "--limit-train", "400", "--batch-size", "50", "--out", str(out), "--no-progress",
         "--threads", "1"],
        out,
    )  # fmt: skip
    assert rc == 128 + signal.SIGTERM, stderr
    assert f"Resume with: ninlab train --resume {out}" in stdout
    assert "Traceback" not in stderr
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] >= 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--epochs", "0"], "--epochs must be at least 1"),
        (["train", "--lr", "-0.1"], "--lr must be positive"),
        (["train", "--device", "tpu"], "unknown device 'tpu'"),
        (["train", "--recipe", "fastest"], "unknown recipe 'fastest'; choose one of fast, best, "),
        (["train", "--model", "resnet"], "unknown model 'resnet'"),
    ],
)
def test_bad_train_options(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_asked_where_there_is_none(tmp_path, data_dir, capsys):
    assert (
        main(
            ["train", "--device", "cuda", "--data-dir", str(data_dir), "--out", str(tmp_path / "r")]
        )
        == 2
    )
    assert "has no usable CUDA GPU; use --device cpu" in capsys.readouterr().err


@pytest.mark.slow
def test_bad_run_inputs(tmp_path, capsys):
    run = tmp_path / "run"
    make_run_dir(run, "nin_fast")
    assert main(["predict", str(run), str(tmp_path / "missing.png")]) == 2
    assert "image" in capsys.readouterr().err
    (tmp_path / "not.png").write_text("hello")
    assert main(["predict", str(run), str(tmp_path / "not.png")]) == 2
    assert "is not a readable image" in capsys.readouterr().err

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text((run / "config.json").read_text())
    assert main(["eval", str(empty)]) == 2
    assert "has no weights" in capsys.readouterr().err

    other = tmp_path / "other"
    make_run_dir(other, "lenet_fc")
    (run / "best.safetensors").write_bytes((other / "best.safetensors").read_bytes())
    assert main(["predict", str(run), "--index", "0"]) == 2
    err = capsys.readouterr().err
    assert "(saved from lenet_fc) does not fit model nin_fast" in err
    assert "missing features.block1.bn.bias" in err and "in all)" in err

    # a run that already exists is never overwritten by a new train
    assert main(["train", "--out", str(other)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (other / "best.safetensors").is_file()
