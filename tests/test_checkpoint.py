"""Checkpoints: round trip, half precision, atomic writes, and refusal of every bad file."""

import copy
import os
import pickle
import random

import numpy as np
import pytest
import torch

import handlatent
from handlatent.checkpoint import (CheckpointError, for_inference, load_checkpoint, load_model,
                                   save_checkpoint)
from handlatent.model import ModelConfig, build_model

torch.set_num_threads(1)  # the 2 shared cores: one thread avoids OpenMP stalls under load
TINY = ModelConfig(image_size=64, z_y1=5, z_y2=3, z_u=2, hidden=32, decoder_channels=16)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    model = build_model(TINY)
    model(model.sample_prior(4))  # train-mode pass: BatchNorm running stats differ from init
    return model.eval()


@pytest.fixture(scope="module")
def saved(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    optimizer = torch.optim.Adam(model.parameters())
    model.cpose_decoder(torch.zeros(1, 5)).sum().backward()
    optimizer.step()
    optimizer.zero_grad()
    extra = {"step": 7, "image_mean": torch.tensor([0.1, 0.2, 0.3]),
             "optimizer": optimizer.state_dict(), "note": None, "split": ["train", 0.9]}
    save_checkpoint(path, model, extra=extra)
    return path


def decoded(model):
    with torch.no_grad():
        return model.decode(model.sample_prior(2, generator=torch.Generator().manual_seed(3)))


def test_round_trip_restores_model_and_extra(model, saved):
    checkpoint = load_checkpoint(saved)
    assert checkpoint["format"] == "handlatent-checkpoint" and checkpoint["format_version"] == 1
    assert checkpoint["model_config"] == TINY.to_dict()
    assert checkpoint["layout"] == {"z_y1": 5, "z_y2": 3, "z_u": 2}
    extra = checkpoint["extra"]
    assert extra["step"] == 7 and extra["note"] is None and extra["split"] == ["train", 0.9]
    assert torch.equal(extra["image_mean"], torch.tensor([0.1, 0.2, 0.3]))
    assert len(extra["optimizer"]["state"]) > 0

    loaded = load_model(saved, device="cpu")
    assert not loaded.training and loaded.config == TINY and loaded.layout == model.layout
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    prepared = for_inference(copy.deepcopy(model), "cpu")  # as load_model prepares it
    for key, value in decoded(prepared).items():
        assert torch.equal(decoded(loaded)[key], value), key
    assert handlatent.load_model(saved, device="cpu").config == TINY
    assert isinstance(handlatent.__version__, str)


def test_half_checkpoints_are_upcast_to_float32(model, tmp_path):
    path = tmp_path / "half.pt"
    save_checkpoint(path, model, half=True)
    save_checkpoint(tmp_path / "full.pt", model)
    state = load_checkpoint(path)["state_dict"]
    assert state["image_decoder.fc.weight"].dtype == torch.float16
    assert state["image_encoder.bn1.num_batches_tracked"].dtype == torch.int64
    assert os.path.getsize(path) < 0.6 * os.path.getsize(tmp_path / "full.pt")
    loaded = load_model(path)  # "auto": CPU here
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    for key, value in decoded(model).items():
        assert torch.allclose(decoded(loaded)[key], value, atol=0.02), key


def test_save_is_atomic_and_leaves_no_temp_files(model, saved, tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    save_checkpoint(path, model, extra={"step": 1})
    save_checkpoint(path, model, extra={"step": 2})  # replaces an existing file
    assert os.listdir(tmp_path) == ["model.pt"]

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # e.g. killed while writing
    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, model, extra={"step": 3})
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["model.pt"]
    assert load_checkpoint(path)["extra"]["step"] == 2


def test_save_refuses_extra_that_would_need_code_to_load(model, tmp_path):
    with pytest.raises(TypeError, match=r"extra\['stats'\]\['mean'\] is a ndarray"):
        save_checkpoint(tmp_path / "x.pt", model, extra={"stats": {"mean": np.zeros(3)}})
    assert os.listdir(tmp_path) == []


class Payload:
    """Pickles to a call of open(marker, "w"): loading it unsafely creates the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def write_bytes(path, data):
    path.write_bytes(data)
    return path


def assert_refused(path, problem):
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and problem in message, message
    return message


def test_refuses_missing_foreign_and_truncated_files(saved, tmp_path):
    assert_refused(tmp_path / "absent.pt", "no such checkpoint file")
    assert_refused(write_bytes(tmp_path / "random.pt", random.Random(0).randbytes(4096)),
                   "not a PyTorch checkpoint")
    assert_refused(write_bytes(tmp_path / "text.pt", b"step: 3\nlr: 0.1\n"),
                   "not a PyTorch checkpoint")
    data = saved.read_bytes()
    assert_refused(write_bytes(tmp_path / "cut.pt", data[:len(data) // 2]), "truncated")
    assert_refused(write_bytes(tmp_path / "empty.pt", b""), "truncated")


def test_refuses_a_pickle_that_would_run_code_without_running_it(tmp_path):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "evil.pt"
    torch.save({"format": "handlatent-checkpoint", "format_version": 1,
                "state_dict": Payload(marker)}, path)
    message = assert_refused(path, "would run code")
    assert "open" in message
    assert not marker.exists()
    with open(path, "rb") as f:  # the payload is real: an unsafe load does run it
        torch.load(f, weights_only=False)
    assert marker.exists()

    marker.unlink()
    write_bytes(tmp_path / "evil.pkl", pickle.dumps(Payload(marker), protocol=2))
    assert_refused(tmp_path / "evil.pkl", "would run code")
    assert not marker.exists()


def test_refuses_other_formats_versions_and_incomplete_checkpoints(saved, tmp_path):
    good = load_checkpoint(saved)

    def variant(name, **changes):
        path = tmp_path / name
        checkpoint = {k: v for k, v in {**good, **changes}.items() if v is not None}
        torch.save(checkpoint, path)
        return path

    assert_refused(variant("other.pt", format="something-else"), "not a handlatent checkpoint")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    assert_refused(tmp_path / "list.pt", "not a handlatent checkpoint")
    assert_refused(variant("v2.pt", format_version=2), "unsupported format_version 2")
    assert_refused(variant("nostate.pt", state_dict=None), "lacks state_dict")

    bad_config = variant("config.pt", model_config={**good["model_config"], "depth": 3})
    with pytest.raises(CheckpointError, match="invalid model_config.*depth"):
        load_model(bad_config, device="cpu")
    other_layout = variant("layout.pt", layout={"z_y1": 6, "z_y2": 2, "z_u": 2})
    with pytest.raises(CheckpointError, match="does not match model_config"):
        load_model(other_layout, device="cpu")
    wrong = variant("wrong.pt", model_config={**good["model_config"], "hidden": 64})
    with pytest.raises(CheckpointError, match=r"wrong.pt: state_dict does not fit") as info:
        load_model(wrong, device="cpu")
    assert "\n" not in str(info.value)
