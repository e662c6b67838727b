"""MACs of any operation, counted as torch's FlopCounterMode counts them, and what is truly missing.

Convention (the one place ninlab defines it):
  1 MAC = one multiply-add of a weight (or of two activations, as in attention) with an input
  value. FLOPs = 2 x MACs. Counts are per sample (batch 1).
  Conv2d: MACs = C_out x H_out x W_out x (C_in / groups) x kH x kW.
  Linear: MACs = out_features x in_features (x any leading non-batch dims).
  matmul, bmm, baddbmm, transposed and functional convolutions, scaled dot-product attention:
  FlopCounterMode's formula / 2 (its `flop_registry`; the CPU kernel of attention is counted with
  the formula of the CUDA one, which FlopCounterMode does not map).
  Bias adds, normalisation, activations, softmax, pooling, concatenation, residual additions,
  reshapes and indexing do no MACs: they are known to cost 0.

An operation is run under FlopCounterMode together with a log of the aten ops it dispatches. Its
MACs are unknown (and a summary's total a lower bound) only when one of those ops is neither in
FlopCounterMode's registry nor a zero-cost op; `Count.missing` names them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode, flop_registry

aten = torch.ops.aten

# ops without a registry entry that multiply-add like one that has one (same leading arguments)
_SAME_FORMULA = {
    aten._scaled_dot_product_flash_attention_for_cpu: aten._scaled_dot_product_flash_attention,
}


def _as_is(formula):
    """A registry formula (already taking tensors) that FlopCounterMode must not wrap again."""

    def count(*args, **kwargs):
        return formula(*args, **kwargs)

    count._get_raw = True
    return count


CUSTOM = {
    op: _as_is(flop_registry[ref]) for op, ref in _SAME_FORMULA.items() if ref in flop_registry
}

# aten ops that do no multiply-adds of two tensors, beyond those tagged pointwise and the views
ZERO_COST = {
    *"empty empty_like empty_strided zeros zeros_like ones ones_like full full_like new_empty "
    "new_zeros new_ones new_full scalar_tensor arange linspace fill fill_ zero_ copy copy_ "
    "_to_copy clone contiguous cat stack index index_select gather scatter scatter_add index_put "
    "index_put_ slice_scatter select_scatter masked_fill masked_fill_ where sum mean amax amin max "
    "min argmax argmin var var_mean std std_mean prod cumsum logsumexp norm linalg_vector_norm "
    "_softmax _safe_softmax _log_softmax softmax log_softmax native_batch_norm "
    "_native_batch_norm_legit "
    "_native_batch_norm_legit_no_training _native_batch_norm_legit_functional batch_norm "
    "native_group_norm native_layer_norm max_pool2d_with_indices max_pool2d max_pool1d "
    "max_pool3d_with_indices avg_pool1d avg_pool2d avg_pool3d _adaptive_avg_pool2d "
    "adaptive_avg_pool2d adaptive_max_pool2d _adaptive_avg_pool3d adaptive_max_pool1d "
    "upsample_nearest1d upsample_nearest2d upsample_bilinear2d upsample_bicubic2d "
    "_upsample_nearest_exact2d _upsample_bilinear2d_aa grid_sampler_2d constant_pad_nd "
    "reflection_pad1d reflection_pad2d replication_pad1d replication_pad2d _pad_circular pad "
    "roll flip repeat tril triu topk sort embedding native_dropout dropout bernoulli bernoulli_ "
    "rand rand_like randn randn_like randint uniform_ normal_ _local_scalar_dense lift_fresh "
    "detach channel_shuffle native_channel_shuffle pixel_shuffle pixel_unshuffle _unsafe_view "
    "split split_with_sizes unbind chunk resize_ set_ equal is_nonzero nonzero".split()
}


@dataclass
class Count:
    """MACs an operation did, and the aten ops it ran whose cost ninlab does not know."""

    macs: int = 0
    missing: list[str] = field(default_factory=list)

    @property
    def known(self) -> bool:
        return not self.missing


def costs_nothing(op) -> bool:
    """True for an aten op that does no multiply-add of two tensors."""
    return torch.Tag.pointwise in op.tags or op.is_view or op.overloadpacket.__name__ in ZERO_COST


class _OpLog(TorchDispatchMode):
    """The aten ops that neither FlopCounterMode nor the zero-cost list accounts for."""

    def __init__(self):
        super().__init__()
        self.missing: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        packet = func.overloadpacket
        if not (packet in flop_registry or func in CUSTOM or packet in CUSTOM
                or costs_nothing(func)):  # fmt: skip
            name = f"aten.{packet.__name__}"
            if name not in self.missing:
                self.missing.append(name)
        return func(*args, **(kwargs or {}))


def counted(fn, *args, **kwargs) -> tuple[object, Count]:
    """(fn(*args, **kwargs), its Count): MACs = FlopCounterMode's FLOPs / 2."""
    with FlopCounterMode(display=False, custom_mapping=CUSTOM) as flops, _OpLog() as log:
        out = fn(*args, **kwargs)
    return out, Count(flops.get_total_flops() // 2, log.missing)
