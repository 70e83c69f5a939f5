"""Rotation helpers shared by the skeleton code, the renderer and the model.

Every function accepts numpy arrays or torch tensors, batched over leading dimensions, and
returns the same type and float dtype; the torch paths are differentiable.
"""

from __future__ import annotations

from types import ModuleType
from typing import Literal, TypeVar, Union

import numpy as np
import torch

Array = TypeVar("Array", np.ndarray, torch.Tensor)
ArrayLike = Union[np.ndarray, torch.Tensor, float]

_AXES = {"x": 0, "y": 1, "z": 2}


def _xp(a: ArrayLike) -> ModuleType:
    """The array module (torch or numpy) that operations on `a` must use."""
    return torch if isinstance(a, torch.Tensor) else np


def _like(value: object, like: Array) -> Array:
    """`value` as an array of the same type, float dtype and device as `like`."""
    if isinstance(like, torch.Tensor):
        return torch.as_tensor(value, dtype=like.dtype, device=like.device)
    return np.asarray(value, dtype=like.dtype)


def _as_float(a: ArrayLike) -> Array:
    """`a` as a float array (torch tensors and float numpy arrays pass unchanged)."""
    if isinstance(a, torch.Tensor):
        return a if a.is_floating_point() else a.to(torch.get_default_dtype())
    a = np.asarray(a)
    return a if np.issubdtype(a.dtype, np.floating) else a.astype(np.float64)


def _numpy(a: ArrayLike) -> np.ndarray:
    """A detached numpy copy or view of `a`, for value checks that must not touch autograd."""
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def _norm(v: Array) -> Array:
    """Euclidean norm over the last axis (torch's norm has a finite subgradient at zero)."""
    if isinstance(v, torch.Tensor):
        return torch.linalg.vector_norm(v, dim=-1)
    return np.linalg.norm(v, axis=-1)


def _cross(a: Array, b: Array) -> Array:
    """Cross product over the last axis."""
    if isinstance(a, torch.Tensor):
        return torch.linalg.cross(a, b, dim=-1)
    return np.cross(a, b)


def _transpose(m: Array) -> Array:
    """Swap the last two axes (matrix transpose, batched)."""
    return _xp(m).swapaxes(m, -1, -2)


def _signed_svd(m: Array) -> tuple[Array, Array, Array]:
    """SVD `m = u diag(s) vh` with the sign of det(m) moved into u[..., 2] and s[..., 2].

    Then `u @ vh` is the nearest proper rotation to `m`.
    """
    xp = _xp(m)
    u, s, vh = xp.linalg.svd(m)
    d = xp.linalg.det(u) * xp.linalg.det(vh)
    flip = xp.stack([xp.ones_like(d), xp.ones_like(d), d], -1)
    return u * flip[..., None, :], s * flip, vh


_HALF = (torch.float16, torch.bfloat16)
PROJECTION_GRAD_FLOOR = 1e-2  # smallest s_i + s_j the projection's backward divides by


class _ProjectToSO3(torch.autograd.Function):
    """Polar rotation with the closed-form gradient, finite even for repeated singular values.

    torch's generic SVD backward is NaN or wrong when `m` is already a rotation (all singular
    values 1); the polar factor's derivative only needs s_i + s_j > 0.
    """

    @staticmethod
    def forward(ctx, m: torch.Tensor) -> torch.Tensor:
        u, s, vh = _signed_svd(m)
        ctx.save_for_backward(u, s, vh)
        return u @ vh

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        u, s, vh = ctx.saved_tensors
        a = _transpose(u) @ grad @ _transpose(vh)
        denom = s[..., :, None] + s[..., None, :]
        denom = denom + torch.eye(3, dtype=s.dtype, device=s.device)  # diagonal of a - aT is 0
        # Near a reflection (s_i + s_j -> 0) the exact derivative blows up; the clamp bounds the
        # gradient a raw matrix far from any rotation can send back (rotations give s = 1).
        denom = denom.clamp(min=PROJECTION_GRAD_FLOOR)
        return u @ ((a - _transpose(a)) / denom) @ vh


