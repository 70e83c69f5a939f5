"""Random latents: the Gaussian fitted to encoded hands (explorer.sampling), the session's
sampling sources, and the thumbnail Fréchet distance that scores samples (metrics.samples)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from handlatent.explorer import Session
from handlatent.explorer import stats as explorer_stats
from handlatent.explorer.sampling import (LatentGaussian, check_source, fit_hands,
                                          hands_from_stats)
from handlatent.metrics.samples import frechet_distance, thumbnails
from handlatent.model import ModelConfig, build_model

D = 64


def random_cov(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


# ------------------------------------------------------------------------------ the fit


def test_fit_recovers_the_aggregate_posterior():
    """mu ~ N(m, C), posterior variance v: the mixture has mean m and covariance C + diag(v)."""
    rng = np.random.default_rng(0)
    d, n = 5, 40000
    m, c, v = rng.normal(size=d), random_cov(rng, d), rng.uniform(0.05, 0.3, d)
    mu = rng.multivariate_normal(m, c, n)
    fitted = fit_hands(mu, np.log(np.broadcast_to(v, (n, d))))
    assert fitted.n == n
    np.testing.assert_allclose(fitted.mean, m, atol=0.03)
    np.testing.assert_allclose(fitted.cov, c + np.diag(v), atol=0.04)


def test_few_images_still_give_a_usable_fit():
    """Fewer images than dimensions: the sample covariance is singular, the shrunk one is not."""
    rng = np.random.default_rng(1)
    mu = rng.normal(size=(8, D))
    fitted = fit_hands(mu, np.full((8, D), -4.0))
    assert np.linalg.eigvalsh(fitted.cov).min() > 0
    assert fitted.sample(np.random.default_rng(0)).shape == (D,)
    with pytest.raises(ValueError, match="n >= 2"):
        fit_hands(mu[:1], np.zeros((1, D)))


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 6), st.integers(0, 2**31 - 1))
def test_samples_have_the_fitted_mean_and_covariance(d, seed):
    rng = np.random.default_rng(seed)
    g = LatentGaussian(rng.normal(size=d), random_cov(rng, d))
    draws = g.sample(np.random.default_rng(seed), 20000)
    assert draws.shape == (20000, d) and draws.dtype == np.float32
    scale = np.sqrt(np.diag(g.cov))
    np.testing.assert_allclose(draws.mean(0), g.mean, atol=0.05 * scale.max())
    np.testing.assert_allclose(np.cov(draws, rowvar=False).reshape(d, d), g.cov,
                               atol=0.08 * g.cov.max())
    np.testing.assert_array_equal(g.sample(np.random.default_rng(3)),
                                  g.sample(np.random.default_rng(3)))


def test_stats_round_trip_and_bad_stats():
    rng = np.random.default_rng(2)
    g = LatentGaussian(rng.normal(size=4), random_cov(rng, 4), n=99)
    back = hands_from_stats({"hands": g.to_stats()}, 4)
    np.testing.assert_allclose(back.mean, g.mean)
    np.testing.assert_allclose(back.cov, g.cov)
    assert back.n == 99
    assert hands_from_stats(None, 4) is None and hands_from_stats({"kl_per_dim": []}, 4) is None
    good = g.to_stats()
    asymmetric = np.array(good["cov"])
    asymmetric[0, 1] += 1
    bad = {"wrong size": ({"hands": good}, 5, "4 dimensions, expected 5"),
           "no cov": ({"hands": {"mean": good["mean"]}}, 4, "missing"),
           "not a mapping": ({"hands": [1, 2]}, 4, "mapping"),
           "text": ({"hands": {**good, "mean": ["a"] * 4}}, 4, "latent_stats hands"),
           "asymmetric": ({"hands": {**good, "cov": asymmetric.tolist()}}, 4, "symmetric"),
           "not positive": ({"hands": {**good, "cov": (-np.eye(4)).tolist()}}, 4,
                            "positive definite"),
           "nan": ({"hands": {**good, "mean": [float("nan")] * 4}}, 4, "finite")}
    for name, (stats, d, message) in bad.items():
        with pytest.raises(ValueError, match=message):
            hands_from_stats(stats, d)


def test_sources_are_checked():
    assert check_source("hands") == "hands" and check_source("prior") == "prior"
    with pytest.raises(ValueError, match="hands"):
        check_source("uniform")


# ------------------------------------------------------------------------------ the session


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(ModelConfig(image_size=64)).eval()


def test_session_samples_from_the_stored_fit_or_the_prior(model):
    rng = np.random.default_rng(4)
    g = LatentGaussian(rng.normal(2.0, 0.5, D), 0.04 * np.eye(D))
    s = Session(model, asynchronous=False,
                latent_stats={"kl_per_dim": [1.0] * D, "hands": g.to_stats()})
    assert s.stats.sampling == "hands"
    hands = np.stack([s.stats.sample(i) for i in range(300)])
    np.testing.assert_allclose(hands.mean(0), g.mean, atol=0.05)
    assert abs(hands.std(0).mean() - 0.2) < 0.02
    prior = np.stack([s.stats.sample(i, source="prior") for i in range(300)])
    assert abs(prior.mean()) < 0.05 and abs(prior.std() - 1) < 0.05
    s.stats.sampling = "prior"
    z = s.randomize(rng=5)
    np.testing.assert_array_equal(z, s.stats.sample(5, source="prior"))
    s.stats.sampling = "hands"
    s.lock("z_y1")
    z2 = s.randomize(rng=6)
    np.testing.assert_array_equal(z2[:32], z[:32])  # locked part kept
    np.testing.assert_array_equal(z2[32:], s.stats.sample(6)[32:])
    with pytest.raises(ValueError, match="unknown sampling source"):
        s.stats.sampling = "uniform"
    with pytest.raises(ValueError):
        s.stats.sample(0, source="box")
    assert s.stats.to_dict()["hands"]["mean"] == pytest.approx(list(g.mean))


def test_session_fits_the_hands_once_when_the_checkpoint_has_none(model, monkeypatch):
    rendered = []

    def fake_synth(n, size, seed):  # stands in for handlatent.synth (slow to JIT-compile)
        rendered.append(n)
        return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)

    monkeypatch.setattr(explorer_stats, "KL_SAMPLES", 12)
    monkeypatch.setattr(explorer_stats, "_synthetic_images", fake_synth)
    s = Session(model, asynchronous=False, latent_stats=None)
    g = s.stats.hands_gaussian
    kl = s.stats.kl_per_dim  # from the same encoding: nothing rendered twice
    assert rendered == [12] and g.n == 12 and kl.shape == (D,)
    mu, logvar = explorer_stats.encode_hands(model, n=12)
    np.testing.assert_allclose(g.mean, mu.mean(0), rtol=1e-5, atol=1e-6)
    assert s.stats.sample(0).shape == (D,)


def test_from_checkpoint_ignores_a_broken_fit(model, tmp_path, caplog):
    from handlatent.checkpoint import save_checkpoint
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, extra={"latent_stats": {
        "kl_per_dim": [1.0] * D, "hands": {"mean": [0.0] * D, "cov": np.eye(3).tolist()}}})
    with caplog.at_level("WARNING", logger="handlatent.explorer"):
        s = Session.from_checkpoint(path, device="cpu", asynchronous=False)
    assert "ignoring its latent_stats" in caplog.text and "expected (64, 64)" in caplog.text
    assert not s.stats.estimated  # fitted on demand instead
    s.close()


# ------------------------------------------------------------------------------ the score


def test_thumbnails_box_filter():
    image = np.zeros((1, 16, 16, 3), np.uint8)
    image[0, :8, :8] = 255  # top-left quarter white
    t = thumbnails(image, size=2).reshape(2, 2, 3)
    np.testing.assert_allclose(t[..., 0], [[1, 0], [0, 0]])
    with pytest.raises(ValueError, match="uint8"):
        thumbnails(np.zeros((1, 16, 16, 3), np.float32))


def test_frechet_distance_known_answers():
    rng = np.random.default_rng(5)
    a = rng.normal(size=(4000, 6))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    shift = np.array([1.0, 2.0, 0, 0, 0, 0])
    assert frechet_distance(a, a + shift) == pytest.approx(5.0, rel=1e-6)
    # N(0, I) vs N(0, 4I) in 6 dimensions: tr(I + 4I - 2·2I) = 6
    assert frechet_distance(a, 2 * rng.normal(size=(4000, 6))) == pytest.approx(6.0, rel=0.1)
    b = rng.normal(size=(300, 6)) + 0.5
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-6)
    with pytest.raises(ValueError, match="feature sets"):
        frechet_distance(a, a[:, :3])
