"""The dVAE objective: each term by hand, fixed decoders in ELBO_emb, unlabelled samples."""

import pytest
import torch

from handlatent.model import DVAELoss, LossConfig, ModelConfig, build_model, dvae_loss
from handlatent.model import objective
from handlatent.skeleton import canonicalize

torch.set_num_threads(1)  # the 2 shared cores: one thread avoids OpenMP stalls under load
TINY = ModelConfig(image_size=64, z_y1=5, z_y2=3, z_u=2, hidden=32, decoder_channels=16)
WEIGHTS = LossConfig(beta=0.3, w_image=0.5, w_cpose=2.0, w_viewpoint=3.0, w_xyz=1.5)
DECODERS = ("image_decoder", "cpose_decoder", "viewpoint_decoder")
LABEL_ENCODERS = ("cpose_encoder", "viewpoint_encoder")


def make_batch(n=4, labelled=None, seed=0):
    """A batch as the DataLoader gives it, with poses from real canonicalize."""
    g = torch.Generator().manual_seed(seed)
    xyz = torch.randn(n, 21, 3, generator=g) * 0.03
    is_right = torch.arange(n) % 2 == 1
    cpose, viewpoint, scale = canonicalize(xyz - xyz[:, :1], is_right)
    coarse = torch.rand(n, 3, 4, 4, generator=g) * 2 - 1  # smooth images a decoder can fit
    image = torch.nn.functional.interpolate(coarse, size=64, mode="bilinear")
    batch = {"image": image, "cpose": cpose,
             "viewpoint": viewpoint, "xyz": xyz, "scale": scale, "is_right": is_right}
    if labelled is not None:
        batch["labelled"] = torch.tensor(labelled)
    return batch


@pytest.fixture
def model():
    torch.manual_seed(0)
    return build_model(TINY)


@pytest.fixture
def posterior_means(monkeypatch):
    """Make the objective deterministic: z is the posterior mean."""
    monkeypatch.setattr(objective, "sample_posterior", lambda mu, logvar: mu)


def grads(model, prefixes):
    return {n: p.grad for n, p in model.named_parameters() if n.split(".")[0] in prefixes}


def test_gaussian_kl_matches_torch_distributions():
    mu, logvar = torch.randn(3, 7), torch.randn(3, 7)
    expected = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu, (0.5 * logvar).exp()),
        torch.distributions.Normal(0.0, 1.0)).sum(-1)
    assert torch.allclose(objective.gaussian_kl(mu, logvar), expected, atol=1e-5)
    assert torch.equal(objective.gaussian_kl(torch.zeros(2, 4), torch.zeros(2, 4)), torch.zeros(2))


def test_sample_posterior_has_the_posteriors_moments():
    torch.manual_seed(0)
    mu, logvar = torch.full((20000, 1), 2.0), torch.full((20000, 1), 2 * torch.tensor(0.5).log())
    z = objective.sample_posterior(mu, logvar)
    assert abs(z.mean() - 2) < 0.02 and abs(z.std() - 0.5) < 0.02


