"""Own photos in (crop box, side, mirroring) and labels out (the label folder and its readers)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from handlatent.data import open_dataset, spec_kind
from handlatent.data.crop import ReaderError, project
from handlatent.data.labelled import INDEX, LabelFolder, LabelFolderError, LabelItem
from handlatent.explorer import Session
from handlatent.explorer.images import ImageError, prepare_image
from handlatent.model import ModelConfig, build_model
from handlatent.photo_crop import (HAND_SCALE, MIN_BOX, CropBox, PhotoCropError, box_intrinsics,
                                   box_matrix, check_box, clamp_box, crop_photo, default_box,
                                   mirror_intrinsics, mirror_points, mirror_uv,
                                   mirror_viewpoint, moved_box, parse_box, place_pose,
                                   resized_box, scaled_box, to_photo_frame)
from handlatent.resources import example_images
from handlatent.rotations import random_rotations
from handlatent.skeleton import canonicalize, compose

S = 64
rotations = st.integers(0, 2 ** 31).map(lambda seed: random_rotation(np.random.default_rng(seed)))


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    return random_rotations(1, rng)[0]


def hand(seed: int) -> np.ndarray:
    """A root-relative left hand (21, 3), metres: the bundled example's-like random pose."""
    rng = np.random.default_rng(seed)
    xyz = rng.normal(0.0, 0.04, (21, 3))
    xyz[12] = [0.0, -0.05, 0.0]
    xyz[11] = [0.0, -0.09, 0.0]
    xyz[20] = [0.03, -0.04, 0.0]
    return xyz - xyz[:1]


# ------------------------------------------------------------------------------ geometry


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), rotation=rotations)
def test_a_right_hand_mirrored_for_the_model_comes_back_in_the_photos_frame(seed, rotation):
    left = hand(seed)
    cpose, viewpoint, _ = canonicalize(left)            # what the model decodes: a left hand
    decoded = compose(cpose, viewpoint @ rotation)
    xyz, v = to_photo_frame(decoded, viewpoint @ rotation, "right")
    np.testing.assert_allclose(xyz, mirror_points(decoded))
    np.testing.assert_allclose(v, mirror_viewpoint(viewpoint @ rotation))
    np.testing.assert_allclose(compose(cpose, v, is_right=True), xyz, atol=1e-9)
    np.testing.assert_allclose(v @ v.T, np.eye(3), atol=1e-9)
    assert np.linalg.det(v) == pytest.approx(1.0)
    again, back = to_photo_frame(xyz, v, "right")       # its own inverse
    np.testing.assert_allclose(again, decoded, atol=1e-12)
    np.testing.assert_allclose(back, viewpoint @ rotation, atol=1e-12)
    # the labels' canonical pose of the mirrored-back hand is the model's CPose again
    np.testing.assert_allclose(canonicalize(xyz, is_right=True)[0], cpose, atol=1e-9)


@settings(max_examples=30, deadline=None)
@given(rotation=rotations, angles=st.tuples(st.floats(-180, 180), st.floats(-89, 89),
                                            st.floats(-180, 180)))
def test_orbiting_a_mirrored_view_turns_the_hand_as_seen_there(rotation, angles):
    from handlatent.explorer.viewpoint import orbit_viewpoint, view_rotation

    cpose = canonicalize(hand(7))[0]
    turned = orbit_viewpoint(rotation, *angles, mirrored=True)
    shown = mirror_points(compose(cpose, rotation))           # the right hand the view shows
    np.testing.assert_allclose(mirror_points(compose(cpose, turned)),
                               shown @ view_rotation(*angles).T, atol=1e-9)
    assert np.linalg.det(turned) == pytest.approx(1.0)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), f=st.floats(50, 2000), cx=st.floats(0, 255),
       cy=st.floats(0, 255))
def test_mirrored_intrinsics_project_the_mirrored_points_onto_the_mirrored_crop(seed, f, cx, cy):
    k = np.array([[f, 0, cx], [0, f, cy], [0, 0, 1.0]])
    points = hand(seed) + [0.0, 0.0, 0.5]
    np.testing.assert_allclose(project(mirror_intrinsics(k, 256), mirror_points(points)),
                               mirror_uv(project(k, points), 256), atol=1e-6)
    np.testing.assert_allclose(mirror_uv(mirror_uv(project(k, points), 256), 256),
                               project(k, points), atol=1e-9)


