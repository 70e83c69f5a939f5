"""The Pose measurements dock and the slider / atlas names in a real window (pytest-qt)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")
torch = pytest.importorskip("torch")

from gui_helpers import shown_window  # noqa: E402

from handlatent.checkpoint import save_checkpoint  # noqa: E402
from handlatent.explorer import Session  # noqa: E402
from handlatent.model import ModelConfig, build_model  # noqa: E402
from handlatent.pose_measures import measure_pose  # noqa: E402

TIMEOUT_MS = 15000


@pytest.fixture(autouse=True)
def _isolated_settings(isolated_qsettings):
    """Recent files etc. go to a temporary folder (conftest.py)."""


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model(ModelConfig(image_size=64, z_y1=8, z_y2=4, z_u=4, hidden=64,
                                    decoder_channels=16))
    path = tmp_path_factory.mktemp("measures") / "tiny.pt"
    save_checkpoint(path, model, extra={"latent_stats": {"kl_per_dim": [1.0] * 16}})
    return path


@pytest.fixture
def window(qtbot, checkpoint):
    session = Session.from_checkpoint(checkpoint, device="cpu")
    with shown_window(qtbot, session, TIMEOUT_MS) as w:
        yield w
    session.close()


def _shown_values(panel) -> np.ndarray:
    return np.array([[float(cell.text().rstrip("°")) for cell in row]
                     for row in panel.angle_cells])


def test_the_dock_follows_a_slider_and_measures_the_frame_shown(qtbot, window) -> None:
    panel = window.measures_panel
    assert not window.measures_dock.isVisible() and panel.measure_count == 0  # hidden: idle
    window.actions_by_name["measures"].trigger()
    qtbot.waitUntil(lambda: panel.measured_id == window.last_frame.request_id, timeout=TIMEOUT_MS)
    before = _shown_values(panel)
    window.latent_panel.slider(0).setValue(2.5)            # a pose slider
    qtbot.waitUntil(lambda: window.last_frame.z[0] == pytest.approx(2.5)
                    and panel.measured_id == window.last_frame.request_id, timeout=TIMEOUT_MS)
    m = measure_pose(window.last_frame.xyz)         # the 3D pose: the canonical one turned
    shown = _shown_values(panel)
    expected = np.concatenate([m.flexion, m.spread[:, None]], 1)
    np.testing.assert_allclose(shown, np.round(expected), atol=0.51)
    assert not np.array_equal(shown, before)
    assert panel.length_cells[2][1].text() == f"{m.bone_lengths[2, 1]:.2f}"   # bone units
    assert "bone units" in panel.unit.text()
    panel.scale.setValue(30.0)                              # a known scale: millimetres
    assert panel.length_cells[2][1].text() == f"{30 * m.bone_lengths[2, 1]:.1f}"
    found = m.implausible()
    assert ("Implausible" in panel.warning.text()) == bool(found)


def test_sliders_and_atlas_name_what_each_dimension_moves(qtbot, window) -> None:
    names = window.session.dim_labels.names
    assert any(names[:12]) and not any(names[12:])          # z_u moves no pose
    for i, row in window.latent_panel.sliders.items():
        assert names[i] in row.what.toolTip()
        assert row.what.text() == names[i]
    atlas = window.atlas_panel.grid.labels
    for dim, (top, bottom) in atlas.items():
        assert top == names[dim] if names[dim] else top.isdigit()
