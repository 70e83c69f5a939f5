"""ResNet-18 image encoder (supplement Table 1), with torchvision's module names.

The names match `torchvision.models.resnet18` so that an ImageNet `resnet18-*.pth` a user has
on disk loads into it (all but `fc`, which here outputs the posterior of the whole latent).
"""

from __future__ import annotations

import os

import torch
from torch import nn


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (He et al. 2016, torchvision's layout)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """ResNet of BasicBlocks with a linear head; any input size >= 32 px (adaptive pooling)."""

    def __init__(self, layers: tuple[int, int, int, int], num_outputs: int) -> None:
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], stride=2)
        self.layer4 = self._make_layer(512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * BasicBlock.expansion, num_outputs)
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        """One stage of `blocks` BasicBlocks; the first may downsample (1x1 conv + BN shortcut)."""
        downsample = None
        if stride != 1 or self.inplanes != planes * BasicBlock.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * BasicBlock.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * BasicBlock.expansion))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * BasicBlock.expansion
        layers += [BasicBlock(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet18(num_outputs: int) -> ResNet:
    """ResNet-18 (2, 2, 2, 2 BasicBlocks) with a `num_outputs`-wide `fc` head."""
    return ResNet((2, 2, 2, 2), num_outputs)


def load_torchvision_resnet18(encoder: ResNet, state_dict_path: str | os.PathLike) -> None:
    """Copy an ImageNet torchvision ResNet-18 state dict from disk into `encoder`, except `fc`.

    Raises ValueError naming the keys that do not match (BatchNorm's `num_batches_tracked`,
    absent from older torchvision files, may be missing).
    """
    state = torch.load(state_dict_path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{state_dict_path}: expected a state dict, got {type(state).__name__}")
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    own = {k: v for k, v in encoder.state_dict().items() if not k.startswith("fc.")}
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    reshaped = [k for k in state if k in own and state[k].shape != own[k].shape]
    if missing or unexpected or reshaped:
        raise ValueError(f"{state_dict_path}: not a torchvision ResNet-18 state dict "
                         f"(missing {missing[:3]}, unexpected {unexpected[:3]}, "
                         f"wrong shape {reshaped[:3]})")
    encoder.load_state_dict(state, strict=False)
