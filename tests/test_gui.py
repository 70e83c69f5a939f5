"""The Qt explorer (app/, imported as handlatent.app) on a small random model, headless.

pytest-qt drives real widgets; pytest-xvfb gives them an X server when there is no DISPLAY.
Tests that need OpenGL pixels are skipped on the "offscreen" Qt platform. CLI tests run the
entry point in a subprocess on the same DISPLAY.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")
torch = pytest.importorskip("torch")

from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QDropEvent, QGuiApplication  # noqa: E402
from gui_helpers import shown_window  # noqa: E402

from handlatent.checkpoint import save_checkpoint  # noqa: E402
from handlatent.explorer import LatentGaussian, Session  # noqa: E402
from handlatent.model import ModelConfig, build_model  # noqa: E402

FRAME_TIMEOUT_MS = 15000


def _no_gl() -> bool:
    return QGuiApplication.platformName() in ("offscreen", "minimal")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A random 64 px model with KL statistics (a few dimensions inactive), saved safely."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(image_size=64))
    kl = np.linspace(3.0, 0.2, model.layout.total)
    kl[[5, 30, 40, 60]] = 0.0          # inactive: folded away in the latent panel
    path = tmp_path_factory.mktemp("gui") / "tiny.pt"
    hands = LatentGaussian(np.full(model.layout.total, 0.5), 0.25 * np.eye(model.layout.total))
    save_checkpoint(path, model, extra={"latent_stats": {"kl_per_dim": kl.tolist(),
                                                         "hands": hands.to_stats()}})
    return path


@pytest.fixture(autouse=True)
def _isolated_settings(isolated_qsettings):
    """Recent files etc. go to a temporary folder, not the user's QSettings (conftest.py)."""


@pytest.fixture
def session(checkpoint):
    s = Session.from_checkpoint(checkpoint, device="cpu")
    yield s
    s.close()


@pytest.fixture
def window(qtbot, session):
    with shown_window(qtbot, session, FRAME_TIMEOUT_MS) as w:
        yield w


def _wait_for_latent(qtbot, window, index: int, value: float) -> None:
    """Until the image pane shows the frame decoded with z[index] == value."""
    qtbot.waitUntil(lambda: window.last_frame is not None
                    and abs(float(window.last_frame.z[index]) - value) < 1e-4,
                    timeout=FRAME_TIMEOUT_MS)
    qtbot.wait(30)   # let the paint land


def _drag(qtbot, slider, value: float) -> None:
    """A mouse drag of a labelled slider: press, move in steps, release (one undo step)."""
    slider.setSliderDown(True)         # emits sliderPressed -> session.begin_edit()
    start = slider.value()
    for v in np.linspace(start, value, 6)[1:]:
        slider.setValue(float(v))      # each move: valueChanged -> session.set_value
        qtbot.wait(5)
    slider.setSliderDown(False)        # emits sliderReleased -> session.end_edit()


def test_bridge_relays_every_event_of_the_session_and_its_parts(qtbot, session):
    """The bridge is built from the session's own lists of events: each has a signal, a drag
    update arrives as `dragged` on the GUI thread, and an event without a signal fails at
    construction."""
    from types import SimpleNamespace

    from handlatent.app.bridge import SessionBridge, event_registries, signal_name
    from handlatent.explorer import EVENTS, Events
    bridge = SessionBridge(session)
    try:
        names = [name for registry in event_registries(session) for name in registry.names]
        assert {"dragged", "pending", "walk_changed", "images_changed", "transfer_changed",
                "sampling_changed", "atlas_changed"} <= set(names)
        assert all(hasattr(bridge, signal_name(name)) for name in names)
        updates, walks = [], []
        bridge.dragged.connect(updates.append)
        bridge.walkChanged.connect(lambda: walks.append(session.walk.endpoint("A")))
        session.walk.set_endpoint("A")
        assert len(walks) == 1 and walks[0] is not None
        session.begin_drag(5)
        session.drag_to(session.decode_now().xyz[5] + 0.05)
        qtbot.waitUntil(lambda: len(updates) == 1, timeout=FRAME_TIMEOUT_MS)  # applied by
        np.testing.assert_array_equal(updates[0].z, session.latent)       # the GUI thread
        session.end_drag()
    finally:
        bridge.detach()
    stranger = SimpleNamespace(events=Events((*EVENTS, "model_switched")), parts={},
                               apply_pending=lambda: None)
    with pytest.raises(TypeError, match="'model_switched' event.*modelSwitched"):
        SessionBridge(stranger)


