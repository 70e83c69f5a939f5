"""Poses out of the GUI: File ▸ Export pose (JSON / CSV in a chosen joint order) and the walk
panel's Export BVH, through their menu actions with the file chooser answered."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

pytest.importorskip("pytestqt")
torch = pytest.importorskip("torch")

from gui_helpers import shown_window  # noqa: E402

from handlatent.app import dialogs  # noqa: E402
from handlatent.explorer import Session  # noqa: E402
from handlatent.joint_orders import to_order  # noqa: E402
from handlatent.model import ModelConfig, build_model  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_settings(isolated_qsettings):
    """Recent files etc. go to a temporary folder (conftest.py)."""


@pytest.fixture
def window(qtbot):
    torch.manual_seed(0)
    session = Session(build_model(ModelConfig(image_size=64)).eval(), device="cpu")
    with shown_window(qtbot, session, 15000) as w:
        yield w
    session.close()


def answer_save_dialog(monkeypatch, path) -> list:
    asked = []

    def save_path(parent, title, name, file_filter, suffix):
        asked.append((title, file_filter))
        return str(path)

    monkeypatch.setattr(dialogs, "save_path", save_path)
    return asked


def test_export_pose_menu_writes_the_current_pose_in_the_chosen_order(qtbot, window, tmp_path,
                                                                     monkeypatch):
    session = window.session
    session.set_latent(np.random.default_rng(2).standard_normal(session.layout.total))
    asked = answer_save_dialog(monkeypatch, tmp_path / "pose.json")
    window.actions_by_name["export_pose_freihand"].trigger()
    assert "FreiHAND" in asked[0][0] and "*.csv" in asked[0][1]
    record = json.loads((tmp_path / "pose.json").read_text())
    assert record["keypoints"][:2] == ["wrist", "thumb_mcp"]
    np.testing.assert_allclose(record["xyz"], to_order(session.decode_now().xyz, "freihand"),
                               atol=1e-5)
    assert "pose.json" in window.statusBar().currentMessage()
    answer_save_dialog(monkeypatch, tmp_path / "pose.csv")
    window.actions_by_name["export_pose_stb"].trigger()
    rows = list(csv.DictReader((tmp_path / "pose.csv").open()))
    assert [r["joint"] for r in rows][:2] == ["palm", "little_mcp"]
    # a bad path: one line in the status bar, nothing written
    assert window.export_pose(str(tmp_path / "pose.txt")) is False
    assert "unsupported pose format" in window.statusBar().currentMessage()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pose.csv", "pose.json"]


def test_walk_panel_exports_bvh(qtbot, window, tmp_path, monkeypatch):
    panel = window.walk_panel
    assert not panel.bvh_button.isEnabled()
    panel.ends["A"].random.click()
    panel.ends["B"].random.click()
    assert panel.bvh_button.isEnabled()
    panel.frames.setValue(5)
    answer_save_dialog(monkeypatch, tmp_path / "walk.bvh")
    window.actions_by_name["walk_export_bvh"].trigger()
    text = (tmp_path / "walk.bvh").read_text()
    assert text.startswith("HIERARCHY\nROOT palm") and "\nFrames: 5\n" in text
    assert "walk.bvh" in window.statusBar().currentMessage()
    answer_save_dialog(monkeypatch, tmp_path / "missing" / "walk.bvh")
    panel.bvh_button.click()
    assert "does not exist" in window.statusBar().currentMessage()
