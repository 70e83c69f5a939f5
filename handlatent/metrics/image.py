"""Image reconstruction quality: PSNR over the whole image and inside the hand, and sharpness.

Images are float arrays or tensors in [-1, 1] (the model's range), (N, 3, S, S); masks (N, S, S)
bool mark the hand's pixels. PSNR is taken in [0, 1] units (peak 1), pooled over every value of
the set (10 log10(1 / MSE) of all squared errors together, not a mean of per-image PSNRs).
Sharpness is the mean gradient magnitude of the reconstruction over that of the input inside
the hand: below 1 the reconstruction is blurred, above 1 it has more edge energy than the input
(grain, checkerboard).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def psnr_db(sq_error_sum: float, count: int) -> float:
    """PSNR in dB of `count` values whose squared errors (in [0, 1] units) sum to `sq_error_sum`."""
    if count == 0:
        return math.nan
    mse = sq_error_sum / count
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


def gradient_magnitude(images: torch.Tensor) -> torch.Tensor:
    """Per-pixel |∇x| of (N, 3, S, S) images in [-1, 1], in [0, 1] units: forward differences,
    the Euclidean norm over x, y and the channels' mean; shape (N, S-1, S-1)."""
    x = (images.float() + 1) / 2
    dx = x[..., :-1, 1:] - x[..., :-1, :-1]
    dy = x[..., 1:, :-1] - x[..., :-1, :-1]
    return (dx.square() + dy.square()).sqrt().mean(1)


@dataclass
class ImageQuality:
    """Running sums over batches of (reconstruction, input[, mask]); `results()` gives the
    numbers. Hand measures need masks; without them they stay None."""

    sq_error: float = 0.0
    values: int = 0
    hand_sq_error: float = 0.0
    hand_values: int = 0
    grad_reconstruction: float = 0.0
    grad_input: float = 0.0
    masked_batches: int = 0
    unmasked_batches: int = 0

    def add(self, reconstruction: torch.Tensor, target: torch.Tensor,
            mask: torch.Tensor | None = None) -> None:
        """Accumulate one batch: (N, 3, S, S) images in [-1, 1] and (N, S, S) hand masks."""
        err = ((reconstruction.float() - target.float()) / 2).square()  # [0, 1] units
        self.sq_error += float(err.sum())
        self.values += err.numel()
        if mask is None:
            self.unmasked_batches += 1
            return
        self.masked_batches += 1
        mask = mask.to(err.device).bool()
        self.hand_sq_error += float(err.sum(1)[mask].sum())
        self.hand_values += int(mask.sum()) * err.shape[1]
        inner = mask[:, :-1, :-1] & mask[:, 1:, :-1] & mask[:, :-1, 1:]  # all taps on the hand
        self.grad_reconstruction += float(gradient_magnitude(reconstruction)[inner].sum())
        self.grad_input += float(gradient_magnitude(target)[inner].sum())

    def results(self) -> dict[str, float | None | str]:
        """`image_psnr_db`, `hand_psnr_db`, `sharpness` (None, with `note`, without masks)."""
        out: dict[str, float | None | str] = {"image_psnr_db": psnr_db(self.sq_error, self.values),
                                              "hand_psnr_db": None, "sharpness": None}
        if self.unmasked_batches:
            out["note"] = ("hand PSNR and sharpness need hand masks (synthetic datasets store "
                           "them); this data has none" if not self.masked_batches else
                           "hand PSNR and sharpness over the samples with masks only")
        if self.hand_values:
            out["hand_psnr_db"] = psnr_db(self.hand_sq_error, self.hand_values)
            out["sharpness"] = (self.grad_reconstruction / self.grad_input
                                if self.grad_input > 0 else None)
        return out
