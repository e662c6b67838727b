import itertools
import math

import pytest
import torch
from torch import nn

from ninlab import TrainConfig
from ninlab.models import create_model
from ninlab.models.whitening import PatchWhitening, fit_whitening, images_to_fit, needs_fitting
from ninlab.train.optim import make_optimizer

SCALES = (2.0, 1.0, 0.5, 0.25)  # each pixel of a 2x2 image: +/- this, independently


def _patches() -> torch.Tensor:
    """All 16 sign patterns of 2x2 images with pixel i = +/- SCALES[i]: the mean is exactly 0
    and the covariance exactly diag(4, 1, 0.25, 0.0625), so the axes are its eigenvectors."""
    signs = torch.tensor(list(itertools.product((1.0, -1.0), repeat=4)))
    return (signs * torch.tensor(SCALES)).reshape(16, 1, 2, 2)


def test_fit_by_hand():
    layer = PatchWhitening(1, 2)
    assert layer.weight.shape == (8, 1, 2, 2) and not layer.weight.requires_grad
    assert not layer.fitted
    layer.fit(_patches())
    assert layer.fitted
    # eigenvalues ascending: filter i picks pixel 3 - i, divided by sqrt(variance + 5e-4)
    w = layer.weight.reshape(8, 4)
    for i, pixel in enumerate((3, 2, 1, 0)):
        expected = torch.zeros(4)
        expected[pixel] = 1 / math.sqrt(SCALES[pixel] ** 2 + 5e-4)  # 0.25 -> 3.9938, 2 -> 0.49997
        assert torch.allclose(w[i].abs(), expected, atol=1e-6), i
        assert torch.equal(w[i + 4], -w[i])  # the negated twin
    out = layer(_patches()).reshape(16, 8)  # one 2x2 patch per image: a 1x1 output
    var = out[:, :4].pow(2).mean(0)  # whitened: variance s^2 / (s^2 + eps), about 1
    by_hand = torch.tensor([s * s / (s * s + 5e-4) for s in reversed(SCALES)])
    assert torch.allclose(var, by_hand, atol=1e-5)
    assert by_hand.min() > 0.99


def test_fitted_weights_are_kept_when_loaded():
    model = nn.Sequential(PatchWhitening(1, 2), nn.ReLU(), PatchWhitening(8, 2), nn.Identity())
    after = []  # what runs after the last whitening layer: nothing, its fit ends the forward
    model[3].register_forward_hook(lambda *_: after.append(1))
    x = torch.randn(64, 1, 8, 8)
    assert needs_fitting(model) and fit_whitening(model, x) == 2
    assert not after
    assert not needs_fitting(model) and fit_whitening(model, x) == 0  # nothing refitted
    # the second layer was fitted to the first's output: 8 whitened (ReLU'd) channels in 2x2
    second = PatchWhitening(8, 2)
    second.fit(model[1](model[0](x)))
    assert torch.equal(second.weight, model[2].weight)
    twin = nn.Sequential(PatchWhitening(1, 2), nn.ReLU(), PatchWhitening(8, 2), nn.Identity())
    twin.load_state_dict(model.state_dict())
    assert not needs_fitting(twin)
    assert fit_whitening(twin, torch.randn(64, 1, 8, 8)) == 0
    assert torch.equal(twin[0].weight, model[0].weight)


def test_images_to_fit_bounds_the_pixels():
    assert images_to_fit(28) == 5000  # a million 2x2 patches
    assert images_to_fit(224) == 78  # 5000 * 784 // 50176
    assert images_to_fit(4096) == 16


@pytest.mark.slow
def test_nin_whiten_trains_all_but_its_stem():
    model = create_model("nin_whiten")
    stem = model.features.block1.conv
    assert isinstance(stem, PatchWhitening) and stem.out_channels == 8
    opt = make_optimizer(model, TrainConfig())
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert id(stem.weight) not in in_opt
    assert in_opt == {id(p) for p in model.parameters() if p is not stem.weight}
    before = stem.weight.clone()
    loss = model(torch.randn(4, 1, 28, 28)).logsumexp(1).sum()
    loss.backward()
    opt.step()
    assert stem.weight.grad is None and torch.equal(stem.weight, before)
    # trainable parameters by hand: block2 3x3 8->48 and 1x1 48->48, block3 3x3 48->128 and
    # 1x1 128->128, class block 1x1 128->256 and 256->10, each with batch norm (2 per channel)
    convs = 9 * 8 * 48 + 48 * 48 + 9 * 48 * 128 + 128 * 128 + 128 * 256 + 256 * 10
    bn = 2 * (48 + 48 + 128 + 128 + 256 + 10)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == convs + bn


def test_nin_whiten_class_kernel_3_is_nin_fasts_class_conv():
    small, large = create_model("nin_whiten"), create_model("nin_whiten", class_kernel=3)
    conv = large.head.maps.block.conv
    assert conv.kernel_size == (3, 3) and conv.padding == (1, 1) and conv.out_channels == 256
    # only the class block's first conv grows: 128 x 256 weights each 1x1 -> 3x3
    extra = 128 * 256 * (9 - 1)
    counts = [sum(p.numel() for p in m.parameters()) for m in (small, large)]
    assert counts[1] - counts[0] == extra == 262_144
    assert large(torch.randn(2, 1, 28, 28)).shape == (2, 10)
