"""Inference-time folding: conv + BatchNorm -> conv, and conv -> 1x1 conv -> one conv.

Both are exact rewrites of an affine map into another (Jacob et al. 2018, sec. 3.2 for the
batch-norm fold); both assume eval mode, where BatchNorm uses its running statistics and
Dropout is the identity.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ninlab.convert.chains import Slot, all_chains
from ninlab.convert.linear import _is_plain_1x1

# Steps that leave a fusion exact: they are the identity in eval mode.
_PASS = (nn.Identity, nn.Dropout)


@torch.no_grad()
def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """The conv equal to bn(conv(x)) in eval mode.

    With s = gamma / sqrt(running_var + eps), per output channel:
        W' = s * W,    b' = s * (b - running_mean) + beta        (b = 0 if the conv has none)
    """
    if not isinstance(conv, nn.Conv2d) or not isinstance(bn, nn.BatchNorm2d):
        raise ValueError(f"fold_conv_bn needs a Conv2d and a BatchNorm2d, got {conv!r}, {bn!r}.")
    if bn.num_features != conv.out_channels:
        raise ValueError(
            f"{bn!r} normalises {bn.num_features} channels but {conv!r} gives "
            f"{conv.out_channels}; they are not a conv + BN pair."
        )
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError(f"{bn!r} keeps no running statistics, so it cannot be folded.")
    scale = bn.running_var.add(bn.eps).rsqrt()
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = bn.bias if bn.bias is not None else torch.zeros_like(scale)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(scale)
    fused = copy.deepcopy(conv)
    if fused.bias is None:
        fused.bias = nn.Parameter(torch.zeros_like(scale))
    fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
    fused.bias.copy_((bias - bn.running_mean) * scale + shift)
    return fused


@torch.no_grad()
def fuse_convs(first: nn.Conv2d, second: nn.Conv2d) -> nn.Conv2d:
    """The conv equal to second(first(x)) when `second` is a plain 1x1 conv.

    With W1 (m, c, k, k), b1 (m) and W2 (o, m), the composition is one k x k conv with the
    stride, padding and dilation of `first`:
        W[o, c, :, :] = sum_m W2[o, m] W1[m, c, :, :],    b = W2 b1 + b2
    """
    if not isinstance(first, nn.Conv2d) or first.groups != 1 or first.padding_mode != "zeros":
        raise ValueError(
            f"the first layer of a fusion must be a Conv2d with groups 1 and zero padding, "
            f"got {first!r}."
        )
    if not isinstance(second, nn.Conv2d) or not _is_plain_1x1(second):
        raise ValueError(
            f"the second layer of a fusion must be a 1x1 Conv2d with stride 1, padding 0 and "
            f"groups 1, got {second!r}."
        )
    if second.in_channels != first.out_channels:
        raise ValueError(
            f"{second!r} takes {second.in_channels} channels but {first!r} gives "
            f"{first.out_channels}; they do not follow each other."
        )
    w2 = second.weight.flatten(1)  # o x m
    fused = nn.Conv2d(
        first.in_channels,
        second.out_channels,
        first.kernel_size,
        first.stride,
        first.padding,
        first.dilation,
        bias=first.bias is not None or second.bias is not None,
    ).to(dtype=first.weight.dtype, device=first.weight.device)
    fused.weight.copy_(torch.einsum("om,mckl->ockl", w2, first.weight))
    if fused.bias is not None:
        b1 = first.bias if first.bias is not None else torch.zeros(first.out_channels)
        b2 = second.bias if second.bias is not None else torch.zeros(second.out_channels)
        fused.bias.copy_(w2 @ b1.to(w2) + b2.to(w2))
    return fused


def fold_batchnorm(model: nn.Module) -> tuple[nn.Module, list[tuple[str, str]]]:
    """A copy in eval mode with every BatchNorm2d that directly follows a Conv2d folded into it.

    Returns (model, [(conv name, bn name), ...]). A BatchNorm with no conv right before it is
    left in place.
    """
    model = copy.deepcopy(model).eval()
    done = []
    for slots in _chains(model):
        for a, b in zip(slots, slots[1:], strict=False):
            if (
                isinstance(a.module, nn.Conv2d)
                and isinstance(b.module, nn.BatchNorm2d)
                and b.module.num_features == a.module.out_channels
                and b.module.running_mean is not None
            ):
                a.replace(fold_conv_bn(a.module, b.module))
                b.remove()
                done.append((a.name, b.name))
    return model, done


def fuse_linear_1x1(model: nn.Module) -> tuple[nn.Module, list[tuple[str, str]]]:
    """A copy in eval mode with every conv -> 1x1 conv pair that has nothing non-linear between
    them (only Identity or Dropout) fused into one conv (`fuse_convs`).

    Returns (model, [(first name, second name), ...]); pairs with a ReLU, a BatchNorm or any
    other layer between are skipped (fold batch norm first). A fused conv may fuse again with
    the next 1x1 conv.
    """
    model = copy.deepcopy(model).eval()
    done = []
    for slots in _chains(model):
        i = 0
        while i < len(slots):
            a = slots[i]
            j = i + 1
            while j < len(slots) and isinstance(slots[j].module, _PASS):
                j += 1
            if j < len(slots) and _fusable(a.module, slots[j].module):
                a.replace(fuse_convs(a.module, slots[j].module))
                slots[j].remove()
                done.append((a.name, slots[j].name))
                del slots[j]
                continue  # try the fused conv with the next layer
            i += 1
    return model, done


def unfused_1x1(model: nn.Module) -> list[tuple[str, str]]:
    """Why each plain 1x1 conv of `model` composes with nothing before it: [(its name, what the
    nearest step before it, past Identity and Dropout, is)], the step's type ("ReLU", say), or
    "input" when the 1x1 conv opens its chain.

    A 1x1 conv fuses only with a conv right before it (`fuse_linear_1x1`); run on that
    function's output, this lists every 1x1 conv left and the layer that kept it apart. In a NiN
    a ReLU follows every conv, so each 1x1 conv follows a ReLU and nothing fuses.
    """
    found = []
    for slots in _chains(model):
        for i, slot in enumerate(slots):
            if not (isinstance(slot.module, nn.Conv2d) and _is_plain_1x1(slot.module)):
                continue
            j = i - 1
            while j >= 0 and isinstance(slots[j].module, _PASS):
                j -= 1
            if j < 0:
                found.append((slot.name, "input"))
            elif not _fusable(slots[j].module, slot.module):
                before = slots[j].module
                kind = type(before).__name__
                if isinstance(before, nn.Conv2d):  # grouped, or padded other than with zeros
                    kind = f"{kind} with groups {before.groups}, {before.padding_mode} padding"
                found.append((slot.name, kind))
    return found


def fuse_pair(model: nn.Module, first: str, second: str) -> nn.Module:
    """A copy in eval mode with the convs named `first` and `second` fused (`fuse_convs`).

    Raises ValueError naming the layer when something non-linear (or a BatchNorm not yet
    folded) sits between them, or when they are not conv -> 1x1 conv in one chain.
    """
    model = copy.deepcopy(model).eval()
    for slots in _chains(model):
        names = [s.name for s in slots]
        if first in names and second in names:
            i, j = names.index(first), names.index(second)
            if j <= i:
                raise ValueError(
                    f"{second!r} runs before {first!r}; pass them in the order they run."
                )
            for between in slots[i + 1 : j]:
                if not isinstance(between.module, _PASS):
                    kind = type(between.module).__name__
                    why = (
                        "is not folded yet; run fold_batchnorm first"
                        if isinstance(between.module, nn.BatchNorm2d)
                        else "is not linear, so the two convs are not one affine map"
                    )
                    raise ValueError(
                        f"cannot fuse {first!r} and {second!r}: {between.name!r} ({kind}) "
                        f"between them {why}."
                    )
            slots[i].replace(fuse_convs(slots[i].module, slots[j].module))
            slots[j].remove()
            return model
    raise ValueError(
        f"{first!r} and {second!r} are not two layers of one chain of nn.Sequential in the "
        f"model; name them as model.named_modules() does."
    )


def _fusable(a: nn.Module, b: nn.Module) -> bool:
    return (
        isinstance(a, nn.Conv2d)
        and a.groups == 1
        and a.padding_mode == "zeros"
        and isinstance(b, nn.Conv2d)
        and _is_plain_1x1(b)
        and b.in_channels == a.out_channels
    )


def _chains(model: nn.Module) -> list[list[Slot]]:
    return all_chains(model)
