"""handlatent.explorer without Qt: the Session (latent, history, locks, images, transfer, walk,
exports, presets), the coalescing decode worker, image validation and the skeleton figure."""

import json
import re
import struct
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from handlatent.explorer import (DecodeWorker, Decoded, ExportCancelled, ImageError,
                                 PresetError, Session, draw_skeleton, estimate_kl_per_dim,
                                 frame_with_skeleton, prepare_image)
from handlatent.explorer import stats as explorer_stats
from handlatent.model import ModelConfig, build_model
from handlatent.skeleton import BONE_COLORS

torch.set_num_threads(2)
S = 64
D = 64  # z_y1 32 + z_y2 16 + z_u 16 (the default layout)
Y1, Y2, U = slice(0, 32), slice(32, 48), slice(48, 64)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(ModelConfig(image_size=S)).eval()


@pytest.fixture(scope="module")
def stats():
    """KL per dimension: decreasing within each part, the last 4 of each part inactive."""
    kl = np.zeros(D)
    for s in (Y1, Y2, U):
        n = s.stop - s.start
        kl[s] = np.r_[np.linspace(2.0, 0.1, n - 4), [0.005, 0.0, 0.001, 0.0]][::-1]
    return {"kl_per_dim": kl.tolist()}


@pytest.fixture
def make_session(model, stats):
    sessions = []

    def make(asynchronous=False, **kw):
        kw.setdefault("latent_stats", stats)
        s = Session(model, asynchronous=asynchronous, **kw)
        sessions.append(s)
        return s

    yield make
    for s in sessions:
        s.close()


def recorder(session, *names):
    """Subscribe to events of the session or its parts; returns name -> argument tuples."""
    calls = {n: [] for n in names}
    registries = [session.events, *(part.events for part in session.parts.values())]
    for n in names:
        registry = next(r for r in registries if n in r.names)
        registry.on(n, lambda *a, n=n: calls[n].append(a))
    return calls


def snapshot(session):
    return (session.latent, dict(session.images), session.can_undo, session.can_redo)


def assert_unchanged(session, before):
    latent, images, can_undo, can_redo = before
    np.testing.assert_array_equal(session.latent, latent)
    assert session.images.keys() == images.keys()
    assert all(session.images[k] is images[k] for k in images)
    assert (session.can_undo, session.can_redo) == (can_undo, can_redo)


