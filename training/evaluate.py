"""Evaluation of a trained dVAE on a dataset: the 3D pose protocol, image reconstruction, KL and
the disentanglement checks of the supplement §E. `handlatent-eval` (evaluate_cli.py) is a thin
wrapper; every number is computed here and documented in docs/evaluation.md.

    model = handlatent.load_model("run/best.pt", device="cpu")
    results = evaluate(model, open_dataset("data/synth-test"), EvalOptions(limit=500))
    print(format_results(results))

Protocol (docs/conventions.md §4): image → posterior mean z → decode_pose(z, is_right = ground
truth handedness) → xyz in bone units × ground-truth scale → root-relative metres, compared with
the ground truth `xyz - xyz[:, :1]` on the dataset's visible keypoints (no alignment).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from handlatent.explorer.decoder import to_uint8_images
from handlatent.explorer.sampling import LatentGaussian
from handlatent.metrics import (
    CHANCE_MARGIN,
    ImageQuality,
    at_chance,
    beta_vae_score,
    evaluate_pose,
    latent_regression_table,
    noise_source,
    to_metric,
    viewpoint_error_deg,
)
from handlatent.metrics.samples import THUMBNAIL_PX, frechet_distance, thumbnails
from handlatent.model.bone_maps import normalise_uv, pixel_uv
from handlatent.rotations import geodesic_angle
from handlatent.skeleton import compose

# The dataset keys the evaluator reads; absent optional keys get the defaults of `collate_items`.
_KEYS = ("image", "xyz", "scale", "visible", "is_right", "labelled", "cpose", "viewpoint",
         "mask", "uv")
RECON_GRID_ROWS = 8  # samples kept for the reconstruction grid of --plots
TABLE4_SOURCES = ("z_y1~q(x)", "z_y1~q(y1)", "z_y2~q(x)", "z_y2~q(y2)", "z_cross~q(x)", "noise")
# β-VAE sizes (pairs per point L, training points, held-out points). The score renders and
# encodes 2 L (train + eval) hands, most of an evaluation's time: with the quick default's 6,400
# an evaluation of 1,000 images at 128 px takes about 2 CPU-minutes, with the supplement's 64,000
# (§E; `handlatent-eval --full`) about 15 (docs/evaluation.md).
BETA_VAE_QUICK = (16, 100, 100)
BETA_VAE_FULL = (32, 500, 500)


class EvaluationError(ValueError):
    """A dataset the model cannot be evaluated on (wrong image size, empty); one line."""


@dataclass(frozen=True)
class EvalOptions:
    """What to evaluate and how much of it.

    limit:                first `limit` samples of the dataset (None: all).
    regression_samples:   labelled samples for Table 4 (a seeded random subset when there are
                          more; split 50/50 into probe training and test samples).
    beta_vae_pairs:       L, pairs averaged into one β-VAE feature (supplement: z_diff^32).
    beta_vae_train/eval:  β-VAE training / held-out points (supplement: 500 / 500); the
                          defaults are BETA_VAE_QUICK, the supplement's BETA_VAE_FULL.
    beta_vae_factors:     the generator's factor groups the β-VAE score tells apart (None: all;
                          the supplement's d = 8 model has two: pose and viewpoint).
    sample_count:         random samples per source for the sample-quality distances (and
                          reconstructions per half for their floor); 0 skips them.
    """

    batch_size: int = 64
    limit: int | None = None
    disentanglement: bool = True
    regression_samples: int = 1000
    beta_vae_pairs: int = BETA_VAE_QUICK[0]
    beta_vae_train: int = BETA_VAE_QUICK[1]
    beta_vae_eval: int = BETA_VAE_QUICK[2]
    beta_vae_factors: tuple[str, ...] | None = None
    sample_count: int = 256
    seed: int = 0
    progress: bool = True


# --------------------------------------------------------------------------------------- data


def _as_tensor(value: Any) -> torch.Tensor:
    return value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))


def collate_items(items: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack the keys the evaluator needs; `visible` defaults to all, `labelled` to True; `mask`
    (the hand's pixels) and `uv` are None unless every item has one."""
    n = len(items)
    out: dict[str, torch.Tensor] = {}
    for key in _KEYS:
        values = [item.get(key) for item in items]
        if any(v is None for v in values):
            if key == "visible":
                out[key] = torch.ones(n, 21, dtype=torch.bool)
                continue
            if key == "labelled":
                out[key] = torch.ones(n, dtype=torch.bool)
                continue
            if key == "image":
                raise EvaluationError("dataset item without an 'image'")
            out[key] = None  # type: ignore[assignment]  (unlabelled data: no pose at all)
            continue
        out[key] = torch.stack([_as_tensor(v) for v in values])
    if out["mask"] is not None:
        out["mask"] = out["mask"].bool()
    out["visible"] = out["visible"].bool()
    out["labelled"] = out["labelled"].bool().reshape(n)
    if out["is_right"] is not None:
        out["is_right"] = out["is_right"].bool().reshape(n)
    image = out["image"]
    if image.dtype == torch.uint8:  # tolerate (S, S, 3) or (3, S, S) uint8 images
        image = image.float() / 127.5 - 1
    if image.shape[-1] == 3 and image.shape[1] != 3:
        image = image.permute(0, 3, 1, 2)
    out["image"] = image.float().contiguous()
    if out["xyz"] is None or out["cpose"] is None or out["viewpoint"] is None or out["scale"] is None:
        out["labelled"] = torch.zeros(n, dtype=torch.bool)
    return out


