"""Short names for what each pose and viewpoint dimension of a dVAE's latent moves.

A slider numbered 7 says little; "index curls" says what moving it right does. For every
z_y1 dimension the CPose decoder is run at reference latents with that dimension one σ below
and above (a central difference over 2σ, averaged over the references), the poses measured
(handlatent.pose_measures) and the dimension named for the finger quantity that changes most:
a finger's curl (the sum of its flexion angles) or its spread. For every z_y2 dimension the
viewpoint decoder's rotation is compared the same way and the dimension named for the camera
axis it turns about most: "roll" (the optical axis z), "pitch" (x, right) or "yaw" (y, down).
z_u does not reach the pose decoders and gets no name. Computed once per model (about 0.1 s
on a CPU core) and stored in a packaged checkpoint's extra["dim_labels"].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from handlatent.pose_measures import measure_pose
from handlatent.skeleton import FINGERS

REFERENCES = 16        # reference latents: z = 0 and 15 draws from the prior N(0, I)
SEED = 0
STEP = 1.0             # σ either side of each reference
MIN_EFFECT_DEG = 2.0   # a change below this over 2σ is not named
JOIN_FRACTION = 0.6    # fingers moving at least this fraction of the most are named together
CAMERA_AXES = ("pitch", "yaw", "roll")   # rotations about the camera's x, y, z
SOURCE = "handlatent.dim_labels (pose decoders, 16 reference latents, ±1σ)"


@dataclass(frozen=True)
class DimLabels:
    """Per latent dimension a short name ("" where none) and a sentence for a tooltip."""

    names: tuple[str, ...]
    details: tuple[str, ...]

    def to_extra(self) -> dict[str, Any]:
        """Plain data for a checkpoint's extra["dim_labels"]."""
        return {"names": list(self.names), "details": list(self.details), "source": SOURCE}


def stored_dim_labels(extra: Any, d: int) -> DimLabels | None:
    """A checkpoint's extra["dim_labels"] if it names all d dimensions; else None."""
    stored = extra.get("dim_labels") if isinstance(extra, Mapping) else None
    if not isinstance(stored, Mapping):
        return None
    names, details = stored.get("names"), stored.get("details")
    if not (isinstance(names, list) and isinstance(details, list) and len(names) == d
            and len(details) == d and all(isinstance(s, str) for s in names + details)):
        return None
    return DimLabels(tuple(names), tuple(details))


def _finger_quantities(cpose: np.ndarray) -> np.ndarray:
    """(..., 10) degrees: the five fingers' curl (flexion summed; thumb MCP + IP), then their
    spread."""
    m = measure_pose(cpose)
    curl = m.flexion.sum(-1)
    curl[..., 0] = m.flexion[..., 0, 1:].sum(-1)
    return np.concatenate([curl, m.spread], -1)


def _name_pose(delta: np.ndarray) -> tuple[str, str]:
    """Name and detail for a z_y1 dimension from its quantities' changes (R, 10) over 2σ: the
    quantity whose mean change is largest, with the fingers whose same quantity changes the
    same way by at least JOIN_FRACTION of it."""
    mean = delta.mean(0)
    top = int(np.argmax(np.abs(mean)))
    if abs(mean[top]) < MIN_EFFECT_DEG:
        return "", f"moves no finger by {MIN_EFFECT_DEG:g}° or more over 2σ"
    kind = top // 5
    same = [f for f in range(5) if mean[5 * kind + f] * np.sign(mean[top])
            >= JOIN_FRACTION * abs(mean[top])]
    verb = (("curl", "open") if kind == 0 else ("spread", "close"))[0 if mean[top] > 0 else 1]
    if len(same) == 1:
        name = f"{FINGERS[same[0]]} {verb}s"
    elif len(same) == 2:
        name = f"{FINGERS[same[0]]}+{FINGERS[same[1]]} {verb}"
    else:
        name = f"fingers {verb}"
    what = ("curl", "spread")[kind]
    changes = ", ".join(f"{FINGERS[f]} {mean[5 * kind + f]:+.0f}°" for f in range(5))
    return name, f"moving right by 2σ changes the {what}: {changes}"


def _name_view(rotvec: np.ndarray) -> tuple[str, str]:
    """Name and detail for a z_y2 dimension from its rotations (R, 3) over 2σ (camera frame)."""
    size = np.degrees(np.abs(rotvec).mean(0))
    top = int(np.argmax(size))
    if size[top] < MIN_EFFECT_DEG:
        return "", f"turns the hand by less than {MIN_EFFECT_DEG:g}° over 2σ"
    parts = ", ".join(f"{axis} {s:.0f}°" for axis, s in zip(CAMERA_AXES, size))
    return CAMERA_AXES[top], f"moving right by 2σ turns the hand: {parts}"


@torch.inference_mode()
def label_dimensions(model: Any, references: int = REFERENCES, seed: int = SEED) -> DimLabels:
    """Name every latent dimension of `model` (a DVAE: `layout`, `decode_pose`) by what its
    pose decoders make of it; deterministic for a given model."""
    layout = model.layout
    d = layout.total
    rng = np.random.default_rng(seed)
    refs = np.concatenate([np.zeros((1, d)), rng.standard_normal((references - 1, d))])
    dims = [i for part in ("z_y1", "z_y2") for i in range(d)[layout.slices[part]]]
    latents = np.repeat(refs[None, None], len(dims), 0).repeat(2, 1)   # (D, 2, R, d)
    for k, i in enumerate(dims):
        latents[k, 0, :, i] -= STEP
        latents[k, 1, :, i] += STEP
    device = next(model.parameters()).device
    out = model.decode_pose(torch.as_tensor(latents.reshape(-1, d), dtype=torch.float32,
                                            device=device))
    shape = (len(dims), 2, references)
    cpose = out["cpose"].double().cpu().numpy().reshape(shape + (21, 3))
    view = out["viewpoint"].double().cpu().numpy().reshape(shape + (3, 3))
    names, details = [""] * d, [""] * d
    quantities = _finger_quantities(cpose)                        # (D, 2, R, 10)
    y2 = layout.slices["z_y2"]
    for k, i in enumerate(dims):
        if y2.start <= i < y2.stop:
            # points are row vectors (xyz = cpose @ R): from the lower to the upper latent the
            # camera-frame points turn by R_lo^T R_hi acting on the right, i.e. (.)^T on columns
            turn = np.swapaxes(view[k, 0], -1, -2) @ view[k, 1]
            names[i], details[i] = _name_view(Rotation.from_matrix(
                np.swapaxes(turn, -1, -2)).as_rotvec())
        else:
            names[i], details[i] = _name_pose(quantities[k, 1] - quantities[k, 0])
    return DimLabels(tuple(names), tuple(details))
