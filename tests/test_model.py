"""The dVAE networks: latent layout, config, ResNet-18 encoder, DCGAN decoder, pose MLPs."""

import copy

import pytest
import torch

from handlatent.rotations import project_to_so3

from handlatent.model import DVAE, LatentLayout, ModelConfig, build_model, load_torchvision_resnet18
from handlatent.model.image_decoder import DCGANDecoder
from handlatent.model.mlp import MLP
from handlatent.model.resnet import resnet18
from handlatent.skeleton import compose

torch.set_num_threads(1)  # the 2 shared cores: one thread avoids OpenMP stalls under load
TINY = ModelConfig(image_size=64, z_y1=5, z_y2=3, z_u=2, hidden=32, decoder_channels=16)


def test_layout_slices_split_and_join_round_trip():
    layout = LatentLayout(z_y1=4, z_y2=3, z_u=2)
    assert layout.names == ("z_y1", "z_y2", "z_u") and layout.sizes == (4, 3, 2)
    assert layout.total == 9
    assert layout.slices == {"z_y1": slice(0, 4), "z_y2": slice(4, 7), "z_u": slice(7, 9)}
    z = torch.randn(2, 9)
    parts = layout.split(z)
    assert torch.equal(parts["z_y2"], z[:, 4:7])
    assert torch.equal(layout.join(parts), z)
    assert LatentLayout.from_dict(layout.to_dict()) == layout
    assert set(LatentLayout.TITLES) == set(layout.names)


def test_layout_defaults_total_the_papers_64_and_reject_bad_sizes():
    assert LatentLayout().total == 64
    assert LatentLayout(8, 8, 0).split(torch.zeros(1, 16))["z_u"].shape == (1, 0)
    for bad in ({"z_y1": 0}, {"z_u": -1}, {"z_y2": 2.0}):
        with pytest.raises(ValueError):
            LatentLayout(**bad)
    with pytest.raises(ValueError, match="unknown"):
        LatentLayout.from_dict({"z_y1": 1, "z_v": 2})
    with pytest.raises(ValueError, match="entries"):
        LatentLayout().split(torch.zeros(2, 63))
    with pytest.raises(ValueError, match="expected sub-latents"):
        LatentLayout(2, 2, 2).join({"z_y1": torch.zeros(1, 2)})


def test_model_config_round_trips_and_names_bad_keys():
    assert ModelConfig.from_dict(TINY.to_dict()) == TINY
    assert TINY.layout == LatentLayout(5, 3, 2)
    with pytest.raises(ValueError, match="unknown model config keys: \\['depth'\\]"):
        ModelConfig.from_dict({"depth": 3})
    with pytest.raises(ValueError, match="image_size"):
        ModelConfig(image_size=96)
    with pytest.raises(ValueError, match="hidden must be an int"):
        ModelConfig(hidden="512")


