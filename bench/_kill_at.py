"""`ninlab train ARGS` that kills itself the Nth time it reaches POINT (bench/faults.py's kills).

    python bench/_kill_at.py POINT:N ARGS...     # ARGS as after `ninlab train`

POINT is one of
  step         a training step, after its backward pass and before its optimizer step
  eval         the start of an epoch's evaluation
  write:NAME   a write of the file NAME: its new content on disk, not yet renamed over NAME
The kill is SIGKILL sent to itself: no handler and no cleanup run, as with `kill -9`. The run is
the one `ninlab train ARGS` makes (its config from ninlab.cli.train), with a training callback
(Callback.on_backward_end, on_eval_start) and a write hook (ninlab.files.on_written) that count
the visits; neither calls anything else, so the run is the same up to the kill.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from ninlab import files
from ninlab.cli import build_parser
from ninlab.cli.train import config
from ninlab.runs import train_run
from ninlab.train import Callback, TrainState


class KillAt(Callback):
    """SIGKILL this process at the Nth visit of a point, for a moment "POINT:N"."""

    def __init__(self, moment: str):
        self.point, _, nth = moment.rpartition(":")
        self.left = int(nth)

    def reached(self, point: str) -> None:
        if point == self.point:
            self.left -= 1
            if self.left == 0:
                os.kill(os.getpid(), signal.SIGKILL)

    def on_backward_end(self, state: TrainState) -> None:
        self.reached("step")

    def on_eval_start(self, state: TrainState) -> None:
        self.reached("eval")

    def written(self, path: Path) -> None:
        self.reached(f"write:{path.name}")


def main(moment: str, argv: list[str]) -> None:
    kill = KillAt(moment)
    files.on_written.append(kill.written)
    args = build_parser().parse_args(["train", *argv])
    train_run(config(args), args.out, progress=not args.no_progress, callbacks=[kill])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
