"""Statistics of the image posteriors over reference hands: the KL of each latent dimension
(which dimensions the model uses) and the posteriors the sampling Gaussian is fitted to; and
`LatentStats`, the session part that holds them and draws random latents."""

from __future__ import annotations

import logging
import threading
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np
import torch

from handlatent.explorer.events import Events
from handlatent.explorer.latent import part_slice
from handlatent.explorer.sampling import (LatentGaussian, check_source, fit_hands,
                                          hands_from_stats)
from handlatent.model import DVAE, LatentLayout

if TYPE_CHECKING:
    from handlatent.explorer.runner import ModelRunner

log = logging.getLogger("handlatent.explorer")

INACTIVE_KL = 0.01  # nats: dimensions below this carry (almost) no information
KL_SAMPLES = 64
KL_SEED = 0


def images_to_tensor(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(B, S, S, 3) uint8 -> (B, 3, S, S) float in [-1, 1] on `device`."""
    array = np.ascontiguousarray(images)
    if not array.flags.writeable:  # frames are shared read-only; torch wants a writable array
        array = array.copy()
    x = torch.from_numpy(array).to(device)
    return x.permute(0, 3, 1, 2).float() / 127.5 - 1


def kl_per_dim_from_stats(stats: Mapping[str, Any] | None, d: int) -> np.ndarray | None:
    """`stats["kl_per_dim"]` as a (d,) float64 array, or None if absent; ValueError if malformed."""
    if stats is None or stats.get("kl_per_dim") is None:
        return None
    try:
        kl = np.asarray(stats["kl_per_dim"], dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("latent_stats kl_per_dim must be a list of numbers") from None
    if kl.shape != (d,):
        raise ValueError(f"latent_stats kl_per_dim has shape {kl.shape}, expected ({d},)")
    if not np.isfinite(kl).all() or (kl < 0).any():
        raise ValueError("latent_stats kl_per_dim must be finite and >= 0")
    return kl


def stored_latent_stats(extra: Any, d: int, origin: str) -> Mapping[str, Any] | None:
    """A checkpoint's extra["latent_stats"] if it is usable for a d-dimensional latent; else
    None, with a warning naming `origin` and the problem when it was there but malformed."""
    stored = extra.get("latent_stats") if isinstance(extra, Mapping) else None
    try:
        kl_per_dim_from_stats(stored, d)
        hands_from_stats(stored, d)
    except (ValueError, AttributeError) as error:
        log.warning("%s: ignoring its latent_stats (%s)", origin, error)
        return None
    return stored


def _synthetic_images(n: int, size: int, seed: int) -> np.ndarray:
    """`n` hands rendered by handlatent.synth at `size` px (uint8 (n, S, S, 3))."""
    from handlatent.synth import scene as synth_scene
    rng = np.random.default_rng(seed)
    return synth_scene.render_scene(synth_scene.sample_scene(rng, n), size)["image"]


def encode_hands(model: DVAE, *, n: int = KL_SAMPLES, seed: int = KL_SEED, batch_size: int = 16,
                 lock: threading.Lock | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The image posteriors (mu, logvar), each (n, d) float64, of `n` reference hands.

    The images are synthetic hands (handlatent.synth, fixed `seed`); if the renderer is not
    available, the model's own decodings of prior samples are used instead.
    """
    size = model.config.image_size
    device = model.image_mean.device
    try:
        images = images_to_tensor(_synthetic_images(n, size, seed), device)
    except Exception as error:  # the renderer is optional for the explorer
        log.warning("synthetic images unavailable (%s: %s); estimating latent statistics from "
                    "decoded prior samples", type(error).__name__, error)
        generator = torch.Generator(device=device).manual_seed(seed)
        with lock or nullcontext(), torch.inference_mode():
            images = model.decode(model.sample_prior(n, generator))["image"]
    mus, logvars = [], []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            with lock or nullcontext():
                mu, logvar = model.encode_image(images[start:start + batch_size])
            mus.append(mu.double().cpu())
            logvars.append(logvar.double().cpu())
    return torch.cat(mus).numpy(), torch.cat(logvars).numpy()


def kl_per_dim(mu: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """Mean over the rows of KL(N(mu, exp(logvar)) || N(0, 1)) per dimension: (d,) float64."""
    return (0.5 * (np.square(mu) + np.exp(logvar) - 1 - logvar)).mean(0)


def estimate_kl_per_dim(model: DVAE, *, n: int = KL_SAMPLES, seed: int = KL_SEED,
                        batch_size: int = 16, lock: threading.Lock | None = None) -> np.ndarray:
    """Mean over `n` reference hands (`encode_hands`) of KL(q(z_i | x) || N(0, 1)): (d,)."""
    return kl_per_dim(*encode_hands(model, n=n, seed=seed, batch_size=batch_size, lock=lock))


def order_by_kl(kl: np.ndarray, layout: LatentLayout, part: str) -> list[int]:
    """Indices (into z) of sub-latent `part`'s dimensions, by KL descending (ties: by index)."""
    s = part_slice(layout, part)
    return sorted(range(s.start, s.stop), key=lambda i: (-kl[i], i))


def dims_by_kl(model: DVAE, part: str, kl: np.ndarray | None = None) -> list[int]:
    """Sub-latent `part`'s dimensions (indices into z), the most informative first: the first is
    the one worth changing. `kl` per dimension (a checkpoint's latent_stats["kl_per_dim"]); None:
    estimated over reference hands (`estimate_kl_per_dim`, about a second)."""
    kl = estimate_kl_per_dim(model) if kl is None else np.asarray(kl, dtype=np.float64)
    return order_by_kl(kl, model.layout, part)


class LatentStats:
    """The session's latent statistics and random sampling (`session.stats`).

    The KL per dimension orders the sliders and says which dimensions are active; the Gaussian
    fitted to encoded hands is the default sampling source. Both come from the checkpoint's
    `latent_stats` when it holds them, else from one encoding of reference hands on first use
    (about a second; safe on a background thread). Event: "sampling_changed"(source).
    """

    EVENTS = ("sampling_changed",)

    def __init__(self, runner: ModelRunner, layout: LatentLayout,
                 latent_stats: Mapping[str, Any] | None = None) -> None:
        self.layout = layout
        self.events = Events(self.EVENTS)
        self._runner = runner
        self._kl = kl_per_dim_from_stats(latent_stats, layout.total)
        self._hands = hands_from_stats(latent_stats, layout.total)
        self._sampling = "hands"
        self._estimating = threading.Lock()
        self.rng = np.random.default_rng()   # draws without an explicit rng (seed it to repeat)

    def _estimate(self) -> None:
        """Fill in what the checkpoint did not hold from one encoding of reference hands."""
        with self._estimating:
            if self._kl is None or self._hands is None:
                mu, logvar = self._runner.encode_hands()
                self._kl = kl_per_dim(mu, logvar) if self._kl is None else self._kl
                self._hands = fit_hands(mu, logvar) if self._hands is None else self._hands

    def adopt(self, other: LatentStats) -> None:
        """Take `other`'s layout and statistics (a model switch: this part's runner runs the new
        model now); the sampling source stays."""
        with self._estimating:
            self.layout = other.layout
            self._kl, self._hands = other._kl, other._hands

    @property
    def estimated(self) -> bool:
        """Whether both statistics are at hand (from the checkpoint or estimated already)."""
        return self._kl is not None and self._hands is not None

    @property
    def kl_per_dim(self) -> np.ndarray:
        """Mean KL (nats) of q(z_i | x) to N(0, 1) per dimension, (d,)."""
        if self._kl is None:
            self._estimate()
        return self._kl.copy()

    @property
    def hands_gaussian(self) -> LatentGaussian:
        """The Gaussian fitted to encoded hands (the "hands" sampling source)."""
        if self._hands is None:
            self._estimate()
        return self._hands

    def to_dict(self) -> dict[str, Any]:
        """{"kl_per_dim": [...], "hands": {mean, cov, n}} as a checkpoint's
        extra["latent_stats"] holds it."""
        return {"kl_per_dim": [float(v) for v in self.kl_per_dim],
                "hands": self.hands_gaussian.to_stats()}

    def dim_order(self, part: str) -> list[int]:
        """Indices (into z) of `part`'s dimensions, by KL descending (ties: by index)."""
        return order_by_kl(self.kl_per_dim, self.layout, part)

    def active_dims(self, part: str, threshold: float = INACTIVE_KL) -> list[int]:
        """`dim_order(part)` without the inactive dimensions (KL < `threshold` nats)."""
        kl = self.kl_per_dim
        return [i for i in self.dim_order(part) if kl[i] >= threshold]

    def inactive_dims(self, part: str, threshold: float = INACTIVE_KL) -> list[int]:
        """`part`'s dimensions with KL < `threshold`, by KL descending."""
        kl = self.kl_per_dim
        return [i for i in self.dim_order(part) if kl[i] < threshold]

    def atlas_dims(self) -> list[int]:
        """The latent atlas' rows: each part's `active_dims` (by KL), parts in layout order."""
        return [i for part in self.layout.names for i in self.active_dims(part)]

    @property
    def sampling(self) -> str:
        """Where `sample` (and the session's `randomize`) draw from: one of sampling.SOURCES."""
        return self._sampling

    @sampling.setter
    def sampling(self, source: str) -> None:
        source = check_source(source)
        if source != self._sampling:
            self._sampling = source
            self.events.emit("sampling_changed", source)

    def sample(self, rng: np.random.Generator | int | None = None,
               source: str | None = None) -> np.ndarray:
        """A whole latent (d,) drawn from `source` (default: `sampling`); `rng`: a Generator,
        a seed, or None for `self.rng`. "hands": the Gaussian fitted to encoded hands; "prior":
        N(0, I)."""
        source = check_source(self._sampling if source is None else source)
        rng = (self.rng if rng is None else rng if isinstance(rng, np.random.Generator)
               else np.random.default_rng(rng))
        if source == "hands":
            return self.hands_gaussian.sample(rng)
        return rng.standard_normal(self.layout.total).astype(np.float32)