boxes = st.builds(CropBox, st.floats(-500, 1500), st.floats(-500, 1500), st.floats(1, 2000))
corners = st.sampled_from(["tl", "tr", "bl", "br"])
points = st.tuples(st.floats(-200, 1200), st.floats(-200, 1000))


@settings(max_examples=80, deadline=None)
@given(box=boxes, w=st.integers(MIN_BOX, 900), h=st.integers(MIN_BOX, 700),
       dx=st.floats(-1000, 1000), dy=st.floats(-1000, 1000), corner=corners, point=points,
       factor=st.floats(0.1, 10))
def test_every_edit_of_the_box_keeps_it_inside_the_photo(box, w, h, dx, dy, corner, point,
                                                        factor):
    start = clamp_box(box, w, h)
    for edited in (start, moved_box(start, dx, dy, w, h), scaled_box(start, factor, w, h),
                   resized_box(start, corner, point, w, h)):
        assert check_box(edited, w, h) == edited     # inside, at least MIN_BOX


def test_resizing_holds_the_opposite_corner_and_moving_the_box_shifts_it():
    box = CropBox(100, 100, 200)
    grown = resized_box(box, "br", (360, 340), 800, 600)
    assert grown == CropBox(100, 100, 260)           # the larger of the two distances
    shrunk = resized_box(box, "tl", (250, 220), 800, 600)
    assert (shrunk.x + shrunk.size, shrunk.y + shrunk.size) == (300, 300)
    assert shrunk.size == 80
    assert moved_box(box, 30, -20, 800, 600) == CropBox(130, 80, 200)
    assert moved_box(box, 1000, 0, 800, 600) == CropBox(600, 100, 200)   # stops at the edge
    assert scaled_box(box, 0.5, 800, 600) == CropBox(150, 150, 100)
    assert default_box(640, 480) == CropBox(128, 48, 384)                 # 80 % of the short side


