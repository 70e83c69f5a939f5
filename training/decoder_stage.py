"""The decoder stage: the image decoder trained on its own under a frozen encoder.

The image encoder and the pose networks are frozen (evaluation mode, no gradients, batch-norm
statistics untouched), so the latent, the KL and every pose row stay exactly what they were; z
is drawn from the frozen image posterior q(z | x) and only the image decoder learns, on the
image terms of `DecoderStageConfig` (an image's pixels and its sharpness), plus, for a
skeleton-guided decoder, its crop head's keypoints and side against the labels.

Where the training set is fixed (synthetic folders), the posteriors are computed once and kept
(`PosteriorTable`): the frozen encoder's forward pass, half of a step otherwise, then costs
nothing per step.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Mapping

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from handlatent.data.synthetic import SyntheticHandDataset
from handlatent.model.bone_maps import normalise_uv
from handlatent.model.dvae import DVAE
from handlatent.model.image_losses import RandomFeatures, focal_frequency, ssim
from handlatent.model.objective import sample_posterior
from handlatent.model.skeleton_projection import project_to_crop
from handlatent.training.config import ConfigError, DecoderStageConfig, TrainConfig
from handlatent.training.run_dir import say

POSTERIOR_FORMAT = "handlatent-posteriors/1"


def freeze_all_but_image_decoder(model: DVAE) -> None:
    """No gradient to anything but the image decoder (the optimizer skips the rest)."""
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name.startswith("image_decoder."))


class DecoderStageLoss(nn.Module):
    """loss(batch) -> (total, terms) of the decoder stage (module docstring). The batch may
    carry the posterior ("mu", "logvar") from a `PosteriorTable`; else the frozen encoder gives
    it. Its `train()` puts only the image decoder in training mode."""

    def __init__(self, model: DVAE, cfg: DecoderStageConfig, w_hand: float) -> None:
        super().__init__()
        self.model, self.cfg, self.w_hand = model, cfg, w_hand
        self.features = RandomFeatures() if cfg.w_perceptual else None
        freeze_all_but_image_decoder(model)

    def train(self, mode: bool = True) -> DecoderStageLoss:
        """Training mode for the image decoder alone: the frozen networks stay in evaluation
        mode, their batch-norm statistics untouched."""
        super().train(False)
        self.model.image_decoder.train(mode)
        return self

    def forward(self, batch: Mapping[str, torch.Tensor]
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        model, cfg = self.model, self.cfg
        image = batch["image"]
        n, size = image.shape[0], image.shape[-1]
        if "mu" in batch:
            mu, logvar = batch["mu"], batch["logvar"]
        else:
            with torch.no_grad():
                mu, logvar = model.encode_image(image)
        z = sample_posterior(mu.float(), logvar.float()).detach()
        terms: dict[str, torch.Tensor] = {}
        guide, loss = None, image.new_zeros((), dtype=torch.float32)
        labels_uv = normalise_uv(batch["uv"], size) if "uv" in batch else None
        teach = torch.rand(n, device=image.device) < cfg.teacher
        crop_head = model.image_decoder.crop
        if crop_head is not None:
            crop = crop_head(z)  # one pass: the guide (no gradient) and the head's terms
            with torch.no_grad():  # what decoding z draws along
                guide = project_to_crop(model.decode_pose(z, crop_head.is_right(crop))["xyz"],
                                        crop)
            if labels_uv is not None:
                terms |= crop_terms(model, z, crop, labels_uv, batch["is_right"].bool())
                loss = loss + cfg.w_uv * terms["uv"] + cfg.w_side * terms["side"]
                guide = torch.where(teach[:, None, None], labels_uv, guide)
        elif model.image_decoder.keypoints is not None and labels_uv is not None:
            with torch.no_grad():
                guide = model.image_decoder.keypoints(z).view(-1, labels_uv.shape[1], 2)
            guide = torch.where(teach[:, None, None], labels_uv, guide)
        drawn = model.image_decoder.draw(z, guide)["image"].float()
        target = image.float()
        weight = torch.ones_like(target[:, :1])
        if self.w_hand and "mask" in batch:
            weight = weight + self.w_hand * batch["mask"][:, None].float()
        error = drawn - target
        terms["image"] = error.square().flatten(1).sum(-1).mean()  # comparable across recipes
        terms["l1"] = (error.abs() * weight).flatten(1).mean(-1).mean()
        terms["mse"] = (error.square() * weight).flatten(1).mean(-1).mean()
        image_terms = {"l1": cfg.w_l1, "mse": cfg.w_mse}
        if cfg.w_ssim:
            terms["ssim"] = 1 - ssim(drawn, target, 7, weight).mean()
            image_terms["ssim"] = cfg.w_ssim
        if cfg.w_ffl:
            terms["ffl"] = focal_frequency(drawn, target).mean()
            image_terms["ffl"] = cfg.w_ffl
        if self.features is not None:
            terms["perceptual"] = self.features(drawn, target).mean()
            image_terms["perceptual"] = cfg.w_perceptual
        loss = loss + sum(w * terms[k] for k, w in image_terms.items() if w)
        terms["total"] = loss
        return loss, terms


def crop_terms(model: DVAE, z: torch.Tensor, crop: torch.Tensor, uv: torch.Tensor,
               is_right: torch.Tensor) -> dict[str, torch.Tensor]:
    """The crop head's terms on latents z given its output `crop`: "uv", the squared distance
    of the labels' side's skeleton projected with that crop to the labels' normalised
    keypoints `uv`, "side" the cross-entropy of its side against `is_right`, "side_error"."""
    crop_head = model.image_decoder.crop
    with torch.no_grad():
        skeleton = model.decode_pose(z, is_right)["xyz"]
    return {"uv": (project_to_crop(skeleton, crop) - uv).square().sum(-1).mean(),
            "side": F.binary_cross_entropy_with_logits(crop[:, 6], is_right.float()),
            "side_error": (crop_head.is_right(crop) != is_right).float().mean()}


def train_crop_head(model: DVAE, table: PosteriorTable, cfg: DecoderStageConfig,
                    lr: float, seed: int) -> dict[str, float]:
    """`cfg.head_steps` Adam steps on the crop head alone over the cached posteriors (z drawn
    from them, batch 256): the decoder's first steps then draw along skeletons in place."""
    labels = [(ds.labels, indices) for ds, indices, _, _ in table.dataset.parts]
    uv = torch.cat([torch.as_tensor(l["uv"][i]) for l, i in labels]).float()
    side = torch.cat([torch.as_tensor(l["is_right"][i]) for l, i in labels]).bool()
    uv = normalise_uv(uv, table.dataset.parts[0][0].size)
    head = model.image_decoder.crop
    optimizer = torch.optim.Adam(head.parameters(), lr=lr)  # a small head: a high rate
    generator = torch.Generator().manual_seed(seed)
    terms: dict[str, torch.Tensor] = {}
    for _ in range(cfg.head_steps):
        rows = torch.randint(len(uv), (256,), generator=generator)
        mu, logvar = table.table[rows].float().chunk(2, -1)
        z = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=generator)
        terms = crop_terms(model, z, head(z), uv[rows], side[rows])
        loss = cfg.w_uv * terms["uv"] + cfg.w_side * terms["side"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return {k: round(float(v.detach()), 4) for k, v in terms.items()}


class PosteriorTable(Dataset):
    """A fixed training set whose items carry their frozen posterior ("mu", "logvar")."""

    def __init__(self, dataset: Dataset, table: torch.Tensor) -> None:
        self.dataset, self.table = dataset, table

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        item = self.dataset[key]
        i = key[0] if isinstance(key, tuple) else key
        mu, logvar = self.table[i].float().chunk(2)
        return {**item, "mu": mu, "logvar": logvar}


def is_fixed(train_set: Dataset) -> bool:
    """Whether every epoch reads the same images at the same indices: synthetic folders, each
    taken once an epoch (no stream, no augmentation, no subsampling)."""
    parts = getattr(train_set, "parts", None)
    return bool(parts) and all(isinstance(ds, SyntheticHandDataset) and quota == len(indices)
                               for ds, indices, quota, _ in parts)


def with_posteriors(train_set: Dataset, model: DVAE, cfg: TrainConfig, out: Path,
                    device: torch.device) -> Dataset:
    """`train_set` with its posteriors attached (computed once, or read from
    decoder.posterior_file when it was made by the same encoder for the same set)."""
    if not is_fixed(train_set):
        raise ConfigError("needs a fixed training set (synthetic folders, no stream): set it "
                          "false to encode every batch", "decoder.cache_posteriors")
    path = Path(cfg.decoder.posterior_file or out / "posteriors.pt")
    key = _table_key(train_set, model)
    if path.exists():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved.get("format") == POSTERIOR_FORMAT and saved.get("key") == key:
            say(f"decoder stage: posteriors of {len(train_set)} images from {path}")
            return PosteriorTable(train_set, saved["table"])
    say(f"decoder stage: encoding {len(train_set)} training images once ({path})")
    loader = DataLoader(_Indexed(train_set), batch_size=128, num_workers=0)
    rows = []
    model.eval()
    with torch.no_grad():
        for batch in loader:
            mu, logvar = model.encode_image(batch.to(device))
            rows.append(torch.cat([mu, logvar], -1).float().cpu())
    table = torch.cat(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    torch.save({"format": POSTERIOR_FORMAT, "key": key, "table": table}, partial)
    partial.replace(path)
    return PosteriorTable(train_set, table)


class _Indexed(Dataset):
    """The images of a training set, index by index (epoch 0)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.dataset[(i, 0)]["image"]


def _table_key(train_set: Dataset, model: DVAE) -> str:
    """What a posterior table is valid for: the training set's folders and sizes and the
    frozen encoder's weights."""
    digest = hashlib.sha256()
    for ds, indices, quota, _ in train_set.parts:
        digest.update(f"{Path(ds.path).resolve()}:{len(indices)}:{quota};".encode())
    for name, tensor in model.image_encoder.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().float().numpy().tobytes())
    return digest.hexdigest()
