"""Evaluation metrics: the 3D pose protocol (``pose``) and the disentanglement checks."""

from handlatent.metrics.disentanglement import (
    CHANCE_MARGIN,
    LooKernelRidge,
    at_chance,
    beta_vae_score,
    latent_regression_table,
    noise_source,
    pair_sampler,
)
from handlatent.metrics.image import ImageQuality, gradient_magnitude, psnr_db
from handlatent.metrics.pose import (
    PCK_THRESHOLDS_M,
    auc,
    epe_stats,
    evaluate_pose,
    keypoint_errors,
    pck_curve,
    to_metric,
    viewpoint_error_deg,
)

__all__ = [
    "CHANCE_MARGIN",
    "ImageQuality",
    "LooKernelRidge",
    "PCK_THRESHOLDS_M",
    "at_chance",
    "auc",
    "beta_vae_score",
    "epe_stats",
    "evaluate_pose",
    "gradient_magnitude",
    "keypoint_errors",
    "latent_regression_table",
    "noise_source",
    "pair_sampler",
    "pck_curve",
    "psnr_db",
    "to_metric",
    "viewpoint_error_deg",
]
