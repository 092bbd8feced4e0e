"""Every registered model builds, maps a batch of [0, 1] images to finite logits of the right
shape; ResNet-18 has the CIFAR stem."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from engine.models import MODELS, build_model


@pytest.mark.parametrize("name", MODELS.names())
def test_model_builds_and_forwards(name):
    torch.manual_seed(0)
    m = build_model(name, 7).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.inference_mode():
        out = m(x)
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()
    assert m.head.out_features == 7  # Context.num_classes reads this


def test_smallcnn_takes_the_embedded_image_size():
    m = build_model("smallcnn", 12).eval()
    with torch.inference_mode():
        assert m(torch.rand(3, 3, 16, 16)).shape == (3, 12)


def test_resnet18_has_the_cifar_stem():
    m = build_model("resnet18", 10)
    net = m.features
    assert isinstance(net.conv1, nn.Conv2d)
    assert net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1)
    assert isinstance(net.maxpool, nn.Identity)
    # 32x32 in -> 4x4 before the pool (three stride-2 stages only)
    feats = {}

    def hook(mod, inp, out):
        feats["l4"] = out.shape  # returns None: the output is left alone

    net.layer4.register_forward_hook(hook)
    with torch.inference_mode():
        m.eval()(torch.rand(1, 3, 32, 32))
    assert feats["l4"][-2:] == (4, 4)


def test_unknown_model_lists_choices():
    from engine.errors import UnknownName

    with pytest.raises(UnknownName, match="resnet18"):
        build_model("resnet-nope", 10)


def test_torch_free_arch_list_matches_registry():
    from engine.models import MODELS
    from engine.spec import ARCHS

    assert sorted(MODELS.names()) == sorted(ARCHS)
