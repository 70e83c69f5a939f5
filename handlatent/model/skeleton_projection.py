"""The decoded 3D skeleton projected into the crop: the keypoints a skeleton-guided image decoder
draws along, so that the image and the 3D view agree by construction.

The decoded pose is root-relative, in bone units, in the camera frame (x right, y down, z
forward; `DVAE.decode_pose`). The crop's camera model is the one every synthetic hand is
rendered with (handlatent/synth/camera.py) and hand3d's crop of real photographs follows: a
pinhole camera, then a square box around the projected keypoints' bounding box. Written in the
pose's own units, with the palm at (X, Y, Z) metres and the hand's scale s metres per bone unit:

    p = (a + kappa (x, y)) / (1 + kappa z),     a = (X, Y) / Z,   kappa = s / Z
    side = margin * zoom * max(bounding box of p),   centre = box centre + shift * side
    uv = 2 (p - centre) / side                  (the [-1, 1] frame of bone_maps.py)

exactly (no approximation) for a synthetic hand given its true a, kappa, zoom and shift. What the
pose cannot know, where the palm sits (a), how far away it is (kappa), the crop's zoom and shift
and which hand it is, is image content: a small head reads these six numbers and the side from
the whole latent (`CropHead`), starting at a centred, unzoomed, unshifted right-side-up crop.
"""

from __future__ import annotations

import torch
from torch import nn

from handlatent.model.mlp import MLP

CROP_MARGIN = 1.3 * 1.1  # synth/camera.py's margin times the mean of its zoom (1 to 1.2)
KAPPA = 0.1  # a typical bone length over the palm's distance (0.04 m at 0.4 m)
NUM_CROP_PARAMETERS = 7  # log kappa, a (2), log zoom, shift (2), right-hand logit


def project_to_crop(xyz: torch.Tensor, crop: torch.Tensor) -> torch.Tensor:
    """Normalised crop coordinates (B, 21, 2) of a root-relative skeleton `xyz` (B, 21, 3, bone
    units, camera frame) under the crop parameters `crop` (B, >= 6) of `CropHead`."""
    xyz, crop = xyz.float(), crop.float()
    kappa = KAPPA * crop[:, 0].exp()[:, None, None]
    p = (crop[:, None, 1:3] + kappa * xyz[..., :2]) / (1 + kappa * xyz[..., 2:3]).clamp(min=0.2)
    lo, hi = p.amin(1), p.amax(1)
    side = (CROP_MARGIN * crop[:, 3].exp() * (hi - lo).amax(-1)).clamp(min=1e-4)[:, None]
    centre = 0.5 * (lo + hi) + crop[:, 4:6] * side
    return 2 * (p - centre[:, None]) / side[..., None]


class CropHead(MLP):
    """z -> the crop parameters of `project_to_crop` and the right-hand logit (B, 7); its last
    layer starts at zero: a centred crop of a hand 0.4 m away, left or right undecided. Two
    hidden layers: the side is in z but not linearly (a linear probe on the bundled model's
    posterior means reads it no better than chance, a 256-wide MLP 78 % right)."""

    def __init__(self, latent_size: int, hidden: int = 256) -> None:
        super().__init__(latent_size, NUM_CROP_PARAMETERS, hidden, depth=2)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    @staticmethod
    def is_right(crop: torch.Tensor) -> torch.Tensor:
        """The side (B,) bool that `crop` (B, 7) says the hand is."""
        return crop[:, 6] > 0
