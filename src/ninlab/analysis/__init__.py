"""Analysis: per-layer parameters, MACs and receptive fields; 1x1 comparisons; sparsity; the
ledger's core and its claims about shapes.

The MAC/FLOP convention is defined once, in `ninlab.analysis.macs`, receptive fields in
`ninlab.analysis.fields`; `ninlab.analysis.propagate` runs a model's graph for the summary; the
with-versus-without tables of `ninlab compare` are in `ninlab.analysis.compare`; claims 1-20 are in
`ninlab.analysis.shape_claims`, their verdict words in `ninlab.analysis.verdicts`.
"""

from ninlab.analysis.fields import Field
from ninlab.analysis.shape_claims import shape_claims
from ninlab.analysis.sparsity import relu_channel_sparsity, relu_sparsity, sparser_with_depth
from ninlab.analysis.summary import (
    Layer,
    Summary,
    input_channels,
    parse_input_size,
    receptive_field,
    summary,
    working_sizes,
)
from ninlab.analysis.verdicts import Claim

__all__ = [
    "Claim",
    "Field",
    "Layer",
    "Summary",
    "input_channels",
    "parse_input_size",
    "receptive_field",
    "relu_channel_sparsity",
    "relu_sparsity",
    "shape_claims",
    "sparser_with_depth",
    "summary",
    "working_sizes",
]
