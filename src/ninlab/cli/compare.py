"""What 1x1 convolutions save: with-versus-without tables computed from real modules.

Inception (3a) with and without 1x1 reductions, ResNet's basic block versus its bottleneck, FC
heads versus 1x1 class convs + global average pooling, NiN versus AlexNet at 224 px, and a 1x1
conv versus an FC layer on a 32x6x6 input. Weights exclude biases and batch norm.

Examples:
  ninlab compare
  ninlab compare --wide
  ninlab compare --json
"""

from __future__ import annotations

import json

from ninlab.analysis.compare import compare
from ninlab.cli.options import add_wide


def add_arguments(p) -> None:
    add_wide(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of the tables")


def run(args) -> int:
    tables = compare()
    if args.json:
        print(json.dumps([t.to_dict() for t in tables], indent=2))
    else:
        print("\n\n".join(t.text(args.width) for t in tables))
    return 0
