"""Statistics of the image posteriors over reference hands: the KL of each latent dimension
(which dimensions the model uses) and the posteriors the sampling Gaussian is fitted to."""

from __future__ import annotations

import logging
import threading
from contextlib import nullcontext
from typing import Any, Mapping

import numpy as np
import torch

from handlatent.model import DVAE

log = logging.getLogger("handlatent.explorer")

INACTIVE_KL = 0.01  # nats: dimensions below this carry (almost) no information
KL_SAMPLES = 64
KL_SEED = 0


def images_to_tensor(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(B, S, S, 3) uint8 -> (B, 3, S, S) float in [-1, 1] on `device`."""
    array = np.ascontiguousarray(images)
    if not array.flags.writeable:  # frames are shared read-only; torch wants a writable array
        array = array.copy()
    x = torch.from_numpy(array).to(device)
    return x.permute(0, 3, 1, 2).float() / 127.5 - 1


def kl_per_dim_from_stats(stats: Mapping[str, Any] | None, d: int) -> np.ndarray | None:
    """`stats["kl_per_dim"]` as a (d,) float64 array, or None if absent; ValueError if malformed."""
    if stats is None or stats.get("kl_per_dim") is None:
        return None
    try:
        kl = np.asarray(stats["kl_per_dim"], dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("latent_stats kl_per_dim must be a list of numbers") from None
    if kl.shape != (d,):
        raise ValueError(f"latent_stats kl_per_dim has shape {kl.shape}, expected ({d},)")
    if not np.isfinite(kl).all() or (kl < 0).any():
        raise ValueError("latent_stats kl_per_dim must be finite and >= 0")
    return kl


def _synthetic_images(n: int, size: int, seed: int) -> np.ndarray:
    """`n` hands rendered by handlatent.synth at `size` px (uint8 (n, S, S, 3))."""
    from handlatent.synth import scene as synth_scene
    rng = np.random.default_rng(seed)
    return synth_scene.render_scene(synth_scene.sample_scene(rng, n), size)["image"]


def encode_hands(model: DVAE, *, n: int = KL_SAMPLES, seed: int = KL_SEED, batch_size: int = 16,
                 lock: threading.Lock | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The image posteriors (mu, logvar), each (n, d) float64, of `n` reference hands.

    The images are synthetic hands (handlatent.synth, fixed `seed`); if the renderer is not
    available, the model's own decodings of prior samples are used instead.
    """
    size = model.config.image_size
    device = model.image_mean.device
    try:
        images = images_to_tensor(_synthetic_images(n, size, seed), device)
    except Exception as error:  # the renderer is optional for the explorer
        log.warning("synthetic images unavailable (%s: %s); estimating latent statistics from "
                    "decoded prior samples", type(error).__name__, error)
        generator = torch.Generator(device=device).manual_seed(seed)
        with lock or nullcontext(), torch.inference_mode():
            images = model.decode(model.sample_prior(n, generator))["image"]
    mus, logvars = [], []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            with lock or nullcontext():
                mu, logvar = model.encode_image(images[start:start + batch_size])
            mus.append(mu.double().cpu())
            logvars.append(logvar.double().cpu())
    return torch.cat(mus).numpy(), torch.cat(logvars).numpy()


def kl_per_dim(mu: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """Mean over the rows of KL(N(mu, exp(logvar)) || N(0, 1)) per dimension: (d,) float64."""
    return (0.5 * (np.square(mu) + np.exp(logvar) - 1 - logvar)).mean(0)


def estimate_kl_per_dim(model: DVAE, *, n: int = KL_SAMPLES, seed: int = KL_SEED,
                        batch_size: int = 16, lock: threading.Lock | None = None) -> np.ndarray:
    """Mean over `n` reference hands (`encode_hands`) of KL(q(z_i | x) || N(0, 1)): (d,)."""
    return kl_per_dim(*encode_hands(model, n=n, seed=seed, batch_size=batch_size, lock=lock))
