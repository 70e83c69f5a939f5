"""DCGAN image decoder of the supplement's Table 1, for 64, 128 or 256 px outputs."""

from __future__ import annotations

import torch
from torch import nn

START_SIZE = 8  # Table 1 reshapes the FC output to 8 x 8 x channels


def _tconv(in_channels: int, out_channels: int, bias: bool) -> nn.ConvTranspose2d:
    """5x5 transposed convolution, stride 2, that exactly doubles height and width.

    out = 2 (in - 1) - 2 padding + 5 + output_padding = 2 in needs padding 2, output_padding 1
    (the paper's padding 1 would give 2 in + 1).
    """
    return nn.ConvTranspose2d(in_channels, out_channels, 5, stride=2, padding=2,
                              output_padding=1, bias=bias)


class DCGANDecoder(nn.Module):
    """z -> image in [-1, 1]: FC, reshape, BN, then transposed convs doubling up to `image_size`.

    Channels halve at each stage from `channels` (Table 1: 128 -> 64, 32, 16, 8 -> 3 at 256 px);
    64 px uses 3 stages, 128 px 4, 256 px 5.
    """

    def __init__(self, latent_size: int, image_size: int, channels: int = 128) -> None:
        super().__init__()
        stages = (image_size // START_SIZE).bit_length() - 1
        if image_size < 2 * START_SIZE or START_SIZE << stages != image_size:
            raise ValueError(f"image_size must be {START_SIZE} times a power of 2 (>= 16), "
                             f"got {image_size}")
        if channels >> (stages - 1) < 1:
            raise ValueError(f"channels={channels} cannot halve {stages - 1} times")
        self.channels = channels
        self.fc = nn.Linear(latent_size, channels * START_SIZE * START_SIZE)
        self.bn = nn.BatchNorm2d(channels)
        self.blocks = nn.Sequential(*[
            nn.Sequential(_tconv(channels >> i, channels >> (i + 1), bias=False),
                          nn.BatchNorm2d(channels >> (i + 1)), nn.ReLU(inplace=True))
            for i in range(stages - 1)])
        self.to_rgb = nn.Sequential(_tconv(channels >> (stages - 1), 3, bias=True), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.fc(z).view(-1, self.channels, START_SIZE, START_SIZE)
        return self.to_rgb(self.blocks(self.bn(x)))
