"""The image decoder's start folded into one matrix for decoding without gradients.

From z to the first doubling stage's normalised output everything is affine while BatchNorm
uses its running statistics: FC -> reshape -> BatchNorm -> transposed convolution (of the
latent's channels) -> BatchNorm. At batch 1 that chain costs the FC's matrix plus a 13.6 M
multiply-add convolution over an 8 x 8 input; folded, it is one (S1 * S1 * C1, d) matrix times
z (4 MiB at 128 channels), plus the convolution of the five bone maps' channels alone where the
decoder is guided. The same outputs to float rounding (folded in float64); the ReLU follows.
"""

from __future__ import annotations

import torch
from torch import nn

from handlatent.model.weights_key import weights_key


def foldable(fc: nn.Linear, norm: nn.Module, stage: nn.Module) -> bool:
    """Whether `fc` -> `norm` -> `stage` (a doubling stage: transposed convolution,
    normalisation, ReLU) is the affine chain `StartFold` folds: BatchNorm with running
    statistics on both sides of a bias-free `ConvTranspose2d`."""
    conv, norm2 = stage[0], stage[1]
    return (isinstance(conv, nn.ConvTranspose2d) and conv.bias is None
            and all(isinstance(n, nn.BatchNorm2d) and n.track_running_stats
                    for n in (norm, norm2)))


class StartFold:
    """Folded form of a decoder's start (module docstring), built on first use and kept while
    the weights and running statistics it was built from stay (their versions and storage)."""

    def __init__(self, fc: nn.Linear, norm: nn.BatchNorm2d, stage: nn.Sequential,
                 channels: int, side: int) -> None:
        self.fc, self.norm, self.conv, self.norm2 = fc, norm, stage[0], stage[1]
        self.channels, self.side = channels, side  # FC output: channels x side x side; the
        # stage's inputs beyond `channels` are bone maps
        self._built: tuple[tuple, torch.Tensor, torch.Tensor, torch.Tensor | None] | None = None

    def __call__(self, z: torch.Tensor, maps: torch.Tensor | None,
                 memory_format: torch.memory_format) -> torch.Tensor:
        """The first stage's output after its normalisation, before the ReLU: (B, C1, S1, S1)
        in `memory_format`, from z (B, d) and the stage's bone maps (B, 5, 8, 8) or None."""
        matrix, bias, map_weight = self._weights()
        c1, s1 = self.conv.out_channels, 2 * self.side
        out = torch.addmm(bias, z.to(matrix.dtype), matrix.t())  # rows ordered (y, x, channel)
        out = out.view(-1, s1, s1, c1).permute(0, 3, 1, 2)  # channels_last strides, no copy
        if map_weight is not None:
            out = out + nn.functional.conv_transpose2d(
                maps.to(out.dtype).contiguous(memory_format=memory_format), map_weight,
                stride=self.conv.stride, padding=self.conv.padding,
                output_padding=self.conv.output_padding)
        return out.contiguous(memory_format=memory_format)

    def _tensors(self) -> list[torch.Tensor]:
        # A training pass updates the running statistics without bumping their versions;
        # it bumps num_batches_tracked's.
        norms = [t for n in (self.norm, self.norm2) for t in
                 (n.weight, n.bias, n.running_mean, n.running_var, n.num_batches_tracked)]
        return [self.fc.weight, self.fc.bias, self.conv.weight, *norms]

    def _weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        key = weights_key(self._tensors())
        if self._built is None or self._built[0] != key:
            with torch.inference_mode(False), torch.no_grad():  # plain tensors, kept
                self._built = (key, *self._fold())
        return self._built[1], self._built[2], self._built[3]

    def _fold(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(matrix (S1 S1 C1, d), bias (S1 S1 C1,), bone maps' kernel or None), in float64
        while folding and the FC's dtype after."""
        dtype, c, side = self.fc.weight.dtype, self.channels, self.side
        scale0, shift0 = _affine(self.norm)
        scale1, shift1 = _affine(self.norm2)
        # The FC's columns and bias as 8 x 8 images of the latent's channels, normalised.
        columns = self.fc.weight.double().t().reshape(-1, c, side, side) * scale0[:, None, None]
        start = (self.fc.bias.double().reshape(1, c, side, side) * scale0[:, None, None]
                 + shift0[:, None, None])
        kernel = self.conv.weight.double()
        images = nn.functional.conv_transpose2d(
            torch.cat([columns, start]), kernel[:c], stride=self.conv.stride,
            padding=self.conv.padding, output_padding=self.conv.output_padding)
        images = images * scale1[:, None, None]
        images[-1] += shift1[:, None, None]
        flat = images.permute(0, 2, 3, 1).reshape(len(images), -1)  # (d + 1, S1 S1 C1)
        map_weight = None
        if kernel.shape[0] > c:  # bone maps: their channels' kernel, scaled like the rest
            map_weight = (kernel[c:] * scale1[:, None, None]).to(dtype)
        return flat[:-1].t().contiguous().to(dtype), flat[-1].to(dtype), map_weight


def _affine(norm: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """BatchNorm at evaluation as scale and shift per channel (float64)."""
    scale = (norm.running_var.double() + norm.eps).rsqrt()
    if norm.weight is not None:
        scale = scale * norm.weight.double()
    shift = -norm.running_mean.double() * scale
    if norm.bias is not None:
        shift = shift + norm.bias.double()
    return scale, shift