def test_latent_panel_groups_sliders_by_part_and_kl(window, session):
    panel = window.latent_panel
    assert list(panel.groups) == ["z_y1", "z_y2", "z_u"]
    assert [g.text() for g in panel.groups.values()] == [
        "Canonical pose (z_y1)", "Viewpoint (z_y2)", "Content (z_u)"]
    kl = session.stats.kl_per_dim
    for part, group in panel.groups.items():
        assert group.active == session.stats.active_dims(part)
        assert all(kl[a] >= kl[b] for a, b in zip(group.active, group.active[1:]))
    assert sorted(panel.sliders) == list(range(session.layout.total))
    # inactive dimensions (KL 0) are folded away until "show inactive"
    inactive_row = panel.sliders[5]
    assert not inactive_row.isVisibleTo(window)
    window.actions_by_name["show_inactive"].trigger()
    assert inactive_row.isVisibleTo(window)
    assert panel.slider(0).minimum() == pytest.approx(-3) and panel.slider(0).maximum() == 3


def test_slider_drag_updates_image_and_skeleton_and_undo_restores(qtbot, window, session):
    index = session.stats.active_dims("z_y1")[0]
    slider = window.latent_panel.slider(index)
    image0 = window.image_pane.image().copy()
    joints0 = window.skeleton.positions.copy()
    z0 = session.latent

    _drag(qtbot, slider, 2.5)
    _wait_for_latent(qtbot, window, index, 2.5)
    assert session.latent[index] == pytest.approx(2.5)
    assert not np.array_equal(window.image_pane.image(), image0), "image pane did not change"
    assert np.abs(window.skeleton.positions - joints0).max() > 1e-5, "joints did not move"
    assert session.can_undo

    window.actions_by_name["undo"].trigger()          # Edit ▸ Undo (Ctrl+Z): the whole drag
    _wait_for_latent(qtbot, window, index, float(z0[index]))
    np.testing.assert_array_equal(session.latent, z0)
    assert slider.value() == pytest.approx(float(z0[index]))
    np.testing.assert_array_equal(window.image_pane.image(), image0)
    np.testing.assert_allclose(window.skeleton.positions, joints0, atol=1e-6)

    window.actions_by_name["redo"].trigger()
    _wait_for_latent(qtbot, window, index, 2.5)
    assert slider.value() == pytest.approx(2.5)


@pytest.mark.skipif("_no_gl()", reason="needs OpenGL (the 'offscreen' Qt platform has none)")
def test_3d_view_renders_the_skeleton_and_follows_the_slider(qtbot, window, session):
    view = window.skeleton
    qtbot.waitUntil(lambda: view.frame is not None, timeout=FRAME_TIMEOUT_MS)
    pixels0 = view.render()
    background = pixels0[2, 2, :3].astype(int)
    colored = (np.abs(pixels0[..., :3].astype(int) - background).sum(-1) > 60).sum()
    assert colored > 50, "no skeleton drawn"
    index = session.stats.active_dims("z_y1")[0]
    window.latent_panel.slider(index).setValue(-2.0)
    _wait_for_latent(qtbot, window, index, -2.0)
    assert not np.array_equal(view.render(), pixels0)
    # a left-drag orbits the turntable camera
    from PySide6.QtCore import QPoint
    azimuth = view.view.camera.azimuth
    surface = view.surface
    center = surface.rect().center()
    qtbot.mousePress(surface, Qt.MouseButton.LeftButton, pos=center)
    for dx in (10, 20, 40, 60):
        qtbot.mouseMove(surface, center + QPoint(dx, 0))
    qtbot.mouseRelease(surface, Qt.MouseButton.LeftButton, pos=center + QPoint(60, 0))
    assert view.view.camera.azimuth != pytest.approx(azimuth)
    # canonical pose toggle (View ▸ Canonical pose, "C") draws the cpose
    window.actions_by_name["canonical"].trigger()
    assert view.mode == "cpose"
    from handlatent.app.skeleton_view import to_display
    np.testing.assert_allclose(view.positions, to_display(window.last_frame.cpose), atol=1e-6)


