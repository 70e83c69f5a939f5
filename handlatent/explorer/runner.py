"""The explorer's model runner: the model, its device and the one lock that serialises its use.

The session, its parts and their worker threads (decoding, the drag, the atlas, statistics)
all run the model through one `ModelRunner`, which takes numpy arrays and gives numpy arrays
back; nothing else holds the lock or moves tensors between devices.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch

from handlatent.dim_labels import DimLabels, label_dimensions
from handlatent.explorer import stats
from handlatent.explorer.atlas import AtlasRows, decode_atlas
from handlatent.explorer.decoder import Decoded, decode_batch
from handlatent.explorer.drag import Drag, DragUpdate
from handlatent.model import DVAE


def resolve_device(device: str | torch.device) -> torch.device:
    """"auto" -> CUDA if available, else CPU; anything else as torch.device."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class ModelRunner:
    """`model` in eval mode on `device`; every method may be called from any thread."""

    def __init__(self, model: DVAE, device: str | torch.device = "cpu") -> None:
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self._lock = threading.Lock()

    @property
    def image_size(self) -> int:
        """The side of the model's square images, pixels."""
        return int(self.model.config.image_size)

    def _tensor(self, array: Any) -> torch.Tensor:
        return torch.tensor(np.asarray(array, dtype=np.float32), device=self.device)

    def swap(self, model: DVAE) -> None:
        """Run `model` from now on (a model switch): moved to this device, in eval mode; a
        call in progress finishes on the old model."""
        model = model.to(self.device).eval()
        with self._lock:
            self.model = model

    def decode(self, latents: np.ndarray, request_ids: list[int] | None = None) -> list[Decoded]:
        """Frames of latents (n, d), decoded in one pass."""
        with self._lock:
            return decode_batch(self.model, latents, request_ids)

    def decode_if_fits(self, z: np.ndarray, request_id: int) -> Decoded | None:
        """The frame of one latent (d,), or None when it was made for another model's layout
        (a request from before a model switch)."""
        with self._lock:
            if z.shape[-1] != self.model.layout.total:
                return None
            return decode_batch(self.model, z[None], [request_id])[0]

    def decode_pose(self, latents: np.ndarray) -> dict[str, np.ndarray]:
        """The pose decoders alone on latents (n, d): "xyz", "cpose" (n, 21, 3), "viewpoint"."""
        with self._lock, torch.inference_mode():
            out = self.model.decode_pose(self._tensor(latents).reshape(-1, self.model.layout.total))
            return {k: v.float().cpu().numpy() for k, v in out.items()}

    def encode(self, images: np.ndarray) -> np.ndarray:
        """Posterior means of uint8 images (S, S, 3) -> (d,), or (B, S, S, 3) -> (B, d)."""
        images = np.asarray(images)
        single = images.ndim == 3
        batch = images[None] if single else images
        expected = (self.image_size, self.image_size, 3)
        if batch.ndim != 4 or batch.shape[1:] != expected or batch.dtype != np.uint8:
            raise ValueError(f"encode expects uint8 images of shape (..., {expected}), got "
                             f"{images.dtype} {images.shape}")
        with self._lock, torch.inference_mode():
            mu, _ = self.model.encode_image(stats.images_to_tensor(batch, self.device))
            z = mu.float().cpu().numpy()
        return z[0] if single else z

    def encode_viewpoint(self, rotation: np.ndarray) -> np.ndarray:
        """The mean of q(z_y2 | rotation) for one rotation (3, 3): (d_y2,)."""
        with self._lock, torch.inference_mode():
            mu, _ = self.model.encode_viewpoint(self._tensor(rotation)[None])
            return mu[0].float().cpu().numpy()

    def drag(self, drag: Drag, z: np.ndarray, target: np.ndarray) -> DragUpdate:
        """One update of a joint drag from latent z towards `target` (handlatent.explorer.drag).

        It runs the pose decoders only and changes no state of the model, so it does not wait
        for an image decode to finish (the lock only guards the choice of model)."""
        with self._lock:
            model = self.model
        return drag.update(model, z, target)

    def atlas(self, z: np.ndarray, dims: Iterable[int], values: np.ndarray, request_id: int,
              cancelled: Callable[[], bool]) -> Iterator[AtlasRows]:
        """The atlas strips of `dims` around z, in parts (the lock is released between them)."""
        return decode_atlas(self.model, z, list(dims), values, request_id=request_id,
                            lock=self._lock, cancelled=cancelled)

    def encode_hands(self) -> tuple[np.ndarray, np.ndarray]:
        """The image posteriors (mu, logvar) of the reference hands (handlatent.explorer.stats)."""
        return stats.encode_hands(self.model, n=stats.KL_SAMPLES, lock=self._lock)

    def label_dimensions(self) -> DimLabels:
        """What each pose and viewpoint dimension moves (handlatent.dim_labels)."""
        with self._lock:
            return label_dimensions(self.model)
