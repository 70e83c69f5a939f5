"""Disentanglement metrics of the supplement §E: the β-VAE score and the latent regression table (Table 4).

Model-free: callers pass numpy arrays or callables that return numpy arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import LogisticRegression
from sklearn.metrics.pairwise import rbf_kernel

from handlatent.metrics.pose import evaluate_pose, to_metric

PairSampler = Callable[[int, int, np.random.Generator], tuple[np.ndarray, np.ndarray]]
"""``(k, L, rng) -> (x1, x2)``: two batches of L observations whose generative factors agree on factor k."""

CHANCE_MARGIN = 0.01
"""Table 4: a source whose held-out score is not at least this much (relative) better than the
noise row's learned nothing usable from that source: its regression is at chance level."""

Encoder = Callable[[np.ndarray], np.ndarray]
"""``x -> mu`` (L, d): posterior means of a batch of observations."""


def pair_sampler(
    sample_factors: Callable[[int, np.random.Generator], np.ndarray],
    observe: Callable[[np.ndarray, np.random.Generator], np.ndarray],
) -> PairSampler:
    """A :data:`PairSampler` from a factor prior (n, rng) -> (n, K, ...) and a renderer (f, rng) -> x."""

    def sample(k: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        factors1 = sample_factors(n, rng)
        factors2 = sample_factors(n, rng)
        factors2[:, k] = factors1[:, k]
        return observe(factors1, rng), observe(factors2, rng)

    return sample


def _beta_vae_points(
    sample_pair_batch: PairSampler, encode: Encoder, num_factors: int, batch_size: int, n_points: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Features (n, d): mean over L pairs of |mu1 - mu2| for a uniformly drawn fixed factor; labels (n,)."""
    labels = rng.integers(num_factors, size=n_points)
    features = []
    for k in labels:
        x1, x2 = sample_pair_batch(int(k), batch_size, rng)
        mu1, mu2 = np.asarray(encode(x1), float), np.asarray(encode(x2), float)
        if mu1.ndim != 2 or mu1.shape != mu2.shape or mu1.shape[0] != batch_size:
            raise ValueError(f"encode must return ({batch_size}, d) arrays, got {mu1.shape}, {mu2.shape}")
        features.append(np.abs(mu1 - mu2).mean(axis=0))
    return np.stack(features), labels


def beta_vae_score(
    sample_pair_batch: PairSampler,
    encode: Encoder,
    num_factors: int,
    *,
    batch_size: int = 64,
    n_train: int = 10_000,
    n_eval: int = 5_000,
    seed: int = 0,
) -> dict[str, float]:
    """Higgins et al.'s β-VAE metric as in disentanglement_lib.

    Accuracy of a logistic regression that predicts the fixed factor from the mean |Δmu| of L pairs.
    """
    rng = np.random.default_rng(seed)
    train_x, train_y = _beta_vae_points(sample_pair_batch, encode, num_factors, batch_size, n_train, rng)
    model = LogisticRegression(max_iter=1000, random_state=seed).fit(train_x, train_y)
    eval_x, eval_y = _beta_vae_points(sample_pair_batch, encode, num_factors, batch_size, n_eval, rng)
    return {
        "train_accuracy": float(model.score(train_x, train_y)),
        "eval_accuracy": float(model.score(eval_x, eval_y)),
    }


class LooKernelRidge(RegressorMixin, BaseEstimator):
    """RBF kernel ridge on standardised inputs, centred targets; gamma, alpha by exact leave-one-out MSE.

    Leave-one-out comes in closed form from one eigendecomposition per gamma (residual / (1 - hat diagonal)),
    so the search is deterministic and costs O(n³) per gamma, not per grid point and fold.
    """

    def __init__(
        self,
        alphas: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0),
        gamma_factors: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0),
    ) -> None:
        self.alphas = alphas
        self.gamma_factors = gamma_factors  # RBF gamma in units of 1/d (the classic default)

    def fit(self, X: np.ndarray, y: np.ndarray) -> LooKernelRidge:
        """Pick (gamma, alpha) with the lowest leave-one-out error (summed over outputs), then fit."""
        X, y = np.asarray(X, float), np.asarray(y, float)
        self.x_mean_, self.x_std_ = X.mean(axis=0), X.std(axis=0) + 1e-12
        self.y_mean_ = y.mean(axis=0)
        self.X_fit_ = (X - self.x_mean_) / self.x_std_
        yc = (y - self.y_mean_).reshape(len(X), -1)
        best_mse = np.inf
        for factor in self.gamma_factors:
            gamma = factor / X.shape[1]
            eigval, eigvec = np.linalg.eigh(rbf_kernel(self.X_fit_, gamma=gamma))
            eigval = np.clip(eigval, 0.0, None)
            proj = eigvec.T @ yc
            for alpha in self.alphas:
                shrink = eigval / (eigval + alpha)
                hat_diag = (eigvec**2) @ shrink
                loo = (yc - eigvec @ (shrink[:, None] * proj)) / (1.0 - hat_diag)[:, None]
                mse = float(np.mean(np.sum(loo**2, axis=1)))
                if mse < best_mse:
                    best_mse, self.gamma_, self.alpha_ = mse, gamma, alpha
                    dual = eigvec @ (proj / (eigval + alpha)[:, None])
                    self.dual_coef_ = dual.reshape(len(X), *y.shape[1:])
        self.loo_mse_ = best_mse
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Kernel expansion on the training points plus the training target mean."""
        Xs = (np.asarray(X, float) - self.x_mean_) / self.x_std_
        return rbf_kernel(Xs, self.X_fit_, gamma=self.gamma_) @ self.dual_coef_ + self.y_mean_


def noise_source(n: int, d: int, seed: int = 0) -> np.ndarray:
    """N(0, I) latents (n, d): the source that carries no information, Table 4's lower bound."""
    return np.random.default_rng(seed).standard_normal((n, d))


def latent_regression_table(
    sources: Mapping[str, np.ndarray],
    y1_cpose: np.ndarray,
    y2_viewpoint: np.ndarray,
    scale: np.ndarray,
    *,
    train_fraction: float = 0.5,
    seed: int = 0,
    make_regressor: Callable[[], RegressorMixin] = LooKernelRidge,
) -> dict[str, dict[str, float]]:
    """Supplement Table 4: per latent source, held-out CPose AUC 20-50 mm ("y1", higher is better)
    and viewpoint MSE summed over the 9 entries ("y2", lower is better)."""
    y1 = np.asarray(y1_cpose, float)
    y2 = np.asarray(y2_viewpoint, float)
    scale = np.asarray(scale, float)
    n = y1.shape[0]
    if y1.shape != (n, 21, 3) or y2.shape != (n, 3, 3) or scale.shape != (n,):
        shapes = f"{y1.shape}, {y2.shape}, {scale.shape}"
        raise ValueError(f"need y1 (N, 21, 3), y2 (N, 3, 3), scale (N,); got {shapes}")
    order = np.random.default_rng(seed).permutation(n)
    n_train = int(round(train_fraction * n))
    if not 3 <= n_train <= n - 1:
        raise ValueError(f"train_fraction {train_fraction} leaves {n_train} of {n} samples for training")
    train, test = order[:n_train], order[n_train:]
    flat1, flat2 = y1.reshape(n, 63), y2.reshape(n, 9)

    table: dict[str, dict[str, float]] = {}
    for name, z in sources.items():
        z = np.asarray(z, float).reshape(n, -1)
        pred1 = make_regressor().fit(z[train], flat1[train]).predict(z[test]).reshape(-1, 21, 3)
        pred2 = make_regressor().fit(z[train], flat2[train]).predict(z[test])
        cpose = evaluate_pose(to_metric(pred1, scale[test]), to_metric(y1[test], scale[test]))
        table[name] = {
            "y1": cpose["auc_20_50"],
            "y2": float(np.mean(np.sum((pred2 - flat2[test]) ** 2, axis=1))),
        }
    return table


def at_chance(table: Mapping[str, Mapping[str, float]], noise: str = "noise",
              margin: float = CHANCE_MARGIN) -> dict[str, list[str]]:
    """Per target of a `latent_regression_table` ("y1": AUC, higher is better; "y2": MSE, lower
    is better), the sources other than `noise` that do not beat the noise row by `margin`
    (relative): regressing on them did no better than regressing on N(0, I) noise."""
    base = table[noise]
    return {"y1": [name for name, row in table.items()
                   if name != noise and row["y1"] <= base["y1"] * (1 + margin)],
            "y2": [name for name, row in table.items()
                   if name != noise and row["y2"] >= base["y2"] * (1 - margin)]}
