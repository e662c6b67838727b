import warnings

import pytest
import torch
from torch import nn

import ninlab
from ninlab.errors import NinlabError
from ninlab.models import Conv1x1, NiN, NiNBlock, conv1x1, create_model, list_models


@pytest.mark.slow
@pytest.mark.parametrize("name", list_models())
def test_forward_backward_every_model(name):
    model = create_model(name, num_classes=7)
    c, h, w = model.default_input_size
    x = torch.randn(2, c, h, w)
    out = model(x)
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()
    out.logsumexp(1).sum().backward()
    for pname, p in model.named_parameters():
        if not p.requires_grad:  # frozen by design (a fitted whitening stem): untouched
            assert p.grad is None, pname
            continue
        assert p.grad is not None, f"{pname} gets no gradient"
        assert torch.isfinite(p.grad).all(), pname
    model.eval()  # dropout off: the two paths must then agree exactly
    with torch.no_grad():
        assert torch.equal(model.forward_head(model.forward_features(x)), model(x))
    info = model.feature_info
    assert info and all({"module", "num_chs", "reduction"} <= set(d) for d in info)


@pytest.mark.parametrize(
    "name, in_chans, params",
    [("nin_seed", 1, 1_769_112), ("nin_d2l", 1, 1_992_166), ("nin_cifar", 3, 966_986)],
)
def test_exact_parameter_counts(name, in_chans, params):
    model = create_model(name, num_classes=10, in_chans=in_chans)
    assert sum(p.numel() for p in model.parameters()) == params


def test_nin_seed_hand_count():
    # block: k*k*c_in*c_out + c_out (conv) + c_out*c_out + c_out (one 1x1 conv)
    def block(c_in, c_out, k):
        return k * k * c_in * c_out + c_out + c_out * c_out + c_out

    by_hand = [block(1, 96, 11), block(96, 256, 5), block(256, 384, 3), block(384, 10, 3)]
    model = create_model("nin_seed")
    blocks = [m for m in model.modules() if isinstance(m, NiNBlock)]
    assert [sum(p.numel() for p in b.parameters()) for b in blocks] == by_hand
    assert sum(by_hand) == sum(p.numel() for p in model.parameters()) == 1_769_112


def test_list_models_names():
    names = ninlab.list_models()
    for expected in ("nin_seed", "nin_d2l", "nin_cifar", "nin_fast", "lenet_fc", "alexnet_fc"):
        assert expected in names


def test_conv1x1_is_a_per_pixel_linear():
    conv = conv1x1(5, 3)
    linear = nn.Linear(5, 3)
    linear.weight.data = conv.weight.data.view(3, 5).clone()
    linear.bias.data = conv.bias.data.clone()
    x = torch.randn(4, 5, 6, 7)
    by_linear = linear(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    assert conv(x).shape == (4, 3, 6, 7)
    assert torch.allclose(conv(x), by_linear, atol=1e-5)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_conv1x1_computes_what_conv2d_does(stride, layout):
    # channels-last on the CPU takes the F.linear path; NCHW and a stride, Conv2d's own
    new = conv1x1(5, 3, stride=stride)
    old = nn.Conv2d(5, 3, 1, stride=stride)
    assert {k: v.shape for k, v in new.state_dict().items()} == {
        k: v.shape for k, v in old.state_dict().items()
    }
    old.load_state_dict(new.state_dict())
    x = torch.randn(4, 5, 6, 7).contiguous(memory_format=layout)
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    a, b = new(xa), old(xb)
    assert a.shape == b.shape == ((4, 3, 6, 7) if stride == 1 else (4, 3, 3, 4))  # 1 + (7 - 1) // 2
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert a.is_contiguous(memory_format=layout)
    g = torch.randn_like(a)
    a.backward(g), b.backward(g)
    torch.testing.assert_close(xa.grad, xb.grad, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(new.weight.grad, old.weight.grad, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(new.bias.grad, old.bias.grad, atol=1e-4, rtol=1e-5)


def test_conv1x1_by_hand():
    # one pixel of channels (3, 4) and the filters (1, 2) and (0, -1), bias (0.5, 0): 11.5, -4
    conv = conv1x1(2, 2).to(memory_format=torch.channels_last)
    conv.weight.data = torch.tensor([[1.0, 2.0], [0.0, -1.0]]).view(2, 2, 1, 1)
    conv.bias.data = torch.tensor([0.5, 0.0])
    x = torch.tensor([3.0, 4.0]).view(1, 2, 1, 1).expand(1, 2, 2, 2)
    x = x.contiguous(memory_format=torch.channels_last)
    assert conv(x)[0, :, 1, 0].tolist() == [11.5, -4.0]


def test_nin_block_layout():
    block = NiNBlock(3, (8, 8, 4), kernel_size=3, padding=1, batch_norm=True, final_relu=False)
    names = [n for n, _ in block.named_children()]
    assert names == ["conv", "bn", "relu", "cccp1", "bn1", "relu1", "cccp2", "bn2"]
    assert type(block.conv) is nn.Conv2d and type(block.cccp1) is Conv1x1
    assert type(NiNBlock(3, (8,), kernel_size=1).conv) is Conv1x1  # a 1x1 class block's first
    assert block(torch.randn(1, 3, 5, 5)).shape == (1, 4, 5, 5)


@pytest.mark.parametrize("name", [n for n in list_models() if n.startswith("nin")])
def test_class_maps_average_to_logits(name):
    model = create_model(name).eval()
    c, h, w = model.default_input_size
    x = torch.randn(2, c, h, w)
    maps = model.class_maps(x)
    assert maps.shape[:2] == (2, 10)
    assert torch.allclose(maps.mean(dim=(2, 3)), model(x), atol=1e-5)
    assert isinstance(model, NiN)


def test_nin_accepts_larger_inputs():
    model = create_model("nin_fast").eval()
    assert model(torch.randn(1, 1, 40, 52)).shape == (1, 10)


def test_unknown_model_name():
    with pytest.raises(NinlabError, match="unknown model 'nope'.*nin_seed"):
        create_model("nope")


def test_registering_a_name_twice_warns_and_replaces():
    from ninlab.models._registry import _MODELS, register_model

    def nin_fast(num_classes: int = 10, in_chans: int = 1):
        """A stand-in."""
        return nn.Linear(in_chans, num_classes)

    original = _MODELS["nin_fast"]
    try:
        with pytest.warns(UserWarning, match=r"model 'nin_fast' of ninlab.models.nin is replaced"):
            register_model(nin_fast)
        assert _MODELS["nin_fast"] is nin_fast
    finally:
        _MODELS["nin_fast"] = original
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        register_model(original)  # the same factory again: nothing to say
