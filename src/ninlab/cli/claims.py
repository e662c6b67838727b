"""The ledger: statements about 1x1 convolutions and NiN, each with a verdict.

Claims about arithmetic and shapes are checked by running real modules. Claims about training
(21-25) take their numbers from run directories given with --run (repeat it to compare runs,
e.g. a nin_seed run and a nin_d2l run); without one they say "needs a run".

Examples:
  ninlab claims
  ninlab claims --run runs/seed
  ninlab claims --run runs/seed --run runs/d2l --run runs/alexnet --json
"""

from __future__ import annotations

import json

from ninlab.analysis.verdicts import claims_dicts, claims_table
from ninlab.claims import check_claims
from ninlab.cli.options import add_data_dir, add_json, add_limit


def add_arguments(p) -> None:
    p.add_argument(
        "--run",
        metavar="DIR",
        dest="runs",  # `run` is the verb's function
        action="append",
        default=[],
        help="a run directory of `ninlab train` (repeatable)",
    )
    add_limit(p, default=256)
    add_data_dir(p)
    add_json(p)


def run(args) -> int:
    claims = check_claims(args.runs, limit=args.limit, data_dir=args.data_dir)
    print(json.dumps(claims_dicts(claims), indent=2) if args.json else claims_table(claims))
    return 0
