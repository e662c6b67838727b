"""Exports used as a user uses them: the ONNX model through onnxruntime, numpy and PIL alone,
following the ```python block of docs/conversion.md; the converted safetensors through predict and
eval.

The run is a nin_fast whose batch-norm statistics were measured on the test images (untrained
weights would give every image the same class, and equal predictions would prove little), with
test-time flip on, so that the exported graph has to reproduce that too.
"""

import contextlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from ninlab.cli import main
from ninlab.data import DATASETS
from ninlab.errors import NinlabError
from ninlab.runs import evaluate_run, load_converted_run, load_run, save_weights
from ninlab.train import TrainConfig
from ninlab.version import __version__

from ..conftest import make_idx_dataset, make_run_dir

pytest.importorskip("onnxscript")
ort = pytest.importorskip("onnxruntime")

PAGE = Path(__file__).resolve().parents[2] / "docs" / "conversion.md"
N_TEST = 200
MEAN, STD = 0.29, 0.35
# what the page's snippet classifies; this test puts its own files in their place
MODEL_FILE, PNG_FILES = '"nin_fast.onnx"', '["shoe.png", "bag.png"]'


def page_snippet() -> str:
    """The ```python block of docs/conversion.md, "Conversion and export": the only one."""
    (code,) = re.findall(r"^```python\n(.*?)^```$", PAGE.read_text(), re.S | re.M)
    return code


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A run with varied predictions on a 200-image test set, exported and converted by the
    command line: (folder, data dir, what `export` printed, what `convert` printed)."""
    root = tmp_path_factory.mktemp("export")
    images = make_idx_dataset(root / "data" / "fashion-mnist", n_train=10, n_test=N_TEST)
    model, cfg = make_run_dir(root / "run", mean=[MEAN], std=[STD], tta_flip=True)
    for m in model.modules():  # running statistics = the exact mean and variance of the test set
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None
            m.reset_running_stats()
    x = (images["t10k"][0][:, None].float() / 255 - MEAN) / STD
    with torch.no_grad():
        model.train()(x)
    for name in ("best", "final"):
        save_weights(model.eval(), root / "run" / f"{name}.safetensors", TrainConfig.from_dict(cfg))
    printed = []
    for argv in (["export", str(root / "run"), "--out", str(root / "m.onnx")],
                 ["convert", str(root / "run"), "--out", str(root / "x.safetensors"),
                  "--batch-size", "4"]):  # fmt: skip
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(argv) == 0
        printed.append(out.getvalue())
    return root, root / "data", *printed


@pytest.mark.slow
def test_the_page_snippet_classifies_pngs_as_eval_does(made, tmp_path):
    root, data_dir, _, _ = made
    run = load_run(root / "run")
    data = run.dataset(str(data_dir))
    ev = evaluate_run(run, data, N_TEST)
    assert len(set(ev.preds.tolist())) >= 5  # the comparison below means something
    paths = []
    for i in range(N_TEST):
        paths.append(str(tmp_path / f"test-{i:03d}.png"))
        Image.fromarray(data.test_images[i, 0].numpy(), "L").save(paths[-1])
    code = page_snippet()
    assert code.count(MODEL_FILE) == 1 and code.count(PNG_FILES) == 1
    code = code.replace(MODEL_FILE, repr(str(root / "m.onnx"))).replace(PNG_FILES, repr(paths))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "docs/conversion.md", "exec"), {"__name__": "__main__"})
    named = dict(line.split(" ", 1) for line in printed.getvalue().splitlines())
    assert list(named) == paths
    predicted = [run.classes.index(named[p]) for p in paths]
    labels = data.test_labels[:N_TEST].tolist()
    accuracy = sum(p == y for p, y in zip(predicted, labels, strict=True)) / N_TEST
    assert predicted == ev.preds.tolist()
    assert accuracy >= ev.accuracy


@pytest.mark.slow
def test_onnx_logits_are_evals_logits(made):
    """Normalisation and test-time flip inside the graph: the logits themselves agree."""
    root, data_dir, _, _ = made
    run = load_run(root / "run")
    data = run.dataset(str(data_dir))
    session = ort.InferenceSession(str(root / "m.onnx"), providers=["CPUExecutionProvider"])
    (logits,) = session.run(["logits"], {"images": data.test_images[:N_TEST].numpy()})
    want = evaluate_run(run, data, N_TEST).logits
    assert (torch.from_numpy(logits) - want).abs().max().item() < 1e-4


def test_metadata_says_what_the_model_needs(made):
    root, _, printed, _ = made
    session = ort.InferenceSession(str(root / "m.onnx"), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["classes"]) == list(DATASETS["fashion-mnist"].classes)
    assert json.loads(meta["mean"]) == [MEAN] and json.loads(meta["std"]) == [STD]
    assert json.loads(meta["channels"]) == 1 and json.loads(meta["input_size"]) == [28, 28]
    assert json.loads(meta["min_input_size"]) == [25, 25]
    assert meta["input_dtype"] == "uint8" and json.loads(meta["input_range"]) == [0, 255]
    assert json.loads(meta["tta_flip"]) is True and json.loads(meta["stride"]) == 8
    assert meta["model"] == "nin_fast" and meta["ninlab_version"] == __version__
    (images,) = session.get_inputs()
    assert images.name == "images" and images.type == "tensor(uint8)"
    assert [o.name for o in session.get_outputs()] == ["logits", "scores"]
    # min_input_size is where the grid begins: 1x1 at 25, empty at 24
    for side, grid in ((25, (1, 1)), (24, (0, 0))):
        pixels = np.zeros((1, 1, side, side), np.uint8)
        assert session.run(["scores"], {"images": pixels})[0].shape[2:] == grid
    # and `ninlab export` says which input it takes
    assert 'input "images": uint8 pixels 0-255, N x 1 x H x W, H and W >= 25' in printed
    assert "the graph normalises them: (x / 255 - mean) / std" in printed
    assert "outputs equal to 0.0001 on both sizes" in printed
    assert max(len(line) for line in printed.splitlines()[1:-1]) <= 80


def test_convert_says_why_no_pair_fused(made):
    _, _, _, printed = made
    assert "fused conv pairs: 0 (each of the 3 1x1 convs follows a ReLU, not a conv)" in printed


def test_a_too_small_input_is_refused_in_one_sentence(made):
    root, _, _, _ = made
    model, _ = load_converted_run(root / "x.safetensors")
    with pytest.raises(NinlabError) as refused:
        model(torch.zeros(1, 1, 20, 24))
    message = str(refused.value)
    assert message == (
        "nin_fast (converted) cannot run on a 20x24 input: it takes inputs of 25 px or more a "
        "side (28 by default); resize the images to 28 px first."
    )
    assert model(torch.zeros(1, 1, 25, 40)).shape == (1, 10)


@pytest.mark.slow
def test_the_converted_file_is_a_run_for_predict_and_eval(made, capsys):
    """Needs `ninlab.runs.load_run` to read a converted file (`load_converted_run`)."""
    root, data_dir, _, _ = made
    run, converted = load_run(root / "run"), load_run(root / "x.safetensors")
    assert converted.classes == run.classes and converted.weights == root / "x.safetensors"
    images = run.dataset(str(data_dir)).test_images[:8]
    assert torch.allclose(converted.probabilities(images), run.probabilities(images), atol=1e-5)
    with pytest.raises(NinlabError, match="20x20 input: it takes inputs of 25 px or more"):
        converted.model(converted.preprocess(images[:1, :, :20, :20], native=True))
    out = {}
    for name, source in (("run", root / "run"), ("file", root / "x.safetensors")):
        for verb, extra in (("predict", ["--index", "3"]), ("eval", [])):
            assert main([verb, str(source), *extra, "--data-dir", str(data_dir)]) == 0
            out[name, verb] = capsys.readouterr().out
    top = re.compile(r"^  (\S.*?) +\d+\.\d\d%", re.M)  # the first class predict lists
    assert top.search(out["file", "predict"])[1] == top.search(out["run", "predict"])[1]
    accuracy = re.compile(r"accuracy \d+\.\d\d% \(\S+\)")
    assert accuracy.search(out["file", "eval"])[0] == accuracy.search(out["run", "eval"])[0]