def test_every_term_matches_a_hand_computation(model, posterior_means):
    model.eval()  # BatchNorm per sample, so the two steps' differing sub-batches compare
    labelled = torch.tensor([True, False, True])
    batch = make_batch(3, labelled.tolist())
    batch["cpose"][1] = float("nan")  # an unlabelled sample's labels are never read
    total, terms = dvae_loss(model, batch, WEIGHTS)

    image, cpose, viewpoint = batch["image"], batch["cpose"], batch["viewpoint"]
    sign = torch.tensor([1.0, 1.0, -1.0])  # right hands: canonical z negated
    flipped = torch.where(batch["is_right"][:, None, None], cpose * sign, cpose)
    xyz = flipped @ viewpoint
    with torch.no_grad():
        mu_x, logvar_x = model.encode_image(image)
        mu_y1, logvar_y1, mu_y2, logvar_y2 = model.encode_labels(cpose[labelled],
                                                                 viewpoint[labelled])
        dis_z = torch.cat([mu_y1, mu_y2, mu_x[labelled, 8:]], 1)
        dis_out = model.decode(dis_z, batch["is_right"][labelled])
        emb_out = model.decode(mu_x, batch["is_right"])

    def kl(mu, logvar):
        return 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum() / 3

    expected = {
        "dis/image": ((dis_out["image"] - image[labelled]) ** 2).sum() / 3,
        "dis/cpose": ((dis_out["cpose"] - cpose[labelled]) ** 2).sum() / 3,
        "dis/viewpoint": ((dis_out["viewpoint"] - viewpoint[labelled]) ** 2).sum() / 3,
        "dis/xyz": ((dis_out["xyz"] - xyz[labelled]) ** 2).sum() / 3,
        "dis/kl_z_y1": kl(mu_y1, logvar_y1),
        "dis/kl_z_y2": kl(mu_y2, logvar_y2),
        "dis/kl_z_u": kl(mu_x[labelled, 8:], logvar_x[labelled, 8:]),
        "emb/image": ((emb_out["image"] - image) ** 2).sum() / 3,
        "emb/cpose": ((emb_out["cpose"] - cpose)[labelled] ** 2).sum() / 3,
        "emb/viewpoint": ((emb_out["viewpoint"] - viewpoint)[labelled] ** 2).sum() / 3,
        "emb/xyz": ((emb_out["xyz"] - xyz)[labelled] ** 2).sum() / 3,
        "emb/kl_z_y1": kl(mu_x[:, :5], logvar_x[:, :5]),
        "emb/kl_z_y2": kl(mu_x[:, 5:8], logvar_x[:, 5:8]),
        "emb/kl_z_u": kl(mu_x[:, 8:], logvar_x[:, 8:]),
    }
    for step in ("dis", "emb"):
        expected[step] = sum(
            w * expected[f"{step}/{name}"] for name, w in
            [("image", 0.5), ("cpose", 2.0), ("viewpoint", 3.0), ("xyz", 1.5)]) + 0.3 * sum(
            expected[f"{step}/kl_{z}"] for z in ("z_y1", "z_y2", "z_u"))
    expected["total"] = expected["dis"] + expected["emb"]
    assert set(terms) == set(expected)
    for name, value in expected.items():
        assert torch.allclose(terms[name], value, rtol=1e-5), name
    assert total is terms["total"] and torch.isfinite(total)


def test_calibrated_image_likelihood_hand_weight_and_raw_viewpoint(model, posterior_means):
    """image_likelihood=sigma: D/2 log(batch MSE) per image; w_hand weighs the mask's pixels;
    viewpoint_target=raw compares the decoder's 9 numbers; the logged "image" stays the SSE."""
    model.eval()
    batch = make_batch(3)
    mask = torch.zeros(3, 64, 64, dtype=torch.bool)
    mask[:, 20:40, 10:50] = True
    batch["mask"] = mask
    cfg = LossConfig(beta=0.3, w_image=0.5, w_cpose=2.0, w_viewpoint=3.0, w_xyz=1.5,
                     image_likelihood="sigma", w_hand=4.0, viewpoint_target="raw")
    _, terms = dvae_loss(model, batch, cfg)
    _, plain = dvae_loss(model, batch, WEIGHTS)
    image = batch["image"]
    with torch.no_grad():
        emb_out = model.decode(model.encode_image(image)[0], batch["is_right"])
    error = (emb_out["image"] - image) ** 2
    weighted = error * (1 + 4.0 * mask[:, None].float())
    values = 3 * 64 * 64
    expected_nll = 0.5 * values * 3 * torch.log(weighted.sum() / (3 * values)) / 3
    assert torch.allclose(terms["emb/image_nll"], expected_nll, rtol=1e-5)
    assert torch.allclose(terms["emb/image"], error.sum() / 3, rtol=1e-5)
    assert torch.allclose(terms["emb/viewpoint"],
                          ((emb_out["viewpoint_raw"] - batch["viewpoint"]) ** 2).sum() / 3,
                          rtol=1e-5)
    expected_emb = (0.5 * expected_nll + 2.0 * terms["emb/cpose"] + 3.0 * terms["emb/viewpoint"]
                    + 1.5 * terms["emb/xyz"]
                    + 0.3 * sum(terms[f"emb/kl_{z}"] for z in ("z_y1", "z_y2", "z_u")))
    assert torch.allclose(terms["emb"], expected_emb, rtol=1e-5)
    assert "emb/image_nll" not in plain  # the default objective: the SSE itself
    assert torch.allclose(plain["emb/image"], terms["emb/image"], rtol=1e-5)


