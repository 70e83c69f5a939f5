"""Synthetic scenes, their rendering and labels, the dataset writer/reader and the CLI."""

import json
import os
import pickle
import subprocess
import sys

import numpy as np
from scipy.ndimage import binary_dilation
import pytest
import torch

from handlatent.data import open_dataset
from handlatent.skeleton import canonicalize, compose
from handlatent.synth import camera, kinematics, store
from handlatent.synth import scene as sc
from handlatent.synth.cli import main

S = 48  # small images keep the suite fast


@pytest.fixture(scope="module")
def batch():
    scene = sc.scene_range(0, 0, 96)
    return scene, sc.render_scene(scene, S)


def _scene_with(template, to_camera, n, right=False):
    """n scenes of one template, mean shape, seen from direction ``to_camera`` (hand frame)."""
    s = sc.scene_range(123, 0, n)
    s.angles = kinematics.template_pose(template, n)
    s.template[:] = kinematics.TEMPLATE_NAMES.index(template)
    s.shape = kinematics.mean_shape(n)
    v = np.asarray(to_camera, float)
    s.view.rotation = camera.look_rotation(np.tile(v / np.linalg.norm(v), (n, 1)),
                                           np.linspace(-np.pi, np.pi, n, endpoint=False))
    s.view.is_right[:] = right
    s.view.crop_shift[:] = 0.0
    return s


def test_render_keys_dtypes_shapes(batch):
    scene, out = batch
    N = len(scene)
    F = len(sc.content_factor_names())
    expect = {"image": (np.uint8, (N, S, S, 3)), "xyz": (np.float32, (N, 21, 3)),
              "uv": (np.float32, (N, 21, 2)), "visible": (np.bool_, (N, 21)),
              "is_right": (np.bool_, (N,)), "cpose": (np.float32, (N, 21, 3)),
              "viewpoint": (np.float32, (N, 3, 3)), "scale": (np.float32, (N,)),
              "K": (np.float32, (N, 3, 3)), "template": (np.int16, (N,)),
              "content": (np.float32, (N, F)), "mask": (np.bool_, (N, S, S))}
    assert set(out) == set(expect)
    for k, (dt, shp) in expect.items():
        assert out[k].dtype == dt and out[k].shape == shp, k
    z = out["xyz"][:, 0, 2]
    assert (z >= 0.3 - 1e-6).all() and (z <= 0.7 + 1e-6).all()
    assert 0.2 < out["is_right"].mean() < 0.8
    assert len(np.unique(out["template"])) >= 10
    # the hand mask covers the visible joints' pixels (a fingertip keypoint sits on the
    # silhouette's edge: within a pixel of it), and leaves background
    pix = np.floor(out["uv"] + 0.5).astype(int).clip(0, S - 1)
    n_idx = np.arange(N)[:, None]
    on_hand = out["mask"][n_idx, pix[..., 1], pix[..., 0]]
    joints = [k for k in range(21) if k not in (1, 5, 9, 13, 17)]
    assert on_hand[:, joints][out["visible"][:, joints]].all()
    grown = np.stack([binary_dilation(m) for m in out["mask"]])
    assert grown[n_idx, pix[..., 1], pix[..., 0]][out["visible"]].mean() > 0.99
    assert 0.05 < out["mask"].mean() < 0.8


def test_deterministic_and_chunk_independent(batch):
    scene, out = batch
    again = sc.render_scene(sc.scene_range(0, 0, 96), S)
    for k in out:
        assert out[k].tobytes() == again[k].tobytes(), k
    # other chunking (crossing the 64-sample blocks), other thread count: same bytes
    parts = [sc.render_scene(sc.scene_range(0, a, b), S, num_threads=1)
             for a, b in [(0, 5), (5, 70), (70, 96)]]
    for k in out:
        assert np.concatenate([p[k] for p in parts]).tobytes() == out[k].tobytes(), k
    other = sc.render_scene(sc.scene_range(1, 0, 8), S)
    assert other["image"].tobytes() != out["image"][:8].tobytes()
    assert not np.allclose(other["xyz"], out["xyz"][:8])


def test_uv_is_projection_of_xyz_and_inside_crop(batch):
    _, out = batch
    p = np.einsum("nij,nkj->nki", out["K"].astype(np.float64), out["xyz"].astype(np.float64))
    np.testing.assert_allclose(p[..., :2] / p[..., 2:], out["uv"], atol=2e-3)
    uv = out["uv"]
    inside = ((uv >= -0.5) & (uv < S - 0.5)).all(-1)
    assert inside.mean() > 0.97
    assert inside.all(1).mean() > 0.85  # most hands fully in view
    # the hand fills the crop: keypoint box spans 1/1.44 .. 1/1.3 of the side
    extent = (uv.max(1) - uv.min(1)).max(1)
    assert (extent > S / 1.3 / 1.2 - 1).all() and (extent < S / 1.3 + 1).all()


