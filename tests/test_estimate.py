"""`handlatent-estimate` on a tiny random model and a few synthetic hands: the JSON it writes
(checked against the model itself), folder output, overlays, bad input and usage errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from handlatent import estimate
from handlatent.checkpoint import load_model, save_checkpoint
from handlatent.estimate_cli import collect_inputs, main, output_names
from handlatent.explorer.decoder import to_uint8_images
from handlatent.explorer.figures import BACKGROUND, draw_skeleton, title_height, upscale
from handlatent.explorer.images import prepare_image
from handlatent.explorer.stats import images_to_tensor
from handlatent.model import ModelConfig, build_model
from handlatent.skeleton import KEYPOINT_NAMES, compose
from handlatent.synth.scene import render_scene, sample_scene

S = 64   # the model's input size
D = 8    # latent size: z_y1 4, z_y2 2, z_u 2
TITLE = title_height(256)                                # the panels' labels above them
OVERLAY_SIZE = (4 * 256 + 3 * estimate.OVERLAY_GAP, TITLE + 256)  # 64 px panels enlarged 4x


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = build_model(ModelConfig(image_size=S, z_y1=4, z_y2=2, z_u=2, hidden=32,
                                    decoder_channels=16))
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_checkpoint(path, model)
    return path


@pytest.fixture(scope="module")
def model(checkpoint):
    return load_model(checkpoint, device="cpu")


@pytest.fixture(scope="module")
def hands(tmp_path_factory) -> list[Path]:
    """Three synthetic hands at 96 px and one wide picture (120 x 80) of a fourth."""
    folder = tmp_path_factory.mktemp("hands")
    images = render_scene(sample_scene(np.random.default_rng(3), 4), 96)["image"]
    paths = []
    for i, image in enumerate(images[:3]):
        paths.append(folder / f"hand{i}.png")
        Image.fromarray(image).save(paths[-1])
    paths.append(folder / "wide.jpg")
    Image.fromarray(images[3]).resize((120, 80)).save(paths[-1], quality=95)
    return paths


def _stderr_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_json_holds_the_models_pose_latent_and_crop_for_each_image(checkpoint, model, hands,
                                                                  tmp_path, capsys):
    out = tmp_path / "poses.json"
    status = main([*map(str, hands), "--checkpoint", str(checkpoint), "--out", str(out),
                   "--device", "cpu", "--batch-size", "3", "--quiet"])
    assert status == 0, capsys.readouterr().err
    document = json.loads(out.read_text())
    assert document["format"] == "handlatent-estimate" and document["errors"] == []
    assert document["model"]["image_size"] == S
    assert document["model"]["latent_layout"] == {"z_y1": 4, "z_y2": 2, "z_u": 2}
    assert document["model"]["latent_slices"]["z_y2"] == [4, 6]
    assert document["conventions"]["keypoints"] == list(KEYPOINT_NAMES)
    records = document["images"]
    assert [r["path"] for r in records] == [str(p) for p in hands]  # order kept across batches

    for path, record in zip(hands, records):
        prepared = prepare_image(path, S)  # what the explorer's File > Open feeds the encoder
        with torch.inference_mode():
            mean, logvar = model.encode_image(images_to_tensor(prepared.model_input[None]))
        np.testing.assert_allclose(record["latent"]["mean"], mean[0].numpy(), atol=1e-5)
        np.testing.assert_allclose(record["latent"]["logvar"], logvar[0].numpy(), atol=1e-5)
        stored = torch.tensor([record["latent"]["mean"]])
        with torch.inference_mode():
            decoded = model.decode_pose(stored)
        cpose, viewpoint = np.array(record["cpose"]), np.array(record["viewpoint"])
        assert cpose.shape == (21, 3) and viewpoint.shape == (3, 3)
        np.testing.assert_allclose(cpose, decoded["cpose"][0].numpy(), atol=1e-5)
        np.testing.assert_allclose(viewpoint, decoded["viewpoint"][0].numpy(), atol=1e-5)
        np.testing.assert_allclose(record["xyz"], compose(cpose, viewpoint), atol=1e-5)
        np.testing.assert_allclose(viewpoint @ viewpoint.T, np.eye(3), atol=1e-5)

    means = np.array([r["latent"]["mean"] for r in records])
    assert np.abs(means[:, None] - means[None]).max(-1)[~np.eye(4, dtype=bool)].min() > 1e-3
    assert records[0]["crop"] == {"box": [0, 0, 96, 96], "image_size": [96, 96], "resized_to": S,
                                  "side": None}
    assert records[3]["size"] == [120, 80]
    assert records[3]["crop"]["box"] == [20, 0, 100, 80]  # the centre square of the wide image


def test_box_and_side_crop_mirror_and_give_the_pose_in_the_photos_frame(checkpoint, model,
                                                                        hands, tmp_path,
                                                                        capsys):
    from handlatent.photo_crop import CropBox, mirror_points

    out = tmp_path / "poses.json"
    status = main([str(hands[0]), str(hands[3]), "--box", "10,15,70", "--side", "right",
                   "--checkpoint", str(checkpoint), "--out", str(out), "--quiet"])
    lines = _stderr_lines(capsys.readouterr().err)
    assert status == 1       # the box does not fit the 120 x 80 picture: that one is skipped
    assert lines == [f"handlatent-estimate: {hands[3]}: box 10,15,70 (x,y,size) lies outside "
                     f"the 120x80 photo (skipped)"]
    document = json.loads(out.read_text())
    record = document["images"][0]
    assert record["crop"]["box"] == [10, 15, 80, 85] and record["crop"]["side"] == "right"
    prepared = prepare_image(hands[0], S, box=CropBox(10, 15, 70), side="right")
    with torch.inference_mode():
        mean, _ = model.encode_image(images_to_tensor(prepared.model_input[None]))
        decoded = model.decode_pose(mean)
    np.testing.assert_allclose(record["latent"]["mean"], mean[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(record["xyz"], mirror_points(decoded["xyz"][0].numpy()),
                               atol=1e-5)
    np.testing.assert_allclose(compose(np.array(record["cpose"]), np.array(record["viewpoint"]),
                                       is_right=True), record["xyz"], atol=1e-5)
    for bad in (["--box", "1,2"], ["--side", "up"]):
        with pytest.raises(SystemExit) as exit_info:
            main([str(hands[0]), "--out", str(out), *bad])
        assert exit_info.value.code == 2


def test_folder_output_overlays_and_bad_files_in_a_subprocess(checkpoint, model, hands,
                                                               tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for path in hands[:2]:
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "broken.png").write_bytes(hands[0].read_bytes()[:200])   # truncated
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.txt").write_text("not an image, and not picked from a folder")
    out, overlays = tmp_path / "poses", tmp_path / "overlays"
    env = {k: v for k, v in os.environ.items() if k != "HANDLATENT_DEBUG"}
    result = subprocess.run(
        [sys.executable, "-m", "handlatent.estimate_cli", str(folder), "--checkpoint",
         str(checkpoint), "--out", f"{out}/", "--overlays", str(overlays), "--device", "cpu"],
        env=env, capture_output=True, text=True, timeout=120)

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    problems = [line for line in _stderr_lines(result.stderr) if "(skipped)" in line]
    assert len(problems) == 2
    assert str(folder / "broken.png") in problems[0] and "corrupt or truncated" in problems[0]
    assert str(folder / "empty.jpg") in problems[1] and "empty file" in problems[1]
    assert "2 estimated, 2 failed" in result.stderr

    written = sorted(p.name for p in out.iterdir())
    assert written == ["broken.json", "empty.json", "hand0.json", "hand1.json"]
    good = json.loads((out / "hand0.json").read_text())
    assert good["image"]["path"] == str(folder / "hand0.png") and len(good["image"]["xyz"]) == 21
    assert good["model"]["image_size"] == S and "conventions" in good
    assert "image" not in json.loads((out / "broken.json").read_text())
    assert json.loads((out / "empty.json").read_text())["error"]["path"] == str(
        folder / "empty.jpg")

    assert sorted(p.name for p in overlays.iterdir()) == ["hand0.png", "hand1.png"]
    for name in ("hand0.png", "hand1.png"):
        with Image.open(overlays / name) as im:
            assert im.format == "PNG" and im.size == OVERLAY_SIZE and im.mode == "RGB"
            picture = np.asarray(im)
    # hand1's panels: the encoder's input, the decoded mean, the skeleton from front and side
    record = json.loads((out / "hand1.json").read_text())["image"]
    with torch.inference_mode():
        decoded = to_uint8_images(model.decode(torch.tensor([record["latent"]["mean"]]))["image"])
    xyz = np.array(record["xyz"], dtype=np.float32)
    expected = [upscale(prepare_image(folder / "hand1.png", S).model_input, 4),
                upscale(decoded[0], 4), draw_skeleton(xyz, 256, "front"),
                draw_skeleton(xyz, 256, "side")]
    for k, panel in enumerate(expected):
        left = k * (256 + estimate.OVERLAY_GAP)
        np.testing.assert_array_equal(picture[TITLE:, left:left + 256], panel,
                                      err_msg=f"panel {k}")
        label = picture[:TITLE, left:left + 256]             # its label: text on the background
        assert (np.abs(label.astype(int) - BACKGROUND).sum(-1) > 100).mean() > 0.01, k
    assert estimate.OVERLAY_LABELS == ("crop", "decoded", "camera view", "side view")


def test_folder_output_matches_the_single_file(checkpoint, hands, tmp_path, capsys):
    common = ["--checkpoint", str(checkpoint), "--device", "cpu", "--quiet"]
    assert main([*map(str, hands[:2]), "--out", str(tmp_path / "all.json"), *common]) == 0
    assert main([*map(str, hands[:2]), "--out", str(tmp_path / "each") + "/", *common]) == 0
    together = json.loads((tmp_path / "all.json").read_text())["images"]
    apart = [json.loads((tmp_path / "each" / f"hand{i}.json").read_text())["image"]
             for i in range(2)]
    assert together == apart


def test_joint_order_reorders_xyz_cpose_and_the_named_keypoints(checkpoint, hands, tmp_path,
                                                                  capsys):
    common = ["--checkpoint", str(checkpoint), "--device", "cpu", "--quiet"]
    assert main([str(hands[0]), "--out", str(tmp_path / "own.json"), *common]) == 0
    assert main([str(hands[0]), "--out", str(tmp_path / "mp.json"), "--joint-order",
                 "MediaPipe", *common]) == 0
    own, mp = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("own", "mp"))
    assert mp["conventions"]["joint_order"]["name"] == "freihand"
    names = mp["conventions"]["keypoints"]
    assert names[:5] == ["wrist", "thumb_mcp", "thumb_pip", "thumb_dip", "thumb_tip"]
    assert [names[p] for p in mp["conventions"]["bones"][0]] == ["wrist", "thumb_mcp"]
    for key in ("xyz", "cpose"):
        ours, theirs = np.array(own["images"][0][key]), np.array(mp["images"][0][key])
        for i, name in enumerate(names[1:], 1):  # every finger joint moved to its slot
            np.testing.assert_allclose(theirs[i], ours[KEYPOINT_NAMES.index(name)], atol=1e-6)
        # the wrist: the palm is the midpoint of the wrist and the middle MCP
        np.testing.assert_allclose((theirs[0] + ours[12]) / 2, ours[0], atol=1e-6)
    assert mp["images"][0]["viewpoint"] == own["images"][0]["viewpoint"]
    with pytest.raises(SystemExit) as exit_info:
        main([str(hands[0]), "--out", "x.json", "--joint-order", "coco", *common])
    assert exit_info.value.code == 2
    assert "unknown joint order 'coco'" in capsys.readouterr().err


def test_stdout_output_and_a_glob(checkpoint, hands, tmp_path, capsys):
    pattern = str(hands[0].parent / "hand*.png")
    assert main([pattern, str(hands[1]), "--out", "-", "--checkpoint", str(checkpoint),
                 "--device", "cpu", "--quiet"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [r["path"] for r in document["images"]] == [str(p) for p in hands[:3]]


def test_a_folder_without_images_is_reported(checkpoint, hands, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no pictures here")
    out = tmp_path / "poses.json"
    common = ["--checkpoint", str(checkpoint), "--out", str(out), "--device", "cpu", "--quiet"]

    assert main([str(empty), *common]) == 2  # nothing at all to do: a usage error
    lines = _stderr_lines(capsys.readouterr().err)
    assert len(lines) == 1 and str(empty) in lines[0] and "no images in this folder" in lines[0]
    assert not out.exists()

    assert main([str(empty), str(hands[0]), *common]) == 1  # the rest is still estimated
    assert "no images in this folder" in capsys.readouterr().err
    document = json.loads(out.read_text())
    assert len(document["images"]) == 1
    assert document["errors"] == [{"path": str(empty),
                                   "error": f"{empty}: no images in this folder"}]


@pytest.mark.parametrize("kind", ["missing", "corrupt", "default-missing"])
def test_a_bad_checkpoint_is_one_line_and_exit_2(kind, hands, tmp_path, capsys, monkeypatch):
    path = tmp_path / "model.pt"
    if kind == "corrupt":
        path.write_bytes(b"PK\x03\x04" + os.urandom(300))
    args = ["--checkpoint", str(path)]
    if kind == "default-missing":  # no --checkpoint: the GUI's bundled-model lookup
        monkeypatch.setattr("handlatent.checkpoint.bundled_model", lambda: path)
        args = []
    out = tmp_path / "poses.json"
    assert main([str(hands[0]), "--out", str(out), "--device", "cpu", *args]) == 2
    lines = _stderr_lines(capsys.readouterr().err)
    assert len(lines) == 1 and lines[0].startswith("handlatent-estimate: "), lines
    assert ("bundled model" if kind == "default-missing" else str(path)) in lines[0]
    assert not out.exists()


def test_usage_errors_before_any_work(checkpoint, hands, tmp_path, capsys):
    common = ["--checkpoint", str(checkpoint), "--device", "cpu"]
    cases = {
        "no such file or folder": [str(tmp_path / "nothing.png"), "--out", "x.json"],
        "does not exist": [str(hands[0]), "--out", str(tmp_path / "no" / "x.json")],
        "would overwrite the input image": [str(hands[0]), "--out", str(tmp_path / "p.json"),
                                            "--overlays", str(hands[0].parent)],
    }
    for problem, args in cases.items():
        assert main([*args, *common]) == 2, problem
        lines = _stderr_lines(capsys.readouterr().err)
        assert len(lines) == 1 and problem in lines[0], (problem, lines)
    blocked = tmp_path / "blocked"
    (blocked / "hand0.json").mkdir(parents=True)  # a folder where the result should go
    assert main([str(hands[0]), "--out", f"{blocked}/", "--quiet", *common]) == 2
    lines = _stderr_lines(capsys.readouterr().err)
    assert len(lines) == 1 and f"{blocked / 'hand0.json'}: cannot write" in lines[0], lines
    assert sorted(p.name for p in blocked.iterdir()) == ["hand0.json"]  # no temporary file
    with pytest.raises(SystemExit) as exit_info:
        main(["--out", "x.json"])  # no IMAGE at all: argparse's one line
    assert exit_info.value.code == 2


def test_interrupting_leaves_the_old_file_and_no_partial_one(checkpoint, hands, tmp_path,
                                                               capsys, monkeypatch):
    out = tmp_path / "poses.json"
    out.write_text("previous results\n")
    calls = []
    real = estimate.estimate_batch

    def interrupted_second_batch(*args, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(estimate, "estimate_batch", interrupted_second_batch)
    status = main([*map(str, hands), "--out", str(out), "--checkpoint", str(checkpoint),
                   "--device", "cpu", "--batch-size", "2", "--quiet"])
    assert status == 130 and len(calls) == 2
    assert "interrupted" in capsys.readouterr().err
    assert out.read_text() == "previous results\n"
    assert [p.name for p in tmp_path.iterdir()] == ["poses.json"]  # no temporary file left


def test_inputs_are_expanded_once_and_output_names_do_not_collide(hands, tmp_path):
    folder = hands[0].parent
    inputs = collect_inputs([str(folder), str(folder / "hand*.png"), str(hands[1])])
    assert inputs.files == sorted(hands) and inputs.problems == []

    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    files = [a / "x.png", a / "x.jpg", b / "x.png", a / "y.png"]
    assert [str(n) for n in output_names(files, ".json").values()] == [
        "a/x.png.json", "a/x.jpg.json", "b/x.json", "a/y.json"]


def test_crop_box_is_in_upright_full_resolution_pixels(tmp_path):
    rotated = Image.new("RGB", (200, 100), (200, 30, 30))
    exif = rotated.getexif()
    exif[0x0112] = 6  # shown rotated by 90 degrees: 100 wide, 200 high
    rotated.save(tmp_path / "rotated.jpg", exif=exif)
    prepared = prepare_image(tmp_path / "rotated.jpg", S)
    assert prepared.original_size == (200, 100) and prepared.upright_size == (100, 200)
    assert prepared.crop_box == (0, 50, 100, 150)

    Image.new("RGB", (2000, 1000), (90, 120, 60)).save(tmp_path / "big.jpg")
    prepared = prepare_image(tmp_path / "big.jpg", S)  # decoded at half size (JPEG draft)
    assert prepared.upright_size == (2000, 1000)
    assert prepared.crop_box == (500, 0, 1500, 1000)
