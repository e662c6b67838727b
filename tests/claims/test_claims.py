"""The claims ledger: every statement has a check; training claims read run directories."""

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

from ninlab.claims import ledger as claims
from ninlab.claims.ledger import check_claims, claim_21, claim_22, claim_23, read_run
from ninlab.claims.sparsity import sparser_with_depth
from ninlab.claims.verdicts import (
    DIFFERS,
    FAILS,
    HOLDS,
    NEEDS_RUN,
    NOT_COMPARABLE,
    Claim,
    claims_table,
)
from ninlab.cli import main
from ninlab.data.catalog import FASHION_CLASSES
from ninlab.runs import save_weights
from ninlab.train import TrainConfig, resolve

from ..conftest import make_idx_dataset, make_run_dir, write_idx

CLAIMS_MD = Path(__file__).resolve().parents[2] / "docs" / "claims.md"


@pytest.mark.slow
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


def _run(path, model, accs, times=None, **config):
    """A run directory with a config and a metrics.jsonl of these test accuracies (fractions)
    and, when given, training seconds per epoch; its config has as many epochs as accuracies and
    the classes a run fills in."""
    path.mkdir(parents=True)
    cfg = {"model": model, "dataset": "fashion-mnist", "epochs": len(accs),
           "classes": list(FASHION_CLASSES), **config}  # fmt: skip
    (path / "config.json").write_text(json.dumps(cfg))
    rows = [{"epoch": i + 1, "test_acc": a} for i, a in enumerate(accs)]
    for row, t in zip(rows, times or [], strict=False):
        row["train_time"] = t
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return read_run(path)


SEED = dict(recipe="seed", input_size=224, lr=0.1, batch_size=64, epochs=10)
SEED_ACCS = [0.3398, 0.5943, 0.6587, 0.6774, 0.697, 0.7327, 0.7959, 0.8471, 0.8551, 0.8574]
SMALL = dict(limit_train=6000, input_size=28)  # the twins' setting in these tests


def test_claim_21_holds_on_the_published_curve_and_names_what_differs(tmp_path):
    (c,) = claim_21([_run(tmp_path / "seed", "nin_seed", SEED_ACCS, **SEED)])
    assert c.verdict == HOLDS and c.run == str(tmp_path / "seed")
    assert "85.74% after 10 epochs (+0.00 points" in c.computed
    short = _run(tmp_path / "short", "nin_fast", [0.5, 0.7], recipe="seed", limit_train=100)
    (c,) = claim_21([short])
    assert c.verdict == NOT_COMPARABLE and "70.00% after 2 epoch(s)" in c.computed
    assert "points" not in c.computed  # no gap to a number measured in another setting
    assert "limit_train 100 (claim: all)" in c.computed and "model nin_fast (claim: nin_seed)" in (
        c.computed
    )
    assert "a comparable run: `ninlab train --recipe seed` (10 epochs of all 60,000" in c.computed


def test_claim_21_is_not_comparable_on_a_quick_seed_run_and_judges_each_run(tmp_path):
    """The issue's case: the seed recipe on 256 images for 1 epoch reached 10%; beside it a
    complete run, and one stopped after 3 of its 10 epochs. A line per run, in their order."""
    quick = _run(tmp_path / "quick", "nin_seed", [0.1], **dict(SEED, epochs=1, limit_train=256))
    full = _run(tmp_path / "full", "nin_seed", SEED_ACCS, **SEED)
    stopped = _run(tmp_path / "stopped", "nin_seed", SEED_ACCS[:3], **SEED)
    stopped.config = replace(stopped.config, epochs=10)
    claims = claim_21([quick, full, stopped])
    assert [c.run for c in claims] == [str(tmp_path / d) for d in ("quick", "full", "stopped")]
    assert [c.verdict for c in claims] == [NOT_COMPARABLE, HOLDS, NOT_COMPARABLE]
    assert claims[0].computed.startswith("10.00% after 1 epoch(s); not comparable: the run ")
    assert "epochs 1 (claim: 10), limit_train 256 (claim: all)" in claims[0].computed
    assert "stopped after 3 of 10 epochs" in claims[2].computed


def test_claim_21_without_a_run_projects_the_time_here(monkeypatch):
    """At 20 images/s, 10 epochs of 60,000 images take 600,000 / 20 = 30,000 s = 8.3 h."""
    timed = replace(resolve("seed"), precision="bf16", input_size=224)
    monkeypatch.setattr(claims, "_seed_recipe_speed", lambda: (20.0, timed))
    (c,) = claim_21([])
    assert c.verdict == NEEDS_RUN and c.run is None
    assert "8.3 h of training for 10 epochs of 60,000 images (20.0 images/s" in c.computed
    assert "the fastest of 3 timed steps of nin_seed at 224 px, batch 64, bf16" in c.computed
    assert "`ninlab train --recipe seed`" in c.computed and "--device cuda" in c.computed


