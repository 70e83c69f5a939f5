"""The session's latent as its parts see it (`LatentHost`), and checks of what callers hand
the explorer: whole latents and the names of their parts."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from handlatent.model import LatentLayout


def check_latent(z: Any, layout: LatentLayout) -> np.ndarray:
    """`z` as a fresh (d,) float32 array; ValueError (one line) unless d finite values."""
    z = np.array(z, dtype=np.float32).reshape(-1)
    if z.shape != (layout.total,):
        raise ValueError(f"latent must have {layout.total} values, got {z.shape[0]}")
    if not np.isfinite(z).all():
        raise ValueError("latent contains NaN or infinite values")
    return z


def part_slice(layout: LatentLayout, part: str) -> slice:
    """The slice of z holding sub-latent `part`; ValueError naming the parts if unknown."""
    try:
        return layout.slices[part]
    except (KeyError, TypeError):
        raise ValueError(f"unknown latent part {part!r}; parts are "
                         f"{', '.join(layout.names)}") from None


class LatentHost(Protocol):
    """What a session part sees of the session: its current latent, and a way to change it."""

    @property
    def latent(self) -> np.ndarray: ...

    def set_latent(self, z: Any, *, record: bool = True) -> None: ...