def photo_with_ramp(width: int = 200, height: int = 120) -> Image.Image:
    """Red = column, green = row, blue a diagonal: every pixel says where it is."""
    j, i = np.meshgrid(np.arange(width), np.arange(height))
    return Image.fromarray(np.stack([j, i, (i + j) // 3], -1).astype(np.uint8), "RGB")


def test_the_crop_is_the_boxs_pixels_and_a_right_hand_its_mirror_image():
    photo = photo_with_ramp()
    box = CropBox(40, 10, 100)
    left = crop_photo(photo, box, "left", 50)
    right = crop_photo(photo, box, "right", 50)
    np.testing.assert_array_equal(right, left[:, ::-1])
    # crop pixel (row r, column c) shows the photo around M^-1 (c, r): the matrix the labels use
    m_inv = np.linalg.inv(box_matrix(box, 50))
    for r, c in [(5, 5), (25, 10), (44, 40), (20, 30)]:
        u, v, _ = m_inv @ [c, r, 1.0]
        assert abs(int(left[r, c, 0]) - u) <= 1 and abs(int(left[r, c, 1]) - v) <= 1


def test_place_pose_centres_the_hand_in_the_crop_and_fills_eighty_percent():
    k = box_intrinsics(CropBox(300, 100, 400), 1200, 900, 256)
    rng = np.random.default_rng(1)
    for _ in range(5):
        pose = hand(int(rng.integers(1000))) @ random_rotation(rng)
        xyz = place_pose(pose, k, 256)
        np.testing.assert_allclose(xyz - xyz[:1], pose - pose[:1], atol=1e-12)  # translated only
        uv = project(k, xyz)
        lo, hi = uv.min(0), uv.max(0)
        np.testing.assert_allclose((lo + hi) / 2, [127.5, 127.5], atol=0.5)
        assert max(hi - lo) == pytest.approx(256 * 0.8, abs=0.5)
        assert (xyz[:, 2] > 0).all()


def test_bad_boxes_and_small_photos_are_one_line_naming_the_photo(tmp_path):
    with pytest.raises(PhotoCropError, match=r"^tiny.png: photo too small to hold a box \(20x500"):
        default_box(20, 500, label="tiny.png")
    with pytest.raises(PhotoCropError, match=r"^p.jpg: box 150,10,100 \(x,y,size\) lies outside "
                                             r"the 200x120 photo$"):
        check_box(CropBox(150, 10, 100), 200, 120, label="p.jpg")
    with pytest.raises(PhotoCropError, match="smaller than 32 px"):
        check_box(CropBox(0, 0, 10), 200, 120)
    for text in ("1,2", "a,b,c", "1,2,-3", "1,2,nan"):
        with pytest.raises(ValueError):
            parse_box(text)
    assert parse_box(" 10, 20.5,300 ") == CropBox(10, 20.5, 300)
    path = tmp_path / "photo.png"
    photo_with_ramp().save(path)
    with pytest.raises(ImageError, match=rf"^{path}: box .* lies outside the 200x120 photo$"):
        prepare_image(path, S, box=CropBox(150, 0, 100))
    small = tmp_path / "small.png"
    photo_with_ramp(20, 20).save(small)
    with pytest.raises(ImageError, match=rf"^{small}: photo too small to hold a box"):
        prepare_image(small, S, box=CropBox(0, 0, 20))


def test_prepare_image_crops_the_box_and_mirrors_a_right_hand(tmp_path):
    path = tmp_path / "photo.png"
    photo_with_ramp().save(path)
    box = CropBox(40, 10, 100)
    left = prepare_image(path, S, box=box)
    right = prepare_image(path, S, box=box, side="right")
    np.testing.assert_array_equal(left.model_input, crop_photo(photo_with_ramp(), box, "left", S))
    np.testing.assert_array_equal(right.model_input, left.model_input[:, ::-1])
    assert left.crop_box == (40, 10, 140, 110) and right.side == "right"
    centre = prepare_image(path, S, side="right")      # no box: the centre square, mirrored
    np.testing.assert_array_equal(centre.model_input,
                                  prepare_image(path, S).model_input[:, ::-1])


# ------------------------------------------------------------------------------ label folders


def item(seed: int, is_right: bool, size: int = 96) -> LabelItem:
    rng = np.random.default_rng(seed)
    image = (np.asarray(photo_with_ramp(size, size)) * 2 + seed).astype(np.uint8)  # smooth
    k = box_intrinsics(CropBox(100, 50, 300), 640, 480, size)
    xyz = place_pose(hand(seed) @ random_rotation(rng), k, size)
    return LabelItem(image=image, xyz=xyz, uv=project(k, xyz), k=k,
                     visible=np.ones(21, bool), is_right=is_right, source={"photo": f"{seed}.jpg"})


def test_a_label_folder_is_read_by_open_dataset_at_the_models_size(tmp_path):
    root = tmp_path / "labels"
    folder = LabelFolder(root)
    items = [item(1, False), item(2, True), item(3, False)]
    assert [folder.append(it) for it in items] == ["000001", "000002", "000003"]
    assert spec_kind(str(root)) == "labels" and spec_kind(f"labels:{root}") == "labels"
    for ds in (open_dataset(f"labels:{root}", size=S), open_dataset(str(root), size=S)):
        assert len(ds) == 3
        for it, got in zip(items, (ds[i] for i in range(3))):
            assert got["image"].shape == (3, S, S) and bool(got["is_right"]) == it.is_right
            np.testing.assert_allclose(got["xyz"], it.xyz, atol=1e-5)
            # the stored crop is the box: the keypoints scale with the resize, nothing else
            np.testing.assert_allclose(got["uv"], (it.uv + 0.5) * S / 96 - 0.5, atol=1e-3)
            cpose = canonicalize(it.xyz - it.xyz[:1], it.is_right)[0]
            np.testing.assert_allclose(got["cpose"], cpose, atol=1e-4)
            pixels = np.asarray(Image.fromarray(it.image).resize((S, S), Image.Resampling.BILINEAR))
            assert np.abs((got["image"].permute(1, 2, 0).numpy() + 1) * 127.5
                          - pixels).mean() < 3   # the crop itself, resized
    record = json.loads((root / "items" / "000002.json").read_text())
    assert record["is_right"] and record["image"] == "crops/000002.png"
    assert LabelFolder(root).names == ["000001", "000002", "000003"]   # reopened


def test_the_trainer_and_the_evaluator_read_a_label_folder(tmp_path):
    from handlatent.training.config import DataConfig, DatasetEntry
    from handlatent.training.data import open_datasets
    from handlatent.training.evaluate import EvalOptions, evaluate
    from handlatent.training.evaluate_cli import _open_data

    root = tmp_path / "labels"
    folder = LabelFolder(root)
    for seed in range(6):
        folder.append(item(seed, seed % 2 == 1))
    data = DataConfig(train=[DatasetEntry(f"labels:{root}")], val_count=2)
    train, val = open_datasets(data, S, tmp_path / "run", SimpleNamespace(is_main=True,
                                                                         enabled=False))
    assert len(train) == 4 and len(val) == 2
    assert train[(0, 0)]["image"].shape == (3, S, S)
    dataset = _open_data(str(root), S)          # handlatent-eval --data DIR
    assert len(dataset) == 6
    torch.manual_seed(0)
    model = build_model(ModelConfig(image_size=S)).eval()
    results, _ = evaluate(model, dataset, EvalOptions(batch_size=3, sample_count=0,
                                                      disentanglement=False, progress=False))
    assert results["labelled_count"] == 6 and np.isfinite(results["epe_mean_mm"])


def test_an_interrupted_save_leaves_every_earlier_item_readable(tmp_path, monkeypatch):
    import handlatent.data.labelled as labelled

    root = tmp_path / "labels"
    folder = LabelFolder(root)
    folder.append(item(1, False))
    folder.append(item(2, True))
    real = labelled._write_atomically

    def killed_at(target: str):
        def half_then_interrupt(tmp: Path, data: bytes) -> None:
            tmp.write_bytes(data[:len(data) // 2])
            raise KeyboardInterrupt              # Ctrl-C in the middle of this file

        def write(path, data):
            if Path(path).name != target:
                return real(path, data)
            from handlatent.explorer.files import write_atomically
            write_atomically(path, lambda tmp: half_then_interrupt(tmp, data))
        return write

    for target in ("000003.png", "000003.json", INDEX):
        monkeypatch.setattr(labelled, "_write_atomically", killed_at(target))
        with pytest.raises(KeyboardInterrupt):
            LabelFolder(root).append(item(3, False))
        ds = open_dataset(str(root), size=S)
        assert len(ds) == 2 and bool(ds[1]["is_right"])
        assert not [p for p in root.rglob(".*")]      # no temporary file left behind
    monkeypatch.setattr(labelled, "_write_atomically", real)
    # the interrupted saves left the crop of 000003 and both files of 000004, which no index
    # names: they are not read, and their names are not reused
    assert LabelFolder(root).append(item(3, False)) == "000005"
    assert len(open_dataset(str(root), size=S)) == 3


def test_unwritable_and_broken_label_folders_are_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(LabelFolderError, match=rf"^{blocker}: exists and is not a folder$"):
        LabelFolder(blocker)
    with pytest.raises(LabelFolderError, match=rf"^{blocker / 'labels'}: cannot create"):
        LabelFolder(blocker / "labels").check_writable()
    root = tmp_path / "labels"
    folder = LabelFolder(root)
    folder.append(item(1, False))
    (root / "crops" / "000002.png").mkdir()    # something in the way of the next crop
    with pytest.raises(LabelFolderError, match=rf"^{root / 'crops' / '000002.png'}: cannot "
                                               r"write \("):
        folder.append(item(2, False), name="000002")
    assert folder.names == ["000001"] and len(open_dataset(str(root), size=S)) == 1
    (root / INDEX).write_text("{")
    with pytest.raises(ReaderError, match=rf"^{root / INDEX}: not a readable label index"):
        open_dataset(f"labels:{root}", size=S)


# ------------------------------------------------------------------------------ the session


@pytest.fixture
def session():
    torch.manual_seed(0)
    s = Session(build_model(ModelConfig(image_size=S)).eval(), asynchronous=False,
                latent_stats={"kl_per_dim": [1.0] * 64})
    yield s
    s.close()


@pytest.fixture
def photo(tmp_path) -> Path:
    """A 300 x 200 photo with the first example hand at (150, 40), 128 px."""
    canvas = Image.new("RGB", (300, 200), (90, 120, 90))
    canvas.paste(Image.open(example_images()[0]).convert("RGB"), (150, 40))
    path = tmp_path / "photo.jpg"
    canvas.save(path, quality=95)
    return path


def test_the_session_keeps_the_box_and_side_and_saves_labels_as_undo_steps(session, photo,
                                                                           tmp_path):
    box = CropBox(150, 40, 128)
    session.estimate(photo, box=box, side="right")
    loaded = session.images["estimate"]
    assert loaded.box == box and loaded.side == "right" and loaded.upright_size == (300, 200)
    assert "right hand" in loaded.label
    session.labels.open(tmp_path / "labels")
    session.set_value(0, 1.5)                  # a correction
    name = session.labels.save()
    assert session.labels.names == [name] and session.can_undo
    record = session.labels.folder.record(name)
    assert record["is_right"] and record["source"]["box"] == [150, 40, 128]
    assert record["source"]["side"] == "right" and record["size"] == 256
    # the 3D label is the current pose, mirrored back into the photo and placed in the crop
    xyz_model = session.runner.decode_pose(session.latent[None])["xyz"][0]
    xyz = np.array(record["xyz"])
    expected = mirror_points(xyz_model - xyz_model[:1]) * HAND_SCALE
    np.testing.assert_allclose(xyz - xyz[:1], expected, atol=1e-5)
    np.testing.assert_allclose(project(np.array(record["K"]), xyz), record["uv"], atol=1e-4)
    crop = np.asarray(Image.open(session.labels.path_of(name)))
    photo_crop = crop_photo(Image.open(photo).convert("RGB"), box, "left", 256)
    np.testing.assert_array_equal(crop, photo_crop)            # the photo's own handedness
    assert session.undo() and session.labels.names == []      # the save, undone
    assert not (tmp_path / "labels" / "crops" / f"{name}.png").exists()
    assert session.undo() and session.latent[0] != 1.5        # then the correction
    assert session.redo() and session.redo() and session.labels.names == [name]
    assert len(open_dataset(str(tmp_path / "labels"), size=S)) == 1


def test_saving_without_a_folder_or_to_a_broken_one_changes_nothing(session, photo, tmp_path):
    with pytest.raises(ValueError, match="no label folder"):
        session.labels.save()
    session.labels.open(tmp_path / "labels")
    with pytest.raises(ValueError, match="no photo to label"):
        session.labels.save()
    session.estimate(photo, box=CropBox(150, 40, 128))
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "crops").write_text("in the way")
    with pytest.raises(LabelFolderError, match="cannot write"):
        session.labels.save()
    assert session.labels.names == [] and session.images["estimate"].box is not None
    (tmp_path / "labels" / "crops").unlink()
    assert session.labels.save() == "000001"                  # the same work, saved after all


def test_a_model_switch_keeps_the_box_and_side(session, photo, tmp_path):
    from handlatent.checkpoint import save_checkpoint
    from handlatent.explorer import open_model, prepare_switch

    box = CropBox(150, 40, 128)
    session.estimate(photo, box=box, side="right")
    loaded = session.images["estimate"]
    checkpoint = tmp_path / "same.pt"
    save_checkpoint(checkpoint, session.model)
    opened = open_model(checkpoint, "cpu")
    again = prepare_switch(opened, session.latent, session.layout, dict(session.images))
    kept = again.images["estimate"]
    assert (kept.box, kept.side, kept.upright_size) == (box, "right", (300, 200))
    np.testing.assert_allclose(kept.z, loaded.z, atol=1e-5)   # the same crop, re-encoded
    photo.unlink()                                 # gone: re-read from the thumbnail
    from_thumbnail = prepare_switch(opened, session.latent, session.layout,
                                    dict(session.images)).images["estimate"]
    assert (from_thumbnail.box, from_thumbnail.side) == (box, "right")
    assert from_thumbnail.path == loaded.path and np.isfinite(from_thumbnail.z).all()
    # the thumbnail's crop of the box (scaled with it) is the photo's crop, at lower resolution
    assert np.abs(from_thumbnail.model_input.astype(int) - loaded.model_input).mean() < 12