def hand_picture(w, h, seed=0, mode="RGB"):
    """A non-trivial test picture: smooth random colours plus a skin-coloured blob."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 255, (6, 6, 3), dtype=np.uint8))
    a = np.array(coarse.resize((w, h), Image.Resampling.BILINEAR))
    yy, xx = np.mgrid[:h, :w]
    blob = (xx - w / 2) ** 2 / (w / 4) ** 2 + (yy - h / 2) ** 2 / (h / 4) ** 2 < 1
    a[blob] = (224, 172, 140)
    return Image.fromarray(a).convert(mode)


# ------------------------------------------------------------------------------ latent + history

@pytest.mark.parametrize("asynchronous", [False, True])
def test_slider_edits_undo_redo_and_events(make_session, asynchronous):
    s = make_session(asynchronous)
    calls = recorder(s, "latent_changed", "history_changed", "decoded")
    assert not s.can_undo and not s.can_redo and s.latent.shape == (D,)
    s.set_value(3, 1.5)
    s.set_value(40, -2.0)
    z2 = s.latent
    assert z2[3] == 1.5 and z2[40] == -2.0
    assert s.undo() and s.latent[40] == 0 and s.latent[3] == 1.5
    np.testing.assert_array_equal(calls["latent_changed"][-1][0], s.latent)  # sliders follow
    assert s.can_redo
    assert s.redo()
    np.testing.assert_array_equal(s.latent, z2)
    s.undo()
    s.set_value(5, 0.25)  # a new edit drops the redo stack
    assert not s.can_redo and not s.redo()
    assert s.undo() and s.undo() and not s.undo()
    np.testing.assert_array_equal(s.latent, np.zeros(D, np.float32))
    s.set_value(7, 0.0)  # no change: no step, no event
    assert not s.can_undo
    assert len(calls["history_changed"]) >= 6
    assert s.wait_idle(10)
    ids = [c[0].request_id for c in calls["decoded"]]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    np.testing.assert_array_equal(calls["decoded"][-1][0].z, s.latent)  # newest request shown
    frame = calls["decoded"][-1][0]
    assert frame.image.shape == (S, S, 3) and frame.image.dtype == np.uint8
    assert frame.xyz.shape == (21, 3) and frame.cpose.shape == (21, 3)
    assert frame.viewpoint.shape == (3, 3) and frame.elapsed_ms >= 0
    assert s.last_decoded is frame


def test_drag_is_one_undo_step_and_history_is_capped(make_session):
    s = make_session(asynchronous=True, history_limit=5)
    s.set_value(0, 1.0)
    with s.edit():
        for i in range(30):
            s.set_value(1, i / 10)
    assert s.latent[1] == pytest.approx(2.9)
    assert s.undo()
    np.testing.assert_array_equal(s.latent[:2], [1.0, 0.0])  # the whole drag undone at once
    assert s.undo() and not s.can_undo
    s.begin_edit()  # undo in the middle of a drag closes it first
    s.set_value(2, 1.0)
    s.set_value(2, 2.0)
    assert s.can_undo and s.undo() and s.latent[2] == 0 and s.redo() and s.latent[2] == 2.0
    s.end_edit()  # unmatched end_edit is harmless
    for i in range(10):
        s.set_value(10, float(i + 1))
    undos = 0
    while s.undo():
        undos += 1
    assert undos == 5 and s.latent[10] == 5.0


def test_set_part_reset_and_validation(make_session):
    s = make_session()
    s.set_part("z_y2", np.arange(16))
    np.testing.assert_array_equal(s.latent[Y2], np.arange(16))
    before = snapshot(s)
    for bad in (lambda: s.set_part("z_y2", np.zeros(3)), lambda: s.set_part("nope", [1.0]),
                lambda: s.set_value(D, 1.0), lambda: s.set_value(0, float("nan")),
                lambda: s.set_latent(np.zeros(D - 1)), lambda: s.lock("zz")):
        with pytest.raises(ValueError):
            bad()
        assert_unchanged(s, before)
    s.reset_part("z_y2")
    np.testing.assert_array_equal(s.latent, np.zeros(D))


def test_randomize_respects_locks(make_session):
    s = make_session()
    calls = recorder(s, "locks_changed")
    s.set_part("z_y1", np.full(32, 0.5))
    s.lock("z_y1", True)
    assert s.locked("z_y1") and not s.locked("z_u") and len(calls["locks_changed"]) == 1
    z = s.randomize(rng=0)
    np.testing.assert_array_equal(z[Y1], 0.5)
    assert np.all(z[Y2] != 0) and np.all(z[U] != 0)
    z_before = s.latent
    s.randomize("z_y1", rng=1)  # locked: stays
    np.testing.assert_array_equal(s.latent, z_before)
    s.randomize("z_u", rng=2)
    np.testing.assert_array_equal(s.latent[:48], z_before[:48])
    assert not np.array_equal(s.latent[U], z_before[U])
    s.lock("z_y1", False)
    z = s.randomize(rng=np.random.default_rng(3))
    assert not np.any(z[Y1] == 0.5)
    assert abs(z.mean()) < 0.6 and 0.5 < z.std() < 1.5  # N(0, I)


# ------------------------------------------------------------------------------ decode worker

def test_worker_keeps_only_the_newest_request():
    started, release = threading.Event(), threading.Event()
    seen = []

    def decode(z, request_id):
        started.set()
        release.wait(5)
        return request_id, float(z[0])

    worker = DecodeWorker(decode, seen.append, lambda m: seen.append(("error", m)))
    try:
        worker.submit(np.array([0.0]), 1)
        assert started.wait(5)  # the first request is running; the next 99 queue up...
        for i in range(2, 101):
            worker.submit(np.array([float(i)]), i)
        release.set()
        assert worker.wait_idle(5)
        assert seen == [(1, 0.0), (100, 100.0)]  # ...and only the newest of them is decoded
        assert worker.decoded_count == 2 and worker.replaced_count == 98
    finally:
        worker.close()


def test_worker_reports_errors_and_survives():
    errors, done = [], []

    def decode(z, request_id):
        if request_id == 1:
            raise RuntimeError("boom")
        return request_id

    worker = DecodeWorker(decode, done.append, errors.append)
    try:
        worker.submit(np.zeros(1), 1)
        assert worker.wait_idle(5)
        worker.submit(np.zeros(1), 2)
        assert worker.wait_idle(5)
        assert done == [2] and len(errors) == 1 and "RuntimeError: boom" in errors[0]
    finally:
        worker.close()
    worker.submit(np.zeros(1), 3)  # after close: ignored
    assert worker.wait_idle(1) and done == [2]


def test_session_coalesces_a_fast_drag(make_session):
    s = make_session(asynchronous=True)
    frames = []

    def slow_view(frame):  # a view that takes 20 ms per frame
        frames.append(frame)
        time.sleep(0.02)

    s.events.on("decoded", slow_view)
    latents = np.random.default_rng(0).standard_normal((100, D)).astype(np.float32)
    with s.edit():
        for z in latents:
            s.set_latent(z)
    assert s.wait_idle(10)
    assert len(frames) < 30  # far fewer than 100
    np.testing.assert_array_equal(frames[-1].z, latents[-1])
    np.testing.assert_array_equal(s.decode_now().image, frames[-1].image)
    ids = [f.request_id for f in frames]
    assert all(a < b for a, b in zip(ids, ids[1:]))
    assert s.can_undo and s.undo() and not s.can_undo  # the drag was one step
    s.close()
    s.set_value(0, 1.0)  # after close: no decode, no error
    assert s.wait_idle(1)


def test_decoded_frames_are_read_only(make_session):
    frame = make_session().decode_now(np.ones(D))
    assert isinstance(frame, Decoded)
    with pytest.raises(ValueError):
        frame.image[0, 0, 0] = 1
    np.testing.assert_array_equal(frame.z, np.ones(D, np.float32))


# ------------------------------------------------------------------------------ KL statistics

def test_kl_ordering_and_active_dims(make_session, stats):
    s = make_session()
    np.testing.assert_allclose(s.stats.kl_per_dim, stats["kl_per_dim"])
    for part, sl in (("z_y1", Y1), ("z_y2", Y2), ("z_u", U)):
        active = s.stats.active_dims(part)
        kl = s.stats.kl_per_dim
        assert len(active) == sl.stop - sl.start - 4
        assert all(sl.start <= i < sl.stop for i in active)
        assert [kl[i] for i in active] == sorted([kl[i] for i in active], reverse=True)
        assert set(active) | set(s.stats.inactive_dims(part)) == set(range(sl.start, sl.stop))
        assert s.stats.dim_order(part)[:len(active)] == active
    with pytest.raises(ValueError):
        make_session(latent_stats={"kl_per_dim": [1.0, 2.0]})


def test_kl_estimated_when_checkpoint_has_none(make_session, monkeypatch, model):
    rendered = []

    def fake_synth(n, size, seed):  # stands in for handlatent.synth (slow to JIT-compile)
        rendered.append((n, size, seed))
        return np.stack([np.asarray(hand_picture(size, size, seed=seed + i)) for i in range(n)])

    monkeypatch.setattr(explorer_stats, "KL_SAMPLES", 8)
    monkeypatch.setattr(explorer_stats, "_synthetic_images", fake_synth)
    s = make_session(latent_stats=None)
    kl = s.stats.kl_per_dim
    assert rendered == [(8, S, explorer_stats.KL_SEED)]
    assert kl.shape == (D,) and np.all(kl >= 0) and np.isfinite(kl).all()
    np.testing.assert_array_equal(s.stats.kl_per_dim, kl)  # cached
    images = fake_synth(8, S, 0)
    mu, logvar = model.encode_image(torch.from_numpy(images).permute(0, 3, 1, 2) / 127.5 - 1)
    expected = (0.5 * (mu ** 2 + logvar.exp() - 1 - logvar)).mean(0).detach().numpy()
    np.testing.assert_allclose(kl, expected, rtol=1e-4, atol=1e-6)
    assert s.stats.active_dims("z_u") == [i for i in s.stats.dim_order("z_u") if kl[i] >= 0.01]


def test_kl_falls_back_to_decoded_prior_samples(monkeypatch, model):
    def broken(n, size, seed):
        raise ImportError("no renderer")

    monkeypatch.setattr(explorer_stats, "_synthetic_images", broken)
    kl = estimate_kl_per_dim(model, n=2)
    assert kl.shape == (D,) and np.isfinite(kl).all()
    np.testing.assert_array_equal(estimate_kl_per_dim(model, n=2), kl)  # fixed seed


def test_from_checkpoint(tmp_path, model, stats):
    from handlatent.checkpoint import CheckpointError, save_checkpoint
    path = tmp_path / "run1" / "best.pt"
    path.parent.mkdir()
    save_checkpoint(path, model, extra={"latent_stats": stats})
    with Session.from_checkpoint(path, device="cpu", asynchronous=False) as s:
        assert s.name == "run1/best" and s.device == "cpu" and s.image_size == S
        np.testing.assert_allclose(s.stats.kl_per_dim, stats["kl_per_dim"])
        np.testing.assert_allclose(s.decode_now(np.ones(D)).image,
                                   Session(model, asynchronous=False).decode_now(np.ones(D)).image,
                                   atol=1)
    bad = tmp_path / "bad.pt"
    bad.write_text("not a checkpoint")
    for p in (bad, tmp_path / "missing.pt"):
        with pytest.raises(CheckpointError) as info:
            Session.from_checkpoint(p)
        assert "\n" not in str(info.value) and p.name in str(info.value)


# ------------------------------------------------------------------------------ images

def write_png_header(path, width, height):
    """A PNG whose header claims width x height (the pixel data is junk)."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def test_images_of_every_kind_are_accepted(make_session, tmp_path):
    s = make_session()
    calls = recorder(s, "images_changed", "latent_changed")
    files = {}
    hand_picture(300, 200).save(files.setdefault("rgb", tmp_path / "rgb.jpg"), quality=90)
    hand_picture(80, 120, mode="L").save(files.setdefault("gray", tmp_path / "gray.png"))
    Image.fromarray(np.full((50, 70), 128 * 257, np.uint16)).save(
        files.setdefault("16bit", tmp_path / "deep.png"))
    Image.new("RGBA", (40, 40), (255, 0, 0, 0)).save(files.setdefault("rgba", tmp_path / "a.png"))
    Image.new("LA", (40, 40), (0, 0)).save(files.setdefault("la", tmp_path / "la.png"))
    pal = hand_picture(64, 64).convert("P")
    pal.info["transparency"] = 0
    pal.save(files.setdefault("p", tmp_path / "pal.png"))
    hand_picture(10_000, 400).save(files.setdefault("wide", tmp_path / "wide.png"))
    hand_picture(20, 20).save(files.setdefault("tiny", tmp_path / "tiny.bmp"))
    hand_picture(64, 64).save(files.setdefault("gif", tmp_path / "anim.gif"), save_all=True,
                              append_images=[hand_picture(64, 64, seed=1)])
    loaded = {}
    for kind, path in files.items():  # reading and cropping: no model needed
        img = prepare_image(path, S)
        assert img.model_input.shape == (S, S, 3) and img.model_input.dtype == np.uint8, kind
        assert img.path == path and max(img.thumbnail.shape[:2]) <= 256
        loaded[kind] = img
    assert np.all(loaded["16bit"].model_input == 128)  # 16 bit scaled, not clipped
    assert np.all(loaded["rgba"].model_input == 255)  # transparent -> white
    assert np.all(loaded["la"].model_input == 255)
    assert loaded["wide"].original_size == (10_000, 400)
    assert loaded["wide"].thumbnail.shape[1] == 256
    img = s.images.load(files["wide"], "pose")  # the session encodes and decodes what it read
    np.testing.assert_array_equal(img.model_input, loaded["wide"].model_input)
    assert img.z.shape == (D,) and img.decoded.image.shape == (S, S, 3) and img.label == "wide.png"
    arr = s.images.load(np.asarray(hand_picture(100, 50)), "content")
    assert arr.path is None and arr.label == "array"
    np.testing.assert_allclose(s.runner.encode(arr.model_input), arr.z, atol=1e-5)
    np.testing.assert_array_equal(arr.decoded.z, arr.z)
    assert set(s.images) == {"pose", "content"} and len(calls["images_changed"]) == 2
    assert not calls["latent_changed"] and not s.can_undo  # loading does not move the latent


