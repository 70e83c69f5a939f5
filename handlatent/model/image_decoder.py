"""DCGAN image decoder of the supplement's Table 1, for 64, 128 or 256 px outputs.

Two choices beside the paper's (docs/model.md, "Image decoder"): how a stage doubles the size
(`upsample`) and which normalisation follows it (`norm`).

- tconv5:   the paper's 5x5 transposed convolution, stride 2. Its kernel overlaps unevenly
            (5 taps over a stride of 2), which draws a checkerboard (Odena et al. 2016).
- tconv4:   4x4 transposed convolution, stride 2: every output pixel gets 4 taps.
- nearest:  nearest-neighbour x2 then a 3x3 convolution: no checkerboard by construction.

- batch:    BatchNorm (the paper); its running statistics mix every pass that trains it.
- group:    GroupNorm (8 groups or fewer): no running statistics, the same at training and at
            decode time, whichever pass (ELBO_dis or ELBO_emb) the batch came from.
"""

from __future__ import annotations

import torch
from torch import nn

START_SIZE = 8  # Table 1 reshapes the FC output to 8 x 8 x channels
UPSAMPLERS = ("tconv5", "tconv4", "nearest")
NORMS = ("batch", "group")


def _tconv(in_channels: int, out_channels: int, bias: bool) -> nn.ConvTranspose2d:
    """5x5 transposed convolution, stride 2, that exactly doubles height and width.

    out = 2 (in - 1) - 2 padding + 5 + output_padding = 2 in needs padding 2, output_padding 1
    (the paper's padding 1 would give 2 in + 1).
    """
    return nn.ConvTranspose2d(in_channels, out_channels, 5, stride=2, padding=2,
                              output_padding=1, bias=bias)


def _doubling(kind: str, in_channels: int, out_channels: int, bias: bool) -> nn.Module:
    """One stage's x2 upsampling convolution of the given kind (see the module docstring)."""
    if kind == "tconv5":
        return _tconv(in_channels, out_channels, bias)
    if kind == "tconv4":
        return nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=bias)
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                         nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias))


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.GroupNorm(min(8, channels), channels)


class DCGANDecoder(nn.Module):
    """z -> image in [-1, 1]: FC, reshape, BN, then transposed convs doubling up to `image_size`.

    Channels halve at each stage from `channels` (Table 1: 128 -> 64, 32, 16, 8 -> 3 at 256 px);
    64 px uses 3 stages, 128 px 4, 256 px 5.
    """

    def __init__(self, latent_size: int, image_size: int, channels: int = 128,
                 upsample: str = "tconv5", norm: str = "batch") -> None:
        super().__init__()
        if upsample not in UPSAMPLERS or norm not in NORMS:
            raise ValueError(f"upsample must be one of {UPSAMPLERS} and norm one of {NORMS}, "
                             f"got {upsample!r}, {norm!r}")
        stages = (image_size // START_SIZE).bit_length() - 1
        if image_size < 2 * START_SIZE or START_SIZE << stages != image_size:
            raise ValueError(f"image_size must be {START_SIZE} times a power of 2 (>= 16), "
                             f"got {image_size}")
        if channels >> (stages - 1) < 1:
            raise ValueError(f"channels={channels} cannot halve {stages - 1} times")
        self.channels = channels
        self.fc = nn.Linear(latent_size, channels * START_SIZE * START_SIZE)
        self.bn = _norm(norm, channels)
        self.blocks = nn.Sequential(*[
            nn.Sequential(_doubling(upsample, channels >> i, channels >> (i + 1), bias=False),
                          _norm(norm, channels >> (i + 1)), nn.ReLU(inplace=True))
            for i in range(stages - 1)])
        self.to_rgb = nn.Sequential(_doubling(upsample, channels >> (stages - 1), 3, bias=True),
                                    nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.fc(z).view(-1, self.channels, START_SIZE, START_SIZE)
        return self.to_rgb(self.blocks(self.bn(x)))
