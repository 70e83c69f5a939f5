"""The 3D pose protocol against hand-computed values and a loop transcription of hand3d's EvalUtil."""

import numpy as np
import pytest

from handlatent.metrics import (
    PCK_THRESHOLDS_M,
    auc,
    epe_stats,
    evaluate_pose,
    keypoint_errors,
    pck_curve,
    to_metric,
    viewpoint_error_deg,
)

trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 has only trapz, as in hand3d


def _gt(n: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 0.04, (n, 21, 3))


def _offset_along_x(gt: np.ndarray, offsets_m: np.ndarray) -> np.ndarray:
    pred = gt.copy()
    pred[..., 0] += offsets_m
    return pred


def _step_auc(first_index_at_one: int) -> float:
    """AUC 20-50 of a PCK that is 0 below thresholds[first_index_at_one] and 1 from there, by hand."""
    # 11 intervals from index 8 to 19; the interval ending at the step is half covered, all later ones fully.
    return (0.5 + (19 - first_index_at_one)) / 11


def _hand3d_reference(errors: np.ndarray, visible: np.ndarray) -> tuple[float, float, np.ndarray]:
    """hand3d's EvalUtil.feed/get_measures transcribed as loops: (mean EPE, median EPE, PCK curve), metres."""
    data = [[errors[i, k] for i in range(len(errors)) if visible[i, k]] for k in range(errors.shape[1])]
    means, medians, curves = [], [], []
    for values in data:
        if not values:
            continue
        values = np.array(values)
        means.append(values.mean())
        medians.append(np.median(values))
        curves.append([np.mean((values <= t).astype(float)) for t in PCK_THRESHOLDS_M])
    return float(np.mean(means)), float(np.mean(medians)), np.mean(np.array(curves), axis=0)


def test_thresholds_are_hand3d_linspace() -> None:
    assert PCK_THRESHOLDS_M.shape == (20,)
    assert PCK_THRESHOLDS_M[0] == 0.0 and PCK_THRESHOLDS_M[-1] == pytest.approx(0.050)
    assert PCK_THRESHOLDS_M[8] * 1000 == pytest.approx(21.0526, abs=1e-4)


def test_to_metric_and_errors() -> None:
    pred = np.zeros((2, 21, 3))
    pred[:, :, 2] = 1.0
    metric = to_metric(pred, np.array([0.01, 0.03]))
    assert metric[0, 5, 2] == pytest.approx(0.01) and metric[1, 5, 2] == pytest.approx(0.03)
    errors = keypoint_errors(metric, np.zeros((2, 21, 3)))
    assert errors.shape == (2, 21)
    np.testing.assert_allclose(errors[:, 0], [0.01, 0.03])
    pred3 = np.zeros((1, 21, 3))
    pred3[0, 4] = [0.003, 0.004, 0.0]
    assert keypoint_errors(pred3, np.zeros((1, 21, 3)))[0, 4] == pytest.approx(0.005)
    with pytest.raises(ValueError):
        keypoint_errors(np.zeros((2, 21, 3)), np.zeros((2, 21, 2)))


def test_perfect_prediction() -> None:
    gt = _gt()
    result = evaluate_pose(gt, gt)
    assert result["auc_20_50"] == pytest.approx(1.0)
    assert result["auc_0_50"] == pytest.approx(1.0)
    assert result["epe_mean_mm"] == 0.0 and result["epe_median_mm"] == 0.0
    # hand3d counts an error equal to the threshold as correct (<=), so PCK(0 mm) = 1 here
    assert result["pck"]["values"] == [1.0] * 20
    np.testing.assert_allclose(result["pck"]["thresholds_mm"], np.linspace(0, 50, 20))


def test_constant_30mm_offset_gives_step_curve() -> None:
    gt = _gt()
    result = evaluate_pose(_offset_along_x(gt, 0.030), gt)
    # 30 mm lies between thresholds 11 (28.95 mm) and 12 (31.58 mm)
    np.testing.assert_allclose(result["pck"]["values"], [0.0] * 12 + [1.0] * 8)
    assert result["auc_20_50"] == pytest.approx(7.5 / 11)
    assert result["auc_20_50"] == pytest.approx(_step_auc(12))
    # full range 0-50: 19 intervals, half of [11, 12] and all 7 after it
    assert result["auc_0_50"] == pytest.approx(7.5 / 19)
    assert result["epe_mean_mm"] == pytest.approx(30.0)
    assert result["epe_median_mm"] == pytest.approx(30.0)


def test_per_joint_offsets_average_the_curves() -> None:
    gt = _gt()
    offsets = np.where(np.arange(21) < 10, 0.030, 0.045)  # 10 keypoints off by 30 mm, 11 by 45 mm
    result = evaluate_pose(_offset_along_x(gt, offsets), gt)
    # 45 mm lies between thresholds 17 (44.74 mm) and 18 (47.37 mm)
    expected_curve = (10 * (np.arange(20) >= 12) + 11 * (np.arange(20) >= 18)) / 21
    np.testing.assert_allclose(result["pck"]["values"], expected_curve)
    assert result["auc_20_50"] == pytest.approx((10 * 7.5 / 11 + 11 * 1.5 / 11) / 21)
    assert result["epe_mean_mm"] == pytest.approx((10 * 30 + 11 * 45) / 21)


