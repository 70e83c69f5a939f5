"""Without Qt: the viewpoint-mode math (turntable angles -> viewpoint), Session.set_viewpoint,
the latent atlas (which latents, decoding in parts, cancellation) and the generic worker."""

import threading

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from array_helpers import fast

from handlatent.explorer import NewestWorker, Session
from handlatent.explorer.atlas import atlas_latents, atlas_values, decode_atlas
from handlatent.explorer.viewpoint import CAMERA_TO_DISPLAY, orbit_viewpoint, view_rotation
from handlatent.model import ModelConfig, build_model
from handlatent.rotations import geodesic_angle, random_rotations
from handlatent.skeleton import compose

torch.set_num_threads(2)
D = 64
Y2 = slice(32, 48)

azimuths = st.floats(-180, 180)
elevations = st.floats(-90, 90)
rolls = st.floats(-180, 180)
seeds = st.integers(0, 2**32 - 1)


def assert_rotation(r, atol=1e-9):
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=atol)
    assert np.linalg.det(r) == pytest.approx(1.0, abs=atol)


# ------------------------------------------------------------------------------ viewpoint math

def test_camera_to_display_keeps_image_up_on_screen_up():
    """Image camera (x right, y down, z forward) -> display (x right, y forward, z up)."""
    assert_rotation(CAMERA_TO_DISPLAY.astype(np.float64))
    np.testing.assert_array_equal(CAMERA_TO_DISPLAY @ [1, 0, 0], [1, 0, 0])
    np.testing.assert_array_equal(CAMERA_TO_DISPLAY @ [0, -1, 0], [0, 0, 1])   # image up
    np.testing.assert_array_equal(CAMERA_TO_DISPLAY @ [0, 0, 1], [0, 1, 0])    # forward


@fast
@given(azimuth=azimuths, elevation=elevations, roll=rolls)
def test_view_rotation_is_a_rotation(azimuth, elevation, roll):
    assert_rotation(view_rotation(azimuth, elevation, roll))


