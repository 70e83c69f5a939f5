"""The notebook API: pictures to the model's tensors and back, the dimension worth changing, and
docs/api.md's first code block run as written."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import handlatent
from handlatent.explorer import ImageError
from handlatent.model import ModelConfig, build_model
from handlatent.resources import example_images

API_DOC = Path(__file__).resolve().parents[1] / "docs/api.md"


def test_load_image_and_to_array_round_trip_a_picture(tmp_path) -> None:
    rng = np.random.default_rng(0)
    picture = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    x = handlatent.load_image(picture, 64)
    assert x.shape == (1, 3, 64, 64) and x.dtype == torch.float32
    assert -1 <= x.min() and x.max() <= 1
    assert np.array_equal(handlatent.to_array(x), picture[None])       # a batch stays a batch
    assert np.array_equal(handlatent.to_array(x[0]), picture)
    image = handlatent.to_image(x)
    assert image.mode == "RGB" and np.array_equal(np.asarray(image), picture)

    wide = np.zeros((64, 128, 3), np.uint8)
    wide[:, 32:96] = 200                                  # the centre square is what is kept
    Image.fromarray(wide).save(tmp_path / "wide.png")
    square = handlatent.to_array(handlatent.load_image(tmp_path / "wide.png", 32))[0]
    assert square.shape == (32, 32, 3) and square.min() > 150    # no black from the sides


def test_bad_input_is_a_one_line_error(tmp_path) -> None:
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ImageError) as info:
        handlatent.load_image(tmp_path / "broken.png")
    assert "broken.png" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ValueError, match="batch of 2"):
        handlatent.to_image(torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"\(5, 8, 8\)"):
        handlatent.to_array(torch.zeros(5, 8, 8))


def test_dims_by_kl_orders_a_named_part_by_its_kl() -> None:
    model = build_model(ModelConfig(image_size=64, z_y1=3, z_y2=2, z_u=2, hidden=16,
                                    decoder_channels=8))
    kl = [0.1, 0.5, 0.3, 0.0, 2.0, 1.0, 1.0]
    assert handlatent.dims_by_kl(model, "z_y1", kl) == [1, 2, 0]
    assert handlatent.dims_by_kl(model, "z_y2", kl) == [4, 3]
    assert handlatent.dims_by_kl(model, "z_u", kl) == [5, 6]          # ties: by index
    with pytest.raises(ValueError, match="parts are z_y1, z_y2, z_u"):
        handlatent.dims_by_kl(model, "pose", kl)


def test_the_documented_path_runs_as_written(tmp_path, monkeypatch) -> None:
    """docs/api.md's first block (at most 6 lines) on an example hand: a picture is saved, and
    the edited dimension changed the decoded viewpoint."""
    block = re.search(r"```python\n(.*?)```", API_DOC.read_text(encoding="utf-8"), re.S).group(1)
    assert len(block.strip().splitlines()) <= 6
    readme = (API_DOC.parents[1] / "README.md").read_text(encoding="utf-8")
    assert all(f"    {line}" in readme for line in block.strip().splitlines())  # the same path
    monkeypatch.chdir(tmp_path)
    Image.open(example_images()[0]).save("hand.png")
    names: dict = {}
    with torch.inference_mode():
        exec(compile(block, str(API_DOC), "exec"), names)
        saved = Image.open("turned.png")
        model = names["model"]
        assert saved.size == (model.config.image_size,) * 2
        plain = model.encode_image(handlatent.load_image("hand.png", model.config.image_size))[0]
        moved = model.decode(names["z"])["viewpoint"] - model.decode(plain)["viewpoint"]
    assert moved.abs().max() > 0.05
