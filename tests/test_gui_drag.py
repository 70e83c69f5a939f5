"""Dragging a joint in the real window: mouse events on the 3D view's surface (pytest-qt;
pytest-xvfb gives it a display), on the bundled model so that the pose decoder is a trained one.

The target is what the view computes under the cursor; the test checks it lies under the
cursor, that the decoded joint closed at least half the distance to it while every other joint
moved less, that the camera did not orbit, and that the whole drag is one undo step.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")
torch = pytest.importorskip("torch")

from PySide6.QtCore import QPoint, Qt  # noqa: E402
from PySide6.QtGui import QGuiApplication  # noqa: E402
from gui_helpers import shown_window  # noqa: E402

from handlatent.checkpoint import bundled_model  # noqa: E402
from handlatent.explorer import Session  # noqa: E402

BUNDLED = bundled_model()   # the one .pt in assets/models, whatever its name
FRAME_TIMEOUT_MS = 15000


@pytest.fixture
def session():
    torch.set_num_threads(1)
    s = Session.from_checkpoint(BUNDLED, device="cpu")
    yield s
    s.close()


@pytest.fixture
def window(qtbot, session, monkeypatch):
    monkeypatch.setenv("HANDLATENT_NO_DIALOGS", "1")
    with shown_window(qtbot, session, FRAME_TIMEOUT_MS,
                      ready=lambda w: w.skeleton.frame is not None) as w:
        yield w


def _point(xy: np.ndarray) -> QPoint:
    return QPoint(int(round(xy[0])), int(round(xy[1])))


def _camera(view) -> tuple:
    cam = view.view.camera
    return cam.azimuth, cam.elevation, cam.roll, tuple(cam.center), cam.scale_factor


@pytest.mark.parametrize("mode, joint, offset", [("xyz", 5, (30, -25)), ("xyz", 13, (-25, 20)),
                                                 ("cpose", 17, (20, 25))])
def test_mouse_drag_moves_the_joint_under_the_cursor(qtbot, window, session, mode, joint,
                                                     offset):
    from handlatent.app.skeleton_view import to_display
    view = window.skeleton
    view.set_mode(mode)
    before = getattr(window.last_frame, mode).copy()
    z0, camera = session.latent, _camera(view)
    targets = []
    view.jointDragged.connect(targets.append)
    start = view.screen_positions()[joint, :2]
    end = start + np.asarray(offset, float)

    qtbot.mousePress(view.surface, Qt.MouseButton.LeftButton, pos=_point(start))
    assert view.grabbed == joint and session.dragging == (joint, mode)
    for t in np.linspace(0, 1, 9)[1:]:
        qtbot.mouseMove(view.surface, _point(start + t * (end - start)))
        qtbot.wait(30)
    qtbot.mouseRelease(view.surface, Qt.MouseButton.LeftButton, pos=_point(end))
    assert view.grabbed is None and session.dragging is None

    assert len(targets) == 8 and _camera(view) == camera      # the camera did not orbit
    target = targets[-1]
    view_target = view.view.scene.node_transform(view.canvas.scene).map(to_display(target))
    np.testing.assert_allclose(view_target[:2] / view_target[3], _point(end).toTuple(), atol=0.5)
    assert session.wait_idle(10)
    qtbot.waitUntil(lambda: np.array_equal(window.last_frame.z, session.latent),
                    timeout=FRAME_TIMEOUT_MS)
    after = getattr(window.last_frame, mode)
    moved = np.linalg.norm(after - before, axis=1)
    assert np.linalg.norm(after[joint] - target) <= 0.5 * np.linalg.norm(before[joint] - target)
    assert np.delete(moved, joint).max() < moved[joint]
    np.testing.assert_allclose(view.positions, to_display(after), atol=1e-6)   # drawn
    i = int(np.argmax(np.abs(session.latent - z0)))                              # sliders follow
    assert window.latent_panel.slider(i).value() == pytest.approx(session.latent[i], abs=0.01)

    assert session.undo() and not session.can_undo                  # the drag was one step
    np.testing.assert_array_equal(session.latent, z0)


@pytest.mark.skipif("QGuiApplication.platformName() in ('offscreen', 'minimal')",
                    reason="vispy's camera needs OpenGL to handle the mouse")
def test_press_away_from_the_joints_still_orbits(qtbot, window, session):
    view = window.skeleton
    z0, azimuth = session.latent, view.view.camera.azimuth
    corner = QPoint(15, view.surface.height() - 15)
    assert view.pick(corner.x(), corner.y()) is None
    qtbot.mousePress(view.surface, Qt.MouseButton.LeftButton, pos=corner)
    assert view.grabbed is None and session.dragging is None
    for dx in (10, 20, 40, 60):
        qtbot.mouseMove(view.surface, corner + QPoint(dx, 0))
    qtbot.mouseRelease(view.surface, Qt.MouseButton.LeftButton, pos=corner + QPoint(60, 0))
    assert view.view.camera.azimuth != pytest.approx(azimuth)
    np.testing.assert_array_equal(session.latent, z0)
    assert not session.can_undo


def test_drag_benchmark_reports_update_times(qtbot, session):
    from handlatent.app.bench import run_drag_bench
    z0 = session.latent
    result = run_drag_bench(session, n=12, rate_hz=30)
    assert result["drag_moves"] == 12 and 0 < result["drag_updates"] <= 12
    assert 0 < result["drag_optimise_median_ms"] <= result["drag_update_median_ms"]
    assert np.isfinite([result["drag_update_p95_ms"], result["drag_frame_median_ms"]]).all()
    assert result["drag_final_distance"] < 0.05        # the loop ends where it began
    np.testing.assert_array_equal(session.latent, z0)  # the drag was undone