def project_to_so3(m: Array) -> Array:
    """Nearest rotation (Frobenius norm, det +1) to each `(..., 3, 3)` matrix, via SVD.

    Used to turn the viewpoint decoder's 9 raw numbers into a rotation; differentiable in torch.
    """
    if isinstance(m, torch.Tensor):
        # SVD has no half-precision kernels: under autocast (bf16/fp16) project in float32.
        with torch.autocast(m.device.type, enabled=False):
            full = m.float() if m.dtype in _HALF else m
            if torch.is_grad_enabled() and full.requires_grad:
                return _ProjectToSO3.apply(full).to(m.dtype)
            u, _, vh = _signed_svd(full)  # no gradient wanted: the same, without autograd
            return (u @ vh).to(m.dtype)
    u, _, vh = _signed_svd(m)
    return u @ vh


def geodesic_angle(r1: Array, r2: Array) -> Array:
    """Angle in radians of the rotation taking `r1` to `r2`, shape `(...)`, in [0, pi].

    Computed as atan2(sin, cos) of the relative rotation r1^T r2 rather than a clamped acos of
    (trace - 1) / 2: equal for rotations, but accurate for small angles in float32 and with a
    finite torch gradient when r1 == r2.
    """
    xp = _xp(r1)
    rel = _transpose(r1) @ r2
    cos2 = rel[..., 0, 0] + rel[..., 1, 1] + rel[..., 2, 2] - 1
    sin2 = _norm(xp.stack([rel[..., 2, 1] - rel[..., 1, 2],
                           rel[..., 0, 2] - rel[..., 2, 0],
                           rel[..., 1, 0] - rel[..., 0, 1]], -1))
    return xp.arctan2(sin2, cos2)


def axis_angle_to_matrix(axis_angle: Array) -> Array:
    """Rotation matrices `(..., 3, 3)` from axis-angle vectors `(..., 3)` (Rodrigues' formula).

    The vector's direction is the axis and its length the angle in radians (right-hand rule).
    """
    xp = _xp(axis_angle)
    v = _as_float(axis_angle)
    theta2 = (v * v).sum(-1)
    small = theta2 < xp.finfo(v.dtype).eps
    half = xp.sqrt(xp.where(small, xp.ones_like(theta2), theta2)) / 2  # safe for autograd
    sinc = xp.where(small, 1 - theta2 / 6, xp.sin(2 * half) / (2 * half))  # sin(t) / t
    versinc = xp.where(small, 0.5 - theta2 / 24, (xp.sin(half) / half) ** 2 / 2)  # (1-cos t)/t^2
    zero = xp.zeros_like(theta2)
    skew = xp.stack([xp.stack([zero, -v[..., 2], v[..., 1]], -1),
                     xp.stack([v[..., 2], zero, -v[..., 0]], -1),
                     xp.stack([-v[..., 1], v[..., 0], zero], -1)], -2)
    eye = _like(np.eye(3), v)
    outer = v[..., :, None] * v[..., None, :]
    return ((1 - versinc * theta2)[..., None, None] * eye + sinc[..., None, None] * skew
            + versinc[..., None, None] * outer)


def rotation_about(axis: Literal["x", "y", "z"], angle: ArrayLike) -> Array:
    """Rotations `(..., 3, 3)` by `angle` radians (shape `(...)`) about a coordinate axis.

    Column-vector convention (`R @ p` rotates counter-clockwise seen from the axis' tip);
    with row vectors use `p @ R.T`. A Python float angle gives a float64 numpy matrix.
    """
    if axis not in _AXES:
        raise ValueError(f"axis must be 'x', 'y' or 'z', got {axis!r}")
    angle = _as_float(angle)
    unit = _like(np.eye(3)[_AXES[axis]], angle)
    return axis_angle_to_matrix(angle[..., None] * unit)


def random_rotations(n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` rotations `(n, 3, 3)` drawn uniformly (Haar measure) on SO(3), float64.

    A normalised 4D Gaussian is a uniform unit quaternion; its axis-angle is
    2 * atan2(|xyz|, w) * xyz / |xyz|.
    """
    q = rng.standard_normal((n, 4))
    vec = q[:, 1:]
    length = np.linalg.norm(vec, axis=-1, keepdims=True)  # > 0 with probability 1
    return axis_angle_to_matrix(vec * (2 * np.arctan2(length, q[:, :1]) / length))
