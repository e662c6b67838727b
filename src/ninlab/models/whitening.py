"""A frozen patch-whitening convolution, fitted to the training images before the first step.

The first layer of airbench (Jordan 2024, github.com/KellerJordan/cifar10-airbench): a k x k
stride-2 conv whose filters are the eigenvectors of the covariance of the k x k patches in the
training images, each divided by the square root of its eigenvalue, so that the patches come
out decorrelated with unit variance; each filter also appears negated, so that the ReLU after it
keeps both signs. It learns nothing: its weights are the data's statistics, which a network
would otherwise spend its first steps finding. In its CIFAR-10 ablation it cut the time to 94%
from 14.2 s to 8.6 s.

For C input channels a patch has d = C k^2 numbers and the conv has 2d filters:

    Sigma = cov(patches) (d x d) = V diag(lambda) V^T,   W = [+V^T; -V^T] diag(lambda + eps)^-1/2

`fit_whitening(model, images)` fits every PatchWhitening in a model that is not fitted yet to
the inputs that reach it; the `fitted` buffer travels with the weights, so loaded weights are
never refitted.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# a whitening layer is fitted to this many pixels of training images: 5,000 images of 28 x 28
# (a million 2 x 2 patches), fewer of larger images
WHITEN_PIXELS = 5000 * 28 * 28
EPS = 5e-4  # added to each eigenvalue: the flattest directions (noise) are not blown up


class PatchWhitening(nn.Conv2d):
    """k x k stride-2 conv from C channels to 2 C k^2 whitened, frozen channels (no bias).

    Before `fit` its weights are PyTorch's usual random init (frozen too), so an unfitted model
    still runs, as random features."""

    def __init__(self, in_channels: int, kernel_size: int = 2):
        d = in_channels * kernel_size * kernel_size
        pad = (kernel_size - 2) // 2  # 2 -> 0 (28 -> 14 px), 4 -> 1
        super().__init__(in_channels, 2 * d, kernel_size, stride=2, padding=pad, bias=False)
        self.weight.requires_grad_(False)
        self.register_buffer("fitted", torch.tensor(False))

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> None:
        """Set the filters from the patches of x (N, C, H, W) as the module docstring says."""
        k = self.kernel_size[0]
        patches = F.unfold(x.float(), k, padding=self.padding, stride=self.stride)  # N x d x L
        patches = patches.transpose(1, 2).reshape(-1, patches.shape[1]).double()
        patches = patches - patches.mean(0)
        values, vectors = torch.linalg.eigh(patches.T @ patches / len(patches))
        w = (vectors / (values.clamp_min(0) + EPS).sqrt()).T  # d x d, one filter a row
        w = torch.cat([w, -w]).reshape(self.weight.shape)
        self.weight.copy_(w.to(self.weight.dtype))
        self.fitted.fill_(True)


def images_to_fit(side: int) -> int:
    """How many training images of side x side px the whitening layers are fitted to."""
    return max(16, WHITEN_PIXELS // (side * side))


def needs_fitting(model: nn.Module) -> bool:
    """Whether `model` has a PatchWhitening that is not fitted yet."""
    return any(isinstance(m, PatchWhitening) and not m.fitted for m in model.modules())


class _AllFitted(Exception):
    """Raised by the last layer's fit: the rest of the forward is not needed."""


@torch.no_grad()
def fit_whitening(model: nn.Module, images: torch.Tensor) -> int:
    """Fit each PatchWhitening of `model` that is not fitted yet to what reaches it when the
    model runs on `images` (model inputs, in eval mode); returns how many were fitted. Layers in
    sequence fit in order, each on the output of those before it; the forward stops once the
    last is fitted (for nin_whiten's stem, 0.06 s of the 2 s a whole forward of 5,000 takes)."""
    layers = [m for m in model.modules() if isinstance(m, PatchWhitening) and not m.fitted]
    if not layers:
        return 0

    def fit(m, args):
        m.fit(args[0])
        if all(layer.fitted for layer in layers):
            raise _AllFitted

    hooks = [m.register_forward_pre_hook(fit) for m in layers]
    was_training = model.training
    try:
        model.eval()
        model(images)
    except _AllFitted:
        pass
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return sum(bool(layer.fitted) for layer in layers)
