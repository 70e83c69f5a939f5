"""Where random latents come from: the prior N(0, I), or a Gaussian fitted to encoded hands.

A dVAE whose image posteriors hold ~120 nats does not fill its prior: on the bundled model the
image-encoded z_y1 spreads with variance ~0.3 per dimension, so decoding z ~ N(0, I) draws
crumpled skeletons and colour fields. A Gaussian fitted to the aggregate posterior
q(z) = E_x q(z | x) over hands (mean and full covariance; "ex-post density estimation", Ghosh et
al., ICLR 2020) puts random latents where the decoder has learnt to draw hands. Both sources stay
available: "prior" is the paper's sampling, "hands" the one the explorer uses by default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

SOURCES = ("hands", "prior")
SOURCE_LABELS = {"hands": "the Gaussian fitted to encoded hands", "prior": "N(0, I)"}


@dataclass(frozen=True)
class LatentGaussian:
    """N(mean, cov) over the whole latent z (d,), with its Cholesky factor for sampling."""

    mean: np.ndarray
    cov: np.ndarray
    n: int = 0  # how many encoded images it was fitted to (0: unknown)
    _chol: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        mean = np.asarray(self.mean, dtype=np.float64)
        cov = np.asarray(self.cov, dtype=np.float64)
        if mean.ndim != 1 or not np.isfinite(mean).all():
            raise ValueError(f"mean must be a finite vector, got shape {mean.shape}")
        d = mean.shape[0]
        if cov.shape != (d, d) or not np.isfinite(cov).all():
            raise ValueError(f"cov has shape {cov.shape}, expected ({d}, {d}), finite")
        if not np.allclose(cov, cov.T, rtol=1e-6, atol=1e-9):
            raise ValueError("cov is not symmetric")
        try:
            chol = np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            raise ValueError("cov is not positive definite") from None
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "cov", cov)
        object.__setattr__(self, "_chol", chol)

    @property
    def dim(self) -> int:
        return self.mean.shape[0]

    def sample(self, rng: np.random.Generator, n: int | None = None) -> np.ndarray:
        """One draw (d,) or `n` draws (n, d), float32."""
        eps = rng.standard_normal((1 if n is None else n, self.dim))
        z = (self.mean + eps @ self._chol.T).astype(np.float32)
        return z[0] if n is None else z

    def to_stats(self) -> dict[str, Any]:
        """Plain lists for a checkpoint's extra["latent_stats"]["hands"]."""
        return {"mean": [float(v) for v in self.mean],
                "cov": [[float(v) for v in row] for row in self.cov], "n": int(self.n)}


def fit_hands(mu: np.ndarray, logvar: np.ndarray) -> LatentGaussian:
    """The Gaussian of the aggregate posterior of `n` encoded images (mu, logvar (n, d)).

    cov = Cov(mu) + mean posterior variance (the mixture's covariance), shrunk towards its
    diagonal by d / (n + d) so that a few dozen images still give a well-conditioned fit.
    """
    mu = np.asarray(mu, dtype=np.float64)
    var = np.exp(np.asarray(logvar, dtype=np.float64))
    if mu.ndim != 2 or mu.shape != var.shape or len(mu) < 2:
        raise ValueError(f"need (n >= 2, d) posteriors, got mu {mu.shape}, logvar {var.shape}")
    n, d = mu.shape
    cov = np.cov(mu, rowvar=False).reshape(d, d) + np.diag(var.mean(0))
    shrink = d / (n + d)
    cov = (1 - shrink) * cov + shrink * np.diag(np.diag(cov))
    return LatentGaussian(mu.mean(0), (cov + cov.T) / 2, n=n)


def hands_from_stats(stats: Mapping[str, Any] | None, d: int) -> LatentGaussian | None:
    """`stats["hands"]` as a LatentGaussian over d dimensions, None if absent; ValueError if bad."""
    if stats is None or stats.get("hands") is None:
        return None
    hands = stats["hands"]
    if not isinstance(hands, Mapping):
        raise ValueError("latent_stats hands must be a mapping with mean and cov")
    try:
        fitted = LatentGaussian(np.asarray(hands["mean"], dtype=np.float64),
                                np.asarray(hands["cov"], dtype=np.float64),
                                n=int(hands.get("n", 0)))
    except (KeyError, TypeError) as error:
        raise ValueError(f"latent_stats hands: missing or non-numeric {error}") from None
    except ValueError as error:
        raise ValueError(f"latent_stats hands: {error}") from None
    if fitted.dim != d:
        raise ValueError(f"latent_stats hands has {fitted.dim} dimensions, expected {d}")
    return fitted


def check_source(source: str) -> str:
    """`source` if it is one of SOURCES, else ValueError naming them."""
    if source not in SOURCES:
        raise ValueError(f"unknown sampling source {source!r}: expected one of {SOURCES}")
    return source
