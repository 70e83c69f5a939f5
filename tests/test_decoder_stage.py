"""The decoder stage (issue 24): the skeleton projection, function-preserving growth of the image
decoder, the sharpening image distances, and a decoder-stage run that leaves every frozen
weight and statistic bit-identical."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from handlatent.checkpoint import load_checkpoint, load_model
from handlatent.model import ModelConfig, build_model
from handlatent.model.bone_maps import normalise_uv
from handlatent.model.growth import grow_state
from handlatent.model.image_losses import RandomFeatures, focal_frequency, ssim
from handlatent.model.skeleton_projection import CROP_MARGIN, KAPPA, project_to_crop
from handlatent.skeleton import canonicalize, compose
from handlatent.synth import camera, kinematics
from handlatent.synth.scene import sample_scene
from handlatent.training.config import ConfigError, load_config
from handlatent.training.train import train
from tests.test_train import SMOKE


def true_crop(scene, xyz: np.ndarray) -> torch.Tensor:
    """The crop parameters (B, 7) the renderer used for `scene` with keypoints `xyz` (metres)."""
    _, _, scale = canonicalize(xyz - xyz[:, :1], is_right=scene.view.is_right)
    root = xyz[:, 0]
    crop = np.zeros((len(xyz), 7))
    crop[:, 0] = np.log(scale / root[:, 2] / KAPPA)
    crop[:, 1:3] = root[:, :2] / root[:, 2:3]
    crop[:, 3] = np.log(scene.view.crop_scale * 1.3 / CROP_MARGIN)
    crop[:, 4:6] = scene.view.crop_shift
    crop[:, 6] = np.where(scene.view.is_right, 1.0, -1.0)
    return torch.from_numpy(crop)


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_projection_is_the_renderers_camera_given_its_crop(seed):
    scene = sample_scene(np.random.default_rng(seed), 16)
    geom = kinematics.forward_kinematics(scene.angles, scene.shape, scene.wrist)
    xyz = camera.place_points(geom.keypoints, geom.keypoints[:, 0], scene.view)
    uv = camera.project(camera.crop_intrinsics(xyz, scene.view, 128), xyz)
    cpose, viewpoint, scale = canonicalize(xyz - xyz[:, :1], is_right=scene.view.is_right)
    pose = compose(torch.from_numpy(cpose), torch.from_numpy(viewpoint),
                   is_right=torch.from_numpy(scene.view.is_right))  # bone units, as decoded
    drawn = project_to_crop(pose.double(), true_crop(scene, xyz))
    pixels = (drawn - normalise_uv(torch.from_numpy(uv), 128)).norm(dim=-1) * 64
    assert pixels.max() < 1e-3


def grown_pair(guide_old: str = "bones"):
    base = dict(image_size=64, z_y1=8, z_y2=4, z_u=4, hidden=64, decoder_channels=32)
    old = build_model(ModelConfig(**base, decoder_guide=guide_old)).eval()
    with torch.no_grad():  # batch-norm statistics away from their defaults
        for m in old.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    new = build_model(ModelConfig(**base, decoder_guide="skeleton", decoder_min_channels=16,
                                  decoder_blocks=1)).eval()
    state, fresh = grow_state(new, old.state_dict(), old.image_decoder.guided)
    new.load_state_dict(state, strict=False)
    return old, new, fresh


def test_grown_decoder_draws_what_the_old_one_drew():
    old, new, fresh = grown_pair()
    assert any(name.startswith("image_decoder.refine.") for name in fresh)
    assert any(name.startswith("image_decoder.crop.") for name in fresh)
    assert new.image_decoder.blocks[-1][0].weight.shape[1] == 16  # wider than 32 >> 2 = 8
    z = torch.randn(6, 16)
    uv = torch.rand(6, 21, 2) * 1.6 - 0.8
    with torch.no_grad():
        before = old.image_decoder.draw(z, uv)["image"]
        after = new.image_decoder.draw(z, uv)["image"]
    assert (before - after).abs().max() < 1e-5


def test_skeleton_decoder_draws_the_decoded_skeleton():
    _, model, _ = grown_pair()
    z = torch.randn(4, 16)
    with torch.no_grad():
        out = model.decode(z)
        uv = project_to_crop(model.decode_pose(z, out["is_right"])["xyz"], out["crop"])
        again = model.image_decoder.draw(z, uv)["image"]
        moved = z.clone()
        moved[:, :8] += 2.0  # another pose: another skeleton, another image
        other = model.decode(moved)
    assert torch.equal(out["uv"], uv) and torch.allclose(out["image"], again)
    assert (other["uv"] - out["uv"]).abs().max() > 0.05
    assert (other["image"] - out["image"]).abs().max() > 1e-3
    right = model.decode(z, is_right=True)
    assert bool(right["is_right"].all())
    assert torch.allclose(right["xyz"], compose(right["cpose"], right["viewpoint"], is_right=True))
    with pytest.raises(ValueError, match="given keypoints"):
        model.image_decoder.draw(z)


def test_image_distances():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 32, 32, generator=g) * 2 - 1
    noisy = (x + 0.3 * torch.randn(x.shape, generator=g)).clamp(-1, 1)
    blurred = torch.nn.functional.avg_pool2d(x, 3, 1, 1)
    assert torch.allclose(ssim(x, x), torch.ones(3))
    assert (ssim(noisy, x) < 0.9).all() and (ssim(blurred, x) < 1).all()
    assert torch.allclose(focal_frequency(x, x), torch.zeros(3))
    assert (focal_frequency(blurred, x) > 0).all()
    features = RandomFeatures(seed=3)
    assert all(not p.requires_grad for p in features.parameters())
    assert torch.equal(features.stages[0][0].weight, RandomFeatures(seed=3).stages[0][0].weight)
    assert torch.allclose(features(x, x), torch.zeros(3))
    near, far = features(blurred, x), features(torch.zeros_like(x), x)
    assert (near < far).all()


@pytest.fixture(scope="module")
def decoder_run(tmp_path_factory):
    """A smoke model, then three decoder-stage steps from it on its own rendered data."""
    root = tmp_path_factory.mktemp("decoder-stage")
    whole = root / "whole"
    train(load_config(SMOKE, ["model.decoder_guide=bones", "loss.w_uv=1"]), whole)
    stage = root / "stage"
    sets = [f"run.init={whole / 'last.pt'}", "run.init_match=grow", "run.steps=3",
            f"data.train={whole / 'synthetic-data'}", "model.decoder_guide=skeleton",
            "model.decoder_min_channels=16", "model.decoder_blocks=1", "decoder.enabled=true",
            "decoder.w_ssim=0.5", "decoder.w_ffl=1", "decoder.w_perceptual=0.1",
            "decoder.head_steps=20", "optim.lr=0.01"]
    summary = train(load_config(SMOKE, sets), stage)
    assert summary["step"] == 3
    return whole, stage, sets


def test_crop_head_trained_alone_first(decoder_run, tmp_path, capsys):
    whole, stage, sets = decoder_run
    cfg = load_config(SMOKE, sets + [f"decoder.posterior_file={stage / 'posteriors.pt'}",
                                     "run.steps=1", "decoder.head_steps=60"])
    train(cfg, tmp_path / "head")
    said = [line for line in capsys.readouterr().out.splitlines() if "crop head alone" in line]
    assert said and "'side_error'" in said[0]
    grown = load_checkpoint(tmp_path / "head" / "last.pt")["state_dict"]
    assert grown["image_decoder.crop.out.weight"].abs().sum() > 0  # it left its zero start


def test_decoder_stage_leaves_the_frozen_parts_bit_identical(decoder_run):
    whole, stage, _ = decoder_run
    before = load_checkpoint(whole / "last.pt")["state_dict"]
    after = load_checkpoint(stage / "last.pt")["state_dict"]
    frozen = [k for k in after if not k.startswith("image_decoder.")]
    assert any("running_mean" in k for k in frozen) and len(frozen) > 50
    for name in frozen:
        assert torch.equal(before[name], after[name]), name
    grown = load_model(stage / "last.pt", "cpu")
    assert grown.config.decoder_guide == "skeleton"
    changed = [k for k in after if k.startswith("image_decoder.") and k in before
               and before[k].shape == after[k].shape and not torch.equal(before[k], after[k])]
    assert any(k.startswith("image_decoder.blocks.") for k in changed)
    lines = (stage / "metrics.jsonl").read_text().splitlines()
    assert all(key in lines[0] for key in ('"ssim"', '"ffl"', '"perceptual"', '"uv"', '"side"'))
    assert (stage / "posteriors.pt").exists()


def test_decoder_stage_reuses_its_posteriors_and_refuses_a_stream(decoder_run, tmp_path, capsys):
    whole, stage, sets = decoder_run
    again = load_config(SMOKE, sets + [f"decoder.posterior_file={stage / 'posteriors.pt'}",
                                       "run.steps=1"])
    train(again, tmp_path / "again")
    assert "posteriors of 24 images from" in capsys.readouterr().out
    stream = load_config(SMOKE, sets + ["data.train=null", "data.synthetic.fresh=true"])
    with pytest.raises(ConfigError, match="decoder.cache_posteriors"):
        train(stream, tmp_path / "stream")
    assert math.isfinite(torch.load(stage / "posteriors.pt", weights_only=True)["table"].sum())
