"""Analysis: per-layer parameters, MACs and receptive fields; 1x1 comparisons; the claims ledger.

The MAC/FLOP convention is defined once, in `ninlab.analysis.summary`; the with-versus-without
tables of `ninlab compare` are in `ninlab.analysis.compare`.
"""

from ninlab.analysis.claims import Claim, check_claims
from ninlab.analysis.sparsity import relu_sparsity
from ninlab.analysis.summary import (
    Field,
    Layer,
    Summary,
    parse_input_size,
    receptive_field,
    summary,
    working_sizes,
)

__all__ = [
    "Claim",
    "Field",
    "Layer",
    "Summary",
    "check_claims",
    "parse_input_size",
    "receptive_field",
    "relu_sparsity",
    "summary",
    "working_sizes",
]
