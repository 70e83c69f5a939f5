"""The disentangled hand VAE (dVAE) of Yang & Yao, CVPR 2019: its encoders and decoders."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

import torch
from torch import nn

from handlatent.model.image_decoder import GUIDES, NORMS, UPSAMPLERS, DCGANDecoder
from handlatent.model.layout import LatentLayout
from handlatent.model.mlp import MLP
from handlatent.model.resnet import resnet18
from handlatent.model.skeleton_projection import project_to_crop
from handlatent.rotations import project_to_so3
from handlatent.skeleton import NUM_KEYPOINTS, Handedness, compose

IMAGE_SIZES = (64, 128, 256)
# The image encoder takes images in [-1, 1] and feeds ResNet-18 ImageNet-normalised pixels, so
# that torchvision's pretrained weights see the input statistics they were trained on.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelConfig:
    """Everything that determines the dVAE's architecture (stored in checkpoints).

    `decoder_channels` is the channel count after the image decoder's FC reshape (Table 1: 128);
    `hidden` the width of the pose MLPs (Table 2: 512); `decoder_upsample`, `decoder_norm` and
    `decoder_guide` the image decoder's doubling stage, normalisation and bone-map guide,
    `decoder_min_channels` the floor of its halving channels and `decoder_blocks` its residual
    blocks per size (image_decoder.py; the paper's are tconv5, batch, none, no floor and no
    blocks, the defaults, which checkpoints written before these fields also mean).
    """

    image_size: int = 128
    z_y1: int = 32
    z_y2: int = 16
    z_u: int = 16
    hidden: int = 512
    decoder_channels: int = 128
    decoder_upsample: str = "tconv5"
    decoder_norm: str = "batch"
    decoder_guide: str = "none"
    decoder_min_channels: int = 1
    decoder_blocks: int = 0

    def __post_init__(self) -> None:
        choices = {"decoder_upsample": UPSAMPLERS, "decoder_norm": NORMS,
                   "decoder_guide": GUIDES}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in choices:
                if value not in choices[f.name]:
                    raise ValueError(f"model config {f.name} must be one of "
                                     f"{choices[f.name]}, got {value!r}")
            elif not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"model config {f.name} must be an int, got {value!r}")
        if self.image_size not in IMAGE_SIZES:
            raise ValueError(f"model config image_size must be one of {IMAGE_SIZES}, "
                             f"got {self.image_size}")
        if min(self.hidden, self.decoder_channels, self.decoder_min_channels) < 1 \
                or self.decoder_blocks < 0:
            raise ValueError("model config hidden, decoder_channels and decoder_min_channels "
                             "must be >= 1, decoder_blocks >= 0")
        LatentLayout(self.z_y1, self.z_y2, self.z_u)  # raises on bad latent sizes

    @property
    def layout(self) -> LatentLayout:
        """The latent layout given by z_y1, z_y2, z_u."""
        return LatentLayout(self.z_y1, self.z_y2, self.z_u)

    def to_dict(self) -> dict[str, int | str]:
        """Plain dict, for checkpoints and YAML configs."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        """Inverse of `to_dict`; unknown keys are an error naming them."""
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**data)


class DVAE(nn.Module):
    """Image, CPose and viewpoint encoders and decoders sharing one latent z = [z_y1|z_y2|z_u].

    Images are (B, 3, S, S) in [-1, 1]; CPose (B, 21, 3) in bone-scale units; viewpoints (B, 3, 3)
    rotations (docs/conventions.md section 2). `forward` is `decode`.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.layout = config.layout
        d, h = self.layout.total, config.hidden
        self.image_encoder = resnet18(2 * d)
        self.cpose_encoder = MLP(NUM_KEYPOINTS * 3, 2 * config.z_y1, h, depth=2)
        self.viewpoint_encoder = MLP(9, 2 * config.z_y2, h, depth=2)
        self.image_decoder = DCGANDecoder(d, config.image_size, config.decoder_channels,
                                          config.decoder_upsample, config.decoder_norm,
                                          config.decoder_guide, h,
                                          config.decoder_min_channels, config.decoder_blocks)
        self.cpose_decoder = MLP(config.z_y1, NUM_KEYPOINTS * 3, h, depth=1)
        self.viewpoint_decoder = MLP(config.z_y2, 9, h, depth=1)
        self.register_buffer("image_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("image_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1),
                             persistent=False)

    def encode_image(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior q(z | x) of the whole latent: mean and log-variance, each (B, d)."""
        x = ((image + 1) / 2 - self.image_mean) / self.image_std
        mu, logvar = self.image_encoder(x).chunk(2, dim=-1)
        return mu, logvar

    def encode_labels(self, cpose: torch.Tensor, viewpoint: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Posteriors q(z_y1 | CPose), q(z_y2 | viewpoint): mu_y1, logvar_y1, mu_y2, logvar_y2."""
        mu_y1, logvar_y1 = self.cpose_encoder(cpose).chunk(2, dim=-1)
        return (mu_y1, logvar_y1) + self.encode_viewpoint(viewpoint)

    def latent_from_labels(self, cpose: torch.Tensor, viewpoint: torch.Tensor,
                           content: torch.Tensor) -> torch.Tensor:
        """z (B, d) from labels: z_y1, z_y2 the means of q(z_y1 | CPose) and q(z_y2 | viewpoint),
        z_u taken from `content` (B, d), e.g. the image posterior's mean (as ELBO_dis decodes)."""
        mu_y1, _, mu_y2, _ = self.encode_labels(cpose, viewpoint)
        return self.layout.join({"z_y1": mu_y1, "z_y2": mu_y2,
                                 "z_u": self.layout.split(content)["z_u"]})

    def encode_viewpoint(self, viewpoint: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior q(z_y2 | viewpoint) of rotations (B, 3, 3): mean and log-variance."""
        mu_y2, logvar_y2 = self.viewpoint_encoder(viewpoint).chunk(2, dim=-1)
        return mu_y2, logvar_y2

    def decode_pose(self, z: torch.Tensor, is_right: Handedness = None
                    ) -> dict[str, torch.Tensor]:
        """CPose from z_y1, viewpoint (a rotation) from z_y2, and xyz = compose(CPose, viewpoint);
        `viewpoint_raw` is the decoder's 9 numbers before the projection onto SO(3).

        xyz is root-relative in bone-scale units (times the hand's scale for metres); cheap, as
        the image decoder is not run. `is_right` None means a left hand, except for a
        skeleton-guided model, which reads the side from z (`hand_side`) as its image does.
        """
        if is_right is None:
            is_right = self.hand_side(z)
        parts = self.layout.split(z)
        cpose = self.cpose_decoder(parts["z_y1"]).view(-1, NUM_KEYPOINTS, 3)
        raw = self.viewpoint_decoder(parts["z_y2"]).view(-1, 3, 3)
        viewpoint = project_to_so3(raw)
        return {"cpose": cpose, "viewpoint": viewpoint, "viewpoint_raw": raw,
                "xyz": compose(cpose, viewpoint, is_right=is_right)}

    def decode(self, z: torch.Tensor, is_right: Handedness = None,
               guide: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Image (B, 3, S, S) in [-1, 1] from the whole z, plus everything `decode_pose` gives
        and, with a bone-guided image decoder, "uv": the normalised 2-D keypoints it decodes
        (and draws along, unless `guide` gives the keypoints to draw along instead).

        A skeleton-guided decoder draws along the decoded 3D pose projected into the crop
        (skeleton_projection.py), of the side `is_right` says or, where None, of the side its
        crop head reads from z: then "xyz" is that side's pose too, and "is_right" (B,) bool
        and "crop" (B, 7) say what was drawn.
        """
        crop_head = self.image_decoder.crop
        if crop_head is None:
            return {**self.image_decoder.draw(z, guide), **self.decode_pose(z, is_right)}
        crop = crop_head(z)
        is_right = (crop_head.is_right(crop) if is_right is None else
                    torch.as_tensor(is_right, device=z.device).bool().expand(len(z)))
        pose = self.decode_pose(z, is_right)
        uv = project_to_crop(pose["xyz"], crop)
        drawn = self.image_decoder.draw(z, uv if guide is None else guide)
        return {**drawn, **pose, "uv": uv, "crop": crop, "is_right": is_right}

    def hand_side(self, z: torch.Tensor) -> torch.Tensor | None:
        """Which latents (B,) a skeleton-guided model draws as right hands (its crop head reads
        the side from z); None for other models, whose decoded poses are left hands."""
        crop_head = self.image_decoder.crop
        return None if crop_head is None else crop_head.is_right(crop_head(z))

    def forward(self, z: torch.Tensor, is_right: Handedness = None,
                guide: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """`decode`, so that hooks and `torch.func.functional_call` see the generative pass."""
        return self.decode(z, is_right, guide)

    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """`n` latents (n, d) from the prior N(0, I), on the model's device."""
        device = self.image_mean.device if generator is None else generator.device
        z = torch.randn(n, self.layout.total, generator=generator, device=device)
        return z.to(self.image_mean)


def build_model(config: ModelConfig) -> DVAE:
    """A freshly initialised dVAE for `config`."""
    return DVAE(config)