def test_random_samples_follow_shortcut_actions_and_locks(qtbot, window, session):
    z0 = session.latent
    y2 = session.layout.slices["z_y2"]
    window.actions_by_name["random_z_y2"].trigger()        # Shift+2
    z1 = session.latent
    assert not np.array_equal(z1[y2], z0[y2])
    mask = np.ones_like(z0, bool)
    mask[y2] = False
    np.testing.assert_array_equal(z1[mask], z0[mask])
    # the sliders follow the session, without feeding back (still one undo step)
    i = session.stats.active_dims("z_y2")[0]
    assert window.latent_panel.slider(i).value() == pytest.approx(float(np.clip(z1[i], -3, 3)),
                                                                  abs=1e-6)
    window.latent_panel.groups["z_u"].lock_box.setChecked(True)
    assert session.locked("z_u")
    u = session.layout.slices["z_u"]
    window.actions_by_name["random_all"].trigger()         # R
    np.testing.assert_array_equal(session.latent[u], z1[u])
    window.undo()
    window.undo()
    np.testing.assert_array_equal(session.latent, z0)


def test_random_samples_come_from_the_source_chosen_in_the_menu(qtbot, window, session):
    actions = window.actions_by_name

    def draw(n: int = 40) -> np.ndarray:
        z = []
        for _ in range(n):
            actions["random_all"].trigger()
            z.append(session.latent)
        return np.stack(z)

    session.stats.rng = np.random.default_rng(0)     # the draws Random makes, seeded
    assert session.stats.sampling == "hands" and actions["sample_hands"].isChecked()
    hands = draw()     # the checkpoint's fit: N(0.5, 0.25 I)
    assert abs(hands.mean() - 0.5) < 0.05 and abs(hands.std() - 0.5) < 0.05
    assert "fitted to encoded hands" in window.statusBar().currentMessage()
    actions["sample_prior"].trigger()
    assert session.stats.sampling == "prior" and not actions["sample_hands"].isChecked()
    assert "N(0, I)" in window.statusBar().currentMessage()
    prior = draw()
    assert abs(prior.mean()) < 0.05 and abs(prior.std() - 1) < 0.05
    actions["sample_hands"].trigger()
    assert session.stats.sampling == "hands" and not actions["sample_prior"].isChecked()
    session.stats.sampling = "prior"                 # set from a script: the menu follows
    assert actions["sample_prior"].isChecked() and not actions["sample_hands"].isChecked()


