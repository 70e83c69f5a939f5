"""The window's models: open and switch, follow a training run, compare two models (pytest-qt,
small random models, headless)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")
torch = pytest.importorskip("torch")

from PIL import Image  # noqa: E402
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QDropEvent  # noqa: E402
from gui_helpers import shown_window  # noqa: E402

from handlatent.checkpoint import save_checkpoint  # noqa: E402
from handlatent.explorer import Session  # noqa: E402
from handlatent.explorer.stats import images_to_tensor  # noqa: E402
from handlatent.model import ModelConfig, build_model  # noqa: E402

TIMEOUT_MS = 30000
A = ModelConfig(image_size=64, z_y1=6, z_y2=3, z_u=3, hidden=32, decoder_channels=16)
B = ModelConfig(image_size=128, z_y1=6, z_y2=3, z_u=3, hidden=32, decoder_channels=8)
OTHER = ModelConfig(image_size=64, z_y1=4, z_y2=3, z_u=2, hidden=32, decoder_channels=16)
STATS = {"kl_per_dim": [1.0] * 12}


def write_model(path: Path, config: ModelConfig, seed: int, step: int = 0) -> Path:
    torch.manual_seed(seed)
    save_checkpoint(path, build_model(config), extra={"step": step})
    return path


@pytest.fixture(autouse=True)
def _isolated_settings(isolated_qsettings):
    """Recent files etc. go to a temporary folder, not the user's QSettings (conftest.py)."""


@pytest.fixture
def window(qtbot, tmp_path):
    session = Session.from_checkpoint(write_model(tmp_path / "a.pt", A, 0), device="cpu")
    with shown_window(qtbot, session, TIMEOUT_MS) as w:
        yield w
    session.close()


def hand(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (80, 80, 3), dtype=np.uint8)).save(path)
    return path


def shown_latent(window) -> np.ndarray:
    return None if window.last_frame is None else window.last_frame.z


def test_open_model_switches_keeps_latent_and_images_and_is_remembered(qtbot, window,
                                                                       tmp_path):
    session = window.session
    assert window.open_image(str(hand(tmp_path / "h.png", 1)))
    session.set_value(2, 1.5)
    z = session.latent
    window.models.open_model(str(write_model(tmp_path / "b.pt", B, 1)))
    qtbot.waitUntil(lambda: session.name == "b", timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: window.last_frame.image.shape == (128, 128, 3), timeout=TIMEOUT_MS)
    np.testing.assert_array_equal(session.latent, z)
    assert window.image_pane.image().shape[:2] == (128, 128)
    assert window.input_pane.image().shape[:2] == (128, 128)     # the image, re-encoded
    message = window.statusBar().currentMessage()
    assert "kept the latent" in message and "re-encoded 1 loaded image" in message
    assert "b · 128 px" in window.model_label.text() and window.windowTitle().endswith("b")
    window.models.rebuild_recent_menu()
    texts = [a.text() for a in window.recent_models_menu.actions()]
    assert any(t.endswith("b.pt") for t in texts)
    # a dropped .pt switches too, to another layout: the sliders are rebuilt
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(write_model(tmp_path / "c.pt", OTHER, 2)))])
    window.dropEvent(QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime,
                                Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier))
    qtbot.waitUntil(lambda: session.name == "c", timeout=TIMEOUT_MS)
    assert len(window.latent_panel.sliders) == 9
    assert "differs" in window.statusBar().currentMessage()
    qtbot.waitUntil(lambda: np.array_equal(shown_latent(window), session.latent),
                    timeout=TIMEOUT_MS)
    np.testing.assert_allclose(session.latent, session.images["estimate"].z)