def test_exif_orientation_is_applied(tmp_path):
    a = np.zeros((100, 200, 3), np.uint8)
    a[:, :100] = (255, 0, 0)  # stored: left red, right blue
    a[:, 100:] = (0, 0, 255)
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "rotated.jpg"
    im.save(path, exif=exif, quality=95)
    img = prepare_image(path, S)
    assert img.thumbnail.shape[:2] == (200, 100)  # upright: portrait
    top, bottom = img.model_input[4, S // 2], img.model_input[-5, S // 2]
    assert top[0] > 200 and top[2] < 60 and bottom[2] > 200 and bottom[0] < 60


def test_bad_images_raise_one_line_and_change_nothing(make_session, tmp_path):
    s = make_session(asynchronous=True)
    good = tmp_path / "good.png"
    hand_picture(64, 64).save(good)
    s.images.load(good, "content")
    s.set_value(0, 1.0)
    assert s.wait_idle(10)
    calls = recorder(s, "latent_changed", "images_changed", "history_changed", "decoded")
    before = snapshot(s)

    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.png").write_text("just some text, not an image\n" * 20)
    hand_picture(300, 300).save(tmp_path / "full.jpg", quality=95)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (tmp_path / "header.png").write_bytes(good.read_bytes()[:40])
    write_png_header(tmp_path / "huge.png", 10_000, 8_000)  # 80 MP > 50 MP limit
    write_png_header(tmp_path / "bomb.png", 20_000, 20_000)  # Pillow's bomb error territory
    (tmp_path / "folder.png").mkdir()
    cases = {"empty.png": "empty", "notes.png": "not an image", "truncated.jpg": "truncated",
             "header.png": "", "huge.png": "too large", "bomb.png": "too large",
             "folder.png": "directory", "missing.png": "no such file"}
    for name, problem in cases.items():
        with pytest.raises(ImageError) as info:
            s.estimate(tmp_path / name) if name == "truncated.jpg" else \
                s.images.load(tmp_path / name, "pose")
        message = str(info.value)
        assert "\n" not in message and name in message and problem in message, message
        assert isinstance(info.value, ValueError)
        assert_unchanged(s, before)
    for bad_array in (np.zeros((10, 10, 2), np.uint8), np.zeros((0, 5, 3), np.uint8),
                      np.full((8, 8), 2.0), np.zeros((8, 8), np.complex64)):
        with pytest.raises(ImageError):
            s.images.load(bad_array, "pose")
    with pytest.raises(ValueError, match="slot"):
        s.images.load(good, "background")
    assert_unchanged(s, before)
    assert s.wait_idle(5)
    assert not any(calls.values()), calls


def test_estimate_sets_the_latent_as_one_step(make_session, tmp_path):
    s = make_session()
    path = tmp_path / "hand.png"
    hand_picture(90, 90, seed=5).save(path)
    calls = recorder(s, "latent_changed", "decoded")
    result = s.estimate(path)
    assert result.xyz.shape == (21, 3)
    np.testing.assert_array_equal(s.latent, s.images["estimate"].z)
    np.testing.assert_array_equal(result.z, s.latent)
    np.testing.assert_array_equal(calls["latent_changed"][-1][0], s.latent)
    assert len(calls["decoded"]) == 1 and s.undo()
    np.testing.assert_array_equal(s.latent, np.zeros(D))


# ------------------------------------------------------------------------------ transfer

def test_transfer_combines_pose_and_content(make_session, tmp_path):
    s = make_session()
    with pytest.raises(ValueError, match="pose and content"):
        s.images.transfer()
    pose = s.images.load(np.asarray(hand_picture(80, 80, seed=1)), "pose")
    with pytest.raises(ValueError, match="content"):
        s.images.transfer()
    content = s.images.load(np.asarray(hand_picture(80, 80, seed=2)), "content")
    calls = recorder(s, "transfer_changed", "latent_changed")
    result = s.images.transfer()
    expected = np.concatenate([pose.z[Y1], pose.z[Y2], content.z[U]])
    np.testing.assert_array_equal(result.z, expected)
    assert s.images.transfer_result is result
    assert calls["transfer_changed"] and not calls["latent_changed"]
    np.testing.assert_allclose(result.xyz, pose.decoded.xyz, atol=1e-5)  # pose from pose image
    out = s.images.save_transfer(tmp_path / "transfer.png")
    with Image.open(out) as im:
        assert im.format == "PNG" and im.width > 3 * 256 and im.height > 2 * 256
    assert sorted(p.name for p in tmp_path.iterdir()) == ["transfer.png"]
    s.images.load(np.asarray(hand_picture(80, 80, seed=3)), "pose")
    assert s.images.transfer_result is None  # stale result dropped


# ------------------------------------------------------------------------------ walk + export

@pytest.fixture
def walk_session(make_session):
    s = make_session()
    rng = np.random.default_rng(7)
    s.walk.set_endpoint("A", rng.standard_normal(D))
    s.walk.set_endpoint("b", rng.standard_normal(D))
    s.set_latent(rng.standard_normal(D))
    return s


def test_walk_frames_move_only_chosen_parts(walk_session):
    s = walk_session
    a, b, current = s.walk.endpoint("A"), s.walk.endpoint("B"), s.latent
    s.walk.parts = {"z_y2"}
    frames = s.walk.frames(5)
    assert frames.shape == (5, D) and frames.dtype == np.float32
    np.testing.assert_array_equal(frames[:, Y1], np.broadcast_to(current[Y1], (5, 32)))
    np.testing.assert_array_equal(frames[:, U], np.broadcast_to(current[U], (5, 16)))
    np.testing.assert_array_equal(frames[0, Y2], a[Y2])
    np.testing.assert_array_equal(frames[-1, Y2], b[Y2])
    np.testing.assert_allclose(frames[2, Y2], (a[Y2] + b[Y2]) / 2, atol=1e-6)
    s.walk.parts = "all"
    assert s.walk.parts == {"z_y1", "z_y2", "z_u"}
    frames = s.walk.frames(4)
    np.testing.assert_array_equal(frames[0], a)
    np.testing.assert_array_equal(frames[-1], b)
    with pytest.raises(ValueError):
        s.walk.parts = {"z_q"}


def test_walk_position_is_not_recorded(walk_session, make_session):
    s = walk_session
    calls = recorder(s, "latent_changed", "history_changed")
    s.walk.parts = {"z_u"}
    before = s.latent
    for t in np.linspace(0, 1, 11):
        s.walk.set_position(t)
    np.testing.assert_array_equal(s.latent[U], s.walk.endpoint("B")[U])
    np.testing.assert_array_equal(s.latent[:48], before[:48])
    assert len(calls["latent_changed"]) == 11 and not calls["history_changed"]
    with pytest.raises(ValueError):
        s.walk.set_position(1.5)
    fresh = make_session()
    fresh.walk.set_endpoint("A")
    with pytest.raises(ValueError, match="endpoint B"):
        fresh.walk.frames(3)


@pytest.mark.parametrize("suffix", [".gif", ".mp4", ".png"])
def test_export_walk(walk_session, tmp_path, suffix):
    s = walk_session
    progress = []
    out = s.walk.export(tmp_path / f"walk{suffix}", 6, fps=10,
                        progress=lambda i, n: progress.append((i, n)))
    assert out == tmp_path / f"walk{suffix}" and out.stat().st_size > 0
    assert progress == [(i, 6) for i in range(1, 7)]
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary left
    if suffix == ".gif":
        with Image.open(out) as im:
            assert im.n_frames == 6 and im.size == (2 * S, S)
    elif suffix == ".png":
        with Image.open(out) as im:
            assert im.size == (6 * 2 * S, S)
        strip = np.asarray(Image.open(out).convert("RGB"))
        # the export decodes the frames as one batch, the screen one at a time: oneDNN may round
        # the two differently, by at most one level of 255
        shown = s.decode_now(s.walk.frames(6)[0]).image.astype(int)
        assert np.abs(strip[:, :S].astype(int) - shown).max() <= 1
    else:
        import imageio.v2 as imageio
        with imageio.get_reader(out) as reader:
            frames = [f for f in reader]
        assert len(frames) == 6 and frames[0].shape == (S, 2 * S, 3)


def test_export_cancel_and_bad_paths_leave_no_file(walk_session, tmp_path):
    s = walk_session
    polls = []

    def cancel():
        polls.append(1)
        return len(polls) > 3

    for suffix in (".gif", ".mp4", ".png"):
        polls.clear()
        with pytest.raises(ExportCancelled):
            s.walk.export(tmp_path / f"walk{suffix}", 20, cancel=cancel)
        assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="format"):
        s.walk.export(tmp_path / "walk.avi", 3)
    with pytest.raises(ValueError, match="does not exist"):
        s.walk.export(tmp_path / "nope" / "walk.gif", 3)
    out = s.walk.export(tmp_path / "big.png", 2, scale=2)
    with Image.open(out) as im:
        assert im.size == (2 * 2 * 2 * S, 2 * S)


