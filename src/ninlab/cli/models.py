"""List the registered models: name, parameters, default input, description.

Examples:
  ninlab models
  ninlab models --num-classes 100
"""

from __future__ import annotations

from ninlab.cli.options import check_num_classes
from ninlab.models import create_model, list_models, model_description


def add_arguments(p) -> None:
    p.add_argument("--num-classes", type=int, default=10, help="classes to build each model for")


def run(args) -> int:
    check_num_classes(args.num_classes)
    rows = []
    for name in list_models():
        model = create_model(name, num_classes=args.num_classes)
        params = sum(p.numel() for p in model.parameters())
        size = "x".join(map(str, model.default_input_size))
        rows.append((name, f"{params:,}", size, model_description(name)))
    header = ("model", "parameters", "input", "description")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    for r in [header, *rows]:
        print(f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}")
    return 0