def test_bad_model_file_keeps_the_current_model(qtbot, window, tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    z = window.session.latent
    window.models.open_model(str(bad))
    qtbot.waitUntil(lambda: "broken.pt" in window.statusBar().currentMessage(),
                    timeout=TIMEOUT_MS)
    assert window.statusBar().currentMessage() == f"{bad}: not a PyTorch checkpoint file"
    assert window.session.name == "a"
    np.testing.assert_array_equal(window.session.latent, z)


def test_follow_a_run_that_gains_checkpoints(qtbot, window, tmp_path):
    """A fake run folder: empty at first (the window waits and says so), then the trainer's
    checkpoints arrive; each is loaded, the latent and images kept; a broken one is reported
    and the model shown stays; the validation curves follow metrics.jsonl."""
    run = tmp_path / "runs" / "fake"
    run.mkdir(parents=True)
    session = window.session
    assert window.models.follow_run(str(run))
    assert "waiting for its first checkpoint" in window.models.run_label.text()
    session.set_value(1, -1.0)
    z = session.latent
    write_model(run / "last.pt", A, 5, step=100)
    with open(run / "metrics.jsonl", "w") as f:
        f.write('{"split": "val", "step": 100, "total": 50.0, "dis": 30.0, "emb": 20.0}\n')
    qtbot.waitUntil(lambda: session.name == "fake/last", timeout=TIMEOUT_MS)
    first = session.model
    np.testing.assert_array_equal(session.latent, z)
    qtbot.waitUntil(lambda: "step 100" in window.models.run_label.text(), timeout=TIMEOUT_MS)
    assert "total 50" in window.models.run_label.text()
    assert window.models.curves.curves["total"].getOriginalDataset()[1].tolist() == [50.0]
    assert window.models.curves.log_scale       # positive losses: log scale
    frame_before = window.last_frame.image.copy()
    # the trainer writes the next checkpoint (atomically, as save_checkpoint does)
    time.sleep(0.02)
    write_model(run / "last.pt", A, 6, step=200)
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"split": "val", "step": 200, "total": 40.0, "dis": 25.0, "emb": 15.0}\n')
    qtbot.waitUntil(lambda: session.model is not first, timeout=TIMEOUT_MS)
    assert "Reloaded last.pt of fake" in window.statusBar().currentMessage()
    qtbot.waitUntil(lambda: not np.array_equal(window.last_frame.image, frame_before),
                    timeout=TIMEOUT_MS)
    np.testing.assert_array_equal(session.latent, z)
    qtbot.waitUntil(lambda: window.models.curves.curves["total"].getOriginalDataset()[1].tolist()
                    == [50.0, 40.0], timeout=TIMEOUT_MS)
    assert "step 200" in window.models.run_label.text()
    # a broken checkpoint while following: one line, the model shown stays
    model_before = session.model
    time.sleep(0.02)
    (run / ".tmp").write_bytes(b"garbage")
    os.replace(run / ".tmp", run / "best.pt")
    qtbot.waitUntil(lambda: "best.pt" in window.statusBar().currentMessage(),
                    timeout=TIMEOUT_MS)
    message = window.statusBar().currentMessage()
    assert "not a PyTorch checkpoint file" in message and "keeping the model shown" in message
    assert session.model is model_before
    np.testing.assert_array_equal(session.latent, z)


def test_compare_shows_both_models_for_every_change(qtbot, window, tmp_path):
    session = window.session
    window.models.compare_with(str(write_model(tmp_path / "b.pt", B, 1)))
    qtbot.waitUntil(lambda: session.compare.active, timeout=TIMEOUT_MS)
    pane = window.models.compare_view.pane
    assert pane.isVisible() and "b" in pane.title.text()
    session.set_value(0, 2.0)
    qtbot.waitUntil(lambda: pane.image() is not None and session.compare.last_decoded is not None
                    and np.array_equal(session.compare.last_decoded.z, session.latent),
                    timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: np.array_equal(window.skeleton.compared.z, session.latent),
                    timeout=TIMEOUT_MS)
    assert pane.image().shape[:2] == (128, 128)
    np.testing.assert_array_equal(pane.image(), session.compare.last_decoded.image)
    np.testing.assert_array_equal(window.skeleton.compared.xyz, session.compare.last_decoded.xyz)
    assert window.skeleton.compared_bones.visible
    # the transfer shows both answers
    assert window.transfer_panel.load("pose", str(hand(tmp_path / "p.png", 1)))
    assert window.transfer_panel.load("content", str(hand(tmp_path / "c.png", 2)))
    assert window.transfer_panel.compared.isVisible()
    assert window.transfer_panel.compared.image.image().shape[:2] == (128, 128)
    # a compared walk exports both rows
    session.walk.set_endpoint("A", np.zeros(12))
    session.walk.set_endpoint("B", np.full(12, 1.0))
    job = window.walk_panel.export(str(tmp_path / "walk.gif"), n_frames=4, fps=8,
                                   show_progress=False)
    qtbot.waitUntil(lambda: not job.is_running(), timeout=TIMEOUT_MS)
    gif = Image.open(tmp_path / "walk.gif")
    assert gif.size == (2 * 64, 2 * 64) and gif.n_frames == 4   # (image | skeleton) x 2 rows
    window.models.stop_comparing()
    assert not pane.isVisible() and not window.skeleton.compared_bones.visible


def test_compare_refuses_another_layout(qtbot, window, tmp_path):
    window.models.compare_with(str(write_model(tmp_path / "c.pt", OTHER, 2)))
    qtbot.waitUntil(lambda: "same latent layout" in window.statusBar().currentMessage(),
                    timeout=TIMEOUT_MS)
    assert not window.session.compare.active
    assert not window.models.compare_view.pane.isVisible()


