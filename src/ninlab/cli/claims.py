"""The ledger: statements about 1x1 convolutions and NiN, each with a verdict.

Claims about arithmetic and shapes are checked by running real modules. Claims about training
(21-25) take their numbers from the run directories given with --run; without them they say
"needs a run", and with a run in another setting than the statement's (a 1-epoch run for claim
21's 10 epochs, say) "not comparable", naming the run that would be. Claims 21, 24 and 25 have
a verdict per run given; claims 22 and 23 compare twin models over seeds: pass runs of nin_fast
and nin_fast2 (claim 22), or nin_fast and fast_fc (claim 23), 2+ seeds each in one setting (they
are picked by model name and setting; the repository's bench/claims_runs.py trains them). Claim 21
without a run of the classic recipe projects its time here from a few timed steps.

Examples:
  ninlab claims
  ninlab claims --run runs/seed
  ninlab claims --run runs/claims/* --run runs/seed --json
"""

from __future__ import annotations

import json

from ninlab.claims import check_claims
from ninlab.claims.verdicts import claims_dicts, claims_table
from ninlab.cli.options import add_data_dir, add_json, add_limit, add_wide


def add_arguments(p) -> None:
    p.add_argument(
        "--run",
        metavar="DIR",
        dest="runs",  # `run` is the verb's function
        action="extend",
        nargs="+",
        default=[],
        help="run directories of `ninlab train` (repeatable; a shell pattern gives several)",
    )
    add_limit(p, default=256)
    add_data_dir(p)
    add_wide(p)
    add_json(p)


def run(args) -> int:
    claims = check_claims(args.runs, limit=args.limit, data_dir=args.data_dir)
    if args.json:
        print(json.dumps(claims_dicts(claims), indent=2))
    else:
        print(claims_table(claims, args.width))
    return 0
