"""`ninlab.train.profile`: FLOPs, bytes and layers a person can count by hand, the FLOPs against
FlopCounterMode's count of a real step, and the instrument on models of every shape."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ninlab.analysis import summary
from ninlab.errors import NinlabError
from ninlab.models import create_model, load_model
from ninlab.models.layers import GlobalAvgPool
from ninlab.train import profile as P

REFNETS = Path(__file__).parents[2] / "examples" / "refnets.py"


@pytest.fixture(autouse=True)
def _no_machine_rates(monkeypatch):
    """The peak and bandwidth are measured by ninlab.train.machine (seconds); here fixed."""
    monkeypatch.setattr(P, "peak_rate", lambda precision: 100.0)
    monkeypatch.setattr(P, "copy_rate", lambda: 10.0)


def tiny() -> nn.Module:
    """1x8x8 -> 3x3 conv to 4 -> ReLU -> 1x1 conv to 2 -> GAP: MACs 4*64*9 + 2*64*4 = 2816."""
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 1), GlobalAvgPool()
    )
    net.default_input_size = (1, 8, 8)
    return net


def test_flops_and_bytes_by_hand():
    p = P.profile(tiny(), batch=2, precision="fp32", channels_last=False, steps=1)
    assert [lay.name for lay in p.layers] == ["0", "1", "2", "3"]
    assert [lay.type for lay in p.layers] == ["Conv2d 3x3", "ReLU", "Conv2d 1x1", "GlobalAvgPool"]
    conv3, relu, conv1, _ = p.layers
    assert conv3.flops == 3 * 2 * 2 * (4 * 64 * 9)  # x3 fwd+bwd, batch 2, 2 FLOP per MAC
    assert conv1.flops == 3 * 2 * 2 * (2 * 64 * 4)
    assert relu.flops == 0
    assert p.flops == 3 * 2 * 2 * 2816 == sum(lay.flops for lay in p.layers)
    # bytes: 3 x input + 2 x output + 3 x weights, fp32
    assert conv3.bytes == 3 * (2 * 64 * 4) + 2 * (2 * 4 * 64 * 4) + 3 * ((36 + 4) * 4)
    assert relu.bytes == 3 * (2 * 4 * 64 * 4) + 2 * (2 * 4 * 64 * 4)
    assert conv1.bytes == 3 * (2 * 4 * 64 * 4) + 2 * (2 * 2 * 64 * 4) + 3 * ((8 + 2) * 4)
    assert conv3.intensity == pytest.approx(conv3.flops / conv3.bytes)
    assert p.peak == 100.0 and p.ridge == 10.0
    assert p.attainable(2.0) == 20.0 and p.attainable(50.0) == 100.0


def test_flops_agree_with_flop_counter_on_a_real_step():
    """FlopCounterMode over forward and backward of nin_fast counts the summary x 3, less the
    input gradient of the first conv, which a step does not compute."""
    model, batch = create_model("nin_fast").train(), 4
    p = P.profile(model, batch=batch, precision="fp32", steps=1)
    s = summary(model)
    assert p.flops == 3 * s.flops * batch
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(torch.randn(batch, 1, 28, 28)), torch.arange(batch)).backward()
    first = s.layer("features.block1.conv").flops * batch
    assert counter.get_total_flops() == p.flops - first


def test_every_leaf_has_a_forward_and_a_backward_time():
    p = P.profile(create_model("nin_fast"), batch=8, precision="fp32", steps=2)
    assert len(p.layers) == 24  # the rows of `ninlab summary nin_fast`
    for lay in p.layers:
        assert lay.forward_s > 0, lay.name
        if lay.type != "GlobalAvgPool":  # its backward is a broadcast, maybe too short to see
            assert lay.backward_s > 0, lay.name
    assert 0 < p.layer_s and 0 < p.step_s
    assert sum(lay.is_1x1 for lay in p.layers) == 3
    assert "3 1x1 convs do" in p.one_by_one()
    assert p.other_flops == 0


def test_the_model_is_left_as_it_was():
    model = create_model("nin_fast")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    P.profile(model, batch=4, precision="fp32", steps=1)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.slow
@pytest.mark.parametrize(
    "spec, size",
    [("lenet_fc", None), ("vgg_gap", None), (f"{REFNETS}:self_attention", (32, 6, 6)),
     (f"{REFNETS}:googlenet", (3, 64, 64))],
)  # fmt: skip
def test_any_model_summary_takes(spec, size):
    """Linear heads, functions in forward (attention's matmuls: FLOPs no leaf owns), outputs
    that are not logits, branches."""
    model = load_model(spec, None, None)
    p = P.profile(model, size, batch=2, precision="fp32", steps=1)
    s = summary(model, size)
    assert p.flops == 3 * s.flops * 2
    assert sum(lay.flops for lay in p.layers) + p.other_flops == p.flops
    assert p.layers and all(lay.seconds > 0 for lay in p.layers if lay.flops)
    text = p.table(80)
    assert "all layers" in text and "step: " in text and "1x1" in text


def test_a_model_without_trainable_parameters_is_refused():
    net = tiny().requires_grad_(False)
    with pytest.raises(NinlabError, match="has no trainable parameters"):
        P.profile(net, batch=2, steps=1)
