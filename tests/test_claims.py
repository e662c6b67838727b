"""The claims ledger: every statement has a check; training claims read a run directory."""

import json
import re
from pathlib import Path

from ninlab.analysis.claims import DIFFERS, FAILS, HOLDS, NEEDS_RUN, check_claims
from ninlab.cli import main

from .conftest import make_idx_dataset, make_run_dir

CLAIMS_MD = Path(__file__).resolve().parents[2] / "shared" / "claims.md"


def test_arithmetic_claims():
    claims = {c.number: c for c in check_claims()}
    assert sorted(claims) == list(range(1, 26))
    if CLAIMS_MD.is_file():  # every numbered statement of the shared list has a check
        numbers = {int(n) for n in re.findall(r"^(\d+)\. ", CLAIMS_MD.read_text(), re.M)}
        assert numbers == set(claims)
    verdicts = {n: c.verdict for n, c in claims.items()}
    assert verdicts[8] == FAILS and "81" in claims[8].computed
    assert verdicts[20] == FAILS and "192->160->96" in claims[20].computed
    assert verdicts[18] == DIFFERS and verdicts[11] == DIFFERS
    for n in (1, 2, 3, 4, 5, 6, 7, 9, 10, 12, 13, 14, 15, 16, 17, 19):
        assert verdicts[n] == HOLDS, claims[n]
    for n in range(21, 26):
        assert verdicts[n] == NEEDS_RUN and claims[n].run is None
    assert "387,072 vs 157,184" in claims[14].computed
    assert "102,760,448" in claims[16].computed


def _write_metrics(path, accs):
    lines = [
        json.dumps({"epoch": i + 1, "train_loss": 1.0, "test_loss": 1.0, "test_acc": a})
        for i, a in enumerate(accs)
    ]
    (path / "metrics.jsonl").write_text("\n".join(lines) + "\n")


def test_training_claims_from_runs(tmp_path, capsys):
    make_idx_dataset(tmp_path / "data" / "fashion-mnist", n_test=12)
    fast = tmp_path / "fast"
    make_run_dir(fast, "nin_fast", data_dir=str(tmp_path / "data"))
    _write_metrics(fast, [0.5, 0.6])
    seed = tmp_path / "seed"
    seed.mkdir()
    cfg = {
        "recipe": "seed",
        "model": "nin_seed",
        "dataset": "fashion-mnist",
        "input_size": 224,
        "lr": 0.1,
        "batch_size": 64,
        "epochs": 10,
    }
    (seed / "config.json").write_text(json.dumps(cfg))
    _write_metrics(
        seed, [0.3398, 0.5943, 0.6587, 0.6774, 0.697, 0.7327, 0.7959, 0.8471, 0.8551, 0.8574]
    )
    claims = {c.number: c for c in check_claims([fast, seed], samples=12)}
    assert claims[21].verdict == HOLDS and claims[21].run == str(seed)
    assert "85.74% after 10 epochs (+0.00 points" in claims[21].computed
    assert claims[22].verdict == NEEDS_RUN  # no nin_d2l run
    assert claims[24].verdict in (HOLDS, DIFFERS, FAILS) and claims[24].run == str(fast)
    assert "zeros after each ReLU over 12 test images" in claims[24].computed
    assert claims[25].verdict in (HOLDS, FAILS) and claims[25].run == str(fast)

    assert main(["claims", "--run", str(fast), "--run", str(seed), "--samples", "8", "--json"]) == 0
    out = {c["number"]: c for c in json.loads(capsys.readouterr().out)}
    assert out[21]["verdict"] == HOLDS and out[24]["verdict"] != NEEDS_RUN


def test_seed_run_off_by_points_differs(tmp_path):
    run = tmp_path / "seed"
    make_run_dir(run, "nin_fast", recipe="seed", limit_train=100)
    _write_metrics(run, [50.0, 70.0])  # percent, not fractions
    from ninlab.analysis.claims import claim_21, read_run

    c = claim_21([read_run(run)])
    assert c.verdict == DIFFERS and "70.00%" in c.computed and "-15.74 points" in c.computed
    assert "limit_train=100" in c.computed


def test_claims_bad_run_dir(tmp_path, capsys):
    assert main(["claims", "--run", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
