"""The schedule a small training set gets (ninlab.train.schedule), on numbers a person can check,
and the issue's folder of 3 x 60 shapes trained with no options."""

import json
import math
import sys
from pathlib import Path

import pytest

from ninlab.cli import main
from ninlab.data import load_dataset
from ninlab.runs import read_config, resume_run, train_run
from ninlab.train import (
    Callback,
    Interrupted,
    adapt_schedule,
    build_model,
    fit,
    free_fields,
    prepare_config,
    resolve,
)
from ninlab.train.schedule import MIN_BATCH, MIN_STEPS

sys.path.insert(0, str(Path(__file__).parents[2] / "bench"))
import wild_folders as bench  # noqa: E402  (bench/wild_folders.py)


def test_162_images_get_batch_16_and_55_epochs():
    # 162 x 10 / 600 = 2.7, below MIN_BATCH 16; ceil(162 / 16) = 11 steps an epoch, and
    # ceil(600 / 11) = 55 epochs make 605 steps
    cfg, line = adapt_schedule(resolve(), 162)
    assert (cfg.batch_size, cfg.epochs) == (16, 55)
    assert line == ("schedule: 162 training images, so batch 16 (not 128) and 55 epochs (not 10): "
                    "605 steps (at least 600 wanted)")  # fmt: skip


def test_500_images_get_batch_16_and_19_epochs():
    # 500 x 10 / 600 = 8.3, below 16; ceil(500 / 16) = 32 steps, 19 x 32 = 608
    cfg, _ = adapt_schedule(resolve(), 500)
    assert (cfg.batch_size, cfg.epochs) == (16, 19)


def test_2000_images_keep_10_epochs_of_a_smaller_batch():
    # 2,000 x 10 / 600 = 33.3: batch 32, 63 steps an epoch, 630 in 10 epochs
    cfg, line = adapt_schedule(resolve(limit_train=2000), 2000)
    assert (cfg.batch_size, cfg.epochs) == (32, 10)
    assert line.endswith("so batch 32 (not 128) and 10 epochs: 630 steps (at least 600 wanted)")


def test_the_full_fashion_mnist_keeps_the_recipe():
    cfg = resolve()
    assert adapt_schedule(cfg, 60_000) == (cfg, None)  # 469 x 10 = 4,690 steps, batch 128
    assert adapt_schedule(cfg, 10_000) == (cfg, None)  # 79 x 10 = 790 steps already


def test_what_the_user_sets_is_kept():
    assert free_fields("fast", []) == ("batch_size", "epochs")
    assert free_fields("fast", ["batch_size", "lr"]) == ("epochs",)
    cfg, _ = adapt_schedule(resolve(batch_size=32), 162, free_fields("fast", ["batch_size"]))
    assert (cfg.batch_size, cfg.epochs) == (32, 100)  # ceil(162 / 32) = 6 steps, 100 x 6 = 600
    cfg, _ = adapt_schedule(resolve(epochs=3), 162, free_fields("fast", ["epochs"]))
    assert (cfg.batch_size, cfg.epochs) == (16, 3)  # fewer steps than wanted: the user said so
    cfg = resolve(batch_size=16, epochs=3)
    assert adapt_schedule(cfg, 162, free_fields("fast", ["batch_size", "epochs"])) == (cfg, None)


def test_a_recipe_file_fixes_what_it_sets():
    assert free_fields("seed", []) == ()  # batch 64 x 10 epochs, as published
    assert free_fields("d2l", []) == ()
    assert free_fields("long", []) == ("batch_size",)  # its 32 epochs
    cfg, _ = adapt_schedule(resolve("long"), 162, free_fields("long", []))
    assert (cfg.batch_size, cfg.epochs) == (16, 32)


@pytest.mark.parametrize("n", [1, 10, 135, 162, 500, 1350, 2000, 5000, 7000, 10_000, 60_000])
@pytest.mark.parametrize("world", [1, 2, 4, 16])  # processes; 128 must split evenly
def test_every_size_gets_enough_steps(n, world):
    cfg, _ = adapt_schedule(resolve(), n, world_size=world)
    assert cfg.epochs * math.ceil(n / cfg.batch_size) >= MIN_STEPS
    assert cfg.batch_size % world == 0 and cfg.epochs >= 10
    assert MIN_BATCH <= cfg.batch_size <= 128


@pytest.mark.slow
def test_the_cli_records_what_it_chose(tmp_path, capsys):
    """Only what the user left unset changes, and config.json holds what trained."""
    folder = bench.write_shapes(tmp_path / "shapes", 8, seed=0)  # 3 x 8: 21 train, 3 test
    out = tmp_path / "run"
    args = ["train", "--data", str(folder), "--epochs", "1", "--no-progress", "--out", str(out)]
    assert main(args) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "schedule: 21 training images, so batch 16 (not 128) and 1 epoch: 2 steps" in printed
    config = json.loads((out / "config.json").read_text())
    assert (config["batch_size"], config["epochs"]) == (16, 1)
    assert list(config)[-1] == "tta_shift"  # no new key: TrainConfig's last field is last
    out = tmp_path / "given"
    assert main([*args[:-1], str(out), "--batch-size", "4"]) == 0
    assert "schedule:" not in capsys.readouterr().out
    config = json.loads((out / "config.json").read_text())
    assert (config["batch_size"], config["epochs"]) == (4, 1)


@pytest.mark.slow
def test_three_shapes_at_60_each_train_with_no_options(tmp_path):
    """The issue's folder, trained as `ninlab train --data DIR` trains it (train_run, less the
    run directory's files): 33.33% with the recipe's 128 x 10, >= 95% with the schedule."""
    folder = bench.write_shapes(tmp_path / "shapes", 60, seed=0)
    cfg = resolve(dataset=str(folder))
    data = load_dataset(cfg.dataset, folder=cfg.folder_options(), progress=False)
    cfg, line = adapt_schedule(prepare_config(cfg, data), len(data.train_images))
    assert line.startswith("schedule: 162 training images, so batch 16 (not 128) and 55 epochs")
    history = fit(build_model(cfg), data, cfg, progress=False, log=None)
    assert history[-1]["test_acc"] >= 0.95


class _StopAfterFirstStep(Callback):
    def on_batch_end(self, state):
        state.request_stop("test stop")


@pytest.mark.slow
def test_a_resumed_run_keeps_the_schedule_it_recorded(tmp_path):
    folder = bench.write_shapes(tmp_path / "shapes", 8, seed=0)  # 21 training images
    cfg, out = resolve(dataset=str(folder), epochs=2), tmp_path / "run"
    with pytest.raises(Interrupted):
        train_run(cfg, out, progress=False, log=None, adapt=("batch_size",),
                  callbacks=[_StopAfterFirstStep()])  # fmt: skip
    assert read_config(out).batch_size == 16
    history, _ = resume_run(out, progress=False, log=None)
    assert len(history) == 2 and read_config(out).batch_size == 16
