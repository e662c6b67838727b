"""Per-layer table of a model: output shape, parameters, MACs, receptive field, memory.

1 MAC = 1 multiply-add (conv and linear weights only); FLOPs = 2 x MACs. The receptive field
columns give, in input pixels, the field size of one output unit, the jump between neighbouring
units and the first pixel of unit 0's field (negative where it covers padding).

Examples:
  ninlab summary nin_d2l
  ninlab summary nin_cifar --input 3x64x64
  ninlab summary nin_seed --input 96 --json
"""

from __future__ import annotations

import json

from ninlab.analysis import parse_input_size, summary
from ninlab.models import create_model, list_models


def add_arguments(p) -> None:
    p.add_argument("model", help=f"one of {', '.join(list_models())}")
    p.add_argument(
        "--input",
        metavar="CxHxW",
        default=None,
        help="input size: CxHxW, HxW or one side (default: the model's own, e.g. 1x224x224)",
    )
    p.add_argument("--num-classes", type=int, default=10, help="classes to build the model for")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")


def run(args) -> int:
    model = create_model(args.model, num_classes=args.num_classes)
    size = None
    if args.input is not None:
        size = parse_input_size(args.input, model.default_input_size[0])
    s = summary(model, size)
    print(json.dumps(s.to_dict(), indent=2) if args.json else s.table())
    return 0