def test_edge_term_compares_edge_strength_and_weighs_the_hand(model, posterior_means):
    """w_edges: | |dx^| - |dx| | summed over both axes, hand pixels (1 + w_hand) times; an image
    blurred towards its mean scores worse than itself, and the term adds w_edges times itself."""
    model.eval()
    batch = make_batch(2)
    mask = torch.zeros(2, 64, 64, dtype=torch.bool)
    mask[:, 16:48, 16:48] = True
    batch["mask"] = mask
    cfg = LossConfig(w_edges=2.5, w_hand=3.0)
    _, terms = dvae_loss(model, batch, cfg)
    image = batch["image"]
    with torch.no_grad():
        decoded = model.decode(model.encode_image(image)[0], batch["is_right"])["image"]
    expected = 0.0
    for axis in (-1, -2):
        edge = (decoded.diff(dim=axis).abs() - image.diff(dim=axis).abs()).abs()
        weight = 1 + 3.0 * mask.narrow(axis, 1, 63)[:, None].float()
        expected = expected + (edge * weight).sum() / 2
    assert torch.allclose(terms["emb/edges"], expected, rtol=1e-5)
    _, off = dvae_loss(model, batch, LossConfig(w_hand=3.0))
    assert "emb/edges" not in off
    assert torch.allclose(terms["emb"] - off["emb"], 2.5 * terms["emb/edges"], rtol=1e-4)
    from handlatent.model.objective import _edge_difference
    blurred = image.mean(dim=(-1, -2), keepdim=True).expand_as(image)
    assert _edge_difference(image, image, cfg, mask) == 0
    assert _edge_difference(blurred, image, cfg, mask) > 0


def test_content_twins_feed_z_u_of_the_disentangling_step_only(model, posterior_means):
    """With content_image in the batch, ELBO_dis decodes z_y from the labels and z_u from the
    labelled samples' twins; ELBO_emb still reads everything from the image itself."""
    model.eval()
    labelled = [True, False, True]
    batch = make_batch(3, labelled)
    batch["content_image"] = make_batch(3, seed=9)["image"]
    _, plain = dvae_loss(model, {k: v for k, v in batch.items() if k != "content_image"}, WEIGHTS)
    _, terms = dvae_loss(model, batch, WEIGHTS)
    keep = torch.tensor(labelled)
    with torch.no_grad():
        mu_c, logvar_c = model.encode_image(batch["content_image"][keep])
        mu_y1, _, mu_y2, _ = model.encode_labels(batch["cpose"][keep], batch["viewpoint"][keep])
        dis_out = model.decode(torch.cat([mu_y1, mu_y2, mu_c[:, 8:]], 1), batch["is_right"][keep])
    kl_u = 0.5 * (mu_c[:, 8:] ** 2 + logvar_c[:, 8:].exp() - 1 - logvar_c[:, 8:]).sum() / 3
    assert torch.allclose(terms["dis/kl_z_u"], kl_u, rtol=1e-5)
    assert torch.allclose(terms["dis/image"],
                          ((dis_out["image"] - batch["image"][keep]) ** 2).sum() / 3, rtol=1e-5)
    assert not torch.allclose(terms["dis/image"], plain["dis/image"])
    for name in ("emb/image", "emb/xyz", "emb/kl_z_u", "dis/cpose", "dis/kl_z_y1"):
        assert torch.allclose(terms[name], plain[name], rtol=1e-5), name