def test_keyboard_shortcuts(qtbot, window, session):
    """R, Shift+1..3, Ctrl+Z, Ctrl+Shift+Z as typed keys (the window made active by hand:
    Xvfb has no window manager to activate it)."""
    import warnings

    from PySide6.QtWidgets import QApplication
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        QApplication.setActiveWindow(window)
    target = window.image_pane
    y1 = session.layout.slices["z_y1"]
    z0 = session.latent
    qtbot.keyClick(target, Qt.Key.Key_1, Qt.KeyboardModifier.ShiftModifier)
    z1 = session.latent
    assert not np.array_equal(z1[y1], z0[y1])
    np.testing.assert_array_equal(np.delete(z1, np.r_[y1]), np.delete(z0, np.r_[y1]))
    qtbot.keyClick(target, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    np.testing.assert_array_equal(session.latent, z0)
    qtbot.keyClick(target, Qt.Key.Key_Z,
                   Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    np.testing.assert_array_equal(session.latent, z1)
    qtbot.keyClick(target, Qt.Key.Key_R)
    assert not np.array_equal(session.latent, z1)


def test_corrupt_image_leaves_session_unchanged_and_shows_a_message(qtbot, window, session,
                                                                    tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    z0, can_undo = session.latent, session.can_undo
    assert window.open_image(str(bad)) is False
    np.testing.assert_array_equal(session.latent, z0)
    assert session.can_undo == can_undo and session.images == {}
    message = window.statusBar().currentMessage()
    assert "broken.png" in message and "\n" not in message
    # the same through drag & drop onto the window
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(bad))])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime,
                       Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    np.testing.assert_array_equal(session.latent, z0)
    assert "broken.png" in window.statusBar().currentMessage()
    # the transfer panel refuses it the same way
    assert window.transfer_panel.load("pose", str(bad)) is False
    assert session.images == {}


