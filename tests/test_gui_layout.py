"""The window at 1,400 × 900 as a new user first sees it (issue 25): the decoded image at least
as large as the input image, slider values and KL in view with the atlas open, readable atlas
thumbnails enlarged on hover, the finger-colour legend, the die of Random sample, and the pose
transfer's buttons (pytest-qt under Xvfb, the bundled model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QEvent, QPoint, QPointF, Qt  # noqa: E402
from PySide6.QtGui import QColor, QImage, QMouseEvent  # noqa: E402
from PySide6.QtWidgets import QApplication, QFileDialog  # noqa: E402
from gui_helpers import shown_window  # noqa: E402

from handlatent.app import dialogs  # noqa: E402
from handlatent.app.atlas_panel import ENLARGED, MIN_CELL  # noqa: E402
from handlatent.app.icons import die_pixmap  # noqa: E402
from handlatent.app.skeleton_view import finger_hex  # noqa: E402
from handlatent.checkpoint import bundled_model  # noqa: E402
from handlatent.explorer import Session  # noqa: E402
from handlatent.resources import EXAMPLES_FOLDER, asset_folder, example_images  # noqa: E402

TIMEOUT_MS = 60000
SIZE = (1400, 900)


@pytest.fixture(autouse=True)
def _isolated_settings(isolated_qsettings):
    """Recent files etc. go to a temporary folder, not the user's QSettings (conftest.py)."""


@pytest.fixture
def session():
    s = Session.from_checkpoint(bundled_model(), device="cpu")
    yield s
    s.close()


@pytest.fixture
def window(qtbot, session):
    with shown_window(qtbot, session, TIMEOUT_MS) as w:
        w.resize(*SIZE)
        yield w


def _pixels(widget) -> np.ndarray:
    """The widget as painted on screen: (H, W, 3) uint8."""
    image = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    array = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(),
                                                              image.bytesPerLine())
    return array[:, :3 * image.width()].reshape(image.height(), image.width(), 3).copy()


def _has_colour(pixels: np.ndarray, hex_colour: str, tolerance: int = 40) -> bool:
    c = QColor(hex_colour)
    target = np.array([c.red(), c.green(), c.blue()])
    return bool((np.abs(pixels.astype(int) - target).max(axis=-1) <= tolerance).any())


def test_at_1400x900_with_the_atlas_the_images_sliders_and_thumbnails_fit(qtbot, window):
    window.open_example(str(example_images()[0]))
    window.atlas_dock.show()
    qtbot.waitUntil(lambda: window.atlas_panel.refresh_count > 0, timeout=TIMEOUT_MS)
    qtbot.wait(200)
    assert (window.width(), window.height()) == SIZE
    # the decoded image is drawn at least as large as the input image, both on screen
    shown, given = window.image_pane.shown_rect(), window.input_pane.shown_rect()
    assert given.width() >= 100 and shown.width() >= given.width() - 1
    for pane, rect in ((window.image_pane, shown), (window.input_pane, given)):
        patch = _pixels(pane)[rect.top() + 5:rect.bottom() - 5, rect.left() + 5:rect.right() - 5]
        assert patch.std() > 5          # an image, not the empty background
    # every slider row shows its value box and its KL inside the dock's view
    panel = window.latent_panel
    viewport = panel.scroll.viewport()
    rows = [row for row in panel.sliders.values() if row.isVisible()]
    assert len(rows) >= 40
    for row in rows:
        for part in (row.slider, row.kl):
            right = part.mapTo(viewport, QPoint(part.width(), 0)).x()
            assert part.width() > 0 and right <= viewport.width(), (row.index, right)
    kl = rows[0].kl
    assert _pixels(kl).std() > 1                           # its digits are painted
    # atlas thumbnails are readable, and the dock shows whole strips
    grid = window.atlas_panel.grid
    assert grid.cell >= MIN_CELL
    last = grid.cell_rect(grid.labels and next(iter(grid.labels)), len(grid.values) - 1)
    assert last.right() <= window.atlas_panel.scroll.viewport().width()


