"""SyntheticStream: hands rendered as they are read, a new set every epoch, the same again on
a resumed run; and the trainer's data.synthetic options (fresh, twins) that use it."""

import pickle

import numpy as np
import pytest
import torch

from handlatent.data.synthetic_stream import SyntheticStream
from handlatent.synth.scene import render_scene
from handlatent.training.config import DataConfig, SynthDataConfig
from handlatent.training.data import open_datasets
from handlatent.training.distributed import Dist

S = 40


def test_items_are_synthetic_dataset_items_with_mask_and_twin():
    item = SyntheticStream(5, S, seed=3, twins=True)[2]
    shapes = {"image": (3, S, S), "content_image": (3, S, S), "mask": (S, S), "xyz": (21, 3),
              "cpose": (21, 3), "viewpoint": (3, 3), "uv": (21, 2), "visible": (21,),
              "K": (3, 3), "scale": (), "is_right": (), "labelled": (), "template": ()}
    assert set(item) == set(shapes) | {"content"}
    for key, shape in shapes.items():
        assert tuple(item[key].shape) == shape, key
    assert item["image"].dtype == torch.float32
    assert -1 <= item["image"].min() < item["image"].max() <= 1
    assert item["mask"].dtype == torch.bool and 0 < item["mask"].sum() < S * S
    assert "content_image" not in SyntheticStream(5, S, seed=3)[2]


def test_each_epoch_is_new_and_the_same_again():
    stream = SyntheticStream(4, S, seed=7)
    first = stream[(1, 0)]["image"]
    assert torch.equal(stream[1]["image"], first)  # an int key is epoch 0
    assert torch.equal(pickle.loads(pickle.dumps(stream))[(1, 0)]["image"], first)  # workers
    assert not torch.equal(stream[(1, 1)]["image"], first)  # the next epoch: another hand
    assert not torch.equal(stream[(2, 0)]["image"], first)
    assert not torch.equal(SyntheticStream(4, S, seed=8)[(1, 0)]["image"], first)


def test_the_twin_keeps_the_content_and_takes_another_hand():
    stream = SyntheticStream(3, S, seed=1, twins=True)
    scene, twin = (stream.scenes(0, 5)[i:i + 1] for i in (0, 1))
    assert np.array_equal(twin.content_factors()[0], scene.content_factors()[0])
    assert not np.array_equal(twin.factors("pose"), scene.factors("pose"))
    item = stream[(0, 5)]
    rendered = render_scene(stream.scenes(0, 5), S)
    assert torch.equal(item["image"], torch.from_numpy(rendered["image"][0]).permute(2, 0, 1)
                       .float() / 127.5 - 1)
    assert torch.equal(item["content_image"], torch.from_numpy(rendered["image"][1])
                       .permute(2, 0, 1).float() / 127.5 - 1)
    assert torch.allclose(item["uv"], torch.from_numpy(rendered["uv"][0]))  # the hand's labels


def test_bad_counts_and_indices():
    with pytest.raises(ValueError, match="count >= 1"):
        SyntheticStream(0, S)
    with pytest.raises(IndexError, match="out of range"):
        SyntheticStream(3, S)[(3, 0)]


def test_the_trainer_streams_fresh_hands_and_renders_twins_once(tmp_path):
    dist = Dist()
    fresh = DataConfig(synthetic=SynthDataConfig(count=12, seed=2, fresh=True, twins=True),
                       val_count=4)
    train, val = open_datasets(fresh, S, tmp_path / "fresh", dist)
    assert len(train) == 8 and len(val) == 4 and not (tmp_path / "fresh").exists()
    item = train[(0, 0)]
    assert "content_image" in item and not torch.equal(train[(0, 1)]["image"], item["image"])

    plain = DataConfig(synthetic=SynthDataConfig(count=12, seed=2), val_count=4)
    train, _ = open_datasets(plain, S, tmp_path / "once", dist)
    assert "content_image" not in train[(0, 0)]
    once = DataConfig(synthetic=SynthDataConfig(count=12, seed=2, twins=True), val_count=4)
    train, _ = open_datasets(once, S, tmp_path / "once", dist)  # a resume that asks for twins
    assert (tmp_path / "once" / "synthetic-data" / "twins.npy").is_file()
    assert torch.equal(train[(0, 1)]["image"], train[(0, 0)]["image"])  # the same hands again
    assert "content_image" in train[(0, 0)]
