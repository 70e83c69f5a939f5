"""Dragging a joint: move the pose latents so that the decoded pose puts one joint at a target.

One update (one mouse move) takes damped Gauss-Newton (Levenberg-Marquardt) steps on

    E(y) = |p_j(y) - t|^2 + keep * mean_k |p_k(y) - a_k|^2 + prior * |y|^2

where y are the free sub-latents (z_y1 and z_y2 for the 3D pose "xyz", z_y1 alone for the
canonical pose "cpose"), p(y) the joints decoded by the pose decoders only (`DVAE.decode_pose`;
the image decoder never runs here), t the target, a the pose when the drag began (k over the
other joints: the rest of the hand stays put unless it has to move) and |y|^2 the negative log
prior N(0, I) up to a constant. No value of y leaves the sliders' ±3σ (one that was already
beyond it does not go further). z_u (content) is never changed. A step is accepted only when E
decreases (the damping grows otherwise), so an update never makes things worse, and there is no
step size to tune per model. On the bundled model one such step per mouse move closed as much
of the distance as two, and more than eight Adam or gradient steps, in a fraction of their time
(docs/gui.md, "Dragging a joint").

Targets are in the frame of `Decoded.xyz` (root-relative, normalised units) or `Decoded.cpose`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from handlatent.model import DVAE
from handlatent.skeleton import NUM_KEYPOINTS

DRAG_MODES = ("xyz", "cpose")
# The latents each mode optimises: the 3D pose depends on both pose parts, the CPose on z_y1.
FREE_PARTS = {"xyz": ("z_y1", "z_y2"), "cpose": ("z_y1",)}
# Every joint but the palm root (keypoint 0): poses are root-relative (the root is the origin of
# the training labels), so the root has no position of its own to drag.
DRAGGABLE_JOINTS = tuple(range(1, NUM_KEYPOINTS))
Z_LIMIT = 3.0   # |z_i| bound of an update: the latent panel's slider range, ±3σ of the prior
MAX_RETRIES = 4  # rejected steps (damping ×10 each) before an update gives up a step


@dataclass(frozen=True)
class DragSettings:
    """Weights and effort of one drag update (the defaults are tuned on the bundled model)."""

    steps: int = 1          # Gauss-Newton steps per update (per mouse move)
    keep: float = 2.0       # weight of the other joints' mean squared displacement
    prior: float = 1e-3     # weight of |y|^2, the negative log prior
    damping: float = 0.01   # initial Levenberg-Marquardt damping


@dataclass(frozen=True)
class DragUpdate:
    """The result of one update; `z` is read-only, so it can be shared between threads."""

    z: np.ndarray        # (d,) float32: the latent after the update
    joint: int
    target: np.ndarray   # (3,) float32: where the joint was asked to go
    distance: float      # |joint - target| after the update, normalised units
    elapsed_ms: float    # optimisation time


@dataclass
class Drag:
    """A drag in progress: the grabbed joint, the frame it moves in and the latent it began at.

    Its updates chain: each starts from the latent of the one before, so that a worker need not
    wait for the driving thread to apply a result before it computes the next. A change of the
    latent from elsewhere (a random sample) starts a new `generation`, whose first update starts
    from that latent; results of an older generation are stale. `anchor`, `chain` and
    `chain_generation` belong to the worker; `expected`, `generation` and `target` to the thread
    that drives the session.
    """

    joint: int
    mode: str
    start: np.ndarray                    # (d,) the latent when the drag began
    anchor: np.ndarray | None = None     # (21, 3) its pose, computed by the first update
    expected: np.ndarray | None = None   # the session's latent that the updates continue
    generation: int = 0
    target: np.ndarray | None = None     # the newest target handed to the worker
    chain: np.ndarray | None = None      # the worker's newest result
    chain_generation: int = -1

    def continue_from(self, generation: int, base: np.ndarray) -> np.ndarray:
        """Worker: the latent an update of `generation` starts from: the newest result of that
        generation, or `base` (the session's latent when it was asked for) for its first."""
        if generation != self.chain_generation:
            self.chain, self.chain_generation = base, generation
        return self.chain

    def update(self, model: DVAE, z: np.ndarray, target: np.ndarray,
               settings: DragSettings = DragSettings()) -> DragUpdate:
        """`drag_update` from latent z towards `target`, keeping the other joints at the start."""
        if self.anchor is None:
            self.anchor = pose_points(model, self.start, self.mode)
        return drag_update(model, z, self.joint, target, self.anchor, self.mode, settings)


def check_drag(joint: Any, mode: Any) -> tuple[int, str]:
    """(joint, mode) validated: a draggable joint index and a mode; ValueError (one line) else."""
    if mode not in DRAG_MODES:
        raise ValueError(f"drag mode must be one of {', '.join(DRAG_MODES)}, got {mode!r}")
    if isinstance(joint, (bool, np.bool_)) or not isinstance(joint, (int, np.integer)) \
            or int(joint) not in DRAGGABLE_JOINTS:
        raise ValueError(f"draggable joints are 1..{NUM_KEYPOINTS - 1} (all but the palm "
                         f"root 0), got {joint!r}")
    return int(joint), str(mode)


def check_target(target: Any) -> np.ndarray:
    """A drag target as (3,) float32; ValueError (one line) unless it is 3 finite numbers."""
    try:
        point = np.array(target, dtype=np.float32).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"a drag target must be 3 numbers, got {target!r}") from None
    if point.shape != (3,) or not np.isfinite(point).all():
        raise ValueError(f"a drag target must be 3 finite numbers, got {point.tolist()}")
    return point


