"""How far a set of generated images sits from a reference set: a Fréchet distance on thumbnails.

Random samples of a VAE are judged against the model's own reconstructions of real images, so
that blur (shared by both) does not count, only whether the samples show what the data shows
(a hand on a background) rather than colour fields. Thumbnails (8 x 8 px, box-filtered) keep the
layout of skin against background and stay estimable from a few hundred images; no pretrained
network is involved, so the number needs nothing beyond the model.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

THUMBNAIL_PX = 8


def thumbnails(images: np.ndarray, size: int = THUMBNAIL_PX) -> np.ndarray:
    """uint8 images (N, S, S, 3) -> box-filtered size x size thumbnails, flattened (N, size²·3)
    in [0, 1]."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 images (N, S, S, 3), got {images.dtype} {images.shape}")
    small = [np.asarray(Image.fromarray(im).resize((size, size), Image.Resampling.BOX))
             for im in images]
    return np.stack(small).reshape(len(images), -1).astype(np.float64) / 255.0


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to the rows of `a` and `b` (N, F):
    |mu_a - mu_b|² + tr(C_a + C_b - 2 (C_a C_b)^½)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"need two (N >= 2, F) feature sets, got {a.shape} and {b.shape}")
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))
    # tr((C_a C_b)^½) = Σ √eig(C_a^½ C_b C_a^½): symmetric, so stable for singular covariances
    # (fewer images than features), where sqrtm of the product is not.
    w, v = np.linalg.eigh(cov_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0, None)).sum()
    distance = np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * cross
    return float(max(distance, 0.0))
