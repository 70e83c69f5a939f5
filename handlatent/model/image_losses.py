"""Image distances beside the squared error, for training an image decoder to draw sharp hands:
structural similarity, the focal frequency loss and a perceptual distance through a fixed
random-weight CNN. Each returns one number per sample (B,), lower is better; images in [-1, 1].

No pretrained network: the perceptual features come from a CNN with fixed random weights drawn
from a fixed seed, which Liu et al. ("Generic Perceptual Loss for Modeling Structured Output
Dependencies", CVPR 2021, arXiv 2103.10571) found to work about as well as pretrained VGG
features, and which keeps every model reproducible from this repository alone.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

SSIM_C1, SSIM_C2 = (0.01 * 2) ** 2, (0.03 * 2) ** 2  # the usual constants for a range of 2


def ssim(prediction: torch.Tensor, target: torch.Tensor, window: int = 7,
         weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean structural similarity (Wang et al. 2004) per sample over a uniform `window` (B,),
    with local statistics from average pooling; `weight` (B, 1, S, S) weighs the SSIM map
    (e.g. the hand's pixels more)."""
    x, y = prediction.float(), target.float()
    pool = lambda t: F.avg_pool2d(t, window, 1, window // 2, count_include_pad=False)  # noqa: E731
    mx, my = pool(x), pool(y)
    vx, vy, cxy = pool(x * x) - mx * mx, pool(y * y) - my * my, pool(x * y) - mx * my
    s = ((2 * mx * my + SSIM_C1) * (2 * cxy + SSIM_C2)
         / ((mx * mx + my * my + SSIM_C1) * (vx + vy + SSIM_C2)))
    if weight is None:
        return s.flatten(1).mean(-1)
    w = weight.float().expand_as(s)
    return (s * w).flatten(1).sum(-1) / w.flatten(1).sum(-1)


def focal_frequency(prediction: torch.Tensor, target: torch.Tensor,
                    alpha: float = 1.0) -> torch.Tensor:
    """Focal frequency loss (Jiang et al., ICCV 2021) per sample (B,): the squared distance of
    the two images' 2-D spectra, each frequency weighted by its own (normalised, not
    differentiated) distance to the power `alpha`, so the frequencies drawn worst count most."""
    fp = torch.fft.fft2(prediction.float(), norm="ortho")
    ft = torch.fft.fft2(target.float(), norm="ortho")
    distance = (fp - ft).abs().square()
    w = distance.detach().sqrt().pow(alpha)
    w = w / w.flatten(-2).amax(-1)[..., None, None].clamp(min=1e-12)
    return (w * distance).flatten(1).mean(-1)


class RandomFeatures(nn.Module):
    """A fixed random-weight CNN (three stride-2 stages of two 3x3 convolutions and ReLUs,
    32/64/128 channels, Kaiming-initialised from `seed`) whose feature maps give a multi-scale
    perceptual distance: the L1 distance of each stage's features, each stage's divided by its
    mean feature magnitude on the target, summed (B,). Its weights never train."""

    def __init__(self, seed: int = 0, widths: tuple[int, ...] = (32, 64, 128)) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        stages, c = [], 3
        for w in widths:
            convs = [nn.Conv2d(c, w, 3, stride=2, padding=1), nn.Conv2d(w, w, 3, padding=1)]
            for conv in convs:
                fan_in = conv.in_channels * 9
                with torch.no_grad():
                    conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator)
                                      * (2.0 / fan_in) ** 0.5)
                    conv.bias.zero_()
            stages.append(nn.Sequential(convs[0], nn.ReLU(), convs[1], nn.ReLU()))
            c = w
        self.stages = nn.ModuleList(stages)
        self.requires_grad_(False)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The perceptual distance per sample (B,) (see the class)."""
        x, y = prediction, target
        total = prediction.new_zeros(len(prediction), dtype=torch.float32)
        for stage in self.stages:
            x, y = stage(x), stage(y)
            scale = y.detach().float().abs().flatten(1).mean(-1).clamp(min=1e-6)
            total = total + (x.float() - y.float()).abs().flatten(1).mean(-1) / scale
        return total