# ------------------------------------------------------------------------------ presets

def test_presets_round_trip_and_bad_files(make_session, tmp_path):
    s = make_session()
    s.randomize(rng=11)
    z = s.latent
    path = s.save_preset(tmp_path / "p.json")
    data = json.loads(path.read_text())
    assert data["format"] == "handlatent-preset" and data["version"] == 1
    assert data["layout"] == {"z_y1": 32, "z_y2": 16, "z_u": 16} and len(data["z"]) == D
    s.reset_part("z_y1")
    s.load_preset(path)
    np.testing.assert_array_equal(s.latent, z)
    assert s.undo() and s.latent[0] == 0  # loading was one undo step
    s.redo()

    def write(name, content):
        p = tmp_path / name
        p.write_text(content if isinstance(content, str) else json.dumps(content))
        return p

    bad = {
        write("broken.json", '{"format": "handlatent-preset", "z": [1,'): "not valid JSON",
        write("other.json", {"format": "something-else"}): "not a handlatent preset",
        write("list.json", [1, 2, 3]): "not a handlatent preset",
        write("future.json", {**data, "version": 99}): "version",
        write("layout.json", {**data, "layout": {"z_y1": 8, "z_y2": 8, "z_u": 8}}): "layout",
        write("short.json", {**data, "z": data["z"][:10]}): "64 numbers",
        write("text.json", {**data, "z": ["a"] * D}): "64 numbers",
        write("nan.json", {**data, "z": [float("nan")] * D}): "NaN",
        tmp_path / "missing.json": "no such file",
    }
    calls = recorder(s, "latent_changed", "history_changed")
    before = snapshot(s)
    for p, problem in bad.items():
        with pytest.raises(PresetError) as info:
            s.load_preset(p)
        message = str(info.value)
        assert "\n" not in message and p.name in message and problem in message, message
        assert_unchanged(s, before)
    assert not any(calls.values())