def test_cli_compare_and_follow_errors_are_one_line(tmp_path):
    a = write_model(tmp_path / "a.pt", A, 0)
    other = write_model(tmp_path / "c.pt", OTHER, 2)
    env = dict(os.environ, HANDLATENT_NO_DIALOGS="1", QT_QPA_PLATFORM="offscreen")
    for args, expected in ((["--compare", str(other)], "same latent layout"),
                           (["--follow", str(tmp_path / "nope")], "no such run folder")):
        out = subprocess.run([sys.executable, "-m", "handlatent.app.cli", "--checkpoint", str(a),
                              *args], capture_output=True, text=True, env=env, timeout=120)
        assert out.returncode == 2
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0] and "Traceback" not in out.stderr


def test_cli_screenshot_of_the_compare_view(tmp_path):
    """--compare opens both models; --screenshot waits for both images."""
    a = write_model(tmp_path / "a.pt", A, 0)
    b = write_model(tmp_path / "b.pt", A, 1)
    shot = tmp_path / "compare.png"
    env = dict(os.environ, HANDLATENT_NO_DIALOGS="1")
    out = subprocess.run([sys.executable, "-m", "handlatent.app.cli", "--checkpoint", str(a),
                          "--compare", str(b), "--screenshot", str(shot)],
                         capture_output=True, text=True, env=env, timeout=180)
    assert out.returncode == 0, out.stderr
    assert Image.open(shot).size[0] > 800


def test_reload_and_compare_benchmarks_run(qtbot, tmp_path):
    from handlatent.app.bench import run_gui_bench
    from handlatent.app.bench_reload import run_reload_bench
    a = write_model(tmp_path / "a.pt", A, 0)
    result = run_reload_bench(a, n=2)
    assert result["reloads"] == 2 and result["reload_median_ms"] > 0
    assert result["reload_max_stall_ms"] > 0 and result["reload_apply_median_ms"] > 0
    compared = run_gui_bench(a, n=20, rate_hz=60, compare=write_model(tmp_path / "b.pt", A, 1))
    assert compared["compared_with"] == "b" and compared["changes_shown"] > 0


def test_curves_dock_plots_negative_losses_on_a_linear_scale(qtbot):
    """The calibrated image likelihood makes validation losses negative: no log scale then."""
    from handlatent.app.follow_panel import CurvesPanel
    from handlatent.explorer.follow import RunMetrics
    panel = CurvesPanel()
    qtbot.addWidget(panel)
    panel.set_metrics(RunMetrics(step=900, val=[{"step": 500, "total": -2.18e4, "dis": -1.3e4},
                                                {"step": 900, "total": -2.5e4, "dis": -1.5e4}]))
    assert not panel.log_scale
    assert panel.curves["total"].getOriginalDataset()[1].tolist() == [-2.18e4, -2.5e4]
    assert "total -2.5e+04" in panel.label.text()


def test_follow_sets_the_latent_from_the_image_or_keeps_it(qtbot, window, tmp_path):
    """Following with an image loaded: each new checkpoint re-encodes it and the latent is the
    new model's encoding (the default), or, with the option off, the latent is kept; the
    status says which."""
    run = tmp_path / "runs" / "fake"
    run.mkdir(parents=True)
    session = window.session
    assert window.open_image(str(hand(tmp_path / "h.png", 3)))
    assert window.models.follow_run(str(run))
    session.set_value(1, -1.0)                 # the user moves away from the encoding
    write_model(run / "last.pt", A, 7, step=100)
    qtbot.waitUntil(lambda: session.name == "fake/last", timeout=TIMEOUT_MS)
    encoded = session.images.get("estimate").z
    np.testing.assert_array_equal(session.latent, encoded)
    with torch.inference_mode():               # the new model's own reading of the image
        mu, _ = session.model.encode_image(
            images_to_tensor(session.images.get("estimate").model_input[None]))
    np.testing.assert_allclose(encoded, mu[0].numpy(), atol=1e-4)
    assert "the latent is its encoding of h.png" in window.statusBar().currentMessage()
    assert "the image re-encoded per checkpoint" in window.models.run_label.text()
    qtbot.waitUntil(lambda: shown_latent(window) is not None
                    and np.array_equal(shown_latent(window), encoded), timeout=TIMEOUT_MS)
    # the option off: the next checkpoint keeps the latent the user set
    window.actions_by_name["follow_from_image"].setChecked(False)
    assert "latent kept across checkpoints" in window.models.run_label.text()
    session.set_value(1, 1.5)
    z = session.latent
    model_before = session.model
    time.sleep(0.02)
    write_model(run / "last.pt", A, 8, step=200)
    qtbot.waitUntil(lambda: session.model is not model_before, timeout=TIMEOUT_MS)
    np.testing.assert_array_equal(session.latent, z)
    assert "kept the latent" in window.statusBar().currentMessage()
    assert not np.array_equal(session.images.get("estimate").z, encoded)   # re-encoded anyway