def test_canonicalize_round_trip(batch):
    _, out = batch
    rel = compose(out["cpose"].astype(np.float64), out["viewpoint"].astype(np.float64),
                  out["scale"].astype(np.float64), out["is_right"])
    np.testing.assert_allclose(rel + out["xyz"][:, :1], out["xyz"], atol=2e-5)
    np.testing.assert_allclose(rel[:, 0], 0.0, atol=1e-9)  # the palm, keypoint 0, is the root
    cpose, viewpoint, scale = canonicalize(out["xyz"].astype(np.float64), out["is_right"])
    np.testing.assert_allclose(cpose, out["cpose"], atol=1e-4)   # and back: the labels again
    np.testing.assert_allclose(viewpoint, out["viewpoint"], atol=1e-4)
    np.testing.assert_allclose(scale, out["scale"], rtol=1e-5)
    R = out["viewpoint"].astype(np.float64)
    np.testing.assert_allclose(R @ np.swapaxes(R, 1, 2), np.broadcast_to(np.eye(3), R.shape),
                               atol=1e-5)


def _handedness_sign(kp):
    """sign of (radial x distal) . (flexed fingertips): < 0 for left hands, > 0 for right ones."""
    radial = kp[:, 8] - kp[:, 20]
    distal = kp[:, 12] - kp[:, 0]
    flexed = kp[:, [5, 9, 13, 17]].mean(1) - kp[:, 0]
    return np.sign(np.einsum("ni,ni->n", np.cross(radial, distal), flexed))


def test_right_hands_are_mirrored_and_canonicalize_to_left():
    n = 8
    left = sc.render_scene(_scene_with("fist", [0.3, 0.2, 1.0], n, right=False), S)
    right = sc.render_scene(_scene_with("fist", [0.3, 0.2, 1.0], n, right=True), S)
    assert (_handedness_sign(left["xyz"]) < 0).all()
    assert (_handedness_sign(right["xyz"]) > 0).all()
    # CPose is always a left hand: the same sign for both, and the same canonical pose
    assert (_handedness_sign(left["cpose"]) < 0).all()
    assert (_handedness_sign(right["cpose"]) < 0).all()
    np.testing.assert_allclose(left["cpose"], right["cpose"], atol=1e-4)


def test_visibility_back_of_fist_and_palm_of_open_hand():
    n = 12
    fist = sc.render_scene(_scene_with("fist", [0, 0, -1.0], n), S)  # seen from the back
    tips = fist["visible"][:, [5, 9, 13, 17]]
    assert (~tips).mean() > 0.5
    openh = sc.render_scene(_scene_with("open", [0, 0.15, 1.0], n), S)  # seen from the palm
    assert openh["visible"].mean() > 0.85
    assert openh["visible"][:, [5, 9, 13, 17]].all()


def test_scene_groups_and_content_factors(batch):
    scene, _ = batch
    a, b = scene[:10], scene[10:20]
    mixed = b.replace("pose", a)
    np.testing.assert_array_equal(mixed.angles, a.angles)
    np.testing.assert_array_equal(mixed.view.rotation, b.view.rotation)
    one = b.replace("skin", a[3])
    assert (one.skin.rgb == a.skin.rgb[3]).all()
    vals, names = mixed.content_factors()
    assert vals.dtype == np.float32 and vals.shape == (10, len(names))
    assert names[:3] == ["skin_r", "skin_g", "skin_b"]
    np.testing.assert_allclose(vals[:, :3], b.skin.rgb, rtol=1e-6)
    with pytest.raises(ValueError, match="unknown factor group"):
        b.replace("colour", a)
    rgb = scene.skin.rgb
    assert rgb.mean(1).min() < 0.35 and rgb.mean(1).max() > 0.75  # dark to light skin


# ---------------------------------------------------------------------------------------------
# Writer, reader, CLI
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("ds") / "synth"
    prev = out.parent / "grid.png"
    assert main(["--out", str(out), "--count", "40", "--size", str(S), "--seed", "3",
                 "--chunk", "16", "--quiet", "--preview", str(prev)]) == 0
    assert prev.stat().st_size > 1000
    return out


def test_cli_dataset_read_back(dataset):
    ds = open_dataset(f"synth:{dataset}")
    assert len(ds) == 40 and len(open_dataset(dataset)) == 40
    item = ds[7]
    expect = {"image": (torch.float32, (3, S, S)), "xyz": (torch.float32, (21, 3)),
              "cpose": (torch.float32, (21, 3)), "viewpoint": (torch.float32, (3, 3)),
              "scale": (torch.float32, ()), "uv": (torch.float32, (21, 2)),
              "visible": (torch.bool, (21,)), "is_right": (torch.bool, ()),
              "labelled": (torch.bool, ()), "content": (torch.float32, (len(ds.content_names),))}
    for k, (dt, shp) in expect.items():
        assert item[k].dtype == dt and tuple(item[k].shape) == shp, k
    assert item["labelled"].item() is True
    assert -1.0 <= item["image"].min() < item["image"].max() <= 1.0
    # same samples as rendering directly (chunk 16 on disk, one batch here)
    direct = sc.render_scene(sc.scene_range(3, 0, 40), S)
    img = torch.from_numpy(direct["image"][7]).permute(2, 0, 1).float() / 127.5 - 1
    assert torch.equal(item["image"], img)
    assert torch.equal(item["xyz"], torch.from_numpy(direct["xyz"][7]))
    assert item["mask"].dtype == torch.bool
    assert torch.equal(item["mask"], torch.from_numpy(direct["mask"][7]))
    meta = json.loads((dataset / "meta.json").read_text())
    assert meta["count"] == 40 and meta["size"] == S and meta["seed"] == 3
    # picklable for DataLoader workers, without dragging the images along
    blob = pickle.dumps(ds)
    assert len(blob) < 20_000
    assert torch.equal(pickle.loads(blob)[7]["image"], item["image"])
    loader = torch.utils.data.DataLoader(ds, batch_size=8, num_workers=0)
    b = next(iter(loader))
    assert b["image"].shape == (8, 3, S, S) and b["labelled"].all()


