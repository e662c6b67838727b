"""A 1x1 convolution is a Linear layer over the channel axis, applied at every pixel.

For a Linear with weight W (out x in) and bias b, and an input x of shape (N, in, H, W):

    conv1x1(x)[n, :, i, j] = W @ x[n, :, i, j] + b

so the conv weight is W reshaped to (out, in, 1, 1). A Linear that follows a Flatten of a
(C, H, W) map reads `flatten(x)[c*H*W + h*W + w]` (PyTorch flattens channel-major), so its weight
reshaped to (out, C, H, W) is an H x W convolution kernel (Long, Shelhamer, Darrell 2015, FCN
sec. 3.1; timm's `ConvMlp` does the same reshape).
"""

from __future__ import annotations

import torch
from torch import nn

from ninlab.models.layers import conv1x1


def linear_to_conv1x1(linear: nn.Linear) -> nn.Conv2d:
    """The 1x1 conv (a ninlab Conv1x1) with the Linear's weights: weight (out, in) ->
    (out, in, 1, 1)."""
    if not isinstance(linear, nn.Linear):
        raise ValueError(f"linear_to_conv1x1 needs an nn.Linear, got {linear!r}.")
    conv = conv1x1(linear.in_features, linear.out_features, bias=linear.bias is not None)
    _copy(conv, linear.weight.reshape(conv.weight.shape), linear.bias)
    return conv


def conv1x1_to_linear(conv: nn.Conv2d) -> nn.Linear:
    """The Linear with a 1x1 conv's weights: weight (out, in, 1, 1) -> (out, in).

    Only a plain 1x1 conv (stride 1, padding 0, groups 1) is a Linear over channels: a stride
    drops pixels, padding adds pixels that hold only the bias, groups make the matrix
    block-diagonal.
    """
    if not isinstance(conv, nn.Conv2d) or not _is_plain_1x1(conv):
        raise ValueError(
            f"conv1x1_to_linear needs a 1x1 Conv2d with stride 1, padding 0 and groups 1, "
            f"got {conv!r}."
        )
    linear = nn.Linear(conv.in_channels, conv.out_channels, bias=conv.bias is not None)
    _copy(linear, conv.weight.reshape(linear.weight.shape), conv.bias)
    return linear


def fc_to_conv(linear: nn.Linear, in_shape: tuple[int, int, int]) -> nn.Conv2d:
    """The H x W conv equal to `linear(flatten(x))` for x of shape (N, C, H, W).

    weight (out, C*H*W) -> (out, C, H, W), the inverse of PyTorch's channel-major flatten; on a
    C x H x W input the conv's output is (N, out, 1, 1) and equals the Linear's.
    """
    if not isinstance(linear, nn.Linear):
        raise ValueError(f"fc_to_conv needs an nn.Linear, got {linear!r}.")
    c, h, w = in_shape
    if linear.in_features != c * h * w:
        raise ValueError(
            f"{linear!r} has in_features={linear.in_features} but a flattened {c}x{h}x{w} map "
            f"has {c * h * w}; pass the (C, H, W) shape the Flatten before it receives."
        )
    conv = nn.Conv2d(c, linear.out_features, (h, w), bias=linear.bias is not None)
    _copy(conv, linear.weight.reshape(conv.weight.shape), linear.bias)
    return conv


def apply_linear_per_pixel(linear: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """Apply a Linear over the channel axis of every pixel: (N, in, H, W) -> (N, out, H, W)."""
    return linear(x.movedim(1, -1)).movedim(-1, 1)


def conv1x1_as_matmul(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """A 1x1 convolution computed the textbook way, as one matrix product.

    The (C, H, W) input becomes the (H*W) x C matrix P whose rows are pixels; with the
    (out, C) weight matrix W the output pixels are P @ W^T + b, reshaped back to (out, H, W).
    A 4x4x3 input and six filters: (16 x 3) @ (3 x 6) = 16 x 6, i.e. a 4x4x6 output.
    `weight` may also be a conv weight of shape (out, C, 1, 1).
    """
    if x.dim() != 3:
        raise ValueError(
            f"conv1x1_as_matmul needs one (C, H, W) image, got shape {tuple(x.shape)}."
        )
    c, h, w = x.shape
    weight = weight.reshape(weight.shape[0], -1)
    if weight.shape[1] != c:
        raise ValueError(
            f"the weight has {weight.shape[1]} input channels but the image has {c}; "
            f"pass an (out, {c}) weight matrix."
        )
    pixels = x.reshape(c, h * w).T  # (H*W) x C
    out = pixels @ weight.T  # (H*W) x out
    if bias is not None:
        out = out + bias
    return out.T.reshape(-1, h, w)  # out x H x W


def _is_plain_1x1(conv: nn.Conv2d) -> bool:
    return (
        tuple(conv.kernel_size) == (1, 1)
        and tuple(conv.stride) == (1, 1)
        and tuple(conv.padding) == (0, 0)
        and conv.groups == 1
    )


@torch.no_grad()
def _copy(layer: nn.Module, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
    layer.to(dtype=weight.dtype, device=weight.device)
    layer.weight.copy_(weight)
    if bias is not None:
        layer.bias.copy_(bias)
