"""The dVAE training objective, supplement eq. 6: -(ELBO_dis + ELBO_emb), to minimise.

Scale: every reconstruction term is a sum of squared errors over a sample's elements and every
KL a sum over latent dimensions, both averaged over the batch (docs/model.md, "Objective
and loss scale").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping

import torch
from torch import nn
from torch.func import functional_call

from handlatent.model.bone_maps import normalise_uv
from handlatent.model.dvae import DVAE
from handlatent.skeleton import compose

# "uv" only where the image decoder is bone-guided (it decodes the 2-D keypoints it draws along).
RECONSTRUCTIONS = ("image", "cpose", "viewpoint", "xyz", "uv")
SIGMA_FLOOR = 1e-3  # smallest sigma (in [-1, 1] units) the calibrated image likelihood assumes


@dataclass(frozen=True)
class LossConfig:
    """Weights of the objective's terms, the same in both steps.

    beta multiplies each KL; w_* the reconstruction terms (w_xyz: the composed 3D pose, not in
    the paper's ELBO, off by default). beta_z_u, when set, replaces beta for z_u's KL (not in the
    paper): a tighter z_u leaves the image decoder to take the hand's shape from z_y1 and z_y2.
    """

    beta: float = 1.0
    beta_z_u: float | None = None
    w_image: float = 1.0
    w_cpose: float = 1.0
    w_viewpoint: float = 1.0
    w_xyz: float = 0.0
    # The bone-guided image decoder's 2-D keypoints against the labels' uv, both normalised to
    # [-1, 1] across the image (model.decoder_guide "bones"; unused by other decoders).
    w_uv: float = 0.0
    # Teacher forcing of the bone-guided decoder: the disentangling step draws along the labels'
    # uv instead of the keypoints it decodes (which cannot know the crop's jitter or the hand's
    # side there: z_u comes from the twin), so its convolutions learn to paint along true bones.
    uv_teacher: bool = False
    # sse:   the image term is the sum of squared errors (a Gaussian of fixed sigma = 1/sqrt(2)
    #        per value in [-1, 1], times w_image).
    # sigma: a calibrated Gaussian (sigma-VAE, Rybkin et al. 2021): sigma^2 is the batch's own
    #        mean squared error, so the term is D/2 log(MSE) per image (D values), times w_image;
    #        the pixels weigh as much against the KL as the decoder's actual error says.
    image_likelihood: Literal["sse", "sigma"] = "sse"
    # Hand pixels' squared errors count (1 + w_hand) times (needs the batch's `mask`).
    w_hand: float = 0.0
    # projected: the viewpoint term compares the projected rotation with the true one;
    # raw: it compares the decoder's 9 raw numbers (no SVD in the loss's gradient), the
    #      projection only at inference (and in the composed 3D pose of w_xyz).
    viewpoint_target: Literal["projected", "raw"] = "projected"
    # Gradient-difference term (Mathieu et al. 2016): w_edges times the L1 distance between the
    # absolute finite differences of the decoded image and of the input, per sample (hand
    # pixels again (1 + w_hand) times). A squared-error likelihood is satisfied by a blurred
    # mean; this term asks for the input's edge strength. Logged as "edges" when on.
    w_edges: float = 0.0


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per sample, summed over the last axis: shape (B,)."""
    return 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum(-1)


def sample_posterior(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Reparameterised sample mu + sigma * eps, differentiable in mu and logvar."""
    return mu + (0.5 * logvar).exp() * torch.randn_like(mu)


def squared_error(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sum of squared errors per sample over all non-batch axes: shape (B,)."""
    return (prediction - target).square().flatten(1).sum(-1)


def _step_terms(decoded: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor],
                posterior: Mapping[str, tuple[torch.Tensor, torch.Tensor]], batch_size: int,
                cfg: LossConfig, mask: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """Reconstruction and KL terms of one step, summed over its samples and divided by B.

    `decoded` and `targets` map each of RECONSTRUCTIONS (uv where decoded) to tensors over the
    same samples;
    `mask` (n, S, S) marks the hand's pixels of those samples' images. "image" is always the
    plain sum of squared errors (comparable across recipes); where `cfg.image_likelihood` or
    `cfg.w_hand` make the minimised image term differ from it, that term is "image_nll".
    """
    vp = "viewpoint_raw" if cfg.viewpoint_target == "raw" else "viewpoint"
    image, target = decoded["image"].float(), targets["image"].float()
    image_error = (image - target).square()
    terms = {"image": image_error.sum() / batch_size}
    terms |= {name: squared_error(decoded[vp if name == "viewpoint" else name],
                                  targets[name]).sum() / batch_size
              for name in RECONSTRUCTIONS[1:] if name in decoded}
    if cfg.image_likelihood != "sse" or (cfg.w_hand and mask is not None):
        terms["image_nll"] = _image_nll(image_error, cfg, mask) / batch_size
    if cfg.w_edges:
        terms["edges"] = _edge_difference(image, target, cfg, mask) / batch_size
    for name, (mu, logvar) in posterior.items():
        terms[f"kl_{name}"] = gaussian_kl(mu, logvar).sum() / batch_size
    return terms


def _hand_weight(mask: torch.Tensor, cfg: LossConfig, dtype: torch.dtype) -> torch.Tensor:
    """Per-pixel weight (n, 1, H, W) of an image term: 1 + w_hand on the hand's pixels, else 1."""
    return 1.0 + cfg.w_hand * mask[:, None].to(dtype)


def _image_nll(error: torch.Tensor, cfg: LossConfig, mask: torch.Tensor | None) -> torch.Tensor:
    """The image term summed over the samples, from the per-value squared errors (n, 3, S, S)
    (see LossConfig.image_likelihood, w_hand)."""
    if cfg.w_hand and mask is not None:
        error = error * _hand_weight(mask, cfg, error.dtype)
    sse = error.flatten(1).sum(-1)
    if cfg.image_likelihood == "sse":
        return sse.sum()
    values = error[0].numel()
    mse = (sse.sum() / (len(sse) * values)).clamp(min=SIGMA_FLOOR ** 2)
    return 0.5 * values * len(sse) * mse.log()


def _edge_difference(prediction: torch.Tensor, target: torch.Tensor, cfg: LossConfig,
                     mask: torch.Tensor | None) -> torch.Tensor:
    """Sum over the samples of | |∂x̂| - |∂x| | along both image axes (see LossConfig.w_edges)."""
    total = prediction.new_zeros(())
    for axis in (-1, -2):
        edge = (prediction.diff(dim=axis).abs() - target.diff(dim=axis).abs()).abs()
        if cfg.w_hand and mask is not None:
            inner = mask.narrow(axis, 1, mask.shape[axis] - 1)
            edge = edge * _hand_weight(inner, cfg, edge.dtype)
        total = total + edge.sum()
    return total


def _weighted(terms: Mapping[str, torch.Tensor], cfg: LossConfig) -> torch.Tensor:
    """The step's negated ELBO: weighted reconstructions plus beta times the KLs."""
    weights = {"cpose": cfg.w_cpose, "viewpoint": cfg.w_viewpoint, "xyz": cfg.w_xyz,
               "uv": cfg.w_uv}
    image = terms.get("image_nll", terms["image"])
    beta_z_u = cfg.beta if cfg.beta_z_u is None else cfg.beta_z_u
    return (cfg.w_image * image + cfg.w_edges * terms.get("edges", 0.0)
            + sum(weights[name] * terms[name] for name in RECONSTRUCTIONS[1:] if name in terms)
            + cfg.beta * sum(v for k, v in terms.items() if k.startswith("kl_z_y"))
            + beta_z_u * terms.get("kl_z_u", 0.0))


def _fixed_decoders(model: DVAE) -> dict[str, torch.Tensor]:
    """The model's parameters for the embedding step's decode (`model(z)`): all detached
    (fixed), except a guided decoder's keypoint MLP's, which learns from the image's z too: it
    holds what the labels' latents lack (the crop's jitter, the side)."""
    keypoints = model.image_decoder.keypoints
    learning = set() if keypoints is None else {id(p) for p in keypoints.parameters()}
    return {name: p if id(p) in learning else p.detach() for name, p in model.named_parameters()}


def dvae_loss(model: DVAE, batch: Mapping[str, torch.Tensor], cfg: LossConfig
              ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """-(ELBO_dis + ELBO_emb) on a batch, and its terms named "dis/image", "emb/kl_z_u", ...

    Disentangling step (labelled samples only): z_y1, z_y2 from the label encoders, z_u from the
    image encoder (gradients flow into it); every network learns. Embedding step: z from the
    image encoder alone, decoders fixed (their parameters get no gradient, the encoder does;
    a bone-guided decoder's keypoint MLP learns in both steps).
    Samples with `labelled` False contribute only the embedding step's image and KL terms.
    With `content_image` in the batch (content twins, handlatent.synth.twins), the disentangling
    step reads z_u from the twin instead: the image's background and skin in another hand's
    pose, so the decoder has to take the hand's shape from z_y1 and z_y2.
    """
    image = batch["image"]
    batch_size = image.shape[0]
    labelled = batch.get("labelled")
    if labelled is None:
        labelled = torch.ones(batch_size, dtype=torch.bool, device=image.device)
    is_right = batch.get("is_right")
    layout = model.layout

    def on_labelled(value: torch.Tensor | None) -> torch.Tensor | None:
        return None if value is None else value[labelled]

    cpose, viewpoint = batch["cpose"][labelled], batch["viewpoint"][labelled]
    targets = {"image": image, "cpose": cpose, "viewpoint": viewpoint,
               "xyz": compose(cpose, viewpoint, is_right=on_labelled(is_right))}
    if model.image_decoder.keypoints is not None:
        targets["uv"] = normalise_uv(batch["uv"][labelled], image.shape[-1])

    twin = batch.get("content_image")
    if twin is None:
        mu_x, logvar_x = model.encode_image(image)
        z_x = sample_posterior(mu_x, logvar_x)
        content = (on_labelled(mu_x), on_labelled(logvar_x), on_labelled(z_x))
    else:  # one encoder pass over the images and the labelled samples' twins
        mu, logvar = model.encode_image(torch.cat([image, twin[labelled]]))
        z = sample_posterior(mu, logvar)
        mu_x, logvar_x, z_x = mu[:batch_size], logvar[:batch_size], z[:batch_size]
        content = (mu[batch_size:], logvar[batch_size:], z[batch_size:])
    x_posterior = {name: (mu_x[..., s], logvar_x[..., s]) for name, s in layout.slices.items()}

    u = layout.slices["z_u"]
    mu_y1, logvar_y1, mu_y2, logvar_y2 = model.encode_labels(cpose, viewpoint)
    dis_posterior = {"z_y1": (mu_y1, logvar_y1), "z_y2": (mu_y2, logvar_y2),
                     "z_u": (content[0][..., u], content[1][..., u])}
    z_dis = layout.join({"z_y1": sample_posterior(mu_y1, logvar_y1),
                         "z_y2": sample_posterior(mu_y2, logvar_y2),
                         "z_u": content[2][..., u]})
    mask = batch.get("mask")
    guide = targets.get("uv") if cfg.uv_teacher else None
    dis = _step_terms(model.decode(z_dis, on_labelled(is_right), guide),
                      {**targets, "image": image[labelled]}, dis_posterior, batch_size, cfg,
                      on_labelled(mask))

    decoded = functional_call(model, _fixed_decoders(model), (z_x,), {"is_right": is_right})
    emb = _step_terms({name: on_labelled(decoded[name]) for name in decoded if name != "image"}
                      | {"image": decoded["image"]}, targets, x_posterior, batch_size, cfg, mask)

    terms = {f"{step}/{k}": v for step, t in (("dis", dis), ("emb", emb)) for k, v in t.items()}
    terms["dis"], terms["emb"] = _weighted(dis, cfg), _weighted(emb, cfg)
    terms["total"] = terms["dis"] + terms["emb"]
    return terms["total"], terms


class DVAELoss(nn.Module):
    """`dvae_loss` as a module, so a trainer can wrap it in DistributedDataParallel."""

    def __init__(self, model: DVAE, cfg: LossConfig) -> None:
        super().__init__()
        self.model = model
        self.cfg = cfg

    def forward(self, batch: Mapping[str, torch.Tensor]
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return dvae_loss(self.model, batch, self.cfg)