@pytest.mark.slow
def test_seed_recipe_speed_is_measured_and_keeps_the_random_state():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    speed, cfg = claims._seed_recipe_speed.__wrapped__(batch_size=4)  # a quick one, not cached
    assert torch.equal(torch.get_rng_state(), before)
    assert speed > 0 and (cfg.model, cfg.input_size, cfg.batch_size) == ("nin_seed", 224, 4)
    assert cfg.precision in ("bf16", "fp32")  # what "auto" stands for on this CPU


def _seeds(root, model, finals, seconds, seeds=(0, 1, 2), **config):
    """One run per seed: 2 epochs, the second's test accuracy `finals[i]` (percent) and training
    time `seconds[i]` (the fastest: the first epoch takes twice as long)."""
    return [
        _run(root / f"{model}-{s}", model, [0.5, f / 100], [2 * t, t], seed=s, **config)
        for s, f, t in zip(seeds, finals, seconds, strict=True)
    ]


ONE_BETTER = ([88, 89, 90], [85, 86, 87])  # means 89 and 86, ranges 2: +3 points, beyond 2
TOO_CLOSE = ([88, 89, 90], [87, 88, 89])  # +1 point, within the spread of 2
ONE_FASTER = ([10, 11, 12], [15, 16, 17])  # means 11 and 16 s, ranges 2: 5 s saved


@pytest.mark.parametrize(
    "accs, times, verdict, words",
    [
        (ONE_BETTER, ONE_FASTER, HOLDS, ("one better", "one faster")),
        (TOO_CLOSE, ONE_FASTER, DIFFERS, ("too close to call", "one faster")),
        (ONE_BETTER, ONE_FASTER[::-1], DIFFERS, ("one better", "two faster")),
        (ONE_BETTER[::-1], ([10, 11, 12], [11, 12, 13]), FAILS, ("two better", "too close")),
    ],
)
def test_claim_22_compares_the_twins_over_seeds(tmp_path, accs, times, verdict, words):
    runs = _seeds(tmp_path, "nin_fast", accs[0], times[0], **SMALL)
    runs += _seeds(tmp_path, "nin_fast2", accs[1], times[1], **SMALL)
    c = claim_22(runs)
    assert c.verdict == verdict
    means = [sum(a) / 3 for a in accs]
    spread = max(max(a) - min(a) for a in accs)
    assert (
        f"final test accuracy {means[0]:.2f}% ({min(accs[0]):.2f}-{max(accs[0]):.2f}) vs "
        f"{means[1]:.2f}% ({min(accs[1]):.2f}-{max(accs[1]):.2f}), {means[0] - means[1]:+.2f} "
        f"points for one 1x1 against a seed spread of {spread:.2f}: {words[0]}"
    ) in c.computed
    saved = sum(times[0]) / 3 - sum(times[1]) / 3
    assert f"{saved:+.2f} s for one 1x1 against a seed spread of 2.00 s: {words[1]}" in c.computed
    setting = "fashion-mnist, the first 6,000 training images at 28 px, 2 epochs of recipe fast"
    assert f"nin_fast (one 1x1) vs nin_fast2 (two) on {setting}, 3 seeds each (0, 1, 2): " in (
        c.computed
    )


def test_claim_22_picks_the_twins_of_one_setting_and_needs_two_seeds(tmp_path):
    twins = _seeds(tmp_path, "nin_fast", ONE_BETTER[0], ONE_FASTER[0], **SMALL)
    twins += _seeds(tmp_path, "nin_fast2", ONE_BETTER[1], ONE_FASTER[1], **SMALL)
    others = [
        _run(tmp_path / "all-data", "nin_fast", [0.5, 0.99], [1, 1]),  # another setting
        _run(tmp_path / "stopped", "nin_fast2", [0.1], [1], epochs=2, **SMALL),  # stopped
        _run(tmp_path / "lr", "nin_fast", [0.5, 0.99], [1, 1], lr=0.1, **SMALL),  # another lr
    ]
    c = claim_22(others[:1] + twins + others[1:])
    assert c.verdict == HOLDS
    assert c.run == ", ".join(str(r.path) for r in twins)
    c = claim_22([twins[0], *twins[3:]])  # one seed of nin_fast
    assert c.verdict == NEEDS_RUN and "seeds 0 vs seeds 0, 1, 2" in c.computed
    assert c.computed.endswith("needs 2+ seeds of each twin for a seed spread")
    assert claim_22(twins[:3] + others).verdict == NEEDS_RUN  # no nin_fast2 run of the setting


