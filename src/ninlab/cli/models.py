"""List the registered models: name, parameters, default input, description.

Examples:
  ninlab models
  ninlab models --num-classes 100
  ninlab models --wide
  ninlab models --json
"""

from __future__ import annotations

import json

from ninlab.cli.options import add_json, add_wide, check_num_classes
from ninlab.models import create_model, list_models, model_description
from ninlab.terminal import table


def add_arguments(p) -> None:
    p.add_argument("--num-classes", type=int, default=10, help="classes to build each model for")
    add_wide(p)
    add_json(p)


def run(args) -> int:
    check_num_classes(args.num_classes)
    rows = []
    for name in list_models():
        model = create_model(name, num_classes=args.num_classes)
        params = sum(p.numel() for p in model.parameters())
        rows.append({"model": name, "parameters": params, "input": list(model.default_input_size),
                     "description": model_description(name)})  # fmt: skip
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    cells = [(r["model"], f"{r['parameters']:,}", "x".join(map(str, r["input"])),
              r["description"]) for r in rows]  # fmt: skip
    header = ("model", "parameters", "input", "description")
    print("\n".join(table(header, cells, right={1}, width=args.width, wrap_column=3)))
    return 0