def _free_index(model: DVAE, mode: str) -> torch.Tensor:
    """Indices into z of the sub-latents `mode` optimises."""
    slices = model.layout.slices
    return torch.cat([torch.arange(slices[p].start, slices[p].stop) for p in FREE_PARTS[mode]])


def _points(model: DVAE, z: torch.Tensor, mode: str) -> torch.Tensor:
    """Decoded joints (B, 21, 3) of latents z (B, d) in `mode`'s frame (pose decoders only)."""
    return model.decode_pose(z)[mode]


def pose_points(model: DVAE, z: np.ndarray, mode: str) -> np.ndarray:
    """The joints (21, 3) of latent z (d,) in `mode`'s frame, as `Decoded` has them."""
    device = model.image_mean.device
    with torch.inference_mode():
        zt = torch.tensor(np.asarray(z, dtype=np.float32), device=device)[None]
        return _points(model, zt, mode)[0].float().cpu().numpy()


def _with_free(z: torch.Tensor, free: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Latents (B, d): z with its free entries replaced by the rows of y (B, k)."""
    full = z.expand(len(y), -1).clone()
    full[:, free] = y
    return full


def _jacobian(model: DVAE, z: torch.Tensor, free: torch.Tensor, y: torch.Tensor,
              mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Joints (63,) at y and their Jacobian (63, k): one batched pass, row i of copy i."""
    n = 3 * NUM_KEYPOINTS
    batch = y.detach()[None].repeat(n, 1).requires_grad_(True)
    with torch.enable_grad():
        points = _points(model, _with_free(z, free, batch), mode).reshape(n, n)
        (jac,) = torch.autograd.grad(torch.diagonal(points).sum(), batch)
    return points[0].detach(), jac


def drag_update(model: DVAE, z: np.ndarray, joint: int, target: np.ndarray,
                anchor: np.ndarray, mode: str = "xyz",
                settings: DragSettings = DragSettings()) -> DragUpdate:
    """Move `joint` of latent z's decoded pose towards `target`, the other joints near `anchor`.

    z (d,) is the latent to start from, anchor (21, 3) the pose when the drag began, both in
    `mode`'s frame. Returns the new latent (only `FREE_PARTS[mode]` change) and its distance.
    """
    joint, mode = check_drag(joint, mode)
    target = check_target(target)
    start = time.perf_counter()
    device = model.image_mean.device
    z_t = torch.tensor(np.asarray(z, dtype=np.float32), device=device)[None]
    free = _free_index(model, mode).to(device)
    t = torch.tensor(target, device=device)
    a = torch.tensor(np.asarray(anchor, dtype=np.float32), device=device).reshape(-1)
    k = len(free)
    others = torch.ones(NUM_KEYPOINTS, dtype=torch.bool, device=device)
    others[joint] = False
    rows = torch.arange(3 * NUM_KEYPOINTS, device=device).view(NUM_KEYPOINTS, 3)
    own, rest = rows[joint], rows[others].reshape(-1)
    keep = (settings.keep / (NUM_KEYPOINTS - 1)) ** 0.5
    prior = settings.prior ** 0.5
    eye = torch.eye(k, device=device)

    def residual(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.cat([p[own] - t, keep * (p[rest] - a[rest]), prior * y])

    y = z_t[0, free].clone()
    bound = y.abs().clamp(min=Z_LIMIT)    # never beyond ±3σ, or beyond where a value already is
    with torch.no_grad():
        p, jac = _jacobian(model, z_t, free, y, mode)
        r = residual(p, y)
        energy = float(r @ r)
        damping = settings.damping
        for step in range(settings.steps):
            A = torch.cat([jac[own], keep * jac[rest], prior * eye])
            gradient, hessian = A.T @ r, A.T @ A
            for _ in range(MAX_RETRIES):
                candidate = torch.minimum(torch.maximum(
                    y - torch.linalg.solve(hessian + damping * eye, gradient), -bound), bound)
                p_new = _points(model, _with_free(z_t, free, candidate[None]), mode).reshape(-1)
                r_new = residual(p_new, candidate)
                if float(r_new @ r_new) < energy:
                    break
                damping *= 10
            else:
                break   # no decrease within MAX_RETRIES: this update keeps what it has
            y, p, r, energy = candidate, p_new, r_new, float(r_new @ r_new)
            damping /= 3
            if step + 1 < settings.steps:
                p, jac = _jacobian(model, z_t, free, y, mode)
        out = z_t[0].clone()
        out[free] = y
    z_new = out.float().cpu().numpy()
    z_new.setflags(write=False)
    distance = float(torch.linalg.vector_norm(p[own] - t))
    return DragUpdate(z=z_new, joint=joint, target=target, distance=distance,
                      elapsed_ms=(time.perf_counter() - start) * 1000)