# ------------------------------------------------------------------------------ events, figures

def test_events_registry(make_session):
    s = make_session()
    got = []
    with pytest.raises(ValueError, match="unknown event"):
        s.events.on("latent_change", got.append)
    s.events.on("latent_changed", got.append)
    s.set_value(0, 1.0)
    s.events.off("latent_changed", got.append)
    s.set_value(0, 2.0)
    assert len(got) == 1


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_raising_listener_is_logged_and_stops_neither_the_decode_nor_the_caller(
        make_session, caplog, asynchronous):
    s = make_session(asynchronous)
    seen = []

    def broken_view(z):
        raise RuntimeError("this view is broken")

    s.events.on("latent_changed", broken_view)
    s.events.on("latent_changed", lambda z: seen.append((z, s.latent, s.can_undo)))
    with caplog.at_level("ERROR", logger="handlatent.explorer"):
        s.set_value(0, 1.5)                                  # does not raise
    assert s.wait_idle(10)
    assert s.latent[0] == 1.5 and s.can_undo
    np.testing.assert_array_equal(s.last_decoded.z, s.latent)   # the decode went on
    (z, latent, can_undo), = seen                        # the next listener still ran, and
    np.testing.assert_array_equal(z, latent)             # saw the change complete: latent
    assert can_undo                                      # and history already updated
    assert "latent_changed" in caplog.text and "broken_view" in caplog.text
    assert "this view is broken" in caplog.text


