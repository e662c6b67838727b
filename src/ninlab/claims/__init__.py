"""The claims ledger: every statement of docs/claims.md, checked and judged. Analysis returns
numbers; this package judges them.

verdicts.py  a Claim, its verdict words, and how the ledger prints
shapes.py    claims 1-20: arithmetic, parameter counts and architecture, on real modules
sparsity.py  claim 24 (sparser with depth) on a run's model, trained and at initialisation
ledger.py    claims 21-25 from run directories, and check_claims: the whole ledger
"""

from ninlab.claims.ledger import check_claims
from ninlab.claims.shapes import shape_claims
from ninlab.claims.sparsity import SparsityReport, run_sparsity, sparser_with_depth
from ninlab.claims.verdicts import Claim, claims_dicts, claims_table

__all__ = [
    "Claim",
    "SparsityReport",
    "check_claims",
    "claims_dicts",
    "claims_table",
    "run_sparsity",
    "shape_claims",
    "sparser_with_depth",
]
