"""Content twins (handlatent.synth.twins): what they hold, how the dataset serves them, bad input."""

import json
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from handlatent.data import open_dataset
from handlatent.synth import store
from handlatent.synth.cli import main as synth_main
from handlatent.synth.scene import render_scene, scene_range
from handlatent.synth.twins import main, twin_range, write_twins

S = 40


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("twins") / "synth"
    assert synth_main(["--out", str(out), "--count", "12", "--size", str(S), "--seed", "5",
                       "--chunk", "8", "--quiet"]) == 0
    meta_before = (out / "meta.json").read_bytes()
    assert main([str(out), "--chunk", "5", "--threads", "1", "--quiet"]) == 0
    assert (out / "meta.json").read_bytes() == meta_before  # running readers are not disturbed
    return out


def test_a_twin_keeps_the_content_and_takes_the_next_samples_hand():
    scenes, twins = scene_range(5, 0, 7), twin_range(5, 0, 6)
    assert np.array_equal(twins.content_factors()[0], scenes[:6].content_factors()[0])
    for group in ("pose", "shape", "viewpoint"):
        assert np.array_equal(twins.factors(group), scenes[1:7].factors(group)), group
    rendered, originals = render_scene(twins, S), render_scene(scenes[:6], S)
    assert np.allclose(rendered["xyz"], render_scene(scenes[1:7], S)["xyz"])
    assert not np.array_equal(rendered["image"], originals["image"])


def test_the_dataset_serves_each_samples_twin_as_content_image(dataset):
    ds = open_dataset(dataset)
    assert ds.has_twins
    expected = render_scene(twin_range(5, 0, 12), S)["image"]   # chunking does not matter
    for i in (0, 7, 11):
        item = ds[i]
        assert item["content_image"].shape == item["image"].shape == (3, S, S)
        as_uint8 = ((item["content_image"] + 1) * 127.5).round().byte().permute(1, 2, 0)
        assert np.array_equal(as_uint8.numpy(), expected[i])
    clone = pickle.loads(pickle.dumps(ds))          # how DataLoader workers get it
    assert torch.equal(clone[3]["content_image"], ds[3]["content_image"])


def test_a_batch_mixing_datasets_with_and_without_twins_drops_them(dataset, tmp_path):
    from handlatent.training.data import collate_shared_keys

    plain = tmp_path / "plain"
    shutil.copytree(dataset, plain)
    (plain / "twins.json").unlink()
    items = [open_dataset(dataset)[0], open_dataset(plain)[1]]
    assert "content_image" not in open_dataset(plain)[1]
    batch = collate_shared_keys(items)
    assert "content_image" not in batch and batch["image"].shape == (2, 3, S, S)
    assert collate_shared_keys(items[:1])["content_image"].shape == (1, 3, S, S)


def _copy(dataset, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(dataset, out)
    return out


@pytest.mark.parametrize("damage, error, message", [
    (lambda d: (d / "twins.json").write_text("{not json"), store.DatasetError,
     "twins.json: corrupt"),
    (lambda d: (d / "twins.npy").write_bytes(b"\x93NUMPY garbage"), store.DatasetError,
     "twins.npy: incomplete or corrupt"),
    (lambda d: (d / "twins.npy").unlink(), FileNotFoundError, "twins.npy: twins file missing"),
    (lambda d: np.save(d / "twins.npy", np.zeros((3, S, S, 3), np.uint8)), store.DatasetError,
     "expected uint8[12,"),
])
def test_damaged_twins_give_one_clear_error(dataset, tmp_path, damage, error, message):
    copy = _copy(dataset, tmp_path)
    damage(copy)
    with pytest.raises(error, match=message.replace("[", r"\[")):
        open_dataset(copy)


def test_twins_of_a_dataset_this_generator_did_not_make_are_refused(dataset, tmp_path, capsys):
    copy = _copy(dataset, tmp_path)
    images = np.load(copy / "images.npy")
    images[0] = 255 - images[0]
    np.save(copy / "images.npy", images)
    (copy / "twins.npy").unlink()
    assert main([str(copy), "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not what seed 5 renders" in err
    assert not (copy / "twins.npy").exists() and not list(copy.glob("twins.npy.tmp-*"))


def test_missing_dataset_is_one_line_without_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "handlatent.synth.twins", str(tmp_path / "none"),
                        "--quiet"], capture_output=True, text=True)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "none" in r.stderr


def test_twins_json_says_what_they_are(dataset):
    meta = json.loads((dataset / "twins.json").read_text())
    assert meta["shape"] == [12, S, S, 3] and meta["seed"] == 5


def test_write_twins_replaces_old_twins_in_place(dataset, tmp_path):
    copy = _copy(dataset, tmp_path)
    before = np.load(copy / "twins.npy")
    (copy / "twins.npy").write_bytes(b"stale")
    assert write_twins(copy, chunk=64) == copy / "twins.npy"
    assert np.array_equal(np.load(copy / "twins.npy"), before)
