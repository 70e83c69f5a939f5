"""The RHD and STB readers, their crops and augmentation, the safe annotation pickle, the
evaluation protocol through them, and mixed / semi-supervised training (issue #6).

Fixtures are written here in exactly the published layouts (docs/conventions.md §3): a tiny
RHD_published_v2 tree (3 samples per split, 320×320 PNGs, masks, a protocol-2 pickle) and a tiny
STB tree (B1Counting with 3 frames, B2Random with 2, `handPara` 3×21×N in millimetres via
scipy.io.savemat). Each picture shows a small Gaussian dot at every keypoint's projection, so a
crop can be checked against its labels: the dot must sit at the item's `uv`.
"""

from __future__ import annotations

import json
import math
import pickle
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image
from torch.utils.data import default_collate

from handlatent.data import open_dataset
from handlatent.data.augment import AugmentConfig
from handlatent.data.crop import project
from handlatent.data.safe_pickle import UnsafePickleError, load_pickle
from handlatent.data.synthetic import SyntheticHandDataset
from handlatent.joint_orders import STB_TO_RHD
from handlatent.skeleton import compose
from oracle_model import OracleModel

torch.set_num_threads(1)

RHD_K = np.array([[283.0, 0.0, 160.0], [0.0, 283.0, 160.0], [0.0, 0.0, 1.0]])
STB_F, STB_CX, STB_CY, STB_BASELINE = 822.79041, 318.47345, 250.31296, 0.120054
STB_K = np.array([[STB_F, 0.0, STB_CX], [0.0, STB_F, STB_CY], [0.0, 0.0, 1.0]])
SIZE = 64  # crop size of the protocol and training checks (the readers' default is 256)
GEOM = 128  # crop size of the geometry checks (dots a few pixels wide)


# ---------------------------------------------------------------------------------- fixtures


def hand_rhd(rng, centre, length=0.09):
    """21 RHD-order keypoints of a plausible hand (wrist at 0), turned at random, near centre."""
    pts = [np.zeros(3)]
    for f, x in enumerate((-0.035, -0.015, 0.0, 0.015, 0.03)):
        base = np.array([x, -0.06 if f else -0.02, 0.0])
        step = np.array([0.1 * x if f else -0.5, -1.0, rng.uniform(-0.3, 0.3)])
        step = step / np.linalg.norm(step) * 0.025
        pts += [base + step * j for j in range(4)][::-1]  # tip first, MCP last
    pts = np.array(pts) * length / 0.09
    a, b, c = rng.uniform(-0.6, 0.6, 3)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return (pts - pts.mean(0)) @ (rz @ ry @ rx).T + centre


def dots(shape, uv, sigma=2.0):
    """uint8 RGB picture: a Gaussian dot (exact sub-pixel centre) at each uv, black elsewhere."""
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    img = np.zeros(shape)
    for u, v in uv:
        img = np.maximum(img, np.exp(-((xx - u) ** 2 + (yy - v) ** 2) / (2 * sigma ** 2)))
    grey = np.round(img * 255).astype(np.uint8)
    return np.stack([grey, (grey * 0.6).astype(np.uint8), (grey * 0.3).astype(np.uint8)], -1)


def dot_offsets(item, keypoints=range(21), radius=4.0):
    """Distance (crop pixels) from each keypoint's `uv` to the brightness centroid around it."""
    img = (item["image"].numpy() + 1) * 127.5
    g = img.max(0)  # the brightest channel: a hue shift moves the colour, not the spot
    yy, xx = np.mgrid[:g.shape[0], :g.shape[1]]
    out = []
    for j in keypoints:
        u, v = item["uv"][j].tolist()
        w = g * (((xx - u) ** 2 + (yy - v) ** 2) <= radius ** 2)
        if w.sum() == 0:
            out.append(np.inf)
            continue
        out.append(math.hypot((w * xx).sum() / w.sum() - u, (w * yy).sum() / w.sum() - v))
    return np.array(out)


def isolated(uv, min_dist):
    """Keypoints at least `min_dist` pixels from every other one (their dots do not overlap)."""
    d = np.linalg.norm(uv[:, None] - uv[None], axis=-1) + np.eye(len(uv)) * 1e9
    return [j for j in range(len(uv)) if d[j].min() >= min_dist]