def test_beta_z_u_weighs_only_the_content_kl(model):
    """beta_z_u replaces beta on z_u's KL in both steps and leaves every other term as it was."""
    from dataclasses import replace
    batch = make_batch(4, [True, False, True, True])
    torch.manual_seed(1)
    _, plain = dvae_loss(model, batch, WEIGHTS)
    torch.manual_seed(1)
    _, tight = dvae_loss(model, batch, replace(WEIGHTS, beta_z_u=5.0))
    for step in ("dis", "emb"):
        extra = (5.0 - 0.3) * plain[f"{step}/kl_z_u"]
        assert plain[f"{step}/kl_z_u"] > 0
        assert torch.allclose(tight[step], plain[step] + extra, rtol=1e-5), step
    assert all(torch.equal(tight[k], v) for k, v in plain.items() if "/" in k)


def test_embedding_step_moves_the_image_encoder_and_not_the_decoders(model):
    _, terms = dvae_loss(model, make_batch(), LossConfig())
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    terms["emb"].backward()
    optimizer.step()
    for name, p in model.named_parameters():
        component = name.split(".")[0]
        if component in DECODERS or component in LABEL_ENCODERS:
            assert p.grad is None and torch.equal(p, before[name]), name
    assert not torch.equal(model.image_encoder.conv1.weight, before["image_encoder.conv1.weight"])
    assert not torch.equal(model.image_encoder.fc.weight, before["image_encoder.fc.weight"])


def test_disentangling_step_trains_z_u_of_the_image_encoder_only(model):
    _, terms = dvae_loss(model, make_batch(), LossConfig())
    terms["dis"].backward()
    fc_grad = model.image_encoder.fc.weight.grad  # rows: mu (10), then logvar (10)
    d, u = 10, slice(8, 10)
    assert fc_grad[u].abs().sum() > 0 and fc_grad[d:][u].abs().sum() > 0
    assert torch.equal(fc_grad[:8], torch.zeros_like(fc_grad[:8]))
    assert torch.equal(fc_grad[d:d + 8], torch.zeros_like(fc_grad[:8]))
    for name, grad in grads(model, DECODERS + LABEL_ENCODERS).items():
        assert grad is not None and grad.abs().sum() > 0, name


def test_unlabelled_samples_add_no_pose_terms_and_no_label_encoder_gradient(model,
                                                                          posterior_means):
    model.eval()
    batch = make_batch(4, [True, False, True, False])
    _, terms = dvae_loss(model, batch, WEIGHTS)
    terms["total"].backward()
    reference = {n: g.clone() for n, g in grads(model, LABEL_ENCODERS).items()}
    model.zero_grad()

    garbage = dict(batch, cpose=batch["cpose"].clone(), viewpoint=batch["viewpoint"].clone())
    garbage["cpose"][[1, 3]] = float("nan")
    garbage["viewpoint"][[1, 3]] = 1e6
    _, garbage_terms = dvae_loss(model, garbage, WEIGHTS)
    garbage_terms["total"].backward()
    for name, grad in grads(model, LABEL_ENCODERS).items():
        assert torch.equal(grad, reference[name]), name
    for name, value in terms.items():
        assert torch.equal(garbage_terms[name], value), name
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)

    only_labelled = {k: v[[0, 2]] for k, v in batch.items() if k != "labelled"}
    _, subset_terms = dvae_loss(model, only_labelled, WEIGHTS)
    for name in ("dis/image", "dis/cpose", "dis/kl_z_y1", "emb/cpose", "emb/xyz"):
        assert torch.allclose(terms[name], subset_terms[name] / 2, rtol=1e-5), name


def test_an_unlabelled_batch_has_only_image_terms(model):
    _, terms = dvae_loss(model, make_batch(2, [False, False]), LossConfig())
    terms["total"].backward()
    for name, value in terms.items():
        if name.startswith("dis") or name.split("/")[-1] in ("cpose", "viewpoint", "xyz"):
            assert value == 0, name
    assert terms["emb/image"] > 0 and terms["emb/kl_z_u"] > 0
    for name, grad in grads(model, LABEL_ENCODERS).items():
        assert not grad.any(), name  # zero gradients, present for DistributedDataParallel