def test_atlas_thumbnail_under_the_mouse_is_enlarged(qtbot, window):
    window.atlas_dock.show()
    qtbot.waitUntil(lambda: window.atlas_panel.refresh_count > 0, timeout=TIMEOUT_MS)
    grid = window.atlas_panel.grid
    dim = next(iter(grid.labels))
    at = QPointF(grid.cell_rect(dim, 2).center())
    QApplication.sendEvent(grid, QMouseEvent(QEvent.Type.MouseMove, at, grid.mapToGlobal(at),
                                             Qt.MouseButton.NoButton, Qt.MouseButton.NoButton,
                                             Qt.KeyboardModifier.NoModifier))
    qtbot.waitUntil(lambda: grid.zoom.isVisible(), timeout=5000)
    assert grid.zoom_cell == (dim, 2)
    assert min(grid.zoom.pixmap().width(), grid.zoom.pixmap().height()) == ENLARGED
    assert "click to set" in grid.toolTip()
    grid.show_zoom(None)                  # what leaving the grid does
    assert not grid.zoom.isVisible()


def test_finger_legend_and_the_die(window):
    legend = window.skeleton.legend
    assert legend.isVisible()
    text = legend.text()
    pixels = _pixels(legend)
    for finger, name in enumerate(("thumb", "index", "middle", "ring", "little")):
        assert name in text
        assert _has_colour(pixels, finger_hex(finger)), name
    die = window.actions_by_name["random_all"].icon().pixmap(24).toImage()
    assert not die.isNull()
    # a die: light face, dark pips at the centre and the corners
    face, ink = QColor("#f4f4f4"), QColor("#26282c")
    pips = _pixels_of(die_pixmap(48).toImage())
    assert _has_colour(pips[24:25, 24:25], ink.name())
    assert _has_colour(pips[16:32, 4:10], face.name())


def _pixels_of(image: QImage) -> np.ndarray:
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    array = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(),
                                                              image.bytesPerLine())
    return array[:, :3 * image.width()].reshape(image.height(), image.width(), 3).copy()


def test_pose_transfer_uses_the_image_on_screen_and_the_examples(qtbot, window, monkeypatch):
    panel = window.transfer_panel
    images = window.session.images
    # nothing loaded: "Current" takes the decoded image on screen
    assert panel.load_current("pose")
    np.testing.assert_array_equal(images.get("pose").model_input, window.last_frame.image)
    # with an input image loaded, "Current" takes that image
    example = example_images()[1]
    assert window.open_example(str(example))
    panel.use_current["pose"].click()
    assert images.get("pose").path == example
    # "Example" lists the bundled hands; picking one loads it and the transfer runs
    actions = panel.use_example["content"].menu().actions()
    assert [a.text() for a in actions] == [p.stem for p in example_images()]
    actions[2].trigger()
    assert images.get("content").path == example_images()[2]
    assert images.transfer_result is not None and panel.result.image.image() is not None
    # the file dialog opens on the examples the first time, then where the last file was
    asked = []
    chosen = str(example_images()[0])

    def fake_dialog(parent, title, directory, file_filter):
        asked.append(directory)
        return chosen, file_filter

    monkeypatch.setattr(dialogs.ImageFolder, "folder", None)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(fake_dialog))
    panel.pose.button.click()
    assert Path(asked[0]) == asset_folder(EXAMPLES_FOLDER)
    assert images.get("pose").path == Path(chosen)
    chosen = str(Path(window.session.images.get("pose").path))
    monkeypatch.setattr(dialogs.ImageFolder, "folder", "/tmp")
    panel.content.button.click()
    assert asked[1] == "/tmp"


def test_coalescer_shows_the_newest_value_at_most_once_per_interval(qtbot):
    from handlatent.app.coalesce import Coalescer
    shown = []
    follower = Coalescer(shown.append, interval_ms=80)
    follower.push(1)                   # nothing shown lately: at once
    for v in (2, 3, 4):                # within the interval: only the newest, once it is over
        follower.push(v)
    assert shown == [1] and follower.waiting
    qtbot.waitUntil(lambda: shown == [1, 4], timeout=2000)
    assert not follower.waiting
    immediate = Coalescer(shown.append, interval_ms=0)
    immediate.push(5)
    immediate.push(6)
    assert shown == [1, 4, 5, 6]