def write_rhd(root: Path, split: str, count: int = 3, seed: int = 0) -> dict:
    """RHD_published_v2/<split>/{color,mask,depth}/%05d.png + anno_<split>.pickle (protocol 2)."""
    rng = np.random.default_rng(seed)
    folder = root / split
    for sub in ("color", "mask", "depth"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    anno = {}
    for i in range(count):
        left = hand_rhd(rng, np.array([-0.05, 0.0, 0.5]))
        right = hand_rhd(rng, np.array([0.06, 0.01, 0.55]))
        xyz = np.concatenate([left, right]).astype(np.float32)
        vis = np.ones(42)
        vis[[3, 7, 12, 24, 28]] = 0  # hidden: left thumb PIP, index PIP, middle MCP, ...
        if i == 2:
            vis[[0, 21]] = 0  # ... and the wrists: sample 2's palm is hidden
        uv = project(RHD_K, xyz.astype(np.float64))
        anno[i] = {"xyz": xyz, "uv_vis": np.concatenate([uv, vis[:, None]], 1).astype(np.float32),
                   "K": RHD_K.astype(np.float32)}
        hand = xyz[21:] if i == 1 else xyz[:21]
        palm = (hand[0].astype(np.float64) + hand[12]) / 2
        uv_drawn = project(RHD_K, np.vstack([palm, hand[1:]]))
        Image.fromarray(dots((320, 320), uv_drawn)).save(folder / "color" / f"{i:05d}.png")
        mask = np.zeros((320, 320), np.uint8)
        mask[:100] = 5  # left-hand parts (2-17) ...
        mask[100:300 if i == 1 else 150] = 20  # ... and right-hand parts (18-33): more in sample 1
        Image.fromarray(mask).save(folder / "mask" / f"{i:05d}.png")
        Image.fromarray(np.zeros((320, 320, 3), np.uint8)).save(folder / "depth" / f"{i:05d}.png")
    with open(folder / f"anno_{split}.pickle", "wb") as f:
        pickle.dump(anno, f, protocol=2)  # the published file is a Python 2 pickle
    return anno


def write_stb(root: Path, seqs=(("B1Counting", 3), ("B2Random", 2)), seed: int = 1) -> dict:
    """STB/images/<Seq>/{BB_left_i,BB_right_i,SK_color_i}.png + labels/<Seq>_{BB,SK}.mat."""
    rng = np.random.default_rng(seed)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    hands = {}
    for seq, n in seqs:
        (root / "images" / seq).mkdir(parents=True, exist_ok=True)
        # 0.06 m right of the left camera: both cameras see the whole hand (disparity ~220 px)
        rhd = np.stack([hand_rhd(rng, np.array([0.06, 0.02, 0.45]), 0.11) for _ in range(n)])
        rhd[:, 0] = (rhd[:, 0] + rhd[:, 12]) / 2  # STB's joint 0 is the palm
        stb_mm = rhd[:, STB_TO_RHD] * 1000  # STB order (the map is its own inverse), millimetres
        for cam in ("BB", "SK"):
            scipy.io.savemat(root / "labels" / f"{seq}_{cam}.mat",
                             {"handPara": stb_mm.transpose(2, 1, 0)})  # 3 x 21 x N
        for i in range(n):
            uv_left = project(STB_K, rhd[i])
            disparity = STB_F * STB_BASELINE / rhd[i, :, 2]  # stereo: u_right = u_left - f b / z
            uv_right = uv_left - np.stack([disparity, np.zeros(21)], 1)
            d = root / "images" / seq
            Image.fromarray(dots((480, 640), uv_left)).save(d / f"BB_left_{i}.png")
            Image.fromarray(dots((480, 640), uv_right)).save(d / f"BB_right_{i}.png")
            Image.fromarray(np.zeros((480, 640, 3), np.uint8)).save(d / f"SK_color_{i}.png")
        hands[seq] = rhd
    return hands


@pytest.fixture(scope="module")
def rhd(tmp_path_factory):
    root = tmp_path_factory.mktemp("rhd") / "RHD_published_v2"
    anno = {split: write_rhd(root, split, seed=s) for s, split in enumerate(("evaluation",
                                                                            "training"))}
    return SimpleNamespace(root=root, anno=anno)


@pytest.fixture(scope="module")
def stb(tmp_path_factory):
    root = tmp_path_factory.mktemp("stb") / "STB"
    return SimpleNamespace(root=root, hands=write_stb(root))


def rhd_spec(root, split="evaluation", **options):
    query = "&".join(f"{k}={v}" for k, v in {"split": split, **options}.items())
    return f"rhd:{root}?{query}"


# ------------------------------------------------------------------------------ safe pickle


class _Payload:
    """Unpickling this creates `path` (a stand-in for arbitrary code)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_safe_pickle_refuses_code_and_reads_numpy(tmp_path):
    # the payload is real: plain pickle.loads creates its marker file
    control = tmp_path / "control-marker"
    pickle.loads(pickle.dumps(_Payload(control))).close()
    assert control.exists()

    marker = tmp_path / "marker"
    bad = tmp_path / "anno_training.pickle"
    bad.write_bytes(pickle.dumps({0: {"xyz": np.zeros((42, 3)), "evil": _Payload(marker)}}))
    with pytest.raises(UnsafePickleError) as info:
        load_pickle(bad)
    assert str(info.value).startswith(f"{bad}: refused to unpickle io.open")
    assert "\n" not in str(info.value)
    assert not marker.exists()

    # ...also through the RHD reader, and as the trainer/CLI see it (a ValueError)
    folder = tmp_path / "RHD" / "training"
    for sub in ("color", "mask"):
        (folder / sub).mkdir(parents=True)
    (folder / "anno_training.pickle").write_bytes(bad.read_bytes())
    with pytest.raises(ValueError, match="refused to unpickle io.open"):
        open_dataset(f"rhd:{tmp_path / 'RHD'}?split=training")
    assert not marker.exists()

    data = {0: {"xyz": np.arange(6, dtype=np.float32).reshape(2, 3), "n": np.int64(3),
                "K": np.eye(3)}, 1: [1.5, "a", (2, None)]}
    for protocol in (2, 4, 5):
        path = tmp_path / f"ok{protocol}.pickle"
        path.write_bytes(pickle.dumps(data, protocol=protocol))
        back = load_pickle(path)
        assert back[1] == data[1] and back[0]["n"] == 3
        np.testing.assert_array_equal(back[0]["xyz"], data[0]["xyz"])
    truncated = tmp_path / "truncated.pickle"
    truncated.write_bytes(pickle.dumps(data, protocol=2)[:-40])
    with pytest.raises(ValueError, match=f"{truncated}: not a readable pickle"):
        load_pickle(truncated)


# --------------------------------------------------------------------------------- RHD items

SYNTH_DTYPES = {"image": torch.float32, "xyz": torch.float32, "cpose": torch.float32,
                "viewpoint": torch.float32, "scale": torch.float32, "uv": torch.float32,
                "visible": torch.bool, "is_right": torch.bool, "labelled": torch.bool,
                "content": torch.float32, "K": torch.float32, "template": torch.int64}


def check_item_format(item, size):
    assert tuple(item) == SyntheticHandDataset.KEYS
    assert {k: v.dtype for k, v in item.items()} == SYNTH_DTYPES
    shapes = {k: tuple(v.shape) for k, v in item.items()}
    assert shapes == {"image": (3, size, size), "xyz": (21, 3), "cpose": (21, 3),
                      "viewpoint": (3, 3), "scale": (), "uv": (21, 2), "visible": (21,),
                      "is_right": (), "labelled": (), "content": shapes["content"], "K": (3, 3),
                      "template": ()}
    assert item["image"].min() >= -1 and item["image"].max() <= 1
    assert not item["content"].any() and item["template"] == -1 and item["labelled"]


def check_geometry(item, tol_px=0.25, min_dist=8.0):
    """uv = project(K, xyz) exactly, the dots sit at uv, xyz = compose(...) + palm."""
    xyz = item["xyz"].double().numpy()
    np.testing.assert_allclose(project(item["K"].double().numpy(), xyz), item["uv"].numpy(),
                               atol=1e-3)
    rel = compose(item["cpose"].double(), item["viewpoint"].double(), item["scale"].double(),
                  item["is_right"])
    np.testing.assert_allclose(rel.numpy() + xyz[:1], xyz, atol=1e-6)
    uv = item["uv"].numpy()
    inside = [j for j in isolated(uv, min_dist)
              if (uv[j] > 3).all() and (uv[j] < item["image"].shape[-1] - 4).all()]
    assert len(inside) >= 8, "the fixture must leave enough separate dots in the crop"
    err = dot_offsets(item, inside)
    assert err.max() < tol_px, dict(zip(inside, err.round(3)))


def test_rhd_items_have_the_synthetic_format_and_the_papers_labels(rhd):
    ds = open_dataset(rhd_spec(rhd.root), size=GEOM)
    assert len(ds) == 3 and ds.split == "evaluation"
    # the split's own folder is the same dataset
    same = open_dataset(f"rhd:{rhd.root / 'evaluation'}", size=GEOM)
    assert torch.equal(same[1]["image"], ds[1]["image"])
    items = [ds[i] for i in range(3)]
    for i, item in enumerate(items):
        check_item_format(item, GEOM)
        check_geometry(item)
        anno = rhd.anno["evaluation"][i]
        right = i == 1  # sample 1's mask has more right-hand pixels
        assert bool(item["is_right"]) == right
        hand = anno["xyz"][21:] if right else anno["xyz"][:21]
        vis = anno["uv_vis"][21:, 2] if right else anno["uv_vis"][:21, 2]
        palm = (hand[0].astype(np.float64) + hand[12]) / 2
        # camera frame, metres, palm (mid wrist / middle MCP) at 0, not moved by the crop
        np.testing.assert_allclose(item["xyz"][0].numpy(), palm, atol=1e-6)
        np.testing.assert_allclose(item["xyz"][1:].numpy(), hand[1:], atol=1e-6)
        expected_vis = vis > 0.5
        expected_vis[0] = vis[0] > 0.5 or vis[12] > 0.5
        np.testing.assert_array_equal(item["visible"].numpy(), expected_vis)
        assert item["scale"] == pytest.approx(np.linalg.norm(hand[12] - hand[11]), abs=1e-6)
    assert not items[2]["visible"][0] and items[0]["visible"][0]  # palm: wrist or MCP seen
    # real and synthetic items collate into one batch (the mixed-training path)
    batch = default_collate(items)
    assert batch["image"].shape == (3, 3, GEOM, GEOM)
    # hand3d's crop: centred on the middle MCP, the farthest visible keypoint (along u or v) at
    # half the side, times the margin 1.25: 0.4 S from the centre
    for item in items:
        uv, vis = item["uv"].numpy(), item["visible"].numpy()
        np.testing.assert_allclose(uv[12], [(GEOM - 1) / 2] * 2, atol=1e-4)
        assert np.abs(uv[vis] - uv[12]).max() == pytest.approx(0.4 * GEOM, abs=1e-3)
        assert (uv > 1).all() and (uv < GEOM - 2).all()


# --------------------------------------------------------------------------------- STB items


def test_stb_items_splits_order_units_and_stereo(stb):
    with pytest.raises(ValueError, match=r"labels/B1Random_BB\.mat: no such file"):
        open_dataset(f"stb:{stb.root}?split=test")  # the fixture has no B1Random
    with pytest.warns(UserWarning, match="skipping the whole sequence B1Random"):
        test = open_dataset(f"stb:{stb.root}?split=test&on_error=skip", size=SIZE)
    assert test.sequences == ("B1Counting", "B1Random") and len(test) == 2 * 3
    ds = open_dataset(f"stb:{stb.root}", sequences="B2Random", size=GEOM)
    assert len(ds) == 4
    for index in range(len(ds)):
        item = ds[index]
        check_item_format(item, GEOM)
        check_geometry(item)  # the right image's dots were drawn by disparity, not by the reader
        frame, cam = divmod(index, 2)
        expected = stb.hands["B2Random"][frame].copy()  # RHD order, metres, left camera
        if cam:
            expected[:, 0] -= STB_BASELINE
        np.testing.assert_allclose(item["xyz"].numpy(), expected, atol=1e-6)
        assert item["visible"].all() and not item["is_right"]
        assert str(ds.path(index)).endswith(f"B2Random/BB_{('left', 'right')[cam]}_{frame}.png")
    # the published intrinsics: the crop's K is M @ K_BB with M a scale and a shift
    k = ds[0]["K"].double().numpy()
    assert k[0, 1] == pytest.approx(0, abs=1e-9) and k[0, 0] == pytest.approx(k[1, 1])
    with pytest.raises(ValueError, match="say which STB split"):
        open_dataset(f"stb:{stb.root}")


# ------------------------------------------------------------------------------ augmentation


def test_crop_warp_follows_the_pixel_convention():
    """A dot at a sub-pixel position lands where crop_matrix sends it (pixel (i, j) centred at
    (u, v) = (j, i)), for a plain copy, a shift, a zoom and a quarter turn."""
    from handlatent.data.crop import crop_matrix, warp

    uv = np.array([20.3, 30.7])
    image = dots((64, 64), [uv], sigma=2.5)
    same = warp(image, crop_matrix((31.5, 31.5), 64, 64), 64)  # the identity map
    assert np.abs(same.astype(int) - image).max() <= 1
    for centre, side, angle in [((25.25, 33.5), 64, 0.0), ((22.0, 30.0), 32, 0.0),
                                ((24.0, 28.0), 48, math.pi / 2), ((20.0, 33.0), 40, 0.7)]:
        m = crop_matrix(centre, side, 64, angle)
        item = {"image": torch.from_numpy(warp(image, m, 64)).permute(2, 0, 1) / 127.5 - 1,
                "uv": torch.from_numpy((m @ [*uv, 1.0])[None, :2])}
        # (a half-pixel slip in either convention would be 0.5-1 px here)
        assert dot_offsets(item, [0], radius=12.0)[0] < 0.1, (centre, side, angle)



def test_augmentation_turns_labels_with_the_picture_and_is_reproducible(rhd, stb):
    cfg = AugmentConfig(enabled=True, rotation_deg=180.0, hue=0.1)
    for spec in (rhd_spec(rhd.root), f"stb:{stb.root}?sequences=B2Random"):
        plain = open_dataset(spec, size=GEOM)
        aug = plain.with_augment(cfg, seed=(7, 1))
        assert torch.equal(aug[0]["image"], plain[0]["image"])  # an int key: never augmented
        angles = []
        for index in range(len(plain)):
            for epoch in (0, 1):
                a, p = aug[(index, epoch)], plain[index]
                check_geometry(a)  # uv = project(K, xyz), dots at uv
                # the labels turned about the optical axis: xyz' = xyz Rz^T, viewpoint' = V Rz^T
                rz = np.linalg.lstsq(p["xyz"].double().numpy(), a["xyz"].double().numpy(),
                                     rcond=None)[0].T
                assert rz[2] == pytest.approx([0, 0, 1], abs=1e-5)
                np.testing.assert_allclose(rz @ rz.T, np.eye(3), atol=1e-5)
                np.testing.assert_allclose(a["viewpoint"].numpy(),
                                           p["viewpoint"].double().numpy() @ rz.T, atol=1e-5)
                assert torch.equal(a["cpose"], p["cpose"]) and a["scale"] == p["scale"]
                assert torch.equal(a["visible"], p["visible"])
                angles.append(math.degrees(math.atan2(rz[1, 0], rz[0, 0])))
                # reproducible: the same (index, epoch) gives the same item, also in a copy
                # pickled to a DataLoader worker
                again = pickle.loads(pickle.dumps(aug))[(index, epoch)]
                assert all(torch.equal(again[k], a[k]) for k in a)
        assert max(abs(x) for x in angles) > 20 and len(set(np.round(angles, 3))) == len(angles)
        assert not torch.equal(aug[(0, 0)]["image"], aug[(0, 1)]["image"])  # epochs differ


def test_hue_shift_moves_the_hue_only():
    from handlatent.data.augment import shift_hue

    rgb = np.array([[[200, 40, 40], [40, 200, 40], [90, 90, 90]]], np.uint8)
    out = shift_hue(rgb, 1 / 3)  # red -> green, green -> blue, grey stays grey
    assert out[0, 0].argmax() == 1 and out[0, 1].argmax() == 2
    assert np.abs(out[0, 2].astype(int) - 90).max() <= 1
    assert np.abs(out.max(-1).astype(int) - rgb.max(-1)).max() <= 2  # value kept
    assert shift_hue(rgb, 0.0) is rgb


# ----------------------------------------------------------------------------------- errors


def test_missing_wrong_and_corrupt_inputs_name_the_path(rhd, stb, tmp_path):
    def error(spec, **kw):
        with pytest.raises((ValueError, OSError)) as info:
            ds = open_dataset(spec, **kw)
            ds[0]
        line = str(info.value)
        assert "\n" not in line
        return line

    nope = tmp_path / "nope"
    assert error(f"rhd:{nope}?split=training") == f"{nope}: no such directory"
    assert error(f"rhd:{stb.root}?split=training").startswith(
        f"{stb.root / 'training'}: no such directory (not an RHD folder?")
    assert "not an RHD folder" in error(f"rhd:{stb.root}")
    assert "say which RHD split" in error(f"rhd:{rhd.root}")
    assert "unknown option 'splt'" in error(f"rhd:{rhd.root}?splt=training")
    assert "not an STB folder" in error(f"stb:{rhd.root}?split=train")
    assert "unknown RHD split" in error(f"rhd:{rhd.root}", split="test")

    broken = tmp_path / "RHD_published_v2"
    write_rhd(broken, "training", count=3)
    (broken / "training" / "color" / "00001.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (broken / "training" / "mask" / "00002.png").unlink()
    line = error(rhd_spec(broken, "training"))  # a missing file: found when opening
    assert line == f"{broken / 'training' / 'mask' / '00002.png'}: no such file"
    (broken / "training" / "mask" / "00002.png").write_bytes(
        (broken / "training" / "mask" / "00000.png").read_bytes())
    ds = open_dataset(rhd_spec(broken, "training"), size=SIZE)
    assert len(ds) == 3
    with pytest.raises(ValueError) as info:  # a corrupt PNG: found when loading
        ds[1]
    assert str(info.value).startswith(f"{broken / 'training' / 'color' / '00001.png'}: cannot "
                                      "read the image")
    pkl = broken / "training" / "anno_training.pickle"
    pkl.write_bytes(pkl.read_bytes()[:100])
    assert error(rhd_spec(broken, "training")).startswith(f"{pkl}: not a readable pickle")
    pkl.unlink()
    assert error(rhd_spec(broken, "training")).startswith(f"{pkl}: no such file")

    bad_stb = tmp_path / "STB"
    write_stb(bad_stb, seqs=(("B1Counting", 2),))
    mat = bad_stb / "labels" / "B1Counting_BB.mat"
    mat.write_bytes(b"MATLAB 5.0 garbage")
    assert error(f"stb:{bad_stb}?sequences=B1Counting").startswith(f"{mat}: not a readable .mat")
    scipy.io.savemat(mat, {"handPara": np.zeros((3, 20, 2))})
    assert error(f"stb:{bad_stb}?sequences=B1Counting").startswith(f"{mat}: 'handPara' has shape")
    scipy.io.savemat(mat, {"other": np.zeros((3, 21, 2))})
    assert error(f"stb:{bad_stb}?sequences=B1Counting") == f"{mat}: no 'handPara' variable"


def test_bad_samples_can_be_skipped_with_a_warning_and_a_count(tmp_path):
    root = tmp_path / "RHD_published_v2"
    anno = write_rhd(root, "training", count=3)
    (root / "training" / "color" / "00001.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (root / "training" / "mask" / "00002.png").unlink()
    anno[0]["xyz"] = anno[0]["xyz"][:41]  # a broken label: found when opening
    with open(root / "training" / "anno_training.pickle", "wb") as f:
        pickle.dump(anno, f, protocol=2)
    with pytest.warns(UserWarning) as record:
        ds = open_dataset(rhd_spec(root, "training", on_error="skip"), size=SIZE)
    messages = [str(w.message) for w in record]
    assert any("skipping 2 of 3 samples" in m and "'xyz' is (41, 3)" in m for m in messages)
    assert len(ds) == 1 and ds.ids.tolist() == [1]

    # a corrupt PNG found while loading is replaced by the next sample, loudly, once
    (root / "training" / "mask" / "00002.png").write_bytes(
        (root / "training" / "mask" / "00001.png").read_bytes())
    anno[0]["xyz"] = np.concatenate([anno[0]["xyz"], anno[0]["xyz"][:1]])
    with open(root / "training" / "anno_training.pickle", "wb") as f:
        pickle.dump(anno, f, protocol=2)
    ds = open_dataset(rhd_spec(root, "training", on_error="skip"), size=SIZE)
    assert len(ds) == 3
    with pytest.warns(UserWarning, match=r"00001\.png: cannot read the image.*using sample 2 "
                                         r"instead \(1 bad sample so far"):
        item = ds[1]
    assert torch.equal(item["image"], ds[2]["image"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reported once per process, not every epoch
        ds[1]


def test_a_corrupt_png_met_while_training_or_evaluating_is_one_line(tmp_path, capsys,
                                                                     monkeypatch):
    """The DataLoader worker's traceback is reduced to the reader's `PATH: problem` line."""
    import handlatent.checkpoint
    from handlatent.training import cli, evaluate_cli

    root = tmp_path / "RHD_published_v2"
    write_rhd(root, "training", count=3)
    for i in (1, 2):  # whichever two are not held out, the first batch meets a corrupt one
        (root / "training" / "color" / f"{i:05d}.png").write_bytes(b"\x89PNG\r\n\x1a\n bad")
    spec = rhd_spec(root, "training")
    sets = ["--set", f"data.train={spec}", "--set", "data.synthetic=null", "--set",
            "data.val_count=1", "--set", "data.batch_size=2", "--set", "data.workers=1"]
    out = tmp_path / "run"
    assert cli.main(["--config", str(CONFIGS / "smoke.yaml"), "--out", str(out), *sets]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert err[0].startswith(f"handlatent-train: {root / 'training' / 'color'}/0000")
    assert "cannot read the image" in err[0] and "on_error=skip" in err[0]

    oracle = SimpleNamespace(config=SimpleNamespace(image_size=SIZE), layout=None)
    monkeypatch.setattr(handlatent.checkpoint, "load_model", lambda path, device: oracle)
    assert evaluate_cli.main(["--checkpoint", "x.pt", "--data", spec, "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "00001.png: cannot read the image" in err[0], err


# ------------------------------------------------------------------- evaluation protocol


def expected_pck_auc(errors_m, visible):
    """docs/conventions.md §4 written out: per keypoint, the fraction of its visible samples within
    t; the mean over keypoints seen at all; trapezoid area over t[8:] (21.05-50 mm) / range."""
    thresholds = [0.050 * k / 19 for k in range(20)]
    pck = []
    for t in thresholds:
        per_keypoint = []
        for j in range(errors_m.shape[1]):
            seen = [errors_m[i, j] for i in range(len(errors_m)) if visible[i, j]]
            if seen:
                per_keypoint.append(sum(e <= t for e in seen) / len(seen))
        pck.append(sum(per_keypoint) / len(per_keypoint))
    area = sum((thresholds[k + 1] - thresholds[k]) * (pck[k + 1] + pck[k]) / 2
               for k in range(8, 19))
    return pck, area / (thresholds[19] - thresholds[8])


def known_errors(visible):
    """Errors of 1, 5, 9, ... 49 mm (never on a threshold) on visible keypoints, 0.5 m on the
    hidden ones (which the protocol must ignore)."""
    n = len(visible)
    mm = np.array([[1 + 4 * ((5 * i + 3 * j) % 13) for j in range(21)] for i in range(n)])
    return np.where(visible, mm / 1000.0, 0.5)


@pytest.mark.parametrize("which", ["rhd", "stb"])
def test_protocol_through_reader_evaluator_and_cli(which, rhd, stb, tmp_path, monkeypatch, capsys):
    import handlatent.checkpoint
    from handlatent.training import evaluate_cli
    from handlatent.training.evaluate import EvalOptions, evaluate

    spec = rhd_spec(rhd.root) if which == "rhd" else f"stb:{stb.root}?sequences=B1Counting"
    ds = open_dataset(spec, size=SIZE)
    visible = np.stack([ds[i]["visible"].numpy() for i in range(len(ds))])
    assert (which == "stb") == visible.all()  # RHD has hidden keypoints; STB counts them all
    errors = known_errors(visible)
    oracle = OracleModel(ds, errors, seed=5)
    pck, auc = expected_pck_auc(errors, visible)
    assert 0.2 < auc < 0.9 and pck[0] == 0 and pck[-1] == 1  # a curve, not a step

    r, _ = evaluate(oracle, ds, EvalOptions(batch_size=4, disentanglement=False, progress=False))
    assert r["pck"]["values"] == pytest.approx(pck, abs=1e-6)
    assert r["auc_20_50"] == pytest.approx(auc, abs=1e-6)
    seen = [errors[visible[:, j], j] for j in range(21) if visible[:, j].any()]
    assert r["epe_mean_mm"] == pytest.approx(1000 * np.mean([e.mean() for e in seen]), abs=1e-3)
    assert r["visible_fraction"] == pytest.approx(visible.mean())

    # the same through handlatent-eval --data KIND:PATH?... (the CLI crops at the model's size)
    monkeypatch.setattr(handlatent.checkpoint, "load_model", lambda path, device: oracle)
    out = tmp_path / f"{which}.json"
    assert evaluate_cli.main(["--checkpoint", "oracle.pt", "--data", spec, "--json", str(out),
                              "--no-disentanglement", "--quiet", "--threads", "1"]) == 0
    j = json.loads(out.read_text())
    assert j["data"] == spec and j["count"] == len(ds)
    assert j["pck"]["values"] == pytest.approx(pck, abs=1e-6)
    assert j["auc_20_50"] == pytest.approx(auc, abs=1e-6)
    assert "AUC 20-50 mm" in capsys.readouterr().out


def test_cli_reports_a_bad_real_dataset_in_one_line(tmp_path, monkeypatch, capsys):
    import handlatent.checkpoint
    from handlatent.training import evaluate_cli

    oracle = SimpleNamespace(config=SimpleNamespace(image_size=SIZE))
    monkeypatch.setattr(handlatent.checkpoint, "load_model", lambda path, device: oracle)
    spec = f"rhd:{tmp_path / 'missing'}?split=evaluation"
    assert evaluate_cli.main(["--checkpoint", "x.pt", "--data", spec, "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(tmp_path / "missing") in err[0] and "no such directory" in err[0]


# --------------------------------------------------------------------- configs and mixtures

CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"


@pytest.mark.parametrize("name,kind", [("rhd-256", "rhd"), ("stb-256", "stb")])
def test_shipped_real_data_configs(name, kind, rhd, stb):
    from handlatent.training.config import load_config

    root = rhd.root if kind == "rhd" else stb.root
    cfg = load_config(CONFIGS / f"{name}.yaml", [f"data.train={kind}:{root}?split=x"])
    assert cfg.data.train.startswith(f"{kind}:")
    assert cfg.model.image_size == 256 and cfg.model.z_y1 + cfg.model.z_y2 + cfg.model.z_u == 64
    assert (cfg.optim.lr, cfg.optim.schedule, cfg.optim.factor) == (1e-4, "plateau", 0.1)
    assert cfg.data.batch_size == 32 and cfg.loss.image_likelihood == "sigma"
    # the 64 px recipe's pose weight (1,000) times 16 for 16 x the image's values
    assert cfg.loss.w_cpose == cfg.loss.w_viewpoint == cfg.loss.w_xyz == 1000 * (256 / 64) ** 2
    a = cfg.data.augment
    assert a.enabled and a.scale == (1.0, 1.2) and a.shift_px == 20 and a.hue == 0.1
    assert a.rotation_deg > 0


def test_config_mixtures_validate_and_round_trip(rhd, stb, tmp_path):
    from handlatent.training.config import ConfigError, DatasetEntry, dump_config, load_config

    path = tmp_path / "mix.yaml"
    path.write_text(f"""\
model: {{image_size: 64}}
data:
  train:
    - {{path: "{rhd_spec(rhd.root, 'training')}", weight: 0.5}}
    - {{path: "stb:{stb.root}?split=train", weight: 2, labelled: false}}
    - path: {tmp_path}
  augment: {{enabled: true, rotation_deg: 30}}
run: {{steps: 3}}
""")
    cfg = load_config(path)
    assert cfg.data.train == [DatasetEntry(rhd_spec(rhd.root, "training"), 0.5, True),
                              DatasetEntry(f"stb:{stb.root}?split=train", 2.0, False),
                              DatasetEntry(str(tmp_path), 1.0, True)]
    assert cfg.data.augment.rotation_deg == 30 and cfg.data.augment.hue == 0.1
    again = tmp_path / "again.yaml"
    again.write_text(dump_config(cfg))
    assert load_config(again) == cfg

    def error(sets):
        with pytest.raises(ConfigError) as info:
            load_config(path, sets)
        assert "\n" not in str(info.value)
        return str(info.value)

    assert "data.train[0].wieght: unknown key (did you mean 'weight'?)" in error(
        [f"data.train=[{{path: {tmp_path}, wieght: 2}}]"])
    assert "data.train[1].path: no such file or directory: 'nope:/nope'" in error(
        [f"data.train=[{{path: {tmp_path}}}, {{path: 'nope:/nope'}}]"])
    # a reader's spec is checked by the reader when the run opens it (its own message there)
    load_config(path, [f"data.train=[{{path: {tmp_path}}}, {{path: 'stb:/nope'}}]"])
    assert "data.train[0].weight: must be > 0" in error([f"data.train=[{{path: {tmp_path}, "
                                                         "weight: 0}]"])
    assert "data.train[0].path: missing required value" in error(["data.train=[{weight: 1}]"])
    assert "data.augment: scale: expected 0 < low <= high" in error(["data.augment.scale=[1.2, 1]"])
    assert "data.val_count" in error(["data.val_count=4"])


@pytest.fixture(scope="module")
def synth64(tmp_path_factory):
    from handlatent.synth import cli as synth_cli

    path = tmp_path_factory.mktemp("synth") / "synth64"
    assert synth_cli.main(["--out", str(path), "--count", "16", "--size", "64", "--seed", "2",
                           "--quiet"]) == 0
    return path


def test_a_validation_spec_gets_its_readers_message(synth64, tmp_path):
    """data.val = "stb:..." passes the config check; opening it says what the reader found."""
    from handlatent.training.config import ConfigError, build_config
    from handlatent.training.data import open_datasets

    cfg = build_config({"model": {"image_size": 64}, "run": {"steps": 1},
                        "data": {"train": str(synth64), "val": "stb:/nope/STB?split=test"}})
    with pytest.raises(ConfigError) as info:
        open_datasets(cfg.data, 64, tmp_path, dist=None)
    assert str(info.value) == ("data.val: cannot open dataset 'stb:/nope/STB?split=test': "
                               "/nope/STB: no such directory")


def test_mixed_dataset_weights_labels_and_epochs(rhd, stb, synth64):
    from handlatent.training.config import DataConfig, DatasetEntry
    from handlatent.training.data import MixedDataset, collate_shared_keys, open_datasets

    data = DataConfig(train=[DatasetEntry(str(synth64)),
                             DatasetEntry(f"stb:{stb.root}?sequences=B1Counting,B2Random", 2.0,
                                          False),
                             DatasetEntry(rhd_spec(rhd.root, "training"), 0.5)],
                      val_fraction=0.25, augment=AugmentConfig(enabled=True))
    dist = SimpleNamespace(is_main=True, enabled=False)
    train, val = open_datasets(data, 64, Path("/nonexistent"), dist, seed=3)
    assert isinstance(train, MixedDataset)
    # held out: 4 of 16 synthetic, 2 of 10 STB crops, 1 of 3 RHD; quotas 12, 2 x 8, 0.5 x 2
    assert [q for _, _, q, _ in train.parts] == [12, 16, 1] and len(train) == 29
    assert len(val) == 4 + 2 + 1
    labelled = [bool(val[i]["labelled"]) for i in range(len(val))]
    assert labelled == [True] * 4 + [False] * 2 + [True]

    for epoch in (0, 1):
        items = [train[(i, epoch)] for i in range(len(train))]
        assert all(bool(it["labelled"]) for it in items[:12] + items[28:])
        assert not any(bool(it["labelled"]) for it in items[12:28])
        # weight 2: every STB training crop exactly twice an epoch
        stb_items = [tuple(it["xyz"].flatten().tolist()) for it in items[12:28]]
        assert len(set(stb_items)) == 8
        assert all(stb_items.count(x) == 2 for x in stb_items)
        # one batch of all three, as the trainer collates it: the keys every item has (the
        # synthetic hands' masks and content twins are not in the photographs' items)
        batch = collate_shared_keys(items[:8] + items[12:20] + items[28:])
        assert batch["image"].shape == (17, 3, 64, 64) and "mask" not in batch
    # weight 0.5 of the 2 RHD training samples: a fresh one each epoch (a function of the epoch)
    # (told apart by their canonical pose, which the augmentation does not change)
    picks = [tuple(train[(28, e)]["cpose"][1].tolist()) for e in range(8)]
    assert len(set(picks)) == 2 and picks == [tuple(train[(28, e)]["cpose"][1].tolist())
                                              for e in range(8)]
    # a synthetic set with weight 1 maps index i to its i-th training sample, as before
    synth = SyntheticHandDataset(synth64)
    held = train.parts[0][1]
    assert torch.equal(train[(5, 1)]["image"], synth[held[5]]["image"])


def test_training_on_a_mixture_resumes_exactly(rhd, stb, synth64, tmp_path):
    """Synthetic + STB (unlabelled, weight 2) + RHD (augmented): 4 steps straight equal 2 steps
    + resume + 2 steps, weight for weight (augmentation is a function of seed, epoch, index)."""
    from handlatent.checkpoint import load_checkpoint
    from handlatent.training.config import load_config
    from handlatent.training.train import train

    sets = [f"data.train=[{{path: '{synth64}'}}, "
            f"{{path: 'stb:{stb.root}?sequences=B1Counting,B2Random', weight: 2, "
            f"labelled: false}}, {{path: '{rhd_spec(rhd.root, 'training')}', weight: 0.5}}]",
            "data.synthetic=null", "data.val_count=null", "data.val_fraction=0.25",
            "data.augment.enabled=true", "data.workers=0", "run.steps=4", "run.val_interval=2",
            "run.ckpt_interval=100", "run.log_interval=1"]
    cfg = load_config(CONFIGS / "smoke.yaml", sets)
    summary = train(cfg, tmp_path / "straight")
    assert summary["step"] == 4
    train(cfg, tmp_path / "resumed", stop_after=2)
    train(cfg, tmp_path / "resumed", resume=True)
    a = load_checkpoint(tmp_path / "straight" / "last.pt")
    b = load_checkpoint(tmp_path / "resumed" / "last.pt")
    assert (a["extra"]["epoch"], a["extra"]["batch"]) == (1, 1)  # 29 samples: 3 batches of 8
    for name, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][name]), name
