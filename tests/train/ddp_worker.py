"""A training script for the distributed tests, run as one process or under torchrun.

python tests/train/ddp_worker.py equiv DATA_DIR OUT.pt  # weights after 5 steps, no batch norm
torchrun --nproc-per-node 2 tests/train/ddp_worker.py equiv DATA_DIR OUT.pt
torchrun ... tests/train/ddp_worker.py ranks DATA_DIR OUT_DIR  # each rank's evaluation, as JSON
torchrun ... tests/train/ddp_worker.py die DATA_DIR OUT_DIR    # rank 1 kills itself in epoch 2
"""

import json
import os
import signal
import sys
from pathlib import Path

import torch

from ninlab.data import load_dataset
from ninlab.models import create_model
from ninlab.runs import train_run
from ninlab.train import Callback, current_world, fit, prepare_config, process_group, resolve


class Record(Callback):
    """Writes this rank's view of each epoch (its evaluation included) to OUT_DIR/rankR.json."""

    def __init__(self, out: Path):
        self.out = out

    def on_epoch_end(self, state):
        rank = current_world().rank
        (self.out / f"rank{rank}.json").write_text(json.dumps(state.history))


class Die(Callback):
    def on_batch_end(self, state):
        if current_world().rank == 1 and (state.epoch, state.step) == (1, 3):
            os.kill(os.getpid(), signal.SIGKILL)


def main(mode: str, data_dir: str, out: str) -> None:
    base = dict(data_dir=data_dir, threads=1, device="cpu")
    if mode == "equiv":
        # fp32: two halves of a batch sum to the whole to 1e-5 only without bf16 rounding
        cfg = resolve("fast", epochs=1, batch_size=100, limit_train=500, model="lenet_fc",
                      precision="fp32", **base)  # fmt: skip
        data = load_dataset("fashion-mnist", data_dir=data_dir)
        cfg = prepare_config(cfg, data)
        with process_group(torch.device("cpu"), 60):
            torch.manual_seed(0)
            model = create_model("lenet_fc")  # no batch norm
            fit(model, data, cfg, progress=False, log=None)
            if current_world().main:
                torch.save(model.state_dict(), out)
        return
    cfg = resolve("fast", epochs=3 if mode == "die" else 1, batch_size=100, limit_train=600, **base)
    callbacks = [Record(Path(out))] + ([Die()] if mode == "die" else [])
    train_run(cfg, Path(out) / "run", progress=False, callbacks=callbacks)


if __name__ == "__main__":
    main(*sys.argv[1:])