def test_good_image_estimate_and_pose_transfer(qtbot, window, session, tmp_path):
    from PIL import Image
    rng = np.random.default_rng(0)
    paths = []
    for name in ("a.png", "b.png"):
        p = tmp_path / name
        Image.fromarray(rng.integers(0, 255, (80, 96, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    assert window.open_image(paths[0])
    np.testing.assert_allclose(session.latent, session.images["estimate"].z, atol=1e-6)
    assert window.input_pane.isVisible() and window.input_pane.image() is not None
    assert window.recent_files()[0] == paths[0]
    assert window.transfer_panel.load("pose", paths[0])
    assert window.transfer_panel.load("content", paths[1])
    result = session.images.transfer_result
    assert result is not None
    np.testing.assert_array_equal(window.transfer_panel.result.image.image(), result.image)
    out = tmp_path / "transfer.png"
    assert window.transfer_panel.save(str(out)) and out.stat().st_size > 0


def test_walk_export_writes_gif_with_requested_frames(qtbot, window, session, tmp_path):
    from PIL import Image
    panel = window.walk_panel
    assert not panel.export_button.isEnabled()
    panel.ends["A"].current.click()
    panel.ends["B"].random.click()
    assert panel.export_button.isEnabled()
    # scrubbing moves the session along the walk
    panel.scrub.setValue(500)
    a, b = session.walk.endpoint("A"), session.walk.endpoint("B")
    np.testing.assert_allclose(session.latent, (a + b) / 2, atol=1e-5)
    # play (QTimer) moves along the walk, pause stops it; only the chosen part moves
    panel.parts.setCurrentIndex(panel.parts.findText("Pose only (z_y1)"))
    assert session.walk.parts == {"z_y1"}
    z_before = session.latent
    panel.toggle_play()
    qtbot.waitUntil(lambda: abs(panel.t - 0.5) > 0.05, timeout=5000)
    panel.toggle_play()
    assert not panel.timer.isActive()
    moved = np.flatnonzero(session.latent != z_before)
    y1 = session.layout.slices["z_y1"]
    assert moved.size and moved.min() >= y1.start and moved.max() < y1.stop
    path = tmp_path / "walk.gif"
    job = panel.export(str(path), n_frames=7, fps=10)
    with qtbot.waitSignal(job.finished, timeout=60000):
        pass
    qtbot.waitUntil(lambda: panel.last_export == str(path), timeout=5000)
    with Image.open(path) as gif:
        assert gif.n_frames == 7
    assert panel.progress_dialog is None
    assert "walk.gif" in window.statusBar().currentMessage()


def test_walk_export_can_be_cancelled(qtbot, window, session, tmp_path):
    panel = window.walk_panel
    panel.ends["A"].random.click()
    panel.ends["B"].random.click()
    path = tmp_path / "long.gif"
    job = panel.export(str(path), n_frames=400, fps=10)
    with qtbot.waitSignal(job.cancelled, timeout=60000):
        panel.progress_dialog.canceled.emit()   # the dialog's Cancel button
    assert not path.exists()
    assert [p for p in tmp_path.iterdir() if "long" in p.name] == []


def test_preset_round_trip_and_screenshot(qtbot, window, session, tmp_path):
    session.randomize()
    z = session.latent
    preset = tmp_path / "p.json"
    assert window.save_preset(str(preset))
    session.randomize()
    assert window.load_preset(str(preset))
    np.testing.assert_allclose(session.latent, z, atol=1e-6)
    broken = tmp_path / "bad.json"
    broken.write_text("{nope")
    assert not window.load_preset(str(broken))
    np.testing.assert_allclose(session.latent, z, atol=1e-6)
    shot = tmp_path / "shot.png"
    assert window.save_screenshot(str(shot))
    from PIL import Image
    with Image.open(shot) as im:
        assert im.size[0] >= 800
    window.copy_image()
    assert not QGuiApplication.clipboard().image().isNull()


def _run_cli(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("HANDLATENT_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "handlatent.app.cli", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("kind", ["missing", "corrupt"])
def test_cli_bad_checkpoint_exits_nonzero_with_one_line(tmp_path, kind):
    path = tmp_path / "model.pt"
    if kind == "corrupt":
        path.write_bytes(b"PK\x03\x04" + os.urandom(500))
    result = _run_cli("--checkpoint", str(path), "--no-dialogs")
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("handlatent-gui: ") and str(path) in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def test_cli_threads_default_to_one_and_refuse_zero(capsys):
    from handlatent.app.cli import parse_args

    assert parse_args([]).threads == 1 and parse_args(["--threads", "3"]).threads == 3
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--threads", "0"])
    assert exit_info.value.code == 2
    assert "expected a positive number of threads, got '0'" in capsys.readouterr().err


def test_cli_bad_checkpoint_shows_a_dialog_when_it_can(qtbot, tmp_path, monkeypatch, capsys):
    """In-process: the error dialog appears (closed here by a timer) and main returns 2."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    from handlatent.app import cli
    if _no_gl():
        pytest.skip("no dialogs on the offscreen platform")
    monkeypatch.delenv("HANDLATENT_NO_DIALOGS", raising=False)
    seen = []

    def close_dialog():
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox):
            seen.append(box.text())
            box.done(0)
        else:
            QTimer.singleShot(50, close_dialog)

    QTimer.singleShot(50, close_dialog)
    status = cli.main(["--checkpoint", str(tmp_path / "nope.pt")])
    assert status == 2
    assert seen and "nope.pt" in seen[0]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.pt" in err[0]


def test_cli_screenshot_writes_png(checkpoint, tmp_path):
    out = tmp_path / "shot.png"
    from PIL import Image
    hand = tmp_path / "hand.png"           # opened at start, as `handlatent-gui IMAGE` does
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (90, 120, 3), np.uint8)).save(hand)
    result = _run_cli(str(hand), "--checkpoint", str(checkpoint), "--device", "cpu",
                      "--screenshot", str(out), timeout=120)
    assert result.returncode == 0, result.stderr
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] >= 800 and im.size[1] >= 500
        pixels = np.asarray(im.convert("RGB"))
    assert pixels.std() > 5     # not a blank window


def test_window_starts_on_the_first_example_hand_resized_to_the_model(window, session):
    from PIL import Image

    from handlatent.app.cli import _open_start_image
    from handlatent.resources import example_images
    assert not np.any(session.latent)                 # the window alone starts at z = 0
    _open_start_image(window, None)                   # what handlatent-gui does without IMAGE
    first = example_images()[0]
    loaded = session.images["estimate"]
    assert loaded.path == first and window.input_pane.isVisible()
    np.testing.assert_allclose(session.latent, loaded.z)
    assert np.any(session.latent)
    with Image.open(first) as im:                     # 128 px example, 64 px model
        assert im.size == (128, 128)
        expected = np.asarray(im.convert("RGB").resize((64, 64), Image.Resampling.LANCZOS))
    assert loaded.model_input.shape == (64, 64, 3)
    assert np.abs(loaded.model_input.astype(int) - expected).mean() < 2
    assert window.recent_files() == []                # examples stay out of Open recent
    assert first.name in window.statusBar().currentMessage()


@pytest.mark.parametrize("problem", ["none shipped", "corrupt"])
def test_a_missing_or_corrupt_example_leaves_z_zero_with_one_line(window, session, tmp_path,
                                                                  monkeypatch, capsys, problem):
    from handlatent.app.cli import _open_start_image
    bad = tmp_path / "1-fist.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really")
    monkeypatch.setattr("handlatent.resources.example_images",
                        lambda: [] if problem == "none shipped" else [bad])
    _open_start_image(window, None)
    assert not np.any(session.latent) and "estimate" not in session.images
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("handlatent-gui: ")
    assert (str(bad) if problem == "corrupt" else "no example hands") in err[0]
    assert err[0].endswith(window.statusBar().currentMessage())


def test_file_menu_lists_the_examples_and_opens_one(qtbot, window, session):
    from PySide6.QtWidgets import QMenu

    from handlatent.resources import example_images
    examples = example_images()
    menu = window.findChild(QMenu, "examples-menu")
    assert menu.title().replace("&", "") == "Open example"
    assert menu.menuAction() in window.menuBar().actions()[0].menu().actions()  # under File
    actions = menu.actions()
    assert [a.text() for a in actions] == [p.stem for p in examples]
    assert all(not a.icon().isNull() for a in actions)          # each shows its hand
    actions[2].trigger()
    assert session.images["estimate"].path == examples[2]
    np.testing.assert_allclose(session.latent, session.images["estimate"].z)
    qtbot.waitUntil(lambda: window.last_frame is not None
                    and np.allclose(window.last_frame.z, session.latent),
                    timeout=FRAME_TIMEOUT_MS)


def _grab(widget, rect) -> np.ndarray:
    """The pixels (H, W, 3) that `widget` paints in `rect`."""
    from PySide6.QtGui import QImage
    image = widget.grab(rect).toImage().convertToFormat(QImage.Format.Format_RGB888)
    rows = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), -1)
    return rows[:, :3 * image.width()].reshape(image.height(), image.width(), 3).copy()


def test_latent_atlas_shows_strips_sets_values_and_refreshes_when_still(qtbot, window, session):
    panel, grid = window.atlas_panel, window.atlas_panel.grid
    assert not window.atlas_dock.isVisible() and panel.refresh_count == 0   # closed: no decoding
    window.actions_by_name["atlas"].trigger()                              # View ▸ Latent atlas
    qtbot.waitUntil(lambda: panel.refresh_count == 1, timeout=60000)
    assert list(grid.labels) == session.stats.atlas_dims()
    assert 5 not in grid.labels                                            # 5 is inactive
    assert all(grid.is_fresh(d) for d in grid.labels)
    np.testing.assert_allclose(grid.values, np.linspace(-2, 2, 5), atol=1e-6)   # the default
    dim = session.stats.atlas_dims()[0]
    qtbot.wait(50)
    cells = [_grab(grid, grid.cell_rect(dim, k)) for k in range(5)]
    for a, b in ((0, 1), (3, 4)):                      # column 2 (z = 0) carries the mark
        assert not np.array_equal(cells[a], cells[b]), f"columns {a} and {b} look the same"
    # each thumbnail is the decoding of the latent with that one value changed
    z = session.latent
    z[dim] = -2.0
    shown = grid.images[dim][0].convertToFormat(grid.images[dim][0].Format.Format_RGB888)
    size = shown.width()
    pixels = np.frombuffer(shown.constBits(), np.uint8).reshape(size, -1)[:, :3 * size]
    expected = session.decode_now(z).image.reshape(size, -1).astype(int)
    assert np.abs(pixels.astype(int) - expected).max() <= 1

    z0 = session.latent
    qtbot.mouseClick(grid, Qt.MouseButton.LeftButton, pos=grid.cell_rect(dim, 0).center())
    assert session.latent[dim] == pytest.approx(-2.0)
    np.testing.assert_array_equal(np.delete(session.latent, dim), np.delete(z0, dim))
    qtbot.waitUntil(lambda: not grid.is_fresh(dim), timeout=1000)   # dimmed until refreshed
    qtbot.waitUntil(lambda: panel.refresh_count == 2, timeout=60000)
    np.testing.assert_array_equal(grid.made_for[dim], session.latent)
    window.undo()                                        # the click was one undo step
    np.testing.assert_array_equal(session.latent, z0)
    qtbot.waitUntil(lambda: panel.refresh_count == 3, timeout=60000)

    # a slider drag asks for no atlas while it moves, and for one once it is still: the test
    # drives the settle timer (an hour while the slider moves, then ended), so that a loaded
    # machine cannot let it run out between two moves
    asked = panel.request_id
    slider = window.latent_panel.slider(dim)
    panel.timer.setInterval(3_600_000)
    slider.setSliderDown(True)
    for v in np.linspace(0.1, 1.5, 8):
        slider.setValue(float(v))
        qtbot.wait(40)
        assert panel.timer.isActive() and panel.timer.remainingTime() > 3_500_000  # restarted
    assert panel.request_id == asked
    slider.setSliderDown(False)
    panel.timer.setInterval(0)                            # the latent is still: settle now
    qtbot.waitUntil(lambda: panel.refresh_count == 4, timeout=60000)
    assert panel.request_id != asked
    assert grid.made_for[dim][dim] == pytest.approx(1.5)


def test_viewpoint_mode_turns_the_hand_by_the_camera_rotation(qtbot, window, session):
    from PySide6.QtCore import QPoint

    from handlatent.explorer.viewpoint import CAMERA_TO_DISPLAY, orbit_viewpoint, view_rotation
    view, mode = window.skeleton, window.viewpoint_mode
    cam = view.view.camera
    y2 = session.layout.slices["z_y2"]

    def z_y2_for(viewpoint):
        with torch.no_grad():
            mu, _ = session.model.encode_viewpoint(torch.tensor(viewpoint[None],
                                                                dtype=torch.float32))
        return mu[0].numpy()

    # vispy's camera node maps eye to scene coordinates as rows (p_scene = p_eye @ T): as a
    # column operator T takes display points to the eye frame (x right, y up, z backward)
    eye_to_camera = np.diag([1.0, -1.0, -1.0])
    z0 = session.latent
    for angles in [(30, 0, 0), (0, 20, 0), (0, 0, 25), (-50, 35, 10)]:
        cam.azimuth, cam.elevation, cam.roll = angles
        np.testing.assert_allclose(
            eye_to_camera @ cam.transform.matrix[:3, :3] @ CAMERA_TO_DISPLAY,
            view_rotation(*angles), atol=1e-6)
    qtbot.wait(50)
    np.testing.assert_array_equal(session.latent, z0)    # the mode is off: only the camera

    window.actions_by_name["viewpoint_mode"].trigger()   # V
    assert mode.enabled and mode.camera_angles() == (0.0, 0.0, 0.0) and view.mode == "xyz"
    v0 = session.viewpoint()
    cam.azimuth = 30.0                                   # turned by code: applied at once
    qtbot.waitUntil(lambda: mode.applied == 1, timeout=5000)
    assert mode.camera_angles() == (0.0, 0.0, 0.0)       # back at the reference
    z1 = session.latent
    np.testing.assert_allclose(z1[y2], z_y2_for(orbit_viewpoint(v0, 30, 0)), atol=1e-5)
    np.testing.assert_array_equal(np.delete(z1, np.r_[y2]), np.delete(z0, np.r_[y2]))

    # a mouse orbit: the view holds the turned pose, the whole drag is one undo step
    _wait_for_latent(qtbot, window, y2.start, float(z1[y2.start]))
    qtbot.waitUntil(lambda: np.array_equal(view.frame.z, z1), timeout=FRAME_TIMEOUT_MS)
    held = view.positions.copy()
    surface = view.surface
    center = surface.rect().center()
    qtbot.mousePress(surface, Qt.MouseButton.LeftButton, pos=center)
    for dx, dy in ((10, 4), (25, 8), (40, 12)):
        qtbot.mouseMove(surface, center + QPoint(dx, dy))
        qtbot.wait(30)
    qtbot.waitUntil(lambda: mode.applied >= 2, timeout=5000)
    angles = mode.camera_angles()
    assert angles[0] != 0 and angles[1] != 0
    qtbot.waitUntil(lambda: window.last_frame is not None
                    and np.array_equal(window.last_frame.z, session.latent), timeout=5000)
    np.testing.assert_array_equal(view.positions, held)  # new frames wait for the release
    qtbot.mouseRelease(surface, Qt.MouseButton.LeftButton, pos=center + QPoint(40, 12))
    assert mode.camera_angles() == (0.0, 0.0, 0.0)
    z2 = session.latent
    np.testing.assert_allclose(z2[y2], z_y2_for(orbit_viewpoint(
        session.decode_now(z1).viewpoint, *angles)), atol=1e-5)
    assert np.array_equal(view.frame.z, z2)              # the released view shows the new pose
    window.undo()
    np.testing.assert_array_equal(session.latent, z1)
    window.undo()
    np.testing.assert_array_equal(session.latent, z0)

    # a change from elsewhere (a random sample) during an orbit ends it: the rest of that
    # drag only moves the camera, which returns to the reference on release
    from handlatent.app.viewpoint_mode import Orbit
    assert mode.state is Orbit.RESTING
    qtbot.mousePress(surface, Qt.MouseButton.LeftButton, pos=center)
    qtbot.mouseMove(surface, center + QPoint(20, 6))
    qtbot.waitUntil(lambda: mode.state is Orbit.TURNING, timeout=5000)
    window.randomize(None)
    assert mode.state is Orbit.CANCELLED
    z3 = session.latent
    for dx, dy in ((30, 9), (45, 14)):
        qtbot.mouseMove(surface, center + QPoint(dx, dy))
        qtbot.wait(30)
    np.testing.assert_array_equal(session.latent, z3)    # the camera moved alone
    assert mode.camera_angles() != (0.0, 0.0, 0.0)
    qtbot.mouseRelease(surface, Qt.MouseButton.LeftButton, pos=center + QPoint(45, 14))
    assert mode.state is Orbit.RESTING and mode.camera_angles() == (0.0, 0.0, 0.0)
    window.undo()                                        # the turn and the sample: one step
    np.testing.assert_array_equal(session.latent, z0)

    window.actions_by_name["viewpoint_mode"].trigger()   # leaving: the usual home angles
    from handlatent.app.skeleton_view import HOME_ANGLES
    assert not mode.enabled and mode.camera_angles() == (*HOME_ANGLES, 0.0)
    assert mode.state is Orbit.OFF


def test_atlas_benchmark_times_refreshes(qtbot):
    from handlatent.app.bench import run_atlas_bench
    torch.manual_seed(0)
    result = run_atlas_bench(build_model(ModelConfig(image_size=64)), n=2)
    assert result["atlas_refreshes"] == 2 and result["atlas_thumbnails"] == 64 * 5
    assert 0 < result["atlas_on_screen_median_ms"] <= result["atlas_refresh_median_ms"]
    wide = run_atlas_bench(build_model(ModelConfig(image_size=64)), n=1, columns=7)
    assert wide["atlas_refreshes"] == 1 and wide["atlas_thumbnails"] == 64 * 7
