"""The crop step (File ▸ Open photo, drops) and the Labels menu, on a small random model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")
torch = pytest.importorskip("torch")

from PIL import Image  # noqa: E402
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QDropEvent  # noqa: E402
from gui_helpers import shown_window  # noqa: E402

from handlatent.app.crop_dialog import CropDialog  # noqa: E402
from handlatent.explorer import Session  # noqa: E402
from handlatent.model import ModelConfig, build_model  # noqa: E402
from handlatent.photo_crop import CropBox  # noqa: E402
from handlatent.resources import example_images  # noqa: E402

FRAME_TIMEOUT_MS = 15000


@pytest.fixture(autouse=True)
def _isolated_settings(isolated_qsettings):
    """Recent files go to a temporary folder (conftest.py)."""


def make_photo(path: Path, size=(400, 300), at=(200, 60)) -> Path:
    """A photo with the first example hand (128 px) pasted at `at`."""
    canvas = Image.new("RGB", size, (70, 110, 160))
    canvas.paste(Image.open(example_images()[0]).convert("RGB"), at)
    canvas.save(path)
    return path


@pytest.fixture
def session():
    torch.manual_seed(0)
    s = Session(build_model(ModelConfig(image_size=64)).eval(), device="cpu",
                latent_stats={"kl_per_dim": [1.0] * 64})
    yield s
    s.close()


@pytest.fixture
def window(qtbot, session):
    with shown_window(qtbot, session, FRAME_TIMEOUT_MS) as w:
        yield w


def point(view, x: float, y: float) -> QPoint:
    p = view.to_widget(x, y)
    return QPoint(round(p.x()), round(p.y()))


def test_the_crop_dialog_moves_resizes_and_mirrors_the_box(qtbot, tmp_path):
    photo = Image.open(make_photo(tmp_path / "p.png")).convert("RGB")
    dialog = CropDialog(photo, "p.png", CropBox(80, 30, 240))
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    view = dialog.view
    scale = view._fit()[0]
    assert dialog.box() == CropBox(80, 30, 240) and dialog.side() == "left"

    # drag the box by its middle, 40 widget pixels right and 20 up
    start = point(view, 200, 150)
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(view, start + QPoint(20, -10))
    qtbot.mouseMove(view, start + QPoint(40, -20))
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=start + QPoint(40, -20))
    box = dialog.box()
    assert box.size == 240
    assert box.x == pytest.approx(80 + 40 / scale, abs=1 / scale)
    assert box.y == pytest.approx(max(0.0, 30 - 20 / scale), abs=1 / scale)

    # drag the bottom-right corner in: the top-left corner stays
    left, top = box.x, box.y
    corner = point(view, box.x + box.size, box.y + box.size)
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=corner)
    qtbot.mouseMove(view, corner - QPoint(60, 60))
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=corner - QPoint(60, 60))
    box = dialog.box()
    assert (box.x, box.y) == (left, top)
    assert box.size == pytest.approx(240 - 60 / scale, abs=1.5 / scale)

    # the keyboard: an arrow moves by 1 % of the short side, minus shrinks about the centre
    qtbot.keyClick(view, Qt.Key.Key_Down)
    assert dialog.box().y == pytest.approx(top + 3)
    centre = dialog.box().centre
    qtbot.keyClick(view, Qt.Key.Key_Minus)
    assert dialog.box().size < box.size
    assert dialog.box().centre == pytest.approx(centre)

    # the side switch mirrors what the encoder will see
    left_preview = dialog.preview_pixels()
    qtbot.mouseClick(dialog.right, Qt.MouseButton.LeftButton,
                     pos=QPoint(8, dialog.right.height() // 2))   # on its indicator
    assert dialog.side() == "right"
    np.testing.assert_array_equal(dialog.preview_pixels(), left_preview[:, ::-1])
    shot = tmp_path / "crop.png"
    assert dialog.grab().save(str(shot)) and shot.stat().st_size > 0
    with qtbot.waitSignal(dialog.accepted, timeout=2000):
        qtbot.keyClick(view, Qt.Key.Key_Return)          # Enter: Estimate


def test_open_photo_estimates_the_box_and_side_and_labels_save_and_undo(qtbot, window,
                                                                        session, tmp_path):
    path = make_photo(tmp_path / "hand.png")
    dialog = window.photos.open_photo(path)
    assert dialog is not None and dialog.isVisible()
    dialog.view.set_box(CropBox(190, 50, 150))
    dialog.set_side("right")
    dialog.accept()
    loaded = session.images["estimate"]
    assert loaded.box == CropBox(190, 50, 150) and loaded.side == "right"
    np.testing.assert_allclose(session.latent, loaded.z, atol=1e-6)
    assert "right hand" in window.input_pane.title.text()
    # the window shows the right hand in the photo's frame: the crop as the photo has it, the
    # decoded image and the skeleton mirrored back from the model's (left-hand) frame
    from handlatent.app.skeleton_view import to_display
    from handlatent.photo_crop import crop_photo
    photo = Image.open(path).convert("RGB")
    np.testing.assert_array_equal(window.input_pane.image(),
                                  crop_photo(photo, CropBox(190, 50, 150), "left", 64))
    qtbot.waitUntil(lambda: window.last_frame is not None
                    and np.array_equal(window.last_frame.z, session.latent), timeout=FRAME_TIMEOUT_MS)
    frame = window.last_frame
    np.testing.assert_array_equal(window.image_pane.image(), frame.image[:, ::-1])
    assert window.skeleton.mirrored
    qtbot.waitUntil(lambda: window.skeleton.frame is frame, timeout=FRAME_TIMEOUT_MS)
    np.testing.assert_allclose(window.skeleton.positions, to_display(frame.xyz * [-1, 1, 1]),
                               atol=1e-6)

    assert window.photos.open_folder(tmp_path / "labels")
    assert window.photos.dock.isVisible()
    window.actions_by_name["labels_save"].trigger()
    assert session.labels.names == ["000001"]
    assert (tmp_path / "labels" / "crops" / "000001.png").is_file()
    assert window.photos.list.count() == 1
    assert window.photos.list.item(0).text() == "000001 · hand.png · right"
    # the input pane draws the 2D keypoints that were saved (at its 64 px instead of 256 px)
    uv = np.array(session.labels.folder.record("000001")["uv"])
    np.testing.assert_allclose(window.input_pane.keypoints(), (uv + 0.5) * 64 / 256 - 0.5,
                               atol=1e-3)
    assert window.actions_by_name["undo"].isEnabled()
    window.actions_by_name["undo"].trigger()                 # Edit ▸ Undo takes it out
    assert session.labels.names == [] and window.photos.list.count() == 0
    assert not (tmp_path / "labels" / "crops" / "000001.png").exists()
    window.actions_by_name["redo"].trigger()
    assert session.labels.names == ["000001"] and window.photos.list.count() == 1
    # reopening the folder lists what it holds
    session.labels.folder = None
    assert window.photos.open_folder(tmp_path / "labels")
    assert window.photos.list.count() == 1


def test_save_and_next_photo_opens_the_next_one_with_the_same_box(qtbot, window, session,
                                                                  tmp_path):
    first = make_photo(tmp_path / "a.png")
    second = make_photo(tmp_path / "b.png", at=(180, 80))
    assert window.photos.open_folder(tmp_path / "labels")
    dialog = window.photos.open_photo(first)
    dialog.view.set_box(CropBox(200, 60, 128))
    dialog.accept()
    following = window.photos.save_and_next()
    assert session.labels.names == ["000001"]
    assert following is not None and following.windowTitle() == "Crop the hand — b.png"
    assert following.box() == CropBox(200, 60, 128) and following.side() == "left"
    following.accept()
    assert session.images["estimate"].path == second
    assert window.photos.save_and_next() is None       # the last photo: saved, nothing next
    assert session.labels.names == ["000001", "000002"]
    assert "last photo" in window.statusBar().currentMessage()


def drop(window, path: Path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    window.dropEvent(QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime,
                                Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier))


def test_a_dropped_photo_goes_through_the_crop_step_and_a_crop_does_not(qtbot, window, session,
                                                                        tmp_path):
    crop = tmp_path / "crop.png"
    Image.open(example_images()[0]).convert("RGB").resize((64, 64)).save(crop)
    drop(window, crop)                     # square, the model's size: estimated as it is
    assert window.photos.crop_dialog is None
    assert session.images["estimate"].path == crop and session.images["estimate"].box is None
    drop(window, make_photo(tmp_path / "wide.png"))
    assert window.photos.crop_dialog is not None
    assert session.images["estimate"].path == crop     # nothing estimated until Estimate
    window.photos.crop_dialog.close()
    assert window.open_recent(str(tmp_path / "wide.png"))   # File ▸ Open recent: the same rule
    assert window.photos.crop_dialog is not None


def test_bad_photos_and_folders_are_one_line_and_change_nothing(qtbot, window, session,
                                                                tmp_path):
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (20, 300)).save(tiny)
    assert window.photos.open_photo(tiny) is None
    message = window.statusBar().currentMessage()
    assert message.startswith(f"{tiny}: photo too small to hold a box") and session.images == {}

    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    assert not window.photos.open_folder(blocker)
    assert window.statusBar().currentMessage() == f"{blocker}: exists and is not a folder"
    assert session.labels.folder is None

    dialog = window.photos.open_photo(make_photo(tmp_path / "hand.png"))
    dialog.accept()
    z = session.latent
    assert window.photos.open_folder(tmp_path / "labels")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "crops").write_text("in the way")
    assert window.photos.save() is None
    assert "cannot write" in window.statusBar().currentMessage()
    assert session.labels.names == [] and np.array_equal(session.latent, z)
    (tmp_path / "labels" / "crops").unlink()
    assert window.photos.save() == "000001"              # nothing was lost: save again
