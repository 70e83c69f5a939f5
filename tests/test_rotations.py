"""Properties of handlatent.rotations on numpy and torch, float32 and float64."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from array_helpers import as_numpy, convert, fast
from array_helpers import tolerance as tol

from handlatent.rotations import (axis_angle_to_matrix, geodesic_angle, project_to_so3,
                                  random_rotations, rotation_about)

BACKENDS = [("numpy", np.float64), ("numpy", np.float32),
            ("torch", torch.float64), ("torch", torch.float32)]
seeds = st.integers(0, 2**32 - 1)


def assert_rotations(r, atol):
    r = as_numpy(r)
    np.testing.assert_allclose(r @ r.swapaxes(-1, -2), np.broadcast_to(np.eye(3), r.shape),
                               atol=atol)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=atol)


def assert_same_kind(out, like):
    assert type(out) is type(like)
    assert out.dtype == like.dtype


@pytest.mark.parametrize("backend,dtype", BACKENDS)
@fast
@given(seed=seeds)
def test_project_to_so3_gives_the_nearest_rotation(backend, dtype, seed):
    rng = np.random.default_rng(seed)
    m = convert(rng.standard_normal((2, 4, 3, 3)), backend, dtype)  # about half have det < 0
    r = project_to_so3(m)
    assert_same_kind(r, m)
    assert r.shape == m.shape
    assert_rotations(r, 20 * tol(dtype))
    distance = np.linalg.norm(as_numpy(m) - as_numpy(r), axis=(-2, -1))
    for other in random_rotations(16, rng):
        assert np.all(distance <= np.linalg.norm(as_numpy(m) - other, axis=(-2, -1)) + 1e-5)


@pytest.mark.parametrize("backend,dtype", BACKENDS)
@fast
@given(seed=seeds)
def test_project_to_so3_is_identity_on_rotations(backend, dtype, seed):
    r = convert(random_rotations(5, np.random.default_rng(seed)), backend, dtype)
    np.testing.assert_allclose(as_numpy(project_to_so3(r)), as_numpy(r), atol=20 * tol(dtype))


@pytest.mark.parametrize("at_rotation", [False, True])
def test_project_to_so3_gradient_matches_finite_differences(at_rotation):
    rng = np.random.default_rng(0)
    m = random_rotations(6, rng) if at_rotation else rng.standard_normal((6, 3, 3))
    m = torch.tensor(m, requires_grad=True)
    assert torch.autograd.gradcheck(project_to_so3, (m,))


def test_project_to_so3_gradient_is_finite_on_float32_identity():
    m = torch.eye(3).repeat(4, 1, 1).requires_grad_()
    (project_to_so3(m) * torch.randn(4, 3, 3)).sum().backward()
    assert torch.isfinite(m.grad).all() and m.grad.abs().sum() > 0


@pytest.mark.parametrize("backend,dtype", BACKENDS)
@fast
@given(seed=seeds, theta=st.floats(-np.pi, np.pi))
def test_geodesic_angle_of_a_rotation_about_z_is_its_angle(backend, dtype, seed, theta):
    r = convert(random_rotations(3, np.random.default_rng(seed)), backend, dtype)
    turned = r @ rotation_about("z", convert(theta, backend, dtype))
    angle = geodesic_angle(r, turned)
    assert_same_kind(angle, r)
    assert angle.shape == (3,)
    atol = 2e-3 if dtype in (np.float32, torch.float32) and abs(theta) > 3.1 else 1e-5
    np.testing.assert_allclose(as_numpy(angle), abs(theta), atol=atol)
    np.testing.assert_allclose(as_numpy(geodesic_angle(turned, r)), abs(theta), atol=atol)


def test_geodesic_angle_equals_the_trace_formula_and_is_accurate_when_small():
    rng = np.random.default_rng(1)
    r1, r2 = random_rotations(100, rng), random_rotations(100, rng)
    trace = np.trace(r1.swapaxes(-1, -2) @ r2, axis1=-2, axis2=-1)
    np.testing.assert_allclose(geodesic_angle(r1, r2), np.arccos((trace - 1) / 2), atol=1e-7)
    small = torch.tensor(1e-5)
    r = torch.tensor(r1[:1], dtype=torch.float32)
    np.testing.assert_allclose(geodesic_angle(r, r @ rotation_about("x", small)), 1e-5, rtol=1e-2)


def test_geodesic_angle_gradient_is_finite_at_equal_rotations():
    r = torch.tensor(random_rotations(3, np.random.default_rng(2)), requires_grad=True)
    geodesic_angle(r, r.detach()).sum().backward()
    assert torch.isfinite(r.grad).all()


def test_random_rotations_are_uniform():
    r = random_rotations(20000, np.random.default_rng(3))
    assert r.shape == (20000, 3, 3) and r.dtype == np.float64
    assert_rotations(r, 1e-12)
    np.testing.assert_allclose(r.mean(0), 0, atol=0.02)  # Haar measure: E[R] = 0
    angle = geodesic_angle(np.eye(3), r)  # density (1 - cos t) / pi on [0, pi]
    for t in (0.5, 1.5, 2.5):
        assert abs(np.mean(angle <= t) - (t - np.sin(t)) / np.pi) < 0.015
    np.testing.assert_array_equal(random_rotations(4, np.random.default_rng(3)), r[:4])


@pytest.mark.parametrize("backend,dtype", BACKENDS)
@fast
@given(seed=seeds, length=st.floats(0, np.pi))
def test_axis_angle_rotates_about_its_axis_by_its_length(backend, dtype, seed, length):
    axis = np.random.default_rng(seed).standard_normal(3)
    axis /= np.linalg.norm(axis)
    r = axis_angle_to_matrix(convert(length * axis, backend, dtype))
    assert_same_kind(r, convert(axis, backend, dtype))
    assert_rotations(r, 20 * tol(dtype))
    np.testing.assert_allclose(as_numpy(r) @ axis, axis, atol=20 * tol(dtype))
    np.testing.assert_allclose(as_numpy(geodesic_angle(np.eye(3), as_numpy(r))), length,
                               atol=1e-3 if length > 3.1 else 1e-5)


def test_axis_angle_handles_zero_and_tiny_angles_with_gradients():
    v = torch.tensor([[0.0, 0.0, 0.0], [1e-9, -2e-9, 0.0], [0.3, -0.2, 0.9]],
                     dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(axis_angle_to_matrix, (v,))
    np.testing.assert_allclose(axis_angle_to_matrix(v)[0].detach(), np.eye(3))
    assert axis_angle_to_matrix(np.zeros((2, 5, 3))).shape == (2, 5, 3, 3)


def test_rotation_about_follows_the_right_hand_rule_for_column_vectors():
    e = np.eye(3)
    quarter = np.pi / 2
    np.testing.assert_allclose(rotation_about("z", quarter) @ e[0], e[1], atol=1e-15)
    np.testing.assert_allclose(rotation_about("x", quarter) @ e[1], e[2], atol=1e-15)
    np.testing.assert_allclose(rotation_about("y", quarter) @ e[2], e[0], atol=1e-15)
    angles = np.linspace(-3, 3, 6).reshape(2, 3)
    r = rotation_about("y", angles)
    assert r.shape == (2, 3, 3, 3)
    np.testing.assert_allclose(r[1, 2], rotation_about("y", 3.0))
    t = rotation_about("x", torch.tensor([0.1, 0.2], dtype=torch.float32))
    assert t.dtype == torch.float32 and t.shape == (2, 3, 3)
    with pytest.raises(ValueError, match="axis"):
        rotation_about("w", 0.1)


def test_project_to_so3_under_bf16_autocast_keeps_dtype_and_gradient() -> None:
    """Mixed-precision training (run.amp: bf16) projects in float32 and back-propagates."""
    m = torch.randn(4, 3, 3, dtype=torch.bfloat16, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        r = project_to_so3(m)
    assert r.dtype == torch.bfloat16
    r.float().sum().backward()
    assert m.grad is not None and torch.isfinite(m.grad.float()).all()
    eye = (r.float().transpose(-1, -2) @ r.float())
    assert torch.allclose(eye, torch.eye(3).expand(4, 3, 3), atol=3e-2)
