"""Model catalogue (a registry). Every model takes images in [0, 1] (NCHW float) and normalises
inside, so data never needs a separate normalisation pass; outputs logits over ``num_classes``.

- ``smallcnn``: sized for CPU work (the embedded dataset's default).
- ``resnet18``: torchvision's ResNet-18 with the CIFAR stem (3x3 stride-1 conv, no max-pool).
- ``vgg19``: VGG-19 with batch norm, CIFAR head (one linear layer after global pooling).
- ``wrn28-10`` / ``wrn16-4``: WideResNet (Zagoruyko & Komodakis), pre-activation blocks.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .registry import Registry

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")

# Per-channel statistics of CIFAR-10 training images; close enough for every dataset here (the
# embedded one included) that a BatchNorm network does not care.
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


class Normalize(nn.Module):
    def __init__(self, mean=MEAN, std=STD):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


class Classifier(nn.Module):
    """Normalise -> features -> linear head. ``features`` must end in a flat vector."""

    def __init__(self, features: nn.Module, width: int, num_classes: int):
        super().__init__()
        self.norm = Normalize()
        self.features = features
        self.head = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.head(self.features(self.norm(x)))


def _conv_bn(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


@MODELS.register("smallcnn")
def smallcnn(num_classes: int, width: int = 32) -> nn.Module:
    """Four conv-BN-ReLU blocks (w, 2w, 2w, 4w) with two max-pools and global average pooling:
    about 0.2 M parameters at w=32; learns the embedded dataset to >95% in a few CPU epochs."""
    w = width
    feats = nn.Sequential(
        *_conv_bn(3, w), nn.MaxPool2d(2),
        *_conv_bn(w, 2 * w), nn.MaxPool2d(2),
        *_conv_bn(2 * w, 2 * w),
        *_conv_bn(2 * w, 4 * w),
        nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return Classifier(feats, 4 * w, num_classes)


@MODELS.register("resnet18")
def resnet18(num_classes: int) -> nn.Module:
    """torchvision ResNet-18 with the CIFAR stem (3x3 stride 1, no max-pool)."""
    from torchvision.models import resnet18 as tv_resnet18

    net = tv_resnet18(weights=None, num_classes=num_classes)
    net.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    width = net.fc.in_features
    head = net.fc
    net.fc = nn.Identity()
    m = Classifier(net, width, num_classes)
    m.head = head
    return m


_VGG19 = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512]


@MODELS.register("vgg19")
def vgg19(num_classes: int) -> nn.Module:
    """VGG-19 with batch norm (the CIFAR variant: conv stack, global pool, one linear layer)."""
    layers: list[nn.Module] = []
    cin = 3
    for v in _VGG19:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += _conv_bn(cin, int(v))
            cin = int(v)
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return Classifier(nn.Sequential(*layers), cin, num_classes)


class _WideBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, dropout: float):
        super().__init__()
        self.bn1, self.bn2 = nn.BatchNorm2d(cin), nn.BatchNorm2d(cout)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()
        self.short = None if cin == cout and stride == 1 else nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        o = torch.relu(self.bn1(x))
        y = self.conv1(o)
        y = self.conv2(self.drop(torch.relu(self.bn2(y))))
        return y + (x if self.short is None else self.short(o))


def _wrn(num_classes: int, depth: int, k: int, dropout: float = 0.0) -> nn.Module:
    n = (depth - 4) // 6
    widths = [16, 16 * k, 32 * k, 64 * k]
    layers: list[nn.Module] = [nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)]
    cin = widths[0]
    for stage, cout in enumerate(widths[1:]):
        for i in range(n):
            layers.append(_WideBlock(cin, cout, 2 if (i == 0 and stage > 0) else 1, dropout))
            cin = cout
    layers += [nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return Classifier(nn.Sequential(*layers), cin, num_classes)


@MODELS.register("wrn28-10")
def wrn28_10(num_classes: int) -> nn.Module:
    """WideResNet-28-10 (36.5 M parameters): the paper's Table 12 backbone."""
    return _wrn(num_classes, 28, 10)


@MODELS.register("wrn16-4")
def wrn16_4(num_classes: int) -> nn.Module:
    """WideResNet-16-4 (2.7 M parameters): a WideResNet that fits CPU checks."""
    return _wrn(num_classes, 16, 4)


def build_model(name: str, num_classes: int) -> nn.Module:
    return MODELS.get(name)(num_classes)
