"""The supplement's figures 2-6 drawn from a trained dVAE (`handlatent-eval --figures DIR`).

    fig2_latent_walk.png     pose walk (z_y1, z_y2) between two encoded images with the content
                             z_u of either end, the decoded 3D pose under it, and a content walk
                             (z_u) with the pose fixed
    fig3_content_walk.png    z_u walks, each image with the 3D pose re-estimated from it below
    fig4_pose_walk.png       CPose walk with the viewpoint fixed | viewpoint walk with the CPose
                             fixed, as skeletons, between label-encoded ground-truth poses
    fig5_pose_transfer.png   rows: pose images, columns: content images, cells:
                             decode(z_y1, z_y2 of the row, z_u of the column)
    fig6_random_samples.png  decode(z) for z ~ N(0, I) and z from the Gaussian fitted to encoded
                             hands (explorer.sampling), each with its decoded 3D pose under it

Deterministic: the samples are a seeded choice from the dataset and the prior draws use a seeded
torch.Generator. Inputs (encoded images, ground-truth poses) have red frames, as in the paper.
Walks interpolate posterior means linearly. Skeletons are `handlatent.explorer.figures.draw_skeleton`
(front view, camera frame), one scale per figure, in bone units (root-relative / scale).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from handlatent.explorer.figures import BACKGROUND, TEXT_COLOR, draw_skeleton, fit_extent, upscale
from handlatent.explorer.sampling import LatentGaussian

INPUT_FRAME = (220, 40, 40)
MIN_CELL = 128  # small model images are enlarged (nearest neighbour) to at least this size
FIGURES = ("fig2_latent_walk", "fig3_content_walk", "fig4_pose_walk", "fig5_pose_transfer",
           "fig6_random_samples")


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # old Pillow / no FreeType: the fixed bitmap font
        return ImageFont.load_default()


def mosaic(rows: Sequence[Sequence[np.ndarray | None]], *, col_labels: Sequence[str] | None = None,
           row_labels: Sequence[str] | None = None, highlight: set[tuple[int, int]] = frozenset(),
           min_cell: int = MIN_CELL, gap: int = 6) -> np.ndarray:
    """A grid of uint8 (S, S, 3) cells (None = empty) → one uint8 picture.

    Cells are enlarged by an integer factor to at least `min_cell` px; `highlight` cells (row,
    column) get a red frame; optional column labels on top and row labels on the left.
    """
    cells = [c for row in rows for c in row if c is not None]
    if not cells:
        raise ValueError("mosaic needs at least one cell")
    size = max(c.shape[0] for c in cells)
    factor = max(1, -(-min_cell // size))
    cell = size * factor
    n_cols = max(len(r) for r in rows)
    font_px = max(11, cell // 10)
    font = _font(font_px)
    top = font_px + 2 * gap if col_labels else 0
    left = 0
    if row_labels:
        probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
        left = max(int(probe.textlength(str(t), font=font)) for t in row_labels) + 2 * gap
    width = left + n_cols * cell + (n_cols + 1) * gap
    height = top + len(rows) * cell + (len(rows) + 1) * gap
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for r, row in enumerate(rows):
        y = top + gap + r * (cell + gap)
        if row_labels and r < len(row_labels):
            draw.text((gap, y + cell // 2 - font_px // 2), str(row_labels[r]), fill=TEXT_COLOR,
                      font=font)
        for k, image in enumerate(row):
            if image is None:
                continue
            x = left + gap + k * (cell + gap)
            picture = np.asarray(image, dtype=np.uint8)
            if picture.shape[0] != cell:
                picture = upscale(picture, cell // picture.shape[0])
            canvas.paste(Image.fromarray(picture), (x, y))
            if (r, k) in highlight:
                w = max(2, gap // 2)
                draw.rectangle([x - w, y - w, x + cell + w - 1, y + cell + w - 1],
                               outline=INPUT_FRAME, width=w)
    if col_labels:
        for k, text in enumerate(col_labels):
            x = left + gap + k * (cell + gap)
            draw.text((x + 2, gap), str(text), fill=TEXT_COLOR, font=font)
    return np.asarray(canvas, dtype=np.uint8).copy()


# ---------------------------------------------------------------------------------- helpers


class _Figures:
    """The encoded samples and model calls shared by the figures."""

    def __init__(self, model, dataset, *, device, seed: int, samples: int = 8,
                 limit: int | None = None) -> None:
        from handlatent.training.evaluate import EvaluationError, collate_items

        self.model, self.layout, self.device = model, model.layout, torch.device(device)
        self.size = model.config.image_size
        self.seed = seed
        n = len(dataset) if limit is None else min(len(dataset), limit)
        if n < 2:
            raise EvaluationError("the figures need at least 2 samples")
        rng = np.random.default_rng(seed)
        order = rng.permutation(n)[: max(4 * samples, 64)]
        chosen, fallback = [], []
        for i in order:
            item = dataset[int(i)]
            labelled = item.get("labelled", True)
            (chosen if bool(labelled) and item.get("xyz") is not None else fallback).append(item)
            if len(chosen) == samples:
                break
        items = (chosen + fallback)[:samples]
        items = [items[i % len(items)] for i in range(samples)]  # tiny datasets: repeat
        batch = collate_items(items)
        self.labelled = bool(batch["labelled"].all())
        self.image = batch["image"].to(self.device)
        if self.image.shape[-1] != self.size:
            raise EvaluationError(f"the dataset holds {self.image.shape[-1]} px images but the "
                                  f"model takes {self.size} px")
        self.is_right = (batch["is_right"].to(self.device) if batch["is_right"] is not None
                         else torch.zeros(samples, dtype=torch.bool, device=self.device))
        with torch.inference_mode():
            self.mu = model.encode_image(self.image)[0]
            if self.labelled:
                xyz = batch["xyz"].double()
                rel = xyz - xyz[:, :1]
                self.gt_xyz = (rel / batch["scale"].double().reshape(-1, 1, 1)).numpy()
                z_labels = model.latent_from_labels(batch["cpose"].float().to(self.device),
                                                    batch["viewpoint"].float().to(self.device),
                                                    self.mu)
            else:  # no labels: the decoded pose of each input stands in for its ground truth
                self.gt_xyz = model.decode_pose(self.mu, self.is_right)["xyz"].double().cpu().numpy()
                z_labels = self.mu
            parts = self.layout.split(z_labels)
            self.mu_y1_labels, self.mu_y2_labels = parts["z_y1"], parts["z_y2"]
        self.inputs = _uint8(self.image)

    def parts(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i:i + 1] for k, v in self.layout.split(self.mu).items()}

    def decode_images(self, z: torch.Tensor) -> list[np.ndarray]:
        with torch.inference_mode():
            return list(_uint8(self.model.decode(z)["image"]))

    def decode_xyz(self, z: torch.Tensor, is_right: bool) -> np.ndarray:
        flags = torch.full((z.shape[0],), bool(is_right), dtype=torch.bool, device=z.device)
        with torch.inference_mode():
            return self.model.decode_pose(z, flags)["xyz"].double().cpu().numpy()

    def reestimate_xyz(self, images: torch.Tensor, is_right: bool) -> np.ndarray:
        with torch.inference_mode():
            return self.decode_xyz(self.model.encode_image(images)[0], is_right)


def _uint8(images: torch.Tensor) -> np.ndarray:
    from handlatent.training.evaluate import to_uint8
    return to_uint8(images)


def _lerp(a: torch.Tensor, b: torch.Tensor, steps: int) -> torch.Tensor:
    """`steps` points from a to b inclusive, (steps, ...) from (1, ...) inputs."""
    t = torch.linspace(0, 1, steps, device=a.device, dtype=a.dtype).reshape(-1, *[1] * (a.dim() - 1))
    return a + t * (b - a)


def _skeletons(poses: Sequence[np.ndarray | None], size: int, extent: float) -> list[np.ndarray | None]:
    return [None if p is None else draw_skeleton(p, size, extent=extent) for p in poses]


def _extent(poses: Sequence[np.ndarray]) -> float:
    return fit_extent(np.stack([np.asarray(p) for p in poses]))


def _t_labels(steps: int) -> list[str]:
    return [f"t={t:.2f}" for t in np.linspace(0, 1, steps)]


def _save(picture: np.ndarray, path: Path) -> Path:
    Image.fromarray(picture).save(path)
    return path


# ---------------------------------------------------------------------------------- figures


def figure2(f: _Figures, a: int = 0, b: int = 1, steps: int = 8) -> np.ndarray:
    """Pose walk with the content of A, then of B; skeletons of the walk; content walk, pose of A."""
    pa, pb = f.parts(a), f.parts(b)
    rows, labels, highlight = [], [], set()
    ends = lambda r, left, right: ([left] + r + [right])  # noqa: E731
    for who, content in (("A", pa["z_u"]), ("B", pb["z_u"])):
        z = f.layout.join({"z_y1": _lerp(pa["z_y1"], pb["z_y1"], steps),
                           "z_y2": _lerp(pa["z_y2"], pb["z_y2"], steps),
                           "z_u": content.expand(steps, -1)})
        rows.append(ends(f.decode_images(z), f.inputs[a], f.inputs[b]))
        labels.append(f"pose walk, content {who}")
    z_pose = f.layout.join({"z_y1": _lerp(pa["z_y1"], pb["z_y1"], steps),
                            "z_y2": _lerp(pa["z_y2"], pb["z_y2"], steps),
                            "z_u": pa["z_u"].expand(steps, -1)})
    walk_xyz = list(f.decode_xyz(z_pose, bool(f.is_right[a])))
    poses = [f.gt_xyz[a]] + walk_xyz + [f.gt_xyz[b]]
    rows.append(_skeletons(poses, f.size, _extent(poses)))
    labels.append("3D pose of the walk")
    if f.layout.z_u > 0:
        z = f.layout.join({"z_y1": pa["z_y1"].expand(steps, -1), "z_y2": pa["z_y2"].expand(steps, -1),
                           "z_u": _lerp(pa["z_u"], pb["z_u"], steps)})
        rows.append(ends(f.decode_images(z), f.inputs[a], f.inputs[b]))
        labels.append("content walk, pose A")
    for r in range(len(rows)):
        highlight |= {(r, 0), (r, steps + 1)}
    return mosaic(rows, row_labels=labels, col_labels=["input A"] + _t_labels(steps) + ["input B"],
                  highlight=highlight)


def figure3(f: _Figures, pairs: Sequence[tuple[int, int]] = ((0, 1), (2, 3)), steps: int = 8
            ) -> np.ndarray:
    """z_u walks with the pose of A fixed; under each image the 3D pose re-estimated from it."""
    rows, labels, highlight = [], [], set()
    for a, b in pairs:
        pa, pb = f.parts(a), f.parts(b)
        z = f.layout.join({"z_y1": pa["z_y1"].expand(steps, -1), "z_y2": pa["z_y2"].expand(steps, -1),
                           "z_u": _lerp(pa["z_u"], pb["z_u"], steps)})
        with torch.inference_mode():
            images = f.model.decode(z)["image"]
        est = list(f.reestimate_xyz(images, bool(f.is_right[a])))
        poses = [f.gt_xyz[a]] + est + [f.gt_xyz[b]]
        r = len(rows)
        rows.append([f.inputs[a]] + list(_uint8(images)) + [f.inputs[b]])
        rows.append(_skeletons(poses, f.size, _extent(poses)))
        labels += [f"content walk {a}->{b}", "pose from image"]
        highlight |= {(r, 0), (r, steps + 1), (r + 1, 0), (r + 1, steps + 1)}
    return mosaic(rows, row_labels=labels, col_labels=["input"] + _t_labels(steps) + ["input"],
                  highlight=highlight)


def figure4(f: _Figures, pairs: Sequence[tuple[int, int]] = ((0, 1), (2, 3), (4, 5)), steps: int = 6
            ) -> np.ndarray:
    """Skeletons: CPose walk with A's viewpoint | viewpoint walk with A's CPose, from the label
    encoders' posterior means of the ground-truth poses A and B."""
    rows, highlight, all_poses = [], set(), []
    zeros_u = torch.zeros(steps, f.layout.z_u, device=f.device)
    for a, b in pairs:
        y1a, y1b = f.mu_y1_labels[a:a + 1], f.mu_y1_labels[b:b + 1]
        y2a, y2b = f.mu_y2_labels[a:a + 1], f.mu_y2_labels[b:b + 1]
        cpose_walk = f.layout.join({"z_y1": _lerp(y1a, y1b, steps), "z_y2": y2a.expand(steps, -1),
                                    "z_u": zeros_u})
        view_walk = f.layout.join({"z_y1": y1a.expand(steps, -1), "z_y2": _lerp(y2a, y2b, steps),
                                   "z_u": zeros_u})
        right = bool(f.is_right[a])
        row = ([f.gt_xyz[a]] + list(f.decode_xyz(cpose_walk, right)) + [f.gt_xyz[b], None]
               + [f.gt_xyz[a]] + list(f.decode_xyz(view_walk, right)) + [f.gt_xyz[b]])
        r = len(rows)
        highlight |= {(r, 0), (r, steps + 1), (r, steps + 3), (r, 2 * steps + 4)}
        rows.append(row)
        all_poses += [p for p in row if p is not None]
    extent = _extent(all_poses)
    pictures = [_skeletons(row, f.size, extent) for row in rows]
    cols = (["GT A"] + ["CPose walk"] + [""] * (steps - 1) + ["GT B", ""]
            + ["GT A"] + ["viewpoint walk"] + [""] * (steps - 1) + ["GT B"])
    return mosaic(pictures, col_labels=cols, highlight=highlight)


