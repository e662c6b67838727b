"""Per-layer table of any model: output shape, parameters, MACs, receptive field, memory.

MODEL is a name from `ninlab models`, `package.module:callable` or `path/to/file.py:callable`
(called with --kwargs, or used as is if it is a module). Importing a module or a file runs its
code. MACs are counted as torch's FlopCounterMode counts them (1 MAC = 1 multiply-add; FLOPs =
2 x MACs); an operation whose cost nobody knows is named, and the total is then a lower bound.
The receptive field columns give, in input pixels, the field size of one output unit, the jump
between neighbouring units and the first pixel of unit 0's field (negative in padding); a row
with no single window says why in its note. To fit 80 columns the table leaves out memory,
start, jump and type as needed and says which; --wide shows them all.

Examples:
  ninlab summary nin_d2l
  ninlab summary nin_cifar --input 3x64x64 --wide
  ninlab summary examples/refnets.py:resnet50 --input 3x224x224
  ninlab summary examples/refnets.py:self_attention --kwargs '{"channels": 64}' --input 64x14x14
  ninlab summary my_pkg.nets:vgg16 --input 224 --json
"""

from __future__ import annotations

import json

from ninlab.analysis import input_channels, parse_input_size, summary
from ninlab.cli.options import add_json, add_model_spec, add_wide, check_num_classes
from ninlab.errors import NinlabError
from ninlab.models import load_model


def add_arguments(p) -> None:
    add_model_spec(p)
    p.add_argument(
        "--input",
        metavar="CxHxW",
        default=None,
        help="input size: CxHxW, HxW or one side (default: the model's own, e.g. 1x224x224)",
    )
    p.add_argument("--num-classes", type=int, default=None, help="classes of a registry model "
                   "(default 10)")  # fmt: skip
    add_wide(p)
    add_json(p)


def run(args) -> int:
    check_num_classes(args.num_classes)
    model = load_model(args.model, args.kwargs, args.num_classes)
    size = None
    if args.input is not None:
        size = parse_input_size(args.input, input_channels(model))
    elif not hasattr(model, "default_input_size"):
        raise NinlabError(f"{args.model} has no default input size; give one with --input CxHxW "
                          "(e.g. --input 3x224x224).")  # fmt: skip
    s = summary(model, size)
    print(json.dumps(s.to_dict(), indent=2) if args.json else s.table(args.width))
    return 0