def test_decode_errors_reach_the_error_event(make_session, monkeypatch):
    for asynchronous in (False, True):
        s = make_session(asynchronous)
        errors = []
        s.events.on("error", errors.append)
        monkeypatch.setattr(s.model, "decode", lambda z: 1 / 0)
        s.set_value(0, float(asynchronous) + 1)
        assert s.wait_idle(5)
        monkeypatch.undo()
        assert len(errors) == 1 and "ZeroDivisionError" in errors[0]
        assert s.latent[0] == float(asynchronous) + 1  # the edit itself stands


def test_draw_skeleton():
    rng = np.random.default_rng(0)
    xyz = rng.normal(0, 2, (21, 3))
    xyz[0] = 0
    img = draw_skeleton(xyz, 128)
    assert img.shape == (128, 128, 3) and img.dtype == np.uint8
    assert np.all(img[0, 0] < 40)  # dark background
    colours = img.reshape(-1, 3).astype(int)
    for colour in BONE_COLORS[[0, 4, 8]] * 255:  # thumb, index, middle bones are visible
        assert np.min(np.abs(colours - colour).sum(1)) < 90
    assert not np.array_equal(draw_skeleton(xyz, 128, "side"), img)
    partial = xyz.copy()
    partial[5] = np.nan
    assert draw_skeleton(partial, 32).shape == (32, 32, 3)
    frame = frame_with_skeleton(np.zeros((S, S, 3), np.uint8), xyz, scale=2)
    assert frame.shape == (2 * S, 4 * S, 3)
    with pytest.raises(ValueError):
        draw_skeleton(xyz, 64, view="back")


def test_library_never_imports_qt():
    root = Path(__file__).resolve().parents[1] / "handlatent"
    qt = re.compile(r"^\s*(from|import)\s+(PySide\d|PyQt\d|qtpy|pyqtgraph|vispy|superqt)\b",
                    re.M)
    offenders = [str(p) for p in root.rglob("*.py") if qt.search(p.read_text())]
    assert offenders == []


def test_sample_latent_leaves_the_session_alone(make_session):
    session = make_session()
    before = session.latent
    a, b = session.stats.sample(7), session.stats.sample(7)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (session.layout.total,) and a.dtype == np.float32
    np.testing.assert_array_equal(session.latent, before)
    assert not session.can_undo
    draws = np.stack([session.stats.sample(i, source="prior") for i in range(200)])
    assert abs(draws.mean()) < 0.05 and abs(draws.std() - 1) < 0.05
