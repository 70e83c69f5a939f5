"""Pictures in and out of the model's tensors, for scripts and notebooks.

    x = handlatent.load_image("hand.png", model.config.image_size)   # (1, 3, S, S) in [-1, 1]
    handlatent.to_image(model.decode(z)["image"]).save("decoded.png")

`load_image` reads and crops exactly as the explorer's File ▸ Open and `handlatent-estimate` do
(handlatent.explorer.images.prepare_image: EXIF rotation, alpha over white, the centre square);
`to_image` / `to_array` turn decoded images back into pictures.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from handlatent.explorer.decoder import to_uint8_images
from handlatent.explorer.images import ImageSource, prepare_image
from handlatent.explorer.stats import images_to_tensor

__all__ = ["load_image", "to_array", "to_image"]


def load_image(source: ImageSource, size: int = 128,
               device: torch.device | str = "cpu") -> torch.Tensor:
    """A picture (path, PIL image or (H, W, 3) uint8 array) as the model's input: its centre
    square resized to `size`, a (1, 3, size, size) float tensor in [-1, 1] on `device`.
    Raises handlatent.explorer.ImageError (one line) for a missing or unreadable file."""
    return images_to_tensor(prepare_image(source, size).model_input[None], device)


def to_array(images: torch.Tensor) -> np.ndarray:
    """Decoded images, (3, S, S) or (B, 3, S, S) in [-1, 1], as uint8 (S, S, 3) or (B, S, S, 3)."""
    if images.dim() not in (3, 4) or images.shape[-3] != 3:
        raise ValueError(f"expected (3, S, S) or (B, 3, S, S) images, got {tuple(images.shape)}")
    batch = to_uint8_images(images.detach().reshape(-1, *images.shape[-3:]))
    return batch if images.dim() == 4 else batch[0]


def to_image(images: torch.Tensor) -> Image.Image:
    """One decoded image, (3, S, S) or (1, 3, S, S) in [-1, 1], as an RGB PIL image."""
    array = to_array(images)
    if array.ndim == 4:
        if len(array) != 1:
            raise ValueError(f"to_image takes one image, got a batch of {len(array)} "
                             "(use to_array, or to_image(images[i]))")
        array = array[0]
    return Image.fromarray(array, "RGB")