def test_invisible_keypoints_change_nothing() -> None:
    gt = _gt(n=4)
    pred = _offset_along_x(gt, 0.030)
    visible = np.ones((4, 21), bool)
    visible[1, 7] = False  # one keypoint of one sample
    visible[:, 20] = False  # one keypoint in every sample: skipped entirely
    spoiled = pred.copy()
    spoiled[1, 7] += 10.0
    spoiled[:, 20] -= 5.0
    assert evaluate_pose(spoiled, gt, visible) == evaluate_pose(pred, gt, visible)
    assert evaluate_pose(spoiled, gt, visible)["auc_20_50"] == pytest.approx(7.5 / 11)
    assert evaluate_pose(spoiled, gt)["auc_20_50"] < 7.5 / 11


def test_pck_is_per_keypoint_then_mean_over_keypoints() -> None:
    # keypoint 0: 1 visible sample, correct at 10 mm; keypoint 1: 3 visible samples, 1 correct; rest invisible
    errors = np.full((3, 21), 1.0)
    errors[:, 0] = [0.005, 1.0, 1.0]
    errors[:, 1] = [0.005, 0.2, 0.2]
    visible = np.zeros((3, 21), bool)
    visible[0, 0] = True
    visible[:, 1] = True
    curve = pck_curve(errors, visible, thresholds=np.array([0.0, 0.010]))
    # per keypoint (0, 1) at 10 mm: (1/1 + 1/3) / 2; pooling all 4 errors would give 2/4
    np.testing.assert_allclose(curve, [0.0, (1.0 + 1.0 / 3.0) / 2.0])


def test_epe_stats_average_per_keypoint_mean_and_median() -> None:
    errors = np.zeros((3, 21))
    errors[:, 0] = [0.001, 0.002, 0.009]  # mean 4 mm, median 2 mm
    errors[:, 1] = [0.005, 0.100, 0.100]  # only the first visible: 5 mm
    visible = np.zeros((3, 21), bool)
    visible[:, 0] = True
    visible[0, 1] = True
    mean_mm, median_mm = epe_stats(errors, visible)
    assert mean_mm == pytest.approx((4.0 + 5.0) / 2.0)
    assert median_mm == pytest.approx((2.0 + 5.0) / 2.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_hand3d_evalutil_loops(seed: int) -> None:
    rng = np.random.default_rng(seed)
    errors = np.abs(rng.normal(0.0, 0.03, (40, 21)))
    visible = rng.random((40, 21)) < 0.7
    visible[:, 3] = False
    mean_m, median_m, curve = _hand3d_reference(errors, visible)
    np.testing.assert_allclose(pck_curve(errors, visible), curve)
    np.testing.assert_allclose(epe_stats(errors, visible), (mean_m * 1000, median_m * 1000))
    # Spurr et al.'s "AUC 20-50 mm": hand3d's calc_auc on the curve from index 8
    t, p = PCK_THRESHOLDS_M[8:], curve[8:]
    assert auc(PCK_THRESHOLDS_M, curve) == pytest.approx(trapezoid(p, t) / trapezoid(np.ones_like(t), t))


def test_auc_validation_and_start_index() -> None:
    thresholds = np.array([0.0, 1.0, 2.0, 4.0])
    assert auc(thresholds, np.array([0.0, 0.0, 1.0, 1.0]), start_index=0) == pytest.approx(2.5 / 4)
    assert auc(thresholds, np.array([0.0, 0.0, 1.0, 1.0]), start_index=1) == pytest.approx(2.5 / 3)
    with pytest.raises(ValueError):
        auc(thresholds, np.ones(3), start_index=0)
    with pytest.raises(ValueError):
        auc(thresholds, np.ones(4), start_index=3)
    with pytest.raises(ValueError):
        pck_curve(np.zeros((2, 21)), np.zeros((2, 21), bool))


def _rot_z(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def test_viewpoint_error_deg() -> None:
    eye = np.stack([np.eye(3)] * 3)
    assert viewpoint_error_deg(eye, eye) == pytest.approx(0.0, abs=1e-12)
    pred = np.stack([_rot_z(30.0), _rot_z(-90.0), _rot_z(180.0)])
    assert viewpoint_error_deg(pred, eye) == pytest.approx((30.0 + 90.0 + 180.0) / 3)
    # relative angle, not absolute: both rotated by the same extra rotation
    base = _rot_z(50.0) @ np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    assert viewpoint_error_deg(base[None] @ _rot_z(1e-4)[None], base[None]) == pytest.approx(1e-4, rel=1e-6)
    with pytest.raises(ValueError):
        viewpoint_error_deg(eye, np.eye(3))
