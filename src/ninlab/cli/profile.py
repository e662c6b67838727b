"""Where a training step's time goes: per layer, forward and backward ms, FLOPs, bytes, FLOP per
byte, GFLOP/s and % of this machine's peak, and a roofline plot.

MODEL|RUN is a model as `ninlab summary` takes it (a name from `ninlab models`,
package.module:callable or path/to/file.py:callable; importing a module or file runs its code),
or a run directory, whose model, input size, batch, precision, memory layout and optimizer are
used. Steps run on the CPU on random inputs, in the precision training uses there (auto: bf16
where the CPU has bf16 units, else fp32); torch.profiler times each leaf module's forward and
backward, and a whole step is timed without it: the layers' times should add up to it within
15%. FLOPs are the summary's x 3 (forward and backward) x batch; bytes a lower bound. The peak is
this machine's matmul rate in that precision and the memory roof its copy rate, both measured
first. The plot goes to RUN_DIR/profile.png, or profile-MODEL.png here, or --out.

Examples:
  ninlab profile nin_fast
  ninlab profile nin_fast --batch-size 256 --precision fp32
  ninlab profile runs/nin_fast-fashion-mnist-20261123-101500
  ninlab profile examples/refnets.py:resnet50 --input 3x224x224 --batch-size 8 --wide
  ninlab profile nin_cifar --json > profile.json
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from ninlab.analysis import input_channels, parse_input_size
from ninlab.cli.options import add_json, add_out, add_wide, at_least, check_num_classes, json_object
from ninlab.errors import NinlabError
from ninlab.files import writable_file, wrote
from ninlab.models import load_model
from ninlab.runs import load_run
from ninlab.train import TrainConfig
from ninlab.train.profile import profile
from ninlab.viz.roofline import plot_roofline


def add_arguments(p) -> None:
    p.add_argument("target", metavar="MODEL|RUN",
                   help="a model as `ninlab summary` takes it, or a run directory")  # fmt: skip
    p.add_argument("--kwargs", type=json_object, default=None, metavar="JSON",
                   help="keyword arguments for a model's callable")  # fmt: skip
    p.add_argument("--num-classes", type=int, default=None, help="classes of a registry model "
                   "(default 10)")  # fmt: skip
    p.add_argument("--input", metavar="CxHxW", default=None,
                   help="input size (default: the run's, or the model's own)")  # fmt: skip
    p.add_argument("--batch-size", type=at_least(1), default=None, metavar="N",
                   help="images per step (default: the run's, else 128)")  # fmt: skip
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default=None,
                   help="autocast of the step (default: the run's, else auto)")  # fmt: skip
    p.add_argument("--steps", type=at_least(1), default=5, metavar="N",
                   help="steps the profiler records (default 5; 2N run without it)")  # fmt: skip
    add_wide(p)
    add_json(p)
    add_out(p, "the plot (default: RUN_DIR/profile.png, or ./profile-MODEL.png)")


def run(args) -> int:
    check_num_classes(args.num_classes)
    if Path(args.target).is_dir() or ("/" in args.target and ":" not in args.target):
        r = load_run(args.target)
        model, cfg, name = r.model, r.config, r.config.model
        size = r.input_shape
        default = r.path / "profile.png"
    else:
        model = load_model(args.target, args.kwargs, args.num_classes)
        cfg, name, size = TrainConfig(), args.target, None
        default = Path(f"profile-{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png")
    if args.input is not None:
        size = parse_input_size(args.input, input_channels(model))
    elif size is None and not hasattr(model, "default_input_size"):
        raise NinlabError(f"{name} has no default input size; give one with --input CxHxW "
                          "(e.g. --input 3x224x224).")  # fmt: skip
    out = writable_file(args.out or default)
    existed = out.exists()
    batch = args.batch_size or cfg.batch_size
    p = profile(model, size, batch, args.precision or cfg.precision, cfg.channels_last, cfg,
                args.steps)  # fmt: skip
    plot_roofline(p, out)
    if args.json:
        print(json.dumps({**p.to_dict(), "plot": str(out)}, indent=2))
    else:
        print(p.table(args.width))
    print(wrote(out, existed), file=sys.stderr if args.json else sys.stdout)
    return 0
