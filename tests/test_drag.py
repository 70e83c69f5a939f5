"""Dragging a joint without Qt: handlatent.explorer.drag and the Session's begin/drag_to/end_drag.

Targets reachable by construction are the start position plus a small step; on the bundled
model (a trained pose decoder) the dragged joint must close at least half the distance while
every other joint moves less than it (except those it carries: the joints nearer the tip on its
finger may follow it), z_u stays and the whole drag is one undo step.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from handlatent.checkpoint import bundled_model, load_model
from handlatent.explorer import Session, drag
from handlatent.explorer.drag import DRAGGABLE_JOINTS, Z_LIMIT, drag_update, pose_points
from handlatent.model import ModelConfig, build_model

torch.set_num_threads(1)   # tiny ops: extra threads only contend with other jobs
BUNDLED = bundled_model()   # the one .pt in assets/models, whatever its name
STATS = {"kl_per_dim": [1.0] * 64}    # spares the KL estimate
MOVES = 10


@pytest.fixture(scope="module")
def bundled():
    return load_model(BUNDLED, "cpu")


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_model(ModelConfig(image_size=64)).eval()


def _target(start: np.ndarray, joint: int, seed: int, step: float = 0.3) -> np.ndarray:
    direction = np.random.default_rng(seed).standard_normal(3)
    return (start[joint] + step * direction / np.linalg.norm(direction)).astype(np.float32)


def _carried(joint: int) -> list[int]:
    """The joints nearer the fingertip than `joint` on its finger (keypoints run tip → MCP)."""
    tip = 1 + 4 * ((joint - 1) // 4)
    return list(range(tip, joint))


def _drag(session: Session, joint: int, target: np.ndarray, mode: str) -> None:
    """begin_drag, MOVES mouse moves along the straight line to `target`, end_drag."""
    start = pose_points(session.model, session.latent, mode)[joint]
    session.begin_drag(joint, mode)
    for t in np.linspace(0, 1, MOVES + 1)[1:]:
        session.drag_to(start + t * (target - start))
    session.end_drag()


@pytest.mark.parametrize("mode, joint, seed", [("xyz", 5, 0), ("xyz", 13, 1), ("xyz", 18, 2),
                                               ("cpose", 1, 3), ("cpose", 10, 4)])
def test_dragged_joint_reaches_the_target_and_the_rest_stays(bundled, mode, joint, seed):
    session = Session(bundled, asynchronous=False, latent_stats=STATS)
    z0 = session.stats.sample(seed)
    session.set_latent(z0, record=False)
    history = []
    session.events.on("history_changed", lambda: history.append(session.can_undo))
    before = pose_points(bundled, z0, mode)
    target = _target(before, joint, seed)
    _drag(session, joint, target, mode)

    z1 = session.latent
    after = pose_points(bundled, z1, mode)
    moved = np.linalg.norm(after - before, axis=1)
    assert np.linalg.norm(after[joint] - target) <= 0.5 * np.linalg.norm(before[joint] - target)
    assert np.delete(moved, [joint, *_carried(joint)]).max() < moved[joint]
    frame = session.last_decoded                          # the views' frame shows the result
    np.testing.assert_allclose(getattr(frame, mode), after, atol=1e-5)
    s = session.layout.slices
    np.testing.assert_array_equal(z1[s["z_u"]], z0[s["z_u"]])       # content fixed
    if mode == "cpose":
        np.testing.assert_array_equal(z1[s["z_y2"]], z0[s["z_y2"]])  # viewpoint too
    assert (np.abs(z1) <= np.maximum(Z_LIMIT, np.abs(z0))).all()    # within the sliders
    assert history == [True] and session.dragging is None            # one undo step ...
    assert session.undo() and not session.can_undo                   # ... back to the start
    np.testing.assert_array_equal(session.latent, z0)


def test_update_reports_distance_and_never_moves_content(tiny):
    z = np.random.default_rng(5).standard_normal(64).astype(np.float32)
    z[3] = -4.5                                   # beyond the sliders (e.g. an estimate)
    anchor = pose_points(tiny, z, "xyz")
    target = _target(anchor, 9, 5, step=0.05)
    update = drag_update(tiny, z, 9, target, anchor)
    reached = pose_points(tiny, update.z, "xyz")[9]
    assert update.distance == pytest.approx(float(np.linalg.norm(reached - target)), abs=1e-5)
    assert update.distance < np.linalg.norm(anchor[9] - target)
    np.testing.assert_array_equal(update.z[48:], z[48:])
    assert (np.abs(update.z) <= np.maximum(Z_LIMIT, np.abs(z))).all()
    assert not update.z.flags.writeable and update.elapsed_ms > 0


def test_asynchronous_drag_serves_the_newest_target_and_is_one_step(tiny, monkeypatch):
    session = Session(tiny, latent_stats=STATS)
    try:
        updates, started, release = [], threading.Event(), threading.Event()
        session.events.on("dragged", updates.append)
        real = drag.drag_update

        def slow_update(*args, **kw):         # the first update blocks until released
            started.set()
            release.wait(5)
            return real(*args, **kw)

        monkeypatch.setattr(drag, "drag_update", slow_update)
        z0 = session.latent
        start = pose_points(tiny, z0, "xyz")[5]
        session.begin_drag(5)
        session.drag_to(start + 0.01)
        assert started.wait(5)                 # busy: the next 49 targets queue up ...
        targets = [start + 0.002 * k for k in range(50)]
        for target in targets:
            session.drag_to(target)
        release.set()
        session.end_drag()                     # waits for the newest update
        assert len(updates) == 2               # ... and only the newest of them runs
        np.testing.assert_allclose(updates[-1].target, targets[-1])
        np.testing.assert_array_equal(session.latent, updates[-1].z)
        assert session.wait_idle(5)
        np.testing.assert_array_equal(session.last_decoded.z, updates[-1].z)
        assert session.undo() and not session.can_undo
        np.testing.assert_array_equal(session.latent, z0)
    finally:
        session.close()


def test_randomising_during_a_drag_leaves_the_session_consistent(tiny):
    """R pressed while drag updates run, 30 times at random moments: the latent is only ever
    written on the driving thread, every applied update is the latent right after it, and once
    the drag ended the sliders, the decoded frame and the history agree (one undo step)."""
    session = Session(tiny, latent_stats=STATS)
    try:
        main, writers, latents, mismatched = threading.get_ident(), set(), [], []

        def on_latent(z):
            writers.add(threading.get_ident())
            latents.append(z)

        session.events.on("latent_changed", on_latent)
        session.events.on("dragged", lambda u: mismatched.append(
            not np.array_equal(u.z, session.latent)))
        rng = np.random.default_rng(0)
        for _ in range(30):
            before = session.latent
            start = pose_points(tiny, before, "xyz")[5]
            session.begin_drag(5)
            for k in range(6):
                session.drag_to(start + 0.05 * rng.standard_normal(3))
                if k in (1, 3):
                    session.randomize(rng=rng)          # R during the drag
                time.sleep(rng.uniform(0, 0.004))
            session.end_drag()
            assert session.wait_idle(10)
            z = session.latent
            np.testing.assert_array_equal(latents[-1], z)                 # the sliders
            np.testing.assert_array_equal(session.last_decoded.z, z)      # the frame
            assert session.undo()                        # the drag and its samples: one step
            np.testing.assert_array_equal(session.latent, before)
            assert session.redo() and session.wait_idle(10)
            np.testing.assert_array_equal(session.latent, z)
        assert writers == {main} and mismatched and not any(mismatched)
    finally:
        session.close()


def test_bad_drags_raise_one_line_and_change_nothing(tiny):
    session = Session(tiny, asynchronous=False, latent_stats=STATS)
    for joint, mode in [(0, "xyz"), (21, "xyz"), (-1, "xyz"), (2.0, "xyz"), (True, "xyz"),
                        ("tip", "xyz"), (5, "viewpoint")]:
        with pytest.raises(ValueError) as error:
            session.begin_drag(joint, mode)
        assert "\n" not in str(error.value)
    assert session.dragging is None and not session.can_undo
    session.begin_drag(DRAGGABLE_JOINTS[-1], "cpose")
    assert session.dragging == (20, "cpose")
    for target in ([1.0, 2.0], [0.0, np.nan, 0.0], "far", [[1.0, 2.0, 3.0, 4.0]]):
        with pytest.raises(ValueError, match="drag target"):
            session.drag_to(target)
    session.end_drag()
    assert not session.can_undo                         # nothing moved: no undo step
    session.drag_to([0.0, 0.0, 0.0])                     # no drag in progress: ignored
    np.testing.assert_array_equal(session.latent, np.zeros(64, np.float32))


def test_undo_during_a_drag_ends_it(tiny):
    session = Session(tiny, asynchronous=False, latent_stats=STATS)
    start = pose_points(tiny, session.latent, "xyz")
    session.begin_drag(5)
    session.drag_to(_target(start, 5, 7, step=0.1))
    assert session.can_undo and session.undo()
    assert session.dragging is None and not session.can_undo
    session.drag_to(_target(start, 5, 8, step=0.1))      # the rest of that mouse drag
    np.testing.assert_array_equal(session.latent, np.zeros(64, np.float32))
    session.end_drag()                                   # the release: nothing left to do
    assert not session.can_undo and session.can_redo
