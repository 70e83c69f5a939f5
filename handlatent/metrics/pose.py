"""3D hand pose evaluation protocol of hand3d / Spurr et al. / dVAE (docs/conventions.md §4).

Everything is plain numpy on root-relative keypoints in metres, shape (N, 21, 3).
"""

from __future__ import annotations

import numpy as np

from handlatent.rotations import geodesic_angle

PCK_THRESHOLDS_M: np.ndarray = np.linspace(0.0, 0.050, 20)
"""The 20 PCK thresholds of hand3d's ``get_measures(0.0, 0.050, 20)``, in metres."""

AUC_START_INDEX = 8
"""First threshold index of the "AUC 20-50 mm" (21.05 mm), as in Spurr et al.'s ``[8:]`` slice."""


def to_metric(pred_normed: np.ndarray, gt_scale: np.ndarray) -> np.ndarray:
    """Scale root-relative predictions in bone units (N, 21, 3) by the ground-truth scale (N,) into metres."""
    return np.asarray(pred_normed, float) * np.asarray(gt_scale, float).reshape(-1, 1, 1)


def keypoint_errors(pred_rel: np.ndarray, gt_rel: np.ndarray) -> np.ndarray:
    """Euclidean error (N, K) per sample and keypoint; no alignment, the protocol forbids it."""
    pred_rel, gt_rel = np.asarray(pred_rel, float), np.asarray(gt_rel, float)
    if pred_rel.shape != gt_rel.shape or pred_rel.ndim != 3 or pred_rel.shape[-1] != 3:
        raise ValueError(f"expected two (N, K, 3) arrays, got {pred_rel.shape} and {gt_rel.shape}")
    return np.linalg.norm(pred_rel - gt_rel, axis=-1)


def _visibility(errors: np.ndarray, visible: np.ndarray | None) -> np.ndarray:
    """Boolean (N, K) mask, all True when ``visible`` is None; refuses a mask without any True."""
    if errors.ndim != 2 or errors.size == 0:
        raise ValueError(f"expected a non-empty (N, K) error array, got shape {errors.shape}")
    if visible is None:
        return np.ones(errors.shape, bool)
    visible = np.asarray(visible).astype(bool)
    if visible.shape != errors.shape:
        raise ValueError(f"visible has shape {visible.shape}, errors {errors.shape}")
    if not visible.any():
        raise ValueError("no visible keypoint: the metrics are undefined")
    return visible


def _per_keypoint_pck(errors: np.ndarray, visible: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """PCK curve (K', T) of every keypoint with at least one visible sample (hand3d's ``_get_pck``)."""
    hits = (errors[:, :, None] <= thresholds[None, None, :]) & visible[:, :, None]
    n_visible = visible.sum(axis=0)
    seen = n_visible > 0
    return hits.sum(axis=0)[seen] / n_visible[seen, None]


def pck_curve(
    errors: np.ndarray, visible: np.ndarray | None = None, thresholds: np.ndarray = PCK_THRESHOLDS_M
) -> np.ndarray:
    """PCK (T,): per keypoint the fraction of visible errors <= t, then the mean over keypoints seen."""
    errors = np.asarray(errors, float)
    per_keypoint = _per_keypoint_pck(errors, _visibility(errors, visible), np.asarray(thresholds, float))
    return per_keypoint.mean(axis=0)


def auc(thresholds: np.ndarray, pck: np.ndarray, start_index: int = AUC_START_INDEX) -> float:
    """Trapezoid area under ``pck`` over ``thresholds[start_index:]``, divided by that range (perfect = 1)."""
    t = np.asarray(thresholds, float)[start_index:]
    p = np.asarray(pck, float)[start_index:]
    if t.shape != p.shape or t.size < 2 or np.any(np.diff(t) <= 0):
        raise ValueError("need >= 2 strictly increasing thresholds and a PCK value for each")
    area = np.sum(np.diff(t) * (p[1:] + p[:-1]) / 2.0)
    return float(area / (t[-1] - t[0]))


def epe_stats(errors: np.ndarray, visible: np.ndarray | None = None) -> tuple[float, float]:
    """Mean and median EPE in mm the hand3d way: per keypoint over its visible samples, then averaged."""
    errors = np.asarray(errors, float)
    visible = _visibility(errors, visible)
    per_keypoint = [errors[visible[:, k], k] for k in range(errors.shape[1]) if visible[:, k].any()]
    mean = np.mean([e.mean() for e in per_keypoint])
    median = np.mean([np.median(e) for e in per_keypoint])
    return float(mean * 1000.0), float(median * 1000.0)


def evaluate_pose(
    pred_rel_m: np.ndarray, gt_rel_m: np.ndarray, visible: np.ndarray | None = None
) -> dict:
    """All protocol numbers for root-relative prediction and ground truth in metres, JSON-ready."""
    errors = keypoint_errors(pred_rel_m, gt_rel_m)
    curve = pck_curve(errors, visible)
    epe_mean_mm, epe_median_mm = epe_stats(errors, visible)
    return {
        "auc_20_50": auc(PCK_THRESHOLDS_M, curve),
        "auc_0_50": auc(PCK_THRESHOLDS_M, curve, start_index=0),
        "epe_mean_mm": epe_mean_mm,
        "epe_median_mm": epe_median_mm,
        "pck": {"thresholds_mm": (PCK_THRESHOLDS_M * 1000.0).tolist(), "values": curve.tolist()},
    }


def viewpoint_error_deg(pred_R: np.ndarray, gt_R: np.ndarray) -> float:
    """Mean geodesic angle in degrees between predicted and ground-truth rotations (N, 3, 3)."""
    pred_R, gt_R = np.asarray(pred_R, float), np.asarray(gt_R, float)
    if pred_R.shape != gt_R.shape or pred_R.shape[-2:] != (3, 3):
        raise ValueError(f"expected two (..., 3, 3) arrays, got {pred_R.shape} and {gt_R.shape}")
    return float(np.degrees(geodesic_angle(pred_R, gt_R)).mean())