def iterate_batches(dataset: Dataset, count: int, batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
    """Batches of the first `count` items, in order (no DataLoader workers: the data is small)."""
    for start in range(0, count, batch_size):
        yield collate_items([dataset[i] for i in range(start, min(start + batch_size, count))])


def image_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, S, S, 3) renderer output → float (N, 3, S, S) in [-1, 1], the model's input."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1


# ------------------------------------------------------------------------------- collection


@dataclass
class Collected:
    """Per-sample encoder and decoder outputs over the evaluated samples (numpy, float64).

    Pose arrays hold the labelled samples only (`labelled_index` says which).
    """

    mu: np.ndarray  # (N, d) image posterior means
    logvar: np.ndarray  # (N, d)
    image_sq_error: float  # sum over samples and pixels of (decode(mu).image - input)²
    image_values: int  # number of (pixel, channel) values summed into image_sq_error
    image_quality: dict  # image_psnr_db, hand_psnr_db, sharpness (handlatent.metrics.image)
    labelled_index: np.ndarray  # (M,) dataset indices of labelled samples
    pred_xyz: np.ndarray  # (M, 21, 3) decoded root-relative pose, bone units, GT handedness
    pred_viewpoint: np.ndarray  # (M, 3, 3)
    pred_cpose: np.ndarray  # (M, 21, 3) decoded canonical pose, bone units
    gt_xyz_rel: np.ndarray  # (M, 21, 3) metres, root-relative
    gt_scale: np.ndarray  # (M,)
    gt_cpose: np.ndarray  # (M, 21, 3)
    gt_viewpoint: np.ndarray  # (M, 3, 3)
    visible: np.ndarray  # (M, 21) bool
    is_right: np.ndarray  # (M,) bool: right hands (rendered/photographed mirror images)
    mu_y1_labels: np.ndarray  # (M, d_y1) label posterior means q(z_y1 | CPose)
    mu_y2_labels: np.ndarray  # (M, d_y2) q(z_y2 | viewpoint)
    grid: dict[str, np.ndarray]  # "input", "reconstruction", "from_labels": uint8 (K, S, S, 3)
    # A bone-guided decoder's 2-D keypoints (pixels) and the labels' uv, visible keypoints only;
    # None for a decoder without a guide.
    keypoint_error_px: np.ndarray | None = None  # (V,) distances
    # The same decoder's image_quality when drawing along the labels' keypoints instead of its
    # own (labelled samples): what the image would be with perfect 2-D keypoints.
    along_labels_quality: dict | None = None
    # Round trip: the pose the model's own encoder reads from the reconstruction (M, 21, 3),
    # bone units, GT handedness; and thumbnails (metrics.samples) of every input and its
    # reconstruction, for their Fréchet distance.
    round_trip_xyz: np.ndarray | None = None
    input_thumbnails: np.ndarray | None = None
    reconstruction_thumbnails: np.ndarray | None = None


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, S, S) in [-1, 1] → uint8 (N, S, S, 3)."""
    x = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def collect(model, dataset: Dataset, *, count: int, batch_size: int, device: torch.device | str,
            progress: bool = True) -> Collected:
    """Encode every image (posterior mean), decode image and pose, keep what the metrics need."""
    device = torch.device(device)
    layout = model.layout
    mus, logvars, idx_l = [], [], []
    pred_xyz, pred_R, pred_c, gt_rel, gt_s, gt_c, gt_R, vis, m1, m2, right = (
        [] for _ in range(11))
    sq_error, values, quality, along_labels = 0.0, 0, ImageQuality(), ImageQuality()
    keypoint_errors: list[torch.Tensor] = []
    round_trip, thumbs_in, thumbs_out = [], [], []
    grid: dict[str, list[np.ndarray]] = {"input": [], "reconstruction": [], "from_labels": []}
    bar = tqdm(total=count, desc="evaluating", unit="img", disable=not progress or None,
               leave=False)
    with torch.inference_mode():
        for start, batch in zip(range(0, count, batch_size), iterate_batches(dataset, count, batch_size)):
            image = batch["image"].to(device)
            if image.shape[-1] != model.config.image_size or image.shape[-2] != model.config.image_size:
                raise EvaluationError(f"the dataset holds {image.shape[-1]} px images but the "
                                      f"model takes {model.config.image_size} px")
            mu, logvar = model.encode_image(image)
            is_right = batch["is_right"].to(device) if batch["is_right"] is not None else None
            # The image from z alone (a skeleton-guided decoder reads the side from z too); the
            # pose with the GT side, as the protocol says.
            decoded = {**model.decode(mu), **model.decode_pose(mu, is_right)}
            thumbs_in.append(thumbnails(to_uint8(image)))
            thumbs_out.append(thumbnails(to_uint8(decoded["image"])))
            sq_error += float((decoded["image"].float() - image).square().sum())
            values += image.numel()
            quality.add(decoded["image"], image, batch["mask"])
            mus.append(mu.float().cpu())
            logvars.append(logvar.float().cpu())

            labelled = batch["labelled"]
            if labelled.any():
                rows = torch.nonzero(labelled).flatten()
                rows_d = rows.to(device)
                cpose, viewpoint = batch["cpose"][rows], batch["viewpoint"][rows]
                z_lab = model.latent_from_labels(cpose.float().to(device),
                                                 viewpoint.float().to(device), mu[rows_d])
                from_labels = layout.split(z_lab)
                idx_l.append(rows + start)
                pred_xyz.append(decoded["xyz"][rows_d].double().cpu())
                pred_R.append(decoded["viewpoint"][rows_d].double().cpu())
                pred_c.append(decoded["cpose"][rows_d].double().cpu())
                again = model.encode_image(decoded["image"][rows_d].float())[0]
                round_trip.append(model.decode_pose(again, None if is_right is None
                                                    else is_right[rows_d])["xyz"].double().cpu())
                xyz = batch["xyz"][rows].double()
                gt_rel.append(xyz - xyz[:, :1])
                gt_s.append(batch["scale"][rows].double().reshape(-1))
                gt_c.append(cpose.double())
                gt_R.append(viewpoint.double())
                vis.append(batch["visible"][rows])
                right.append(batch["is_right"][rows].bool() if batch["is_right"] is not None
                             else torch.zeros(len(rows), dtype=torch.bool))
                if "uv" in decoded and batch["uv"] is not None:
                    uv = pixel_uv(decoded["uv"][rows_d].float().cpu(), image.shape[-1])
                    seen = batch["visible"][rows]
                    keypoint_errors.append((uv - batch["uv"][rows].float()).norm(dim=-1)[seen])
                    labels_uv = normalise_uv(batch["uv"][rows].float(), image.shape[-1])
                    drawn = model.decode(mu[rows_d], guide=labels_uv.to(device))
                    along_labels.add(drawn["image"], image[rows_d], None if batch["mask"] is None
                                     else batch["mask"][rows])
                m1.append(from_labels["z_y1"].float().cpu())
                m2.append(from_labels["z_y2"].float().cpu())
                keep = max(0, RECON_GRID_ROWS - len(grid["input"]))
                if keep:  # input | reconstruction | decode(z_y1, z_y2 from the labels, z_u from x)
                    grid["input"].extend(to_uint8(image[rows_d[:keep]]))
                    grid["reconstruction"].extend(to_uint8(decoded["image"][rows_d[:keep]]))
                    grid["from_labels"].extend(to_uint8(model.decode(z_lab[:keep])["image"]))
            bar.update(image.shape[0])
    bar.close()

    def cat(parts: list[torch.Tensor], shape: tuple[int, ...], dtype=np.float64) -> np.ndarray:
        if not parts:
            return np.zeros((0, *shape), dtype)
        return torch.cat(parts).numpy().astype(dtype)

    s = model.config.image_size
    return Collected(
        mu=cat(mus, (layout.total,)), logvar=cat(logvars, (layout.total,)),
        image_sq_error=sq_error, image_values=values, image_quality=quality.results(),
        labelled_index=cat(idx_l, (), np.int64),
        pred_xyz=cat(pred_xyz, (21, 3)), pred_viewpoint=cat(pred_R, (3, 3)),
        pred_cpose=cat(pred_c, (21, 3)),
        gt_xyz_rel=cat(gt_rel, (21, 3)), gt_scale=cat(gt_s, ()), gt_cpose=cat(gt_c, (21, 3)),
        gt_viewpoint=cat(gt_R, (3, 3)), visible=cat(vis, (21,), bool),
        is_right=cat(right, (), bool),
        mu_y1_labels=cat(m1, (layout.z_y1,)), mu_y2_labels=cat(m2, (layout.z_y2,)),
        grid={k: np.stack(v) if v else np.zeros((0, s, s, 3), np.uint8) for k, v in grid.items()},
        keypoint_error_px=torch.cat(keypoint_errors).numpy() if keypoint_errors else None,
        along_labels_quality=along_labels.results() if along_labels.values else None,
        round_trip_xyz=cat(round_trip, (21, 3)),
        input_thumbnails=np.concatenate(thumbs_in), reconstruction_thumbnails=np.concatenate(thumbs_out),
    )


# ---------------------------------------------------------------------------------- metrics


def pose_metrics(c: Collected) -> dict[str, Any]:
    """docs/conventions.md §4 on the labelled samples: predicted bone units × GT scale vs GT root-relative
    metres, visible keypoints only; plus the mean geodesic viewpoint error in degrees."""
    if len(c.gt_scale) == 0:
        return {"pose_count": 0, "note": "no labelled samples: no pose metrics"}
    pred_m = to_metric(c.pred_xyz, c.gt_scale)
    if not c.visible.any():
        return {"pose_count": len(c.gt_scale), "note": "no visible keypoint: no pose metrics"}
    out = evaluate_pose(pred_m, c.gt_xyz_rel, c.visible)
    angles = np.degrees(geodesic_angle(c.pred_viewpoint, c.gt_viewpoint))
    out["viewpoint_error_deg"] = viewpoint_error_deg(c.pred_viewpoint, c.gt_viewpoint)
    out["viewpoint_error_median_deg"] = float(np.median(angles))
    # Per hand: a right hand is a mirrored left hand, and seen from the back it can look like a
    # left hand seen from the front, so the two kinds of image are told apart here.
    out["by_hand"] = {
        hand: {"count": int(mask.sum()),
               "epe_mean_mm": evaluate_pose(pred_m[mask], c.gt_xyz_rel[mask],
                                            c.visible[mask])["epe_mean_mm"],
               "viewpoint_error_deg": float(angles[mask].mean())}
        for hand, mask in (("left", ~c.is_right), ("right", c.is_right))
        if mask.any() and c.visible[mask].any()}
    out["error_split"] = error_split(c)
    out["pose_count"] = int(len(c.gt_scale))
    out["visible_fraction"] = float(c.visible.mean())
    return out


def error_split(c: Collected) -> dict[str, dict[str, float]]:
    """Where the 3D error comes from: the decoded CPose under the GT viewpoint (its own error
    alone) and the GT CPose under the decoded viewpoint (the viewpoint's), same protocol."""
    def scored(cpose: np.ndarray, viewpoint: np.ndarray) -> dict[str, float]:
        xyz = compose(cpose, viewpoint, is_right=c.is_right)
        r = evaluate_pose(to_metric(xyz, c.gt_scale), c.gt_xyz_rel, c.visible)
        return {k: r[k] for k in ("auc_20_50", "epe_mean_mm", "epe_median_mm")}

    return {"gt_viewpoint": scored(c.pred_cpose, c.gt_viewpoint),
            "gt_cpose": scored(c.gt_cpose, c.pred_viewpoint)}


def round_trip_metrics(c: Collected) -> dict[str, Any] | None:
    """The model's encoder applied to its own reconstructions: the 3D pose it reads there
    against the truth and against the pose it read from the input (same protocol, GT scale and
    handedness), and the ratio of the first to the input's own error. A decoder that draws the
    hand the latent holds keeps the ratio near 1; one that draws other fingers does not."""
    if c.round_trip_xyz is None or not len(c.gt_scale) or not c.visible.any():
        return None
    again = to_metric(c.round_trip_xyz, c.gt_scale)
    truth = evaluate_pose(again, c.gt_xyz_rel, c.visible)
    first = evaluate_pose(to_metric(c.pred_xyz, c.gt_scale), c.gt_xyz_rel, c.visible)
    between = evaluate_pose(again, to_metric(c.pred_xyz, c.gt_scale), c.visible)
    return {"epe_mean_mm": truth["epe_mean_mm"], "auc_20_50": truth["auc_20_50"],
            "epe_vs_input_estimate_mm": between["epe_mean_mm"],
            "ratio_to_input_error": truth["epe_mean_mm"] / first["epe_mean_mm"]}


def kl_stats(mu: np.ndarray, logvar: np.ndarray, layout) -> dict[str, Any]:
    """KL(q(z|x) || N(0, I)) of the image posterior, mean over samples: per dimension, summed
    over each sub-latent's dimensions, and in total (nats)."""
    kl = 0.5 * (mu**2 + np.exp(logvar) - 1.0 - logvar)  # (N, d)
    per_dim = kl.mean(axis=0)
    out: dict[str, Any] = {"total": float(per_dim.sum())}
    for name, s in layout.slices.items():
        out[name] = float(per_dim[s].sum())
    out["per_dim"] = {name: per_dim[s].tolist() for name, s in layout.slices.items()}
    return out


def regression_table(c: Collected, layout, *, samples: int, seed: int) -> dict[str, Any]:
    """Supplement Table 4 on up to `samples` labelled samples (a seeded subset when more)."""
    m = len(c.gt_scale)
    if m < 8:
        return {"skipped": f"needs at least 8 labelled samples, has {m}"}
    rows = np.arange(m)
    if m > samples:
        rows = np.sort(np.random.default_rng(seed).choice(m, samples, replace=False))
    sl = layout.slices
    mu = c.mu[c.labelled_index[rows]]
    sources = {
        "z_y1~q(x)": mu[:, sl["z_y1"]],
        "z_y1~q(y1)": c.mu_y1_labels[rows],
        "z_y2~q(x)": mu[:, sl["z_y2"]],
        "z_y2~q(y2)": c.mu_y2_labels[rows],
        "z_cross~q(x)": mu,
        "noise": noise_source(len(rows), layout.total, seed=seed),
    }
    table = latent_regression_table(sources, c.gt_cpose[rows], c.gt_viewpoint[rows],
                                    c.gt_scale[rows], seed=seed)
    return {
        "samples": int(len(rows)), "train_fraction": 0.5, "regressor": "LooKernelRidge",
        "y1": "held-out CPose AUC 20-50 mm (higher is better)",
        "y2": "held-out viewpoint MSE, sum over the 9 entries (lower is better)",
        "sources": table,
        "at_chance": at_chance(table),
        "chance_margin": CHANCE_MARGIN,
    }


def synthetic_pair_sampler(image_size: int, groups: Sequence[str] | None = None
                           ) -> tuple[Callable, list[str]]:
    """β-VAE pairs from the synthetic generator: two independent batches of scenes, the second
    taking factor group k from the first (`Scene.replace`), both rendered at `image_size` (in one
    `render_scene` call). Returns (sample_pair_batch -> two uint8 (n, S, S, 3) batches, group
    names); all the generator's groups by default."""
    from handlatent.synth.scene import GROUPS, concat_scenes, render_scene, sample_scene

    names = list(groups or GROUPS)
    unknown = [name for name in names if name not in GROUPS]
    if unknown or len(set(names)) < 2 or len(set(names)) != len(names):
        raise EvaluationError(f"β-VAE factors {names}: give two or more distinct groups of "
                              f"{list(GROUPS)}")

    def sample(k: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        first = sample_scene(rng, n)
        second = sample_scene(rng, n).replace(names[k], first)
        images = render_scene(concat_scenes([first, second]), image_size)["image"]
        return images[:n], images[n:]

    return sample, names


def beta_vae(model, *, device: torch.device | str, pairs: int, n_train: int, n_eval: int,
             seed: int, progress: bool = True, factors: Sequence[str] | None = None
             ) -> dict[str, Any]:
    """Higgins et al.'s β-VAE score of the whole image latent (posterior means), factors = the
    given factor groups of the synthetic generator (default all: pose, shape, viewpoint, skin,
    light, background).

    Both images of all L pairs of a point go through the encoder in one batch: the pair sampler
    handed to `beta_vae_score` returns posterior means, and its `encode` is the identity.
    """
    device = torch.device(device)
    sample, names = synthetic_pair_sampler(model.config.image_size, factors)
    bar = tqdm(total=n_train + n_eval, desc="beta-VAE points", unit="pt",
               disable=not progress or None, leave=False)

    def encoded_pairs(k: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        x1, x2 = sample(k, n, rng)
        with torch.inference_mode():
            x = image_to_tensor(np.concatenate([x1, x2])).to(device)
            mu = model.encode_image(x)[0].float().cpu().numpy()
        bar.update(1)
        return mu[:n], mu[n:]

    try:
        scores = beta_vae_score(encoded_pairs, lambda mu: mu, len(names), batch_size=pairs,
                                n_train=n_train, n_eval=n_eval, seed=seed)
    finally:
        bar.close()
    return {"factors": names, "pairs_per_point": pairs, "n_train": n_train, "n_eval": n_eval,
            "score": scores["eval_accuracy"], **scores}


def is_synthetic(dataset: Dataset) -> bool:
    """Whether `dataset` comes from handlatent's synthetic generator (its metadata says so)."""
    for attr in ("meta", "metadata", "info", "manifest"):
        meta = getattr(dataset, attr, None)
        if isinstance(meta, Mapping):
            for key in ("source", "kind", "generator", "type", "format"):
                value = meta.get(key)
                if isinstance(value, str) and "synth" in value.lower():
                    return True
    for attr in ("source", "kind"):
        value = getattr(dataset, attr, None)
        if isinstance(value, str) and "synth" in value.lower():
            return True
    return False


# ----------------------------------------------------------------------------------- driver


def _clean(value: Any) -> Any:
    """JSON-ready: numpy scalars to Python, NaN/inf to None."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


class StageLog:
    """One line per evaluation stage on stderr, after the seconds spent so far, when progress is
    wanted but stderr is not a terminal (where the progress bars stay off), so that a log shows
    what runs and how long each stage took."""

    def __init__(self, progress: bool) -> None:
        self.on = progress and not sys.stderr.isatty()
        self.start = time.perf_counter()

    def __call__(self, message: str) -> None:
        if self.on:
            print(f"handlatent-eval: {time.perf_counter() - self.start:6.1f} s  {message}",
                  file=sys.stderr, flush=True)


def sample_score_skipped(sample_count: int, evaluated: int) -> str | None:
    """Why the random-sample score cannot run with `sample_count` on `evaluated` images (it
    needs two halves of that many reconstructions), or None when it can."""
    if evaluated < 2 * max(2, sample_count):
        fits = f"--sample-count {evaluated // 2} or " if evaluated >= 4 else ""
        return (f"needs 2 x --sample-count = {2 * sample_count} evaluated images, got "
                f"{evaluated}: use {fits}more images")
    return None


def sample_quality(model, c: Collected, hands: LatentGaussian, *, count: int, seed: int,
                   device: torch.device | str) -> dict[str, Any]:
    """Fréchet distances (metrics.samples) from `count` random samples, drawn from N(0, I) and
    from `hands`, to the reconstructions of the first `count` evaluated images; the floor is the
    distance between those and the next `count` reconstructions (two halves of the same data)."""
    generator = torch.Generator().manual_seed(seed)
    sources = {"prior": torch.randn(count, model.layout.total, generator=generator),
               "hands": torch.from_numpy(hands.sample(np.random.default_rng(seed), count)),
               "half_a": torch.from_numpy(c.mu[:count]).float(),
               "half_b": torch.from_numpy(c.mu[count:2 * count]).float()}
    features = {}
    with torch.inference_mode():
        for name, z in sources.items():
            images = [to_uint8_images(model.decode(part.to(device))["image"])
                      for part in z.split(64)]
            features[name] = thumbnails(np.concatenate(images))
    reference = features["half_a"]
    return {"count": count, "thumbnail_px": THUMBNAIL_PX,
            "fd_hands": frechet_distance(features["hands"], reference),
            "fd_prior": frechet_distance(features["prior"], reference),
            "fd_floor": frechet_distance(features["half_b"], reference)}


def evaluate(model, dataset: Dataset, options: EvalOptions = EvalOptions(), *,
             device: torch.device | str = "cpu", synthetic: bool | None = None,
             hands: LatentGaussian | None = None,
             log: StageLog | None = None) -> tuple[dict[str, Any], Collected]:
    """All numbers of `handlatent-eval` for `model` (in eval mode, on `device`) on `dataset`.

    Returns (results, collected): `results` is JSON-ready (docs/evaluation.md lists the keys);
    `collected` holds the per-sample arrays, for plots. `synthetic` (None: from the dataset's
    metadata) decides whether the β-VAE score is computed. `hands`: the sampling Gaussian
    (explorer.sampling) whose samples are scored beside the prior's; None skips that score.
    `log`: where the stage lines go (default: a StageLog of `options.progress`).
    """
    n = len(dataset)
    count = n if options.limit is None else min(n, max(0, options.limit))
    if count == 0:
        raise EvaluationError("the dataset is empty" if n == 0 else "limit 0 leaves nothing to evaluate")
    log = log or StageLog(options.progress)
    log(f"encoding and decoding {count} images (pose, image, KL)")
    c = collect(model, dataset, count=count, batch_size=options.batch_size, device=device,
                progress=options.progress)
    pose = pose_metrics(c)
    results: dict[str, Any] = {"count": count, "labelled_count": int(len(c.gt_scale))}
    results.update({k: pose.get(k) for k in ("auc_20_50", "auc_0_50", "epe_mean_mm", "epe_median_mm",
                                             "pck", "viewpoint_error_deg",
                                             "viewpoint_error_median_deg", "by_hand",
                                             "error_split", "visible_fraction")})
    if "note" in pose:
        results["pose_note"] = pose["note"]
    if c.keypoint_error_px is not None and len(c.keypoint_error_px):
        results["keypoints_2d_px"] = float(c.keypoint_error_px.mean())
    if c.along_labels_quality is not None:
        results["along_labels_uv"] = {k: v for k, v in c.along_labels_quality.items()
                                      if k != "note"}
    results["round_trip"] = round_trip_metrics(c)
    if c.input_thumbnails is not None and len(c.input_thumbnails) >= 2:
        results["fd_reconstructions"] = frechet_distance(c.reconstruction_thumbnails,
                                                         c.input_thumbnails)
    results["image_mse"] = c.image_sq_error / c.image_values
    results.update({k: v for k, v in c.image_quality.items() if k != "note"})
    if "note" in c.image_quality:
        results["image_quality_note"] = c.image_quality["note"]
    results["kl"] = kl_stats(c.mu, c.logvar, model.layout)
    results["latent_layout"] = model.layout.to_dict()
    results["image_size"] = model.config.image_size

    synthetic = is_synthetic(dataset) if synthetic is None else synthetic
    if options.disentanglement:
        log(f"Table 4 regression on up to {options.regression_samples} labelled samples")
        dis: dict[str, Any] = {"table4": regression_table(
            c, model.layout, samples=options.regression_samples, seed=options.seed)}
        if synthetic:
            points = options.beta_vae_train + options.beta_vae_eval
            log(f"β-VAE score: {points} points of {options.beta_vae_pairs} pairs "
                f"({2 * options.beta_vae_pairs * points} hands rendered and encoded)")
            dis["beta_vae"] = beta_vae(model, device=device, pairs=options.beta_vae_pairs,
                                       n_train=options.beta_vae_train, n_eval=options.beta_vae_eval,
                                       seed=options.seed, progress=options.progress,
                                       factors=options.beta_vae_factors)
        else:
            dis["beta_vae"] = {"skipped": "needs the synthetic generator's factors; the data is "
                                          "not synthetic"}
        results["disentanglement"] = dis
    else:
        results["disentanglement"] = None
    results["samples"] = None
    skipped = sample_score_skipped(options.sample_count, len(c.mu))
    if 0 < options.sample_count and skipped:
        results["samples"] = {"skipped": skipped}
    elif 0 < options.sample_count and hands is not None:
        log(f"random samples: {options.sample_count} per source against reconstructions")
        results["samples"] = sample_quality(model, c, hands, count=options.sample_count,
                                            seed=options.seed, device=device)
    results["options"] = asdict(options)
    results["units"] = {
        "auc_20_50": "PCK area 21.05-50 mm over 12 thresholds / range (0..1)",
        "epe_mean_mm": "hand3d: per-keypoint mean over visible samples, mean over keypoints (mm)",
        "viewpoint_error_deg": "mean geodesic angle between decoded and GT viewpoint (deg)",
        "image_mse": "mean over samples, pixels and channels of (decode(mu) - input)^2, "
                     "images in [-1, 1]",
        "image_psnr_db": "10 log10(1 / MSE) of decode(mu) against the input, images in [0, 1], "
                         "pooled over every value (dB)",
        "hand_psnr_db": "the same over the hand's pixels only (the dataset's masks) (dB)",
        "sharpness": "mean gradient magnitude of decode(mu) over that of the input, inside the "
                     "hand (below 1: blurred; above 1: grain)",
        "keypoints_2d_px": "a bone-guided decoder's 2-D keypoints (those it draws along) from "
                           "the posterior mean against the labels' uv, mean distance over "
                           "visible keypoints (pixels)",
        "along_labels_uv": "image_psnr_db, hand_psnr_db, sharpness of a bone-guided decoder's "
                           "decode(mu) drawn along the labels' 2-D keypoints instead of its own "
                           "(labelled samples): the image with perfect keypoints",
        "round_trip": "the 3D pose the encoder reads from decode(mu): EPE against the truth "
                      "and against the pose read from the input (mm), and the first over the "
                      "input's own EPE",
        "fd_reconstructions": "Fréchet distance of 8 px thumbnails of the reconstructions to "
                              "those of their inputs",
        "kl": "KL(q(z|x) || N(0, I)) of the image posterior, mean over samples (nats)",
        "samples": "Fréchet distance of 8 px thumbnails of decoded random samples to the "
                   "reconstructions of the evaluated images (fd_floor: two halves of those)",
    }
    return _clean(results), c


def _fmt(value: Any, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def format_results(results: Mapping[str, Any]) -> str:
    """A readable plain-text table of `results`."""
    lines = []
    head = [("checkpoint", results.get("checkpoint")), ("data", results.get("data"))]
    lines += [f"{k:<22}{v}" for k, v in head if v is not None]
    lines.append(f"{'samples':<22}{results['count']} ({results['labelled_count']} labelled)")
    lines.append("")
    lines.append("3D pose (docs/conventions.md §4, visible keypoints, GT scale and handedness)")
    lines.append(f"  {'AUC 20-50 mm':<26}{_fmt(results.get('auc_20_50'), '.4f')}")
    lines.append(f"  {'AUC 0-50 mm':<26}{_fmt(results.get('auc_0_50'), '.4f')}")
    lines.append(f"  {'EPE mean / median (mm)':<26}{_fmt(results.get('epe_mean_mm'), '.2f')} / "
                 f"{_fmt(results.get('epe_median_mm'), '.2f')}")
    lines.append(f"  {'viewpoint error (deg)':<26}{_fmt(results.get('viewpoint_error_deg'), '.2f')}"
                 f" mean, {_fmt(results.get('viewpoint_error_median_deg'), '.2f')} median")
    for hand, row in (results.get("by_hand") or {}).items():
        lines.append(f"  {hand + ' hands':<26}{row['count']}: EPE {row['epe_mean_mm']:.2f} mm, "
                     f"viewpoint {row['viewpoint_error_deg']:.2f} deg")
    for key, label in (("gt_viewpoint", "decoded CPose, GT view"),
                       ("gt_cpose", "GT CPose, decoded view")):
        row = (results.get("error_split") or {}).get(key)
        if row:
            lines.append(f"  {label:<26}AUC {row['auc_20_50']:.4f}, EPE {row['epe_mean_mm']:.2f}"
                         f" / {row['epe_median_mm']:.2f} mm")
    pck = results.get("pck")
    if pck:
        pts = [(t, v) for t, v in zip(pck["thresholds_mm"], pck["values"])][::3]
        lines.append("  PCK  " + "  ".join(f"{t:.0f}mm:{v:.3f}" for t, v in pts))
    if results.get("keypoints_2d_px") is not None:
        lines.append(f"  {'2-D keypoints drawn (px)':<26}{results['keypoints_2d_px']:.2f} mean")
    if results.get("pose_note"):
        lines.append(f"  ({results['pose_note']})")
    lines.append("")
    lines.append(f"{'image MSE ([-1,1] units)':<28}{results['image_mse']:.5f}")
    lines.append(f"{'PSNR image / hand (dB)':<28}{_fmt(results.get('image_psnr_db'), '.2f')} / "
                 f"{_fmt(results.get('hand_psnr_db'), '.2f')}")
    lines.append(f"{'sharpness (hand)':<28}{_fmt(results.get('sharpness'), '.3f')}")
    along = results.get("along_labels_uv")
    if along:
        lines.append(f"{'  drawn along labels uv':<28}{_fmt(along.get('image_psnr_db'), '.2f')} / "
                     f"{_fmt(along.get('hand_psnr_db'), '.2f')} dB, sharpness "
                     f"{_fmt(along.get('sharpness'), '.3f')}")
    if results.get("image_quality_note"):
        lines.append(f"  ({results['image_quality_note']})")
    trip = results.get("round_trip")
    if trip:
        lines.append(f"{'round trip: pose of recon':<28}EPE {trip['epe_mean_mm']:.2f} mm vs truth "
                     f"({trip['ratio_to_input_error']:.2f} x the input's), "
                     f"{trip['epe_vs_input_estimate_mm']:.2f} mm vs the input's estimate")
    if results.get("fd_reconstructions") is not None:
        lines.append(f"{'FD recon vs input (8 px)':<28}{results['fd_reconstructions']:.3f}")
    kl = results["kl"]
    parts = "  ".join(f"{k} {kl[k]:.2f}" for k in results["latent_layout"])
    lines.append(f"{'KL q(z|x) (nats)':<28}total {kl['total']:.2f}  {parts}")
    samples = results.get("samples")
    if samples:
        lines.append("")
        if "skipped" in samples:
            lines.append(f"random samples: skipped ({samples['skipped']})")
        else:
            lines.append(f"random samples vs reconstructions (Fréchet distance, "
                         f"{samples['thumbnail_px']} px thumbnails, {samples['count']} each)")
            lines.append(f"  {'z ~ hands fit':<26}{samples['fd_hands']:.3f}")
            lines.append(f"  {'z ~ N(0, I)':<26}{samples['fd_prior']:.3f}")
            lines.append(f"  {'floor (two halves)':<26}{samples['fd_floor']:.3f}")
    dis = results.get("disentanglement")
    if dis:
        lines.append("")
        t4 = dis["table4"]
        if "sources" in t4:
            lines.append(f"Table 4 ({t4['samples']} samples, 50/50 split, {t4['regressor']})")
            lines.append(f"  {'source':<16}{'y1 CPose AUC ↑':>16}{'y2 view MSE ↓':>16}")
            chance = t4.get("at_chance", {})
            for name, row in t4["sources"].items():
                y1, y2 = (_fmt(row[y], ".3f") + (" ~" if name in chance.get(y, ()) else "  ")
                          for y in ("y1", "y2"))
                lines.append(f"  {name:<16}{y1:>16}{y2:>16}")
            if any(chance.values()):
                lines.append(f"  ~ chance level: no better than the noise row (within "
                             f"{t4['chance_margin']:.0%}); the regression learned nothing there")
        else:
            lines.append(f"Table 4: skipped ({t4['skipped']})")
        bv = dis["beta_vae"]
        if "score" in bv:
            lines.append(f"β-VAE score {bv['score']:.3f} (train {bv['train_accuracy']:.3f}; "
                         f"L={bv['pairs_per_point']}, {bv['n_train']}+{bv['n_eval']} points, "
                         f"factors {', '.join(bv['factors'])})")
        else:
            lines.append(f"β-VAE score: skipped ({bv['skipped']})")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ plots


def save_plots(results: Mapping[str, Any], collected: Collected, out_dir) -> list:
    """`pck.png` (the PCK curve) and `reconstructions.png` (input | reconstruction | decoded from
    labels) in `out_dir`; returns the paths written."""
    from pathlib import Path

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    pck = results.get("pck")
    if pck:
        fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
        ax.plot(pck["thresholds_mm"], pck["values"], "o-", ms=3,
                label=f"AUC 20-50 = {results['auc_20_50']:.3f}")
        ax.axvspan(pck["thresholds_mm"][8], pck["thresholds_mm"][-1], color="0.92", zorder=0)
        ax.set(xlabel="threshold (mm)", ylabel="3D PCK", ylim=(0, 1.01), xlim=(0, 50),
               title=f"3D PCK, {results['labelled_count']} samples")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
        fig.tight_layout()
        fig.savefig(out / "pck.png")
        plt.close(fig)
        written.append(out / "pck.png")
    g = collected.grid
    if len(g["input"]):
        from handlatent.training.figures import mosaic
        rows = [[g["input"][i], g["reconstruction"][i], g["from_labels"][i]]
                for i in range(len(g["input"]))]
        picture = mosaic(rows, col_labels=["input", "reconstruction", "from labels"])
        Image.fromarray(picture).save(out / "reconstructions.png")
        written.append(out / "reconstructions.png")
    return written
