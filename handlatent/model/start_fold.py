"""The image decoder's start folded into one matrix, for a decoder prepared for inference.

From z to the first doubling stage's normalised output everything is affine while BatchNorm
uses its running statistics: FC -> reshape -> BatchNorm -> transposed convolution (of the
latent's channels) -> BatchNorm. At batch 1 that chain costs the FC's matrix plus a 13.6 M
multiply-add convolution over an 8 x 8 input; folded, it is one (S1 * S1 * C1, d) matrix times
z (4 MiB at 128 channels), plus the convolution of the five bone maps' channels alone where the
decoder is guided. The same outputs to float rounding (folded in float64); the ReLU follows.

A fold is a snapshot of the weights it was built from: only a decoder prepared for inference
(`DCGANDecoder.prepare_for_inference`) builds one, and that decoder rebuilds it whenever its
weights are loaded or moved and drops it when it trains again.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


def foldable(fc: nn.Linear, norm: nn.Module, stage: nn.Module) -> bool:
    """Whether `fc` -> `norm` -> `stage` (a doubling stage: transposed convolution,
    normalisation, ReLU) is the affine chain `StartFold` folds: BatchNorm with running
    statistics on both sides of a bias-free `ConvTranspose2d`."""
    conv, norm2 = stage[0], stage[1]
    return (isinstance(conv, nn.ConvTranspose2d) and conv.bias is None
            and all(isinstance(n, nn.BatchNorm2d) and n.track_running_stats
                    for n in (norm, norm2)))


@dataclass(frozen=True)
class StartFold:
    """The folded start: z (B, d) times `matrix` plus `bias` gives the first stage's normalised
    output; `map_weight` convolves the bone maps' channels (None for an unguided decoder)."""

    matrix: torch.Tensor            # (S1 * S1 * C1, d), rows ordered (y, x, channel)
    bias: torch.Tensor              # (S1 * S1 * C1,)
    map_weight: torch.Tensor | None  # (5, C1, k, k): the bone maps' part of the stage's kernel
    conv: nn.ConvTranspose2d        # the folded stage's convolution (its stride and padding)
    side: int                       # S1: the stage's output side

    @classmethod
    def build(cls, fc: nn.Linear, norm: nn.BatchNorm2d, stage: nn.Sequential,
              channels: int, side: int) -> StartFold:
        """Fold `fc` (output `channels` x `side` x `side`) -> `norm` -> `stage`'s convolution
        and normalisation, in float64, into tensors of the FC's dtype. The stage's inputs beyond
        `channels` are bone maps: their part of the kernel is kept apart, scaled like the rest."""
        conv, norm2 = stage[0], stage[1]
        with torch.inference_mode(False), torch.no_grad():  # plain tensors, kept
            dtype = fc.weight.dtype
            scale0, shift0 = _affine(norm)
            scale1, shift1 = _affine(norm2)
            # The FC's columns and bias as side x side images of its channels, normalised.
            columns = (fc.weight.double().t().reshape(-1, channels, side, side)
                       * scale0[:, None, None])
            start = (fc.bias.double().reshape(1, channels, side, side) * scale0[:, None, None]
                     + shift0[:, None, None])
            kernel = conv.weight.double()
            images = nn.functional.conv_transpose2d(
                torch.cat([columns, start]), kernel[:channels], stride=conv.stride,
                padding=conv.padding, output_padding=conv.output_padding)
            images = images * scale1[:, None, None]
            images[-1] += shift1[:, None, None]
            flat = images.permute(0, 2, 3, 1).reshape(len(images), -1)  # (d + 1, S1 S1 C1)
            map_weight = (None if kernel.shape[0] == channels
                          else (kernel[channels:] * scale1[:, None, None]).to(dtype))
            return cls(flat[:-1].t().contiguous().to(dtype), flat[-1].to(dtype), map_weight,
                       conv, images.shape[-1])

    def __call__(self, z: torch.Tensor, maps: torch.Tensor | None,
                 memory_format: torch.memory_format) -> torch.Tensor:
        """The first stage's output after its normalisation, before the ReLU: (B, C1, S1, S1)
        in `memory_format`, from z (B, d) and the stage's bone maps (B, 5, 8, 8) or None."""
        c1, s1 = self.conv.out_channels, self.side
        out = torch.addmm(self.bias, z.to(self.matrix.dtype), self.matrix.t())
        out = out.view(-1, s1, s1, c1).permute(0, 3, 1, 2)  # channels_last strides, no copy
        if self.map_weight is not None:
            out = out + nn.functional.conv_transpose2d(
                maps.to(out.dtype).contiguous(memory_format=memory_format), self.map_weight,
                stride=self.conv.stride, padding=self.conv.padding,
                output_padding=self.conv.output_padding)
        return out.contiguous(memory_format=memory_format)


def _affine(norm: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """BatchNorm at evaluation as scale and shift per channel (float64)."""
    scale = (norm.running_var.double() + norm.eps).rsqrt()
    if norm.weight is not None:
        scale = scale * norm.weight.double()
    shift = -norm.running_mean.double() * scale
    if norm.bias is not None:
        shift = shift + norm.bias.double()
    return scale, shift
