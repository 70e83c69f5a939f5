"""β-VAE score and the Table 4 regression check on synthetic generative processes with known ground truth."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from scipy.stats import special_ortho_group
from sklearn.kernel_ridge import KernelRidge
from sklearn.model_selection import LeaveOneOut, cross_val_predict
from threadpoolctl import threadpool_limits

from handlatent.metrics import (
    LooKernelRidge,
    beta_vae_score,
    latent_regression_table,
    noise_source,
    pair_sampler,
)

SMALL = dict(batch_size=32, n_train=500, n_eval=500)


@pytest.fixture(autouse=True)
def _single_blas_thread():
    """The matrices here are tiny: threaded BLAS on a busy 2-core machine makes eigh 50x slower."""
    with threadpool_limits(limits=1):
        yield


def _linear_world(num_factors: int, seed: int = 0):
    """Factors uniform in [-1, 1]^K rendered to 2K-dim observations by a fixed dense linear map."""
    render = np.random.default_rng(seed).standard_normal((num_factors, 2 * num_factors))
    sampler = pair_sampler(lambda n, rng: rng.uniform(-1.0, 1.0, (n, num_factors)), lambda f, rng: f @ render)
    return sampler, np.linalg.pinv(render)


def test_pair_sampler_fixes_exactly_factor_k() -> None:
    factors = []

    def observe(f: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        factors.append(f.copy())
        return f

    sample = pair_sampler(lambda n, rng: rng.uniform(size=(n, 3, 2)), observe)  # factors may be groups
    x1, x2 = sample(1, 8, np.random.default_rng(0))
    assert x1.shape == (8, 3, 2)
    np.testing.assert_array_equal(x1[:, 1], x2[:, 1])
    assert np.all(x1[:, 0] != x2[:, 0]) and np.all(x1[:, 2] != x2[:, 2])


def test_beta_vae_disentangled_inverse_beats_rotated_encoder() -> None:
    sampler, inverse = _linear_world(10)
    rotation = special_ortho_group.rvs(10, random_state=0)
    jitter = np.random.default_rng(1)
    disentangled = lambda x: x @ inverse + 0.01 * jitter.standard_normal((len(x), 10))
    perfect = beta_vae_score(sampler, disentangled, 10, **SMALL)
    entangled = beta_vae_score(sampler, lambda x: x @ inverse @ rotation, 10, **SMALL)
    assert perfect["eval_accuracy"] >= 0.95 and perfect["train_accuracy"] >= 0.95
    assert entangled["eval_accuracy"] <= 0.8  # 0.57 with these seeds; chance is 0.1
    assert perfect["eval_accuracy"] - entangled["eval_accuracy"] >= 0.3


def test_beta_vae_cannot_see_entanglement_of_two_factor_groups() -> None:
    # dVAE's case (supplement §E): two factor groups, CPose and viewpoint. A dense rotation of the
    # whole latent still scores 100 %: the mean |Δz| pattern differs between the two groups even
    # when every unit mixes both.
    rotation = special_ortho_group.rvs(8, random_state=0)
    groups = lambda n, rng: rng.uniform(-1.0, 1.0, (n, 2, 4))
    sampler = pair_sampler(groups, lambda f, rng: f.reshape(len(f), 8))
    assert beta_vae_score(sampler, lambda x: x @ rotation, 2, **SMALL)["eval_accuracy"] >= 0.95


def test_beta_vae_is_reproducible_and_checks_encoder_shape() -> None:
    sampler, inverse = _linear_world(3)
    tiny = dict(batch_size=8, n_train=30, n_eval=20, seed=4)
    run = lambda: beta_vae_score(sampler, lambda x: x @ inverse, 3, **tiny)
    assert run() == run()
    with pytest.raises(ValueError):
        beta_vae_score(sampler, lambda x: (x @ inverse)[:-1], 3, batch_size=8, n_train=5, n_eval=5)


def test_loo_kernel_ridge_matches_brute_force_leave_one_out() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    y = np.stack([np.sin(x[:, 0]), x[:, 1] * x[:, 2]], 1) + 0.1 * rng.normal(size=(40, 2))
    model = LooKernelRidge().fit(x, y)
    xs, yc = (x - x.mean(0)) / x.std(0), y - y.mean(0)
    same = KernelRidge(kernel="rbf", gamma=model.gamma_, alpha=model.alpha_)
    brute = cross_val_predict(same, xs, yc, cv=LeaveOneOut())
    assert model.loo_mse_ == pytest.approx(np.mean(np.sum((brute - yc) ** 2, axis=1)), rel=1e-8)
    assert model.predict(x).shape == (40, 2)
    assert LooKernelRidge().fit(x, y[:, 0]).predict(x[:5]).shape == (5,)


def _hand_world(n: int = 240, seed: int = 0):
    """CPose (bone units, 5 pose factors), viewpoint (rotation vectors ~ N(0, 0.7² I)), scale (m)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(0.0, 2.0, (21, 3))
    basis = rng.normal(0.0, 0.5, (5, 63))
    base[0], basis[:, :3] = 0.0, 0.0  # the root stays at the origin
    y1 = base + (rng.standard_normal((n, 5)) @ basis).reshape(n, 21, 3)
    y2 = Rotation.from_rotvec(rng.normal(0.0, 0.7, (n, 3))).as_matrix()
    scale = rng.uniform(0.03, 0.045, n)
    noise = lambda: 0.1 * rng.standard_normal((n, 8))
    noisy_linear = lambda y: y.reshape(n, -1) @ rng.standard_normal((y[0].size, 8)) + noise()
    sources = {"z_y1": noisy_linear(y1), "z_y2": noisy_linear(y2), "noise": noise_source(n, 8, seed=seed)}
    return sources, y1, y2, scale


def test_regression_table_separates_cpose_and_viewpoint_sources() -> None:
    sources, y1, y2, scale = _hand_world()
    table = latent_regression_table(sources, y1, y2, scale)
    assert set(table) == set(sources) and all(set(row) == {"y1", "y2"} for row in table.values())
    z_y1, z_y2, noise = table["z_y1"], table["z_y2"], table["noise"]
    # CPose: informative source near 1, the viewpoint source no better than noise
    assert z_y1["y1"] >= 0.95 and noise["y1"] <= 0.6
    assert z_y2["y1"] <= noise["y1"] + 0.05
    # viewpoint: the reverse; noise is about the total variance of the 9 entries
    assert z_y2["y2"] <= 0.2 * noise["y2"]
    assert z_y1["y2"] >= 0.9 * noise["y2"]


def test_regression_table_reproducible_and_validates() -> None:
    sources, y1, y2, scale = _hand_world(n=60)
    small = {"noise": sources["noise"]}
    run = lambda: latent_regression_table(small, y1, y2, scale, seed=3)
    assert run() == run()
    with pytest.raises(ValueError):
        latent_regression_table(small, y1, y2[:-1], scale)
    with pytest.raises(ValueError):
        latent_regression_table(small, y1, y2, scale, train_fraction=1.0)
