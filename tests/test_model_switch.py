"""Switching a session's model, comparing two models and following a run, without Qt."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest
import torch
from PIL import Image

from handlatent.checkpoint import CheckpointError, save_checkpoint
from handlatent.explorer import Session
from handlatent.explorer.follow import RunFollower, newest_checkpoint, read_metrics
from handlatent.explorer.models import open_model, prepare_switch
from handlatent.model import ModelConfig, build_model

A = ModelConfig(image_size=64, z_y1=5, z_y2=3, z_u=2, hidden=32, decoder_channels=16)
OTHER_LAYOUT = ModelConfig(image_size=64, z_y1=4, z_y2=3, z_u=3, hidden=32, decoder_channels=16)
BIGGER = ModelConfig(image_size=128, z_y1=5, z_y2=3, z_u=2, hidden=32, decoder_channels=8)


def checkpoint(path, config: ModelConfig, seed: int, step: int | None = None):
    torch.manual_seed(seed)
    save_checkpoint(path, build_model(config), extra={} if step is None else {"step": step})
    return path


def hand_png(path, seed: int = 0):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(path)
    return path


def switch(session: Session, path) -> str:
    """Open `path` and switch `session` to it as the GUI does; returns the status line."""
    plan = prepare_switch(open_model(path, "cpu"), session.latent, session.layout,
                          dict(session.images))
    session.switch_model(plan)
    return plan.summary


@pytest.fixture
def session(tmp_path):
    s = Session.from_checkpoint(checkpoint(tmp_path / "a.pt", A, 0), device="cpu",
                                asynchronous=False)
    yield s
    s.close()


def test_switch_keeps_latent_and_reencodes_images(session, tmp_path):
    session.estimate(hand_png(tmp_path / "hand.png"))
    session.images.load(hand_png(tmp_path / "pose.png", 1), "pose")
    session.set_value(0, 1.25)
    z = session.latent
    old_code = session.images["estimate"].z
    frames = []
    session.events.on("decoded", frames.append)
    summary = switch(session, checkpoint(tmp_path / "b.pt", BIGGER, 1))
    assert "kept the latent" in summary and "re-encoded 2 loaded images" in summary
    np.testing.assert_array_equal(session.latent, z)
    assert session.image_size == 128 and session.name == "b"
    assert session.images["estimate"].model_input.shape == (128, 128, 3)
    assert not np.allclose(session.images["estimate"].z, old_code)   # the new encoder's answer
    assert frames[-1].image.shape == (128, 128, 3)                   # decoded by the new model
    assert session.can_undo                                          # same layout: history kept


def test_switch_to_another_layout_starts_from_the_estimate_image(session, tmp_path):
    session.estimate(hand_png(tmp_path / "hand.png"))
    summary = switch(session, checkpoint(tmp_path / "c.pt", OTHER_LAYOUT, 2))
    assert "differs" in summary and "hand.png" in summary
    assert session.layout.z_u == 3 and session.latent.shape == (10,)
    np.testing.assert_allclose(session.latent, session.images["estimate"].z)
    assert not session.can_undo                                      # old latents do not fit
    assert session.walk.endpoint("A") is None
    session.randomize(rng=0)                                         # the parts follow
    assert session.stats.kl_per_dim.shape == (10,)


def test_switch_without_images_starts_from_an_example(session, tmp_path):
    example = hand_png(tmp_path / "example.png", 3)
    opened = open_model(checkpoint(tmp_path / "c.pt", OTHER_LAYOUT, 2), "cpu")
    plan = prepare_switch(opened, session.latent, session.layout, {}, examples=[example])
    assert "example example.png" in plan.summary
    assert np.abs(plan.latent).sum() > 0


@pytest.mark.parametrize("content,problem", [(b"", "not a PyTorch checkpoint"),
                                              (b"garbage" * 10, "not a PyTorch checkpoint")])
def test_bad_checkpoint_gives_the_cli_line_and_changes_nothing(session, tmp_path, content,
                                                               problem):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(content)
    with pytest.raises(CheckpointError) as info:
        open_model(bad, "cpu")
    assert str(info.value).startswith(f"{bad}: ") and "\n" not in str(info.value)
    assert problem in str(info.value) or "truncated" in str(info.value)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        open_model(tmp_path / "missing.pt", "cpu")
    assert session.name == "a"


def test_compare_decodes_every_latent_with_both_models(session, tmp_path):
    frames = []
    session.compare.events.on("compared", frames.append)
    session.compare.open(open_model(checkpoint(tmp_path / "b.pt", BIGGER, 1), "cpu"))
    session.set_value(1, -2.0)
    assert np.array_equal(frames[-1].z, session.latent)
    assert frames[-1].image.shape == (128, 128, 3)
    b_model = session.compare.runner.model
    with torch.no_grad():
        expected = b_model.decode(torch.from_numpy(session.latent[None]))["xyz"][0].numpy()
    np.testing.assert_allclose(frames[-1].xyz, expected, atol=1e-5)
    session.randomize(rng=1)                               # samples show both answers
    assert np.array_equal(frames[-1].z, session.latent)


def test_compare_refuses_another_layout(session, tmp_path):
    with pytest.raises(ValueError, match="same latent layout"):
        session.compare.open(open_model(checkpoint(tmp_path / "c.pt", OTHER_LAYOUT, 2), "cpu"))
    assert not session.compare.active


def test_compared_transfer_and_walk_export_both_rows(session, tmp_path):
    session.compare.open(open_model(checkpoint(tmp_path / "b.pt", A, 1), "cpu"))
    session.images.load(hand_png(tmp_path / "p.png", 1), "pose")
    session.images.load(hand_png(tmp_path / "c.png", 2), "content")
    result = session.images.transfer()
    np.testing.assert_array_equal(session.compare.transfer_result.z, result.z)
    assert not np.array_equal(session.compare.transfer_result.image, result.image)
    session.walk.set_endpoint("A", np.zeros(10))
    session.walk.set_endpoint("B", np.ones(10))
    out = session.walk.export(tmp_path / "walk.png", 3)
    strip = np.asarray(Image.open(out))
    assert strip.shape[0] == 2 * 64                        # two rows: A's model, B's model
    session.compare.close()
    single = np.asarray(Image.open(session.walk.export(tmp_path / "one.png", 3)))
    assert single.shape[0] == 64
    np.testing.assert_array_equal(strip[:64], single)


def test_switching_to_another_layout_ends_the_comparison(session, tmp_path):
    errors = []
    session.events.on("error", errors.append)
    session.compare.open(open_model(checkpoint(tmp_path / "b.pt", A, 1), "cpu"))
    switch(session, checkpoint(tmp_path / "c.pt", OTHER_LAYOUT, 2))
    assert not session.compare.active and "stopped comparing" in errors[-1]


def test_follower_names_each_new_checkpoint_once(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    follower = RunFollower(run)
    assert follower.check() is None and "waiting" in follower.waiting_message()
    checkpoint(run / "best.pt", A, 0, step=10)
    path, now = follower.check()
    assert path.name == "best.pt"
    follower.tried(path, now, ok=True)
    assert follower.check() is None
    time.sleep(0.01)
    checkpoint(run / "last.pt", A, 1, step=20)
    assert newest_checkpoint(run).name == "last.pt"
    path, now = follower.check()
    follower.tried(path, now, ok=False)
    assert follower.check() is None                       # a failed file is not retried
    checkpoint(run / "last.pt", A, 2, step=30)            # ...until it is written again
    assert follower.check()[0].name == "last.pt"
    with pytest.raises(ValueError, match="no such run folder"):
        RunFollower(tmp_path / "nope")


def test_metrics_give_step_and_validation_curves(tmp_path):
    lines = [{"split": "train", "step": 20, "total": 5.0},
             {"split": "val", "step": 20, "total": 4.0, "dis": 3.0, "emb": 1.0},
             {"split": "train", "step": 40, "total": 3.0},
             {"split": "val", "step": 40, "total": 2.5, "dis": 2.0, "emb": "nan"}]
    (tmp_path / "metrics.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in lines) + '{"split": "val", "st')   # cut short
    metrics = read_metrics(tmp_path)
    assert metrics.step == 40
    assert metrics.curves() == {"total": ([20, 40], [4.0, 2.5]), "dis": ([20, 40], [3.0, 2.0]),
                                "emb": ([20], [1.0])}
    assert metrics.summary() == "step 40 · val (step 40) total 2.5, dis 2"
    assert read_metrics(tmp_path / "missing").summary() == ""
    os.remove(tmp_path / "metrics.jsonl")


def test_spaced_worker_runs_the_newest_request_at_most_once_per_spacing():
    """The compared model's worker: jobs start >= spacing_s apart, the newest request wins."""
    from handlatent.explorer.decoder import NewestWorker
    starts, done = [], []
    worker = NewestWorker(lambda request, _id: starts.append((time.monotonic(), request)),
                          None, done.append, spacing_s=0.1)
    try:
        for k in range(12):
            worker.submit(k, k)
            time.sleep(0.02)
        assert worker.wait_idle(5.0)
    finally:
        worker.close()
    times = [t for t, _ in starts]
    assert min(np.diff(times)) >= 0.099
    assert starts[-1][1] == 11 and len(starts) < 12 and not done