def test_claim_22_takes_the_classic_twins_too(tmp_path):
    runs = _seeds(tmp_path, "nin_seed", ONE_BETTER[0], [1, 1, 1], **dict(SEED, epochs=2))
    runs += _seeds(tmp_path, "nin_d2l", ONE_BETTER[1], [1, 1, 1], **dict(SEED, epochs=2))
    c = claim_22(runs)  # better, but not faster
    assert c.verdict == DIFFERS and "nin_seed (one 1x1) vs nin_d2l (two)" in c.computed
    assert "all training images at 224 px, 2 epochs of recipe seed" in c.computed


@pytest.mark.parametrize(
    "fc, verdict, reading",
    [
        ([91, 91.5, 92], HOLDS, "the GAP head a little lower"),  # +2.5 points, spread 2
        ([94, 95, 96], DIFFERS, "the GAP head lower by more than 3 points"),  # +6
        ([89, 90, 91], DIFFERS, "too close to call"),  # +1
        ([85, 86, 87], FAILS, "the GAP head higher"),  # -3
    ],
)
def test_claim_23_gap_head_a_little_below_fc_head(tmp_path, fc, verdict, reading):
    nin = [88, 89, 90]  # mean 89, range 2
    runs = _seeds(tmp_path, "nin_fast", nin, [1, 1, 1])
    runs += _seeds(tmp_path, "fast_fc", fc, [1, 1, 1])
    runs += _seeds(tmp_path / "mnist", "fast_fc", [99, 99, 99], [1, 1, 1], dataset="mnist")
    c = claim_23(runs)
    assert c.verdict == verdict
    gap = sum(fc) / 3 - 89
    assert "nin_fast (GAP head) vs fast_fc (FC head) on fashion-mnist, all training images" in (
        c.computed
    )
    assert f"{gap:+.2f} points for the FC head against a seed spread of 2.00: {reading}" in (
        c.computed
    )
    assert "mnist/" not in c.run


def test_claim_23_is_not_comparable_on_part_of_the_data(tmp_path):
    runs = _seeds(tmp_path, "nin_fast", [88, 89, 90], [1, 1, 1], **SMALL)
    runs += _seeds(tmp_path, "fast_fc", [91, 91.5, 92], [1, 1, 1], **SMALL)
    c = claim_23(runs)
    assert c.verdict == NOT_COMPARABLE and c.run.count(str(tmp_path)) == 6
    assert "only on fashion-mnist, the first 6,000 training images at 28 px" in c.computed
    assert "--model fast_fc, without --limit-train or --limit-test" in c.computed


@pytest.mark.slow
def test_claims_cli_takes_a_shell_pattern_of_twin_runs(tmp_path, capsys):
    _seeds(tmp_path / "claims", "nin_fast", [88, 89, 90], [1, 1, 1])
    _seeds(tmp_path / "claims", "fast_fc", [91, 91.5, 92], [1, 1, 1])
    dirs = sorted(str(p) for p in (tmp_path / "claims").iterdir())  # what claims/* expands to
    assert main(["claims", "--run", *dirs, "--json"]) == 0
    out = {c["number"]: c for c in json.loads(capsys.readouterr().out)}
    assert out[23]["verdict"] == HOLDS and out[22]["verdict"] == NEEDS_RUN
    assert out[23]["run"].count(str(tmp_path / "claims")) == 6


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
    nine black 28x28 images, each with a white 20x20 square at rows and columns 4..23: in a
    scene, the blurred map is largest (sign +1) or smallest (sign -1) over the square, whose
    tight box holds 2 or 3 unit centres (every 8 px) a side."""
    images = torch.zeros(9, 28, 28, dtype=torch.uint8)
    images[:, 4:24, 4:24] = 255
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


@pytest.mark.slow
@pytest.mark.parametrize("sign, verdict, hit", [(1.0, HOLDS, "100.0%"), (-1.0, FAILS, "0.0%")])
def test_claim_25_on_scenes_with_squares_under_known_units(tmp_path, sign, verdict, hit):
    """One square per 112x112 scene; the 14x14 map's 196 unit centres, 4 to 9 of them in the
    square's box: 'any unit' is 2.0-4.6% per scene."""
    c = _squares_run(tmp_path, sign)[25]
    assert c.verdict == verdict
    assert c.computed.startswith(f"{hit} of 9 scenes (any unit: ")
    chance = float(c.computed.split("any unit: ")[1].split("%")[0])
    assert 2.0 <= chance <= 4.6
    assert "112x112 black scenes" in c.computed and "(14x14, field 40 px, jump 8 px)" in c.computed