def test_view_rotation_reference_and_directions():
    np.testing.assert_allclose(view_rotation(0, 0, 0), np.eye(3), atol=1e-12)
    # From straight above (elevation 90) the top of the hand (image up, -y) faces the viewer.
    np.testing.assert_allclose(view_rotation(0, 90) @ [0, -1, 0], [0, 0, -1], atol=1e-12)
    # Azimuth turns about the image's vertical axis, roll about the line of sight.
    np.testing.assert_allclose(view_rotation(37, 0) @ [0, 1, 0], [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(view_rotation(0, 0, 37) @ [0, 0, 1], [0, 0, 1], atol=1e-12)
    assert np.degrees(geodesic_angle(np.eye(3), view_rotation(30, 0))) == pytest.approx(30)


@fast
@given(a=azimuths, b=azimuths, e=elevations)
def test_turntable_angles_add_up(a, b, e):
    """Orbiting by a then b about the vertical is orbiting by a + b (same for elevation)."""
    np.testing.assert_allclose(view_rotation(a, 0) @ view_rotation(b, 0), view_rotation(a + b, 0),
                               atol=1e-9)
    np.testing.assert_allclose(view_rotation(0, e / 2) @ view_rotation(0, e / 2),
                               view_rotation(0, e), atol=1e-9)


@fast
@given(seed=seeds, azimuth=azimuths, elevation=elevations, roll=rolls)
def test_orbit_viewpoint_turns_the_3d_pose_as_the_camera_sees_it(seed, azimuth, elevation, roll):
    rng = np.random.default_rng(seed)
    v = random_rotations(1, rng)[0]
    cpose = rng.standard_normal((21, 3))
    v2 = orbit_viewpoint(v, azimuth, elevation, roll)
    assert_rotation(v2)
    r = view_rotation(azimuth, elevation, roll)
    np.testing.assert_allclose(compose(cpose, v2), compose(cpose, v) @ r.T, atol=1e-9)
    np.testing.assert_allclose(v2 @ r, v, atol=1e-9)           # round trip
    # the relative rotation between old and new viewpoint has the camera's angle
    assert geodesic_angle(v, v2) == pytest.approx(geodesic_angle(np.eye(3), r), abs=1e-6)


def test_orbit_viewpoint_rejects_a_non_matrix():
    with pytest.raises(ValueError, match="3x3"):
        orbit_viewpoint(np.eye(4), 10, 0)


# ------------------------------------------------------------------------------ session

@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(ModelConfig(image_size=64)).eval()


@pytest.fixture
def session(model):
    kl = np.linspace(3.0, 0.5, D)
    kl[[3, 33, 50]] = 0.0                 # inactive: not in the atlas
    s = Session(model, asynchronous=False, latent_stats={"kl_per_dim": kl.tolist()})
    s.randomize(rng=0)
    yield s
    s.close()


def test_set_viewpoint_puts_the_encoder_mean_into_z_y2_as_one_undo_step(session, model):
    z0 = session.latent
    r = random_rotations(1, np.random.default_rng(1))[0]
    session.set_viewpoint(r)
    z1 = session.latent
    with torch.no_grad():
        mu, _ = model.encode_viewpoint(torch.tensor(r[None], dtype=torch.float32))
    np.testing.assert_allclose(z1[Y2], mu[0].numpy(), atol=1e-6)
    np.testing.assert_array_equal(np.delete(z1, np.r_[Y2]), np.delete(z0, np.r_[Y2]))
    np.testing.assert_allclose(session.viewpoint(), session.decode_now().viewpoint, atol=1e-6)
    with session.edit():                  # a whole orbit of the 3D view: one step
        for angle in (10, 20, 30):
            session.set_viewpoint(orbit_viewpoint(r, angle, 5))
    assert session.undo()
    np.testing.assert_array_equal(session.latent, z1)
    assert session.undo()
    np.testing.assert_array_equal(session.latent, z0)


@pytest.mark.parametrize("bad", [2 * np.eye(3), np.diag([1.0, 1.0, -1.0]), np.eye(2),
                                 np.full((3, 3), np.nan)])
def test_set_viewpoint_rejects_non_rotations(session, bad):
    z0 = session.latent
    with pytest.raises(ValueError, match="rotation"):
        session.set_viewpoint(bad)
    np.testing.assert_array_equal(session.latent, z0)


# ------------------------------------------------------------------------------ atlas

def test_atlas_values_span_two_sigma():
    np.testing.assert_allclose(atlas_values(7), [-2, -4 / 3, -2 / 3, 0, 2 / 3, 4 / 3, 2],
                               atol=1e-6)
    np.testing.assert_allclose(atlas_values(5, 3.0), [-3, -1.5, 0, 1.5, 3])
    with pytest.raises(ValueError):
        atlas_values(1)


def test_atlas_latents_vary_one_dimension_per_row():
    z = np.random.default_rng(0).standard_normal(D).astype(np.float32)
    dims = [40, 2, 17]
    values = atlas_values(7)
    latents = atlas_latents(z, dims, values)
    assert latents.shape == (3, 7, D)
    for row, dim in enumerate(dims):
        np.testing.assert_array_equal(latents[row, :, dim], values)
        others = np.delete(latents[row], dim, axis=1)
        np.testing.assert_array_equal(others, np.broadcast_to(np.delete(z, dim), others.shape))
    with pytest.raises(ValueError, match="index"):
        atlas_latents(z, [D], values)


def test_atlas_rows_are_the_active_dims_by_part_in_kl_order(session):
    dims = session.stats.atlas_dims()
    expected = [i for p in ("z_y1", "z_y2", "z_u") for i in session.stats.active_dims(p)]
    assert dims == expected and len(dims) == D - 3 and not {3, 33, 50} & set(dims)
    kl = session.stats.kl_per_dim
    for part in ("z_y1", "z_y2", "z_u"):
        s = session.layout.slices[part]
        in_part = [i for i in dims if s.start <= i < s.stop]
        assert all(kl[a] >= kl[b] for a, b in zip(in_part, in_part[1:]))


def test_request_atlas_decodes_every_row_in_parts_visible_rows_first(session):
    parts = []
    session.atlas.events.on("atlas_changed", parts.append)
    z = session.latent
    request_id = session.atlas.request(columns=5, first=[60, 7, 3])   # 3 is inactive
    assert [p.last for p in parts] == [False] * (len(parts) - 1) + [True]
    assert {p.request_id for p in parts} == {request_id}
    rows = [d for p in parts for d in p.dims]
    assert rows[:2] == [60, 7] and sorted(rows) == sorted(session.stats.atlas_dims())
    part = parts[0]
    assert part.images.shape == (len(part.dims), 5, 64, 64, 3) and part.images.dtype == np.uint8
    np.testing.assert_array_equal(part.z, z)
    # each thumbnail is the decoding of its latent, and the strip changes along the row
    single = session.decode_now(atlas_latents(z, [60], part.values)[0, 4]).image
    assert np.abs(part.images[0, 4].astype(int) - single.astype(int)).max() <= 1
    strip = part.images[0].astype(int)
    assert all(np.abs(strip[k] - strip[k + 1]).mean() > 0.1 for k in range(4))


def test_decode_atlas_stops_when_cancelled(model):
    z = np.zeros(D, np.float32)
    calls = []

    def cancelled():
        calls.append(1)
        return len(calls) > 2                     # two batches, then the request is stale

    parts = list(decode_atlas(model, z, list(range(10)), atlas_values(5), batch_latents=10,
                              cancelled=cancelled))
    assert [p.dims for p in parts] == [(0, 1), (2, 3)] and not parts[-1].last


def test_async_atlas_request_stops_once_the_latent_changed(model):
    s = Session(model, latent_stats={"kl_per_dim": [1.0] * D})
    try:
        parts, first, changed = [], threading.Event(), threading.Event()

        def on_part(part):                         # on the atlas worker
            parts.append(part)
            if len(parts) == 1:
                first.set()
                changed.wait(5)

        s.atlas.events.on("atlas_changed", on_part)
        s.atlas.request()
        assert first.wait(30)
        s.set_value(0, 1.5)                        # the atlas in progress is stale now
        changed.set()
        assert s.atlas.wait_idle(30)
        assert len(parts) == 1 and not parts[0].last
        s.atlas.request(columns=3)                 # a fresh request runs to the end
        assert s.atlas.wait_idle(60)
        assert parts[-1].last and parts[-1].z[0] == np.float32(1.5)
    finally:
        s.close()


def test_newest_worker_lets_a_long_job_see_it_was_superseded():
    started, release = threading.Event(), threading.Event()
    seen, results = [], []

    def job(request, request_id):
        started.set()
        release.wait(5)
        seen.append((request, worker.superseded))
        return None if request == "skip" else request

    worker = NewestWorker(job, results.append, results.append, what="testing")
    try:
        worker.submit("skip", 1)
        assert started.wait(5)
        worker.submit("b", 2)                      # arrives while "skip" runs
        release.set()
        assert worker.wait_idle(5)
        assert seen == [("skip", True), ("b", False)] and results == ["b"]
    finally:
        worker.close()
