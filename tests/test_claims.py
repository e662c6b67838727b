"""The claims ledger: every statement has a check; training claims read run directories."""

import json
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from ninlab.analysis.sparsity import sparser_with_depth
from ninlab.analysis.verdicts import DIFFERS, FAILS, HOLDS, NEEDS_RUN
from ninlab.claims import check_claims, claim_21, claim_22, claim_23, read_run
from ninlab.cli import main
from ninlab.data import write_idx
from ninlab.runs import save_weights
from ninlab.train import TrainConfig

from .conftest import make_idx_dataset, make_run_dir

CLAIMS_MD = Path(__file__).resolve().parents[1] / "docs" / "claims.md"


def test_arithmetic_claims():
    claims = {c.number: c for c in check_claims()}
    # every numbered statement of the project's list has a check, and nothing else does
    numbers = {int(n) for n in re.findall(r"^(\d+)\. ", CLAIMS_MD.read_text(), re.M)}
    assert numbers == set(claims) == set(range(1, 26))
    verdicts = {n: c.verdict for n, c in claims.items()}
    assert verdicts[8] == FAILS and "81 weights" in claims[8].computed
    assert verdicts[20] == FAILS and "192->160->96" in claims[20].computed
    assert verdicts[18] == DIFFERS and verdicts[11] == DIFFERS
    for n in (1, 2, 3, 4, 5, 6, 7, 9, 10, 12, 13, 14, 15, 16, 17, 19):
        assert verdicts[n] == HOLDS, claims[n]
    for n in range(21, 26):
        assert verdicts[n] == NEEDS_RUN and claims[n].run is None
    assert "387,072 vs 157,184" in claims[14].computed
    assert "102,760,448" in claims[16].computed
    # 36 outputs x 32 MACs each (statement 5), by hand
    assert "36 outputs x 32 MACs = 1,152 MACs" in claims[5].computed