def test_loss_decreases_when_overfitting_a_tiny_batch(model):
    torch.manual_seed(0)
    batch = make_batch(4, [True, True, False, True])
    loss_fn = DVAELoss(model, LossConfig(beta=0.01))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    history = []
    for _ in range(30):
        total, terms = loss_fn(batch)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        history.append({k: v.item() for k, v in terms.items()})
    losses = [h["total"] for h in history]
    assert sum(losses[-5:]) / 5 < 0.75 * losses[0], losses
    for name in ("dis/image", "dis/cpose", "dis/viewpoint", "emb/image", "emb/cpose"):
        assert history[-1][name] < history[0][name], name


def test_guided_decoder_adds_a_2d_keypoint_term_in_both_steps(posterior_means):
    """A bone-guided decoder's keypoints are compared with the labels' uv, normalised to [-1, 1]
    across the image, weighted by w_uv; the keypoint MLP learns from the disentangling step."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(image_size=64, z_y1=5, z_y2=3, z_u=2, hidden=32,
                                    decoder_channels=16, decoder_guide="bones")).eval()
    batch = make_batch(3)
    batch["uv"] = torch.rand(3, 21, 2) * 64
    _, terms = dvae_loss(model, batch, WEIGHTS)
    weighted, heavy = dvae_loss(model, batch, LossConfig(**{**WEIGHTS.__dict__, "w_uv": 2.0}))
    with torch.no_grad():
        emb_uv = model.decode(model.encode_image(batch["image"])[0])["uv"]
    target = (2 * batch["uv"] + 1) / 64 - 1
    assert torch.allclose(heavy["emb/uv"], ((emb_uv - target) ** 2).sum() / 3, rtol=1e-5)
    assert torch.allclose(weighted - terms["total"], 2 * (heavy["dis/uv"] + heavy["emb/uv"]),
                          rtol=1e-4)
    weighted.backward()
    head = model.image_decoder.keypoints.out.weight.grad
    assert head is not None and head.abs().sum() > 0
    _, unguided = dvae_loss(build_model(TINY), make_batch(3), WEIGHTS)
    assert "dis/uv" not in unguided  # no keypoints decoded, no term (and no uv needed)


def test_teacher_forcing_draws_the_labels_bones_and_the_keypoint_mlp_learns_in_both_steps(
        posterior_means):
    """uv_teacher: the disentangling step's image follows the labels' uv, not the decoded
    keypoints; the embedding step leaves every decoder fixed except the keypoint MLP."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(image_size=64, z_y1=5, z_y2=3, z_u=2, hidden=32,
                                    decoder_channels=16, decoder_guide="bones")).eval()
    with torch.no_grad():  # the bone maps' weights are not zero at a fresh start; make them count
        for conv in (*model.image_decoder.blocks, model.image_decoder.to_rgb):
            conv[0].weight[-5:] *= 20
    batch = make_batch(3)
    batch["uv"] = torch.rand(3, 21, 2) * 64
    cfg = LossConfig(**{**WEIGHTS.__dict__, "w_uv": 1.0})
    _, own = dvae_loss(model, batch, cfg)
    _, taught = dvae_loss(model, batch, LossConfig(**{**cfg.__dict__, "uv_teacher": True}))
    assert not torch.allclose(taught["dis/image"], own["dis/image"])
    assert torch.equal(taught["emb/image"], own["emb/image"])  # the embedding step draws its own
    assert torch.equal(taught["dis/uv"], own["dis/uv"])  # the keypoints are still scored
    model.zero_grad()
    emb_only = taught["emb"]
    emb_only.backward()
    moved = {n.split(".")[1] for n, p in model.named_parameters()
             if n.startswith("image_decoder.") and p.grad is not None and p.grad.abs().sum() > 0}
    assert moved == {"keypoints"}