def figure5(f: _Figures, pose_rows: Sequence[int] = (0, 1, 2, 3),
            content_cols: Sequence[int] = (4, 5, 6, 7)) -> np.ndarray:
    """Pose transfer: cell (r, c) = decode(z_y1, z_y2 of pose image r, z_u of content image c)."""
    extent = _extent([f.gt_xyz[r] for r in pose_rows])
    rows = [[None, None] + [f.inputs[c] for c in content_cols]]
    highlight = {(0, k + 2) for k in range(len(content_cols))}
    for i, r in enumerate(pose_rows):
        pr = f.parts(r)
        n = len(content_cols)
        z = f.layout.join({"z_y1": pr["z_y1"].expand(n, -1), "z_y2": pr["z_y2"].expand(n, -1),
                           "z_u": torch.cat([f.parts(c)["z_u"] for c in content_cols])})
        rows.append([f.inputs[r], draw_skeleton(f.gt_xyz[r], f.size, extent=extent)]
                    + f.decode_images(z))
        highlight |= {(i + 1, 0), (i + 1, 1)}
    return mosaic(rows, col_labels=["pose image", "its 3D pose"] + ["content"] * len(content_cols),
                  highlight=highlight)


def figure6(f: _Figures, hands: LatentGaussian, count: int = 5) -> np.ndarray:
    """decode(z) for `count` seeded draws from N(0, I) (the paper's prior) and as many from the
    Gaussian fitted to encoded hands (the explorer's default), each above its decoded 3D pose."""
    generator = torch.Generator(device=f.device).manual_seed(f.seed)
    prior = torch.randn(count, f.layout.total, generator=generator, device=f.device)
    fitted = torch.from_numpy(hands.sample(np.random.default_rng(f.seed), count)).to(f.device)
    blocks = [f.decode_images(z) for z in (prior, fitted)]
    poses = [list(f.decode_xyz(z, False)) for z in (prior, fitted)]
    extent = _extent(poses[0] + poses[1])
    rows = [blocks[0], _skeletons(poses[0], f.size, extent),
            blocks[1], _skeletons(poses[1], f.size, extent)]
    return mosaic(rows, row_labels=["z ~ N(0, I)", "", "z ~ hands fit", ""])


def make_figures(model, dataset, out_dir, *, hands: LatentGaussian, device="cpu", seed: int = 0,
                 steps: int = 8, limit: int | None = None) -> list[Path]:
    """Write the five figures as PNGs into `out_dir` (created); returns their paths.

    The samples are a seeded choice among the first `limit` (None: all) of `dataset`. `hands`:
    the sampling Gaussian (explorer.sampling) of fig. 6's second block.
    """
    f = _Figures(model, dataset, device=device, seed=seed, limit=limit)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pictures = {
        "fig2_latent_walk": figure2(f, steps=steps),
        "fig3_content_walk": figure3(f, steps=steps),
        "fig4_pose_walk": figure4(f, steps=max(3, steps - 2)),
        "fig5_pose_transfer": figure5(f),
        "fig6_random_samples": figure6(f, hands),
    }
    return [_save(pictures[name], out / f"{name}.png") for name in FIGURES]
