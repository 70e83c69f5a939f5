"""The FreiHAND reader (handlatent/data/freihand.py) on a tiny tree written here in the published
FreiHAND_pub_v2 layout: `{split}_K.json`, `{split}_xyz.json` (MANO order, metres),
`{split}_scale.json` and `{split}/rgb/%08d.jpg` (224x224 JPEGs made with Pillow, four versions of
each training hand), each picture a dot at every keypoint's projection so the crop can be checked
against its labels."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from handlatent.data import CROPPING_READERS, open_dataset, spec_kind
from handlatent.data.crop import project
from handlatent.joint_orders import convert
from test_real_data import GEOM, check_geometry, check_item_format, dots, hand_rhd

N_TRAIN, N_EVAL = 3, 2
FH_K = np.array([[480.0, 0.0, 111.5], [0.0, 480.0, 111.5], [0.0, 0.0, 1.0]])


def write_freihand(root: Path, split: str, count: int, versions: int, seed: int = 0) -> np.ndarray:
    """The split's label files and images; returns the joints (count, 21, 3) in MANO order."""
    rng = np.random.default_rng(seed)
    (root / split / "rgb").mkdir(parents=True, exist_ok=True)
    rhd = np.stack([hand_rhd(rng, np.array([0.0, 0.0, 0.5]), 0.08) for _ in range(count)])
    mano = convert(rhd, "rhd", "freihand")  # wrist first, thumb .. little from base to tip
    k = np.stack([FH_K + [[0, 0, 2.0 * i], [0, 0, -1.5 * i], [0, 0, 0]] for i in range(count)])
    scale = np.linalg.norm(mano[:, 9] - mano[:, 10], axis=-1)
    for key, value in (("K", k), ("xyz", mano), ("scale", scale)):
        (root / f"{split}_{key}.json").write_text(json.dumps(value.tolist()))
    for i in range(count):
        palm_first = np.vstack([(rhd[i, 0] + rhd[i, 12]) / 2, rhd[i, 1:]])
        picture = dots((224, 224), project(k[i], palm_first))
        for version in range(versions):
            Image.fromarray(picture).save(root / split / "rgb" / f"{i + version * count:08d}.jpg",
                                          quality=95)
    return mano


@pytest.fixture(scope="module")
def freihand(tmp_path_factory):
    root = tmp_path_factory.mktemp("freihand") / "FreiHAND_pub_v2"
    labels = {"training": write_freihand(root, "training", N_TRAIN, 4),
              "evaluation": write_freihand(root, "evaluation", N_EVAL, 1, seed=1)}
    (root / "training" / "mask").mkdir()  # published, not read
    return SimpleNamespace(root=root, labels=labels)


def test_items_are_palm_first_right_hands_cropped_like_the_other_readers(freihand):
    assert spec_kind(f"freihand:{freihand.root}") in CROPPING_READERS
    ds = open_dataset(f"freihand:{freihand.root}?split=training", size=GEOM)
    assert len(ds) == 4 * N_TRAIN and ds.versions == (0, 1, 2, 3)
    for index in range(len(ds)):
        version, hand = divmod(index, N_TRAIN)
        assert ds.path(index).name == f"{hand + version * N_TRAIN:08d}.jpg"
        item = ds[index]
        check_item_format(item, GEOM)
        check_geometry(item, tol_px=0.3)  # the dots sit at uv in the crop (JPEG: 0.3 px)
        mano = freihand.labels["training"][hand]
        # this project's order in metres, camera frame, the palm (mid wrist / middle MCP) first
        np.testing.assert_allclose(item["xyz"][0].numpy(), (mano[0] + mano[9]) / 2, atol=1e-6)
        np.testing.assert_allclose(item["xyz"][1].numpy(), mano[4], atol=1e-6)    # thumb tip
        np.testing.assert_allclose(item["xyz"][20].numpy(), mano[17], atol=1e-6)  # little MCP
        assert item["is_right"] and item["visible"].all()
        assert item["scale"] == pytest.approx(np.linalg.norm(mano[9] - mano[10]), abs=1e-6)
    one = open_dataset(f"freihand:{freihand.root}?split=training&versions=2", size=GEOM)
    assert len(one) == N_TRAIN and one.path(0).name == f"{2 * N_TRAIN:08d}.jpg"
    evaluation = open_dataset(f"freihand:{freihand.root}", split="evaluation", size=GEOM)
    assert len(evaluation) == N_EVAL
    np.testing.assert_allclose(evaluation[1]["xyz"][8].numpy(),
                               freihand.labels["evaluation"][1][5], atol=1e-6)  # index MCP


def error(spec: str, **kw) -> str:
    with pytest.raises(ValueError) as info:
        ds = open_dataset(spec, **kw)
        ds[0]
    line = str(info.value)
    assert "\n" not in line
    return line


def test_a_missing_or_broken_file_is_one_line_naming_it(freihand, tmp_path):
    root = tmp_path / "FreiHAND_pub_v2"
    write_freihand(root, "training", 2, 4)
    write_freihand(root, "evaluation", 2, 1)
    spec = f"freihand:{root}?split=training"
    assert "say which FreiHAND split" in error(f"freihand:{root}")
    assert "unknown option 'splt'" in error(f"freihand:{root}?splt=training")
    assert "option versions" in error(f"{spec}&versions=4")
    assert error(f"freihand:{tmp_path / 'nope'}?split=training") == \
        f"{tmp_path / 'nope'}: no such directory"
    for key in ("K", "xyz", "scale"):
        path = root / f"training_{key}.json"
        kept = path.read_bytes()
        path.unlink()
        assert error(spec).startswith(f"{path}: no such file (FreiHAND's"), key
        path.write_text("[[1, 2], [3")
        assert error(spec).startswith(f"{path}: not a readable JSON file"), key
        path.write_text("[[1, 2], [3, 4]]")
        assert error(spec).startswith(f"{path}: has shape (2, 2), expected (N"), key
        path.write_bytes(kept)
    (root / "evaluation_xyz.json").unlink()
    assert "in FreiHAND_pub_v2_eval.zip" in error(f"freihand:{root}?split=evaluation")
    (root / "training_scale.json").write_text("[1.0, 2.0, 3.0]")
    assert "do not belong together" in error(spec)
    (root / "training_scale.json").write_text("[1.0, 2.0]")
    image = root / "training" / "rgb" / "00000005.jpg"  # hand 1, version 2
    image.unlink()
    assert error(spec) == f"{image}: no such file"
    with pytest.warns(UserWarning, match=r"skipping 1 of 8 images \(first: .*00000005\.jpg"):
        ds = open_dataset(f"{spec}&on_error=skip", size=GEOM)
    assert len(ds) == 7
    corrupt = root / "training" / "rgb" / "00000000.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff garbage")
    assert error(spec, versions=(0,)).startswith(f"{corrupt}: cannot read the image")


def test_the_shipped_config_feeds_224_px_crops_to_a_128_px_model(freihand):
    from handlatent.training.config import load_config

    path = Path(__file__).resolve().parents[1] / "training" / "configs" / "freihand-224.yaml"
    cfg = load_config(path, [f"data.train=freihand:{freihand.root}?split=training"])
    assert cfg.model.image_size == 128
    assert cfg.loss.w_cpose == cfg.loss.w_viewpoint == cfg.loss.w_xyz == 1000 * (128 / 64) ** 2
    assert cfg.data.augment.enabled
