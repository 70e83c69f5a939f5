"""A stand-in for the dVAE that answers from a dataset's ground truth plus known errors, so that
the evaluator's unit handling (bone units x GT scale, root-relative, handedness, visibility)
can be checked against hand-computed metrics."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from handlatent.model import DVAE, LatentLayout
from handlatent.model.bone_maps import normalise_uv
from handlatent.skeleton import compose


class OracleModel(torch.nn.Module):
    """The DVAE interface, answering from the dataset's ground truth.

    encode_image finds the input among the dataset's images and puts its index in z[0];
    decode_pose returns compose(GT CPose, GT viewpoint, handedness as passed) in bone units plus,
    per sample and keypoint, `error_m[i, j]` metres (/ GT scale) in a fixed random direction.
    decode returns the input image beside that pose and, with `uv_error_px` (per sample and
    keypoint), a bone-guided decoder's 2-D keypoints: the GT uv that many pixels off. Told to
    draw along the GT uv (`guide`), it returns the input brightened by ALONG_LABELS_OFFSET
    (another amount along any other keypoints), so that the evaluator's call can be checked.
    """

    ALONG_LABELS_OFFSET = 0.2  # in [-1, 1] units: 0.1 in [0, 1] units, PSNR 20 dB

    def __init__(self, dataset, error_m, seed: int = 0, uv_error_px=None) -> None:
        super().__init__()
        items = [dataset[i] for i in range(len(dataset))]
        self.layout = LatentLayout(z_y1=2, z_y2=2, z_u=1)
        self.config = SimpleNamespace(image_size=items[0]["image"].shape[-1])
        self.images = torch.stack([it["image"] for it in items])
        self.cpose = torch.stack([it["cpose"] for it in items]).double()
        self.viewpoint = torch.stack([it["viewpoint"] for it in items]).double()
        scale = torch.stack([it["scale"] for it in items]).double().reshape(-1, 1, 1)
        dirs = torch.from_numpy(np.random.default_rng(seed).normal(size=(len(items), 21, 3)))
        error = torch.as_tensor(error_m, dtype=torch.float64)[..., None]
        self.offset = dirs / dirs.norm(dim=-1, keepdim=True) * error / scale
        self.uv = None
        if uv_error_px is not None:
            angle = torch.rand(len(items), 21, generator=torch.Generator().manual_seed(seed))
            step = torch.stack([angle.mul(6.28).cos(), angle.mul(6.28).sin()], -1)
            uv = torch.stack([it["uv"] for it in items])
            off = step * torch.as_tensor(uv_error_px, dtype=torch.float32)[..., None]
            self.uv = normalise_uv(uv + off, self.config.image_size)
            self.labels_uv = normalise_uv(uv, self.config.image_size)

    def _index(self, z: torch.Tensor) -> torch.Tensor:
        return z[:, 0].round().long()

    def encode_image(self, x):
        d = (x[:, None] - self.images[None]).flatten(2).square().sum(-1)
        mu = torch.zeros(len(x), self.layout.total)
        mu[:, 0] = d.argmin(1).float()
        return mu, torch.zeros_like(mu)

    def encode_labels(self, cpose, viewpoint):
        return tuple(torch.zeros(len(cpose), 2) for _ in range(4))

    latent_from_labels = DVAE.latent_from_labels   # built on encode_labels above

    def decode_pose(self, z, is_right=None):
        i = self._index(z)
        xyz = compose(self.cpose[i], self.viewpoint[i], is_right=is_right) + self.offset[i]
        return {"cpose": self.cpose[i], "viewpoint": self.viewpoint[i], "xyz": xyz}

    def decode(self, z, is_right=None, guide=None):
        out = {"image": self.images[self._index(z)], **self.decode_pose(z, is_right)}
        if self.uv is not None:
            out["uv"] = self.uv[self._index(z)]
        if guide is not None:
            exact = torch.allclose(guide, self.labels_uv[self._index(z)])
            out["image"] = out["image"] + self.ALONG_LABELS_OFFSET * (1 if exact else 2)
        return out