@pytest.mark.parametrize("size, stages", [(64, 3), (128, 4), (256, 5)])
def test_image_decoder_follows_table_1(size, stages):
    decoder = DCGANDecoder(latent_size=64, image_size=size).eval()
    tconvs = [m for m in decoder.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert len(tconvs) == stages
    assert decoder.fc.out_features == 8192
    assert [t.out_channels for t in tconvs] == [64, 32, 16, 8][:stages - 1] + [3]
    assert all(t.kernel_size == (5, 5) and t.stride == (2, 2) for t in tconvs)
    with torch.no_grad():
        image = decoder(torch.randn(2, 64))
    assert image.shape == (2, 3, size, size)
    assert image.abs().max() <= 1


def test_image_decoder_rejects_sizes_it_cannot_reach():
    with pytest.raises(ValueError, match="image_size"):
        DCGANDecoder(8, 96)
    with pytest.raises(ValueError, match="halve"):
        DCGANDecoder(8, 256, channels=8)


@pytest.mark.parametrize("size", [64, 128, 256])
def test_resnet18_encoder_works_at_every_image_size(size):
    encoder = resnet18(num_outputs=10).eval()
    with torch.no_grad():
        assert encoder(torch.randn(1, 3, size, size)).shape == (1, 10)


def test_resnet18_has_torchvisions_names_and_shapes():
    state = resnet18(num_outputs=1000).state_dict()
    assert len([k for k in state if not k.endswith("num_batches_tracked")]) == 102
    assert state["conv1.weight"].shape == (64, 3, 7, 7)
    assert state["layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1)
    assert state["layer4.1.bn2.running_var"].shape == (512,)
    assert state["fc.weight"].shape == (1000, 512)
    assert "layer1.0.downsample.0.weight" not in state


def test_load_torchvision_resnet18_copies_all_but_fc(tmp_path):
    imagenet = resnet18(num_outputs=1000)  # stands in for torchvision's resnet18-*.pth
    with torch.no_grad():
        for p in imagenet.parameters():
            p.normal_()
    state = {k: v for k, v in imagenet.state_dict().items()
             if not k.endswith("num_batches_tracked")}  # older torchvision files lack them
    torch.save(state, tmp_path / "resnet18.pth")
    encoder = resnet18(num_outputs=20)
    fc_before = encoder.fc.weight.clone()
    load_torchvision_resnet18(encoder, tmp_path / "resnet18.pth")
    for name, value in encoder.state_dict().items():
        if name in state and not name.startswith("fc."):
            assert torch.equal(value, state[name]), name
    assert torch.equal(encoder.fc.weight, fc_before)

    del state["layer3.1.conv2.weight"]
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(ValueError, match="missing \\['layer3.1.conv2.weight'\\]"):
        load_torchvision_resnet18(encoder, tmp_path / "broken.pth")


def test_pose_mlps_follow_table_2():
    model = build_model(ModelConfig(z_y1=32, z_y2=16, z_u=16))
    linear = [m for m in model.cpose_encoder if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(63, 512), (512, 512), (512, 64)]
    linear = [m for m in model.viewpoint_decoder if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(16, 512), (512, 9)]
    assert MLP(4, 2, hidden=8, depth=2)(torch.zeros(3, 2, 2)).shape == (3, 2)
    with pytest.raises(ValueError):
        MLP(4, 2, depth=0)


@pytest.mark.parametrize("size, total", [(64, 12_708_491), (128, 12_720_123), (256, 12_722_739)])
def test_parameter_counts_match_docs(size, total):
    model = build_model(ModelConfig(image_size=size))
    assert sum(p.numel() for p in model.parameters()) == total


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_model(TINY).eval()


def test_decode_gives_image_rotation_and_composed_pose(tiny):
    z = tiny.sample_prior(3)
    is_right = torch.tensor([False, True, False])
    with torch.no_grad():
        out = tiny.decode(z, is_right)
    assert set(out) == {"image", "cpose", "viewpoint", "viewpoint_raw", "xyz"}
    assert out["image"].shape == (3, 3, 64, 64) and out["image"].abs().max() <= 1
    assert torch.allclose(project_to_so3(out["viewpoint_raw"]), out["viewpoint"])
    assert out["cpose"].shape == (3, 21, 3)
    rot = out["viewpoint"]
    assert torch.allclose(rot @ rot.transpose(-1, -2), torch.eye(3).expand(3, 3, 3), atol=1e-5)
    assert torch.allclose(torch.linalg.det(rot), torch.ones(3), atol=1e-5)
    assert torch.allclose(out["xyz"], compose(out["cpose"], rot, is_right=is_right))
    with torch.no_grad():
        pose = tiny.decode_pose(z, is_right)
        assert torch.equal(tiny(z, is_right)["image"], out["image"])
    for key in ("cpose", "viewpoint", "xyz"):
        assert torch.equal(pose[key], out[key])


@pytest.mark.parametrize("upsample", ["tconv5", "tconv4", "nearest"])
@pytest.mark.parametrize("norm", ["batch", "group"])
def test_decoder_variants_draw_the_models_size(upsample, norm):
    config = ModelConfig(image_size=64, z_y1=4, z_y2=3, z_u=2, hidden=16, decoder_channels=16,
                         decoder_upsample=upsample, decoder_norm=norm)
    torch.manual_seed(0)
    model = build_model(config)
    z = model.sample_prior(4)
    train_image = model.decode(z)["image"]
    model.eval()
    with torch.no_grad():
        eval_image = model.decode(z)["image"]
    assert train_image.shape == eval_image.shape == (4, 3, 64, 64)
    # GroupNorm has no running statistics: a decoded latent is the same in both modes
    assert torch.allclose(train_image, eval_image, atol=1e-6) == (norm == "group")
    assert ModelConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="decoder_upsample must be one of"):
        ModelConfig(decoder_upsample="bilinear")
    # a checkpoint written before these fields existed means the paper's decoder
    old = {k: v for k, v in config.to_dict().items() if not k.startswith("decoder_")}
    assert ModelConfig.from_dict(old).decoder_upsample == "tconv5"


def test_pose_depends_only_on_its_sub_latents(tiny):
    z = tiny.sample_prior(2)
    changed = z.clone()
    changed[:, tiny.layout.slices["z_u"]] += 1
    changed[:, tiny.layout.slices["z_y2"]] += 1
    with torch.no_grad():
        a, b = tiny.decode_pose(z), tiny.decode_pose(changed)
    assert torch.equal(a["cpose"], b["cpose"])
    assert not torch.allclose(a["viewpoint"], b["viewpoint"])


def test_encoders_give_mean_and_logvar_of_the_right_sizes(tiny):
    with torch.no_grad():
        mu, logvar = tiny.encode_image(torch.rand(2, 3, 64, 64) * 2 - 1)
        mu_y1, logvar_y1, mu_y2, logvar_y2 = tiny.encode_labels(torch.randn(2, 21, 3),
                                                                torch.eye(3).expand(2, 3, 3))
    assert mu.shape == logvar.shape == (2, 10)
    assert mu_y1.shape == logvar_y1.shape == (2, 5)
    assert mu_y2.shape == logvar_y2.shape == (2, 3)


def test_latent_from_labels_takes_pose_from_the_labels_and_content_from_the_image(tiny):
    cpose, viewpoint = torch.randn(2, 21, 3), torch.eye(3).expand(2, 3, 3)
    with torch.no_grad():
        mu, _ = tiny.encode_image(torch.rand(2, 3, 64, 64) * 2 - 1)
        z = tiny.latent_from_labels(cpose, viewpoint, mu)
        y1, _ = tiny.cpose_encoder(cpose.reshape(2, -1)).chunk(2, dim=-1)
        y2, _ = tiny.viewpoint_encoder(viewpoint.reshape(2, -1)).chunk(2, dim=-1)
    s = tiny.layout.slices
    assert z.shape == (2, 10)
    assert torch.equal(z[:, s["z_y1"]], y1) and torch.equal(z[:, s["z_y2"]], y2)
    assert torch.equal(z[:, s["z_u"]], mu[:, s["z_u"]])


def test_sample_prior_is_reproducible_with_a_generator(tiny):
    a = tiny.sample_prior(4, generator=torch.Generator().manual_seed(1))
    b = tiny.sample_prior(4, generator=torch.Generator().manual_seed(1))
    assert a.shape == (4, 10) and torch.equal(a, b)
    assert isinstance(tiny, DVAE) and tiny.layout == TINY.layout and tiny.config == TINY


@pytest.mark.parametrize("channels_last", [False, True])
def test_phase_form_of_the_last_stage_is_the_papers_transposed_convolution(channels_last):
    """PhaseTConv5 (the decoder's last stage) computes _tconv's output and gradients from the
    same parameters, so checkpoints of either load into the other."""
    from handlatent.model.image_decoder import PhaseTConv5, _tconv
    torch.manual_seed(2)
    plain, phase = _tconv(7, 3, bias=True), PhaseTConv5(7, 3, bias=True)
    phase.load_state_dict(plain.state_dict())
    x = torch.randn(2, 7, 9, 11)
    if channels_last:
        phase, x = phase.to(memory_format=torch.channels_last), x.contiguous(
            memory_format=torch.channels_last)
    x.requires_grad_()
    outputs = [layer(x) for layer in (plain, phase)]
    assert outputs[0].shape == outputs[1].shape == (2, 3, 18, 22)
    assert torch.allclose(outputs[0], outputs[1], atol=1e-5)
    grads = [torch.autograd.grad((o * o).sum(), [x, layer.weight, layer.bias])
             for o, layer in zip(outputs, (plain, phase))]
    for a, b in zip(*grads):
        assert torch.allclose(a, b, atol=1e-4)
    assert set(phase.state_dict()) == {"weight", "bias"}  # the taps are not saved


def test_phase_taps_place_each_5x5_tap_once():
    """The phase form reads each of the 25 taps exactly once over its four phases: 9, 6, 6
    and 4 taps (three or two per axis), the rest NO_TAP."""
    from handlatent.model.image_decoder import NO_TAP, _phase_taps
    taps = _phase_taps()
    real = taps[taps != NO_TAP]
    assert sorted(real.tolist()) == list(range(25))
    assert (taps != NO_TAP).flatten(2).sum(-1).tolist() == [[9, 6], [6, 4]]


def test_sigmoid_tanh_is_tanh():
    from handlatent.model.image_decoder import SigmoidTanh
    x = torch.linspace(-30, 30, 10001)
    assert torch.allclose(SigmoidTanh()(x), torch.tanh(x), atol=1e-6)


def _guided_decoder(seed: int, guide: str = "bones") -> DCGANDecoder:
    """A small decoder (guided by default) with trained-looking normalisation (running
    statistics, affine)."""
    torch.manual_seed(seed)
    decoder = DCGANDecoder(12, 64, channels=32, guide=guide, hidden=16)
    with torch.no_grad():
        for norm in (decoder.bn, decoder.blocks[0][1]):
            norm.running_mean.uniform_(-1, 1), norm.running_var.uniform_(0.2, 3)
            norm.weight.uniform_(0.5, 1.5), norm.bias.uniform_(-0.5, 0.5)
    return decoder


def _fresh_image(decoder: DCGANDecoder, z: torch.Tensor) -> torch.Tensor:
    """What a newly built decoder with `decoder`'s weights draws from z in evaluation mode."""
    fresh = DCGANDecoder(12, 64, channels=32, guide="bones", hidden=16)
    fresh.load_state_dict(decoder.state_dict())
    with torch.no_grad():
        return fresh.eval()(z)


@pytest.mark.parametrize("guide", ["none", "bones"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_prepared_decoder_draws_the_same_image(guide, channels_last):
    """A decoder prepared for inference folds FC -> BatchNorm -> first stage -> BatchNorm into
    one matrix (start_fold.py) and keeps its phase kernel: the image is the step-by-step one to
    float rounding, at batch 1 and 5, in either memory layout."""
    decoder = _guided_decoder(5, guide)
    if channels_last:
        decoder = decoder.to(memory_format=torch.channels_last)
    prepared = copy.deepcopy(decoder).prepare_for_inference()
    assert prepared.start_fold is not None and prepared.to_rgb[0].kept is not None
    assert not any(p.requires_grad for p in prepared.parameters())
    for batch in (1, 5):
        z = torch.randn(batch, 12)
        with torch.inference_mode():
            folded, plain = prepared(z), decoder.eval()(z)
        assert folded.shape == (batch, 3, 64, 64)
        assert torch.allclose(folded, plain, atol=2e-5)
        assert not torch.equal(folded[0], torch.zeros_like(folded[0]))
    z = torch.randn(2, 12, requires_grad=True)  # a gradient to the latent passes through
    (grad,) = torch.autograd.grad(prepared(z).sum(), z)
    assert grad.abs().sum() > 0


def test_prepared_decoder_follows_loaded_weights_and_casts_and_trains_again():
    """Loading a state dict or casting rebuilds the prepared parts; train() drops them and
    makes every weight trainable again, so gradients reach them all."""
    decoder, other = _guided_decoder(6).prepare_for_inference(), _guided_decoder(7)
    z = torch.randn(3, 12)
    decoder.load_state_dict(other.state_dict())
    with torch.no_grad():
        assert torch.allclose(decoder(z), other.eval()(z), atol=2e-5)
        assert torch.allclose(decoder.double()(z.double()), other.double()(z.double()),
                              atol=1e-9)
    decoder.float().train()
    assert decoder.start_fold is None and decoder.to_rgb[0].kept is None
    decoder(z).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in decoder.parameters())


def test_a_move_that_changes_nothing_keeps_the_prepared_parts():
    """A model switch moves the prepared model to the device it is already on: the parts stay
    (they cost ~60 ms to build, on the GUI thread there); a real cast still rebuilds them."""
    decoder = _guided_decoder(9).prepare_for_inference()
    fold = decoder.start_fold
    assert decoder.to("cpu").start_fold is fold and decoder.float().start_fold is fold
    assert decoder.double().start_fold is not fold


def test_eval_after_a_fused_adam_step_draws_with_the_new_weights():
    """Validation after a training step (fused Adam, which writes the weights without bumping
    their version counters) draws what a freshly built decoder with those weights draws."""
    decoder = _guided_decoder(8)
    z = torch.randn(3, 12)
    optimiser = torch.optim.Adam(decoder.parameters(), lr=0.05, fused=True)
    decoder.train()(z).square().mean().backward()
    with torch.no_grad():  # e.g. images logged between the backward pass and the step
        before = decoder.eval()(z)
    optimiser.step()
    with torch.no_grad():
        after = decoder.eval()(z)
    assert not torch.allclose(after, before, atol=1e-3)
    assert torch.equal(after, _fresh_image(decoder, z))


def test_eval_after_a_data_write_draws_with_the_new_weights():
    """A write through `.data` (an EMA, a weight surgery) shows in the next decode."""
    decoder = _guided_decoder(9).eval()
    z = torch.randn(3, 12)
    with torch.no_grad():
        before = decoder(z)
    for layer in (decoder.fc, decoder.blocks[0][0], decoder.to_rgb[0]):
        layer.weight.data.mul_(1.5)  # in place, its version counter unchanged
    decoder.blocks[0][1].running_var.data.mul_(2)
    with torch.no_grad():
        after = decoder(z)
    assert not torch.allclose(after, before, atol=1e-3)
    assert torch.equal(after, _fresh_image(decoder, z))


def test_partial_freeze_keeps_gradients_for_the_rest():
    """With only the FC frozen, a pass in evaluation mode still gives gradients to the first
    transposed convolution and both batch norms."""
    decoder = _guided_decoder(10).eval()
    decoder.fc.requires_grad_(False)
    decoder(torch.randn(3, 12)).square().mean().backward()
    for p in (decoder.blocks[0][0].weight, decoder.bn.weight, decoder.bn.bias,
              decoder.blocks[0][1].weight, decoder.blocks[0][1].bias):
        assert p.grad is not None and p.grad.abs().sum() > 0
    assert decoder.fc.weight.grad is None


def test_group_norm_decoder_has_no_fold():
    """GroupNorm normalises each image by its own statistics, which is not affine in z."""
    decoder = DCGANDecoder(12, 64, channels=32, norm="group").eval()
    assert not decoder.foldable and decoder.prepare_for_inference().start_fold is None
    with torch.no_grad():
        assert decoder(torch.randn(2, 12)).shape == (2, 3, 64, 64)


def test_transplant_widens_a_decoder_given_bone_maps_at_zero():
    """The paper's decoder transplanted into a guided one (run.init_match "shapes"): the
    convolutions' new bone-map inputs start at zero weights, so the guided decoder draws the
    same image, whatever its fresh keypoint MLP decodes."""
    from handlatent.model.surgery import transplant
    plain = _guided_decoder(11, guide="none").eval()
    guided = DCGANDecoder(12, 64, channels=32, guide="bones", hidden=16).eval()
    done = transplant(guided, plain.state_dict(), strict=False)
    assert done.grown == ["blocks.0.0.weight", "blocks.1.0.weight", "to_rgb.0.weight"]
    assert done.fresh == ["keypoints"]
    z = torch.randn(2, 12)
    with torch.no_grad():
        assert torch.allclose(guided(z), plain(z), atol=1e-6)