def _run(path, model, accs, **config):
    """A run directory with a config and a metrics.jsonl of these test accuracies (fractions)."""
    path.mkdir(parents=True)
    cfg = {"model": model, "dataset": "fashion-mnist", **config}
    (path / "config.json").write_text(json.dumps(cfg))
    lines = [json.dumps({"epoch": i + 1, "test_acc": a}) for i, a in enumerate(accs)]
    (path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return read_run(path)


SEED = dict(recipe="seed", input_size=224, lr=0.1, batch_size=64, epochs=10)
SEED_ACCS = [0.3398, 0.5943, 0.6587, 0.6774, 0.697, 0.7327, 0.7959, 0.8471, 0.8551, 0.8574]


def test_claim_21_holds_on_the_published_curve_and_names_what_differs(tmp_path):
    c = claim_21([_run(tmp_path / "seed", "nin_seed", SEED_ACCS, **SEED)])
    assert c.verdict == HOLDS and c.run == str(tmp_path / "seed")
    assert "85.74% after 10 epochs (+0.00 points" in c.computed
    c = claim_21([_run(tmp_path / "short", "nin_fast", [0.5, 0.7], recipe="seed", limit_train=100)])
    assert c.verdict == DIFFERS and "70.00%" in c.computed and "-15.74 points" in c.computed
    assert "limit_train=100" in c.computed and "model=nin_fast" in c.computed


@pytest.mark.parametrize(
    "one, two, verdict",
    [
        ([0.80, 0.88], [0.70, 0.85], HOLDS),  # better at the end and on average
        ([0.60, 0.88], [0.80, 0.85], DIFFERS),  # better at the end only
        ([0.70, 0.80], [0.75, 0.85], FAILS),
    ],
)
def test_claim_22_one_versus_two_1x1_convs(tmp_path, one, two, verdict):
    runs = [_run(tmp_path / "one", "nin_seed", one), _run(tmp_path / "two", "nin_d2l", two)]
    c = claim_22(runs)
    assert c.verdict == verdict
    mean = (one[0] + one[1]) / 2 * 100
    assert f"final {100 * one[1]:.2f}% (one) vs {100 * two[1]:.2f}% (two)" in c.computed
    assert f"mean over epochs {mean:.2f}%" in c.computed


@pytest.mark.parametrize("alex, verdict", [(0.90, HOLDS), (0.95, DIFFERS), (0.87, FAILS)])
def test_claim_23_nin_a_little_below_alexnet(tmp_path, alex, verdict):
    runs = [_run(tmp_path / "nin", "nin_seed", [0.88]), _run(tmp_path / "a", "alexnet_fc", [alex])]
    c = claim_23(runs)
    assert c.verdict == verdict
    assert f"({100 * (alex - 0.88):+.2f} points for AlexNet)" in c.computed


def test_sparser_with_depth_by_hand():
    assert sparser_with_depth([0.1, 0.2, 0.2, 0.5]) == HOLDS
    assert sparser_with_depth([0.3, 0.2, 0.4]) == DIFFERS  # not monotone, but ends sparser
    assert sparser_with_depth([0.5, 0.6, 0.2]) == FAILS


def _blurring_nin_fast(sign: float = 1.0) -> nn.Module:
    """nin_fast whose every conv averages its inputs (weights 1/fan-in, biases 0; batch norm at
    its identity init), so a class map is a blur of the image, strongest where the object is.
    sign=-1 flips the class conv: then the map is weakest there."""
    from ninlab.models import create_model

    model = create_model("nin_fast").eval()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        for conv in convs:
            conv.weight.fill_(1.0 / conv.weight[0].numel())
        convs[-1].weight.mul_(sign)
    return model


def _squares_run(tmp_path, sign: float = 1.0):
    """A run of the blurring nin_fast (mean 0, std 1: inputs are pixel / 255) whose test set is
    nine black 28x28 images, each with a white 6x6 square at rows and columns 8a+1 .. 8a+6 and
    8b+1 .. 8b+6 (a, b in 0..2): under the field centre (3.5 + 8a, 3.5 + 8b) of the 4x4 class
    map's unit (a, b)."""
    images = torch.zeros(9, 28, 28, dtype=torch.uint8)
    for k in range(9):
        top, left = 8 * (k // 3) + 1, 8 * (k % 3) + 1
        images[k, top : top + 6, left : left + 6] = 255
    root = tmp_path / "data" / "fashion-mnist"
    root.mkdir(parents=True)
    for prefix in ("train", "t10k"):
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", torch.zeros(9, dtype=torch.uint8))
    run = tmp_path / "run"
    _, cfg = make_run_dir(run, "nin_fast", data_dir=str(tmp_path / "data"), mean=[0.0], std=[1.0])
    for name in ("best.safetensors", "final.safetensors"):
        save_weights(_blurring_nin_fast(sign), run / name, TrainConfig.from_dict(cfg))
    return {c.number: c for c in check_claims([run], limit=9)}


@pytest.mark.parametrize("sign, verdict, hit", [(1.0, HOLDS, "100.0%"), (-1.0, FAILS, "0.0%")])
def test_claim_25_on_squares_under_known_units(tmp_path, sign, verdict, hit):
    """The map is strongest (sign +1) on the unit over the square, weakest (sign -1) there. Each
    square covers 1 of the 16 unit centres, so 'any unit' is 1/16 = 6.2%."""
    c = _squares_run(tmp_path, sign)[25]
    assert c.verdict == verdict
    assert c.computed.startswith(f"{hit} of 9 test images (any unit: 6.2%)")
    assert "4x4 class map, field 40 px, jump 8 px" in c.computed


def test_claim_24_zeros_by_hand(tmp_path):
    """The first ReLU follows a 5x5 averaging conv (padding 2): an output is non-zero exactly
    where its window touches the square, i.e. within 2 px of it. Rows 0-8, 7-16 and 15-24 (9,
    10 and 10 rows) for the three square rows, the same for columns: (9 + 10 + 10)^2 = 841
    non-zero of 9 x 784 = 7,056 positions, so 1 - 841 / 7056 = 88.1% zeros. Blurring spreads
    the squares, so the deeper layers have fewer zeros: the statement does not hold."""
    c = _squares_run(tmp_path)[24]
    assert "zeros after each ReLU over 9 test images: block1.relu 88.1%" in c.computed
    assert c.verdict == FAILS


def test_training_claims_from_runs(tmp_path, capsys):
    make_idx_dataset(tmp_path / "data" / "fashion-mnist", n_test=12)
    fast = tmp_path / "fast"
    make_run_dir(fast, "nin_fast", data_dir=str(tmp_path / "data"))
    (fast / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "test_acc": 0.5}) + "\n")
    seed = _run(tmp_path / "seed", "nin_seed", SEED_ACCS, **SEED).path
    claims = {c.number: c for c in check_claims([fast, seed], limit=12)}
    assert claims[21].verdict == HOLDS and claims[21].run == str(seed)
    assert claims[22].verdict == NEEDS_RUN  # no nin_d2l run
    assert claims[23].verdict == NEEDS_RUN  # no alexnet_fc run
    assert claims[24].run == str(fast)  # the first run with weights
    assert "zeros after each ReLU over 12 test images" in claims[24].computed
    assert claims[25].run == str(fast) and " of 12 test images" in claims[25].computed

    assert main(["claims", "--run", str(fast), "--run", str(seed), "--limit", "8", "--json"]) == 0
    out = {c["number"]: c for c in json.loads(capsys.readouterr().out)}
    assert out[21]["verdict"] == HOLDS and "over 8 test images" in out[24]["computed"]


def test_claims_bad_run_dir(tmp_path, capsys):
    assert main(["claims", "--run", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "config.json").write_text("{}")
    (damaged / "metrics.jsonl").write_text('{"epoch": 1}\nnot json\n')
    assert main(["claims", "--run", str(damaged)]) == 2
    assert "metrics.jsonl line 2 is not JSON" in capsys.readouterr().err