@pytest.mark.slow
def test_claim_24_zeros_by_hand(tmp_path):
    """The first ReLU follows a 5x5 averaging conv (padding 2): an output is non-zero exactly
    where its window touches the square, i.e. within 2 px of it: rows and columns 2-25 of the
    square at 4-23, 24 x 24 = 576 non-zero of 784 positions, so 1 - 576 / 784 = 26.5% zeros.
    Blurring spreads the square, so the deeper layers have fewer zeros: the statement does not
    hold."""
    c = _squares_run(tmp_path)[24]
    assert "zeros after each ReLU over 9 test images: block1.relu 26.5%" in c.computed
    assert c.verdict == FAILS


@pytest.mark.slow
def test_training_claims_from_runs(tmp_path, capsys):
    make_idx_dataset(tmp_path / "data" / "fashion-mnist", n_test=12)
    fast = tmp_path / "fast"
    make_run_dir(fast, "nin_fast", data_dir=str(tmp_path / "data"))
    (fast / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "test_acc": 0.5}) + "\n")
    seed = _run(tmp_path / "seed", "nin_seed", SEED_ACCS, **SEED).path
    claims = {}
    for c in check_claims([fast, seed], limit=12):
        claims.setdefault(c.number, []).append(c)
    assert [(c.verdict, c.run) for c in claims[21]] == [(HOLDS, str(seed))]
    assert [c.verdict for c in claims[22] + claims[23]] == [NEEDS_RUN, NEEDS_RUN]  # no twins
    # 24 and 25: a line per run, the run without weights said so
    assert [c.run for c in claims[24]] == [str(fast), str(seed)] == [c.run for c in claims[25]]
    assert "zeros after each ReLU over 12 test images" in claims[24][0].computed
    assert " of 12 scenes" in claims[25][0].computed
    assert claims[24][1].verdict == claims[25][1].verdict == NEEDS_RUN
    assert "this run has no weights" in claims[25][1].computed

    assert main(["claims", "--run", str(fast), "--run", str(seed), "--limit", "8", "--json"]) == 0
    out = {(c["number"], c["run"]): c for c in json.loads(capsys.readouterr().out)}
    assert out[21, str(seed)]["verdict"] == HOLDS
    assert "over 8 test images" in out[24, str(fast)]["computed"]


@pytest.mark.slow
def test_claims_24_and_25_judge_every_run_given(tmp_path, capsys, monkeypatch):
    """`--run A --run B`: a verdict line per run for 24 and 25, and 25 says why a net without a
    class map is not comparable."""
    timed = replace(resolve("seed"), precision="bf16")  # claim 21's projection, not measured
    monkeypatch.setattr(claims, "_seed_recipe_speed", lambda: (20.0, timed))
    make_idx_dataset(tmp_path / "data" / "fashion-mnist", n_test=8)
    data = dict(data_dir=str(tmp_path / "data"))
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "lenet"
    make_run_dir(a, "nin_fast", **data)
    make_run_dir(b, "nin_fast", seed=1, **data)
    make_run_dir(c, "lenet_fc", **data)
    assert main(["claims", "--run", str(a), "--run", str(b), str(c), "--limit", "8", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for n in (24, 25):
        assert [d["run"] for d in out if d["number"] == n] == [str(a), str(b), str(c)]
    (lenet,) = [d for d in out if d["number"] == 25 and d["run"] == str(c)]
    assert lenet["verdict"] == NOT_COMPARABLE
    assert lenet["computed"].startswith("not comparable: lenet_fc on fashion-mnist; needs a NiN")
    words = " ".join(claims_table([Claim(**d) for d in out]).split())  # the summary, wrapped
    assert "1 not comparable, 3 needs a run (29 verdicts on 25 claims: one per run given)" in words


def test_claims_bad_run_dir(tmp_path, capsys):
    assert main(["claims", "--run", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "config.json").write_text("{}")
    (damaged / "metrics.jsonl").write_text('{"epoch": 1}\nnot json\n')
    assert main(["claims", "--run", str(damaged)]) == 2
    assert "metrics.jsonl line 2 is not JSON" in capsys.readouterr().err