def test_interrupted_write_leaves_no_dataset(tmp_path, monkeypatch):
    calls = []
    real = store._render_chunk

    def flaky(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(store, "_render_chunk", flaky)
    out = tmp_path / "ds"
    rc = main(["--out", str(out), "--count", "20", "--size", "16", "--seed", "0",
               "--chunk", "8", "--quiet"])
    assert rc == 130
    assert not out.exists() and list(tmp_path.iterdir()) == []
    with pytest.raises(FileNotFoundError, match="no such dataset"):
        open_dataset(out)


def _one_line_exit2(capsys, argv):
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert len(err.strip().splitlines()) == 1 and "error" in err
    return err


def test_bad_args(tmp_path, capsys, dataset):
    base = ["--out", str(tmp_path / "x"), "--seed", "0"]
    _one_line_exit2(capsys, base + ["--count", "0", "--size", "32"])
    _one_line_exit2(capsys, base + ["--count", "3", "--size", "abc"])
    _one_line_exit2(capsys, base + ["--count", "3", "--size", "4"])
    _one_line_exit2(capsys, ["--count", "3", "--size", "32", "--seed", "0"])  # no --out
    _one_line_exit2(capsys, base + ["--count", "3", "--size", "32", "--chunk", "-1"])
    err = _one_line_exit2(capsys, ["--out", str(dataset), "--count", "3", "--size", "32",
                                   "--seed", "0"])
    assert "--overwrite" in err
    (tmp_path / "notds").mkdir()
    (tmp_path / "notds" / "keep.txt").write_text("precious")
    _one_line_exit2(capsys, ["--out", str(tmp_path / "notds"), "--count", "3", "--size", "32",
                             "--seed", "0", "--overwrite"])
    assert (tmp_path / "notds" / "keep.txt").exists()


def test_bad_args_subprocess_no_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "handlatent.synth.cli", "--out", str(tmp_path),
                        "--count", "-5", "--size", "32", "--seed", "0"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_overwrite_replaces_dataset(tmp_path):
    out = tmp_path / "d"
    assert main(["--out", str(out), "--count", "3", "--size", "16", "--seed", "0", "--quiet"]) == 0
    assert main(["--out", str(out), "--count", "5", "--size", "16", "--seed", "1", "--quiet",
                 "--overwrite"]) == 0
    assert len(open_dataset(out)) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


@pytest.mark.parametrize("damage", ["truncate_meta", "delete_meta", "delete_images",
                                    "truncate_images", "truncate_labels", "delete_masks",
                                    "truncate_masks"])
def test_damaged_dataset_gives_clear_error(tmp_path, damage):
    out = tmp_path / "d"
    store.write_dataset(out, 6, 16, 0)
    target = {"truncate_meta": "meta.json", "delete_meta": "meta.json",
              "delete_images": "images.npy", "truncate_images": "images.npy",
              "truncate_labels": "labels.npz", "delete_masks": "masks.npy",
              "truncate_masks": "masks.npy"}[damage]
    f = out / target
    if damage.startswith("delete"):
        f.unlink()
    else:
        data = f.read_bytes()
        f.write_bytes(data[: len(data) // 2])
    with pytest.raises((ValueError, FileNotFoundError)) as e:
        open_dataset(out)
    msg = str(e.value)
    assert str(out) in msg and "\n" not in msg
    assert target in msg or "meta.json" in msg


def test_tmp_dir_of_killed_writer_is_not_a_dataset(tmp_path):
    out = tmp_path / "d"
    store.write_dataset(out, 4, 16, 0)
    half = tmp_path / f"d.tmp-{os.getpid() + 1}"
    half.mkdir()
    (half / "images.npy").write_bytes((out / "images.npy").read_bytes())
    with pytest.raises(ValueError, match="meta.json"):
        open_dataset(half)


def test_factor_groups(batch):
    scene, _ = batch
    for g in sc.GROUPS:
        f = scene.factors(g)
        assert f.dtype == np.float32 and f.shape[0] == len(scene) and f.shape[1] >= 2, g
        other = scene[::-1].replace(g, scene)
        np.testing.assert_array_equal(other.factors(g), f)
        rest = [h for h in sc.GROUPS if h != g]
        assert all((other.factors(h) == scene[::-1].factors(h)).all() for h in rest)
