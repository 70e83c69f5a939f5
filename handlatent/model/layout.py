"""The parts of the dVAE latent z = [z_y1 | z_y2 | z_u] and their slices."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from types import MappingProxyType
from typing import ClassVar, Mapping

import torch


@dataclass(frozen=True)
class LatentLayout:
    """Sizes of the sub-latents: z_y1 canonical pose, z_y2 viewpoint, z_u content.

    The paper uses d = 64 in total; z_u = 0 gives its fully specified latent z = [z_y1, z_y2].
    """

    z_y1: int = 32
    z_y2: int = 16
    z_u: int = 16

    TITLES: ClassVar[Mapping[str, str]] = MappingProxyType({
        "z_y1": "canonical pose", "z_y2": "viewpoint", "z_u": "content"})

    def __post_init__(self) -> None:
        for name, size in zip(self.names, self.sizes):
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise ValueError(f"latent size {name} must be an int >= 0, got {size!r}")
        if self.z_y1 == 0 or self.z_y2 == 0:
            raise ValueError("latent sizes z_y1 and z_y2 must be > 0 (the pose decoders read them)")

    @property
    def names(self) -> tuple[str, ...]:
        """Sub-latent names in the order they are stored in z."""
        return tuple(f.name for f in fields(self))

    @property
    def sizes(self) -> tuple[int, ...]:
        """Sub-latent sizes in the order of `names`."""
        return tuple(getattr(self, name) for name in self.names)

    @property
    def total(self) -> int:
        """Length d of the whole latent z."""
        return sum(self.sizes)

    @property
    def slices(self) -> dict[str, slice]:
        """Name -> slice of the last axis of z holding that sub-latent."""
        out, start = {}, 0
        for name, size in zip(self.names, self.sizes):
            out[name] = slice(start, start + size)
            start += size
        return out

    def split(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Name -> view of z's last axis for each sub-latent (z of shape (..., total))."""
        if z.shape[-1] != self.total:
            raise ValueError(f"latent has {z.shape[-1]} entries, layout expects {self.total}")
        return {name: z[..., s] for name, s in self.slices.items()}

    def join(self, parts: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Concatenate sub-latents (name -> (..., size)) into z, the inverse of `split`."""
        if set(parts) != set(self.names):
            raise ValueError(f"expected sub-latents {list(self.names)}, got {sorted(parts)}")
        for name, size in zip(self.names, self.sizes):
            if parts[name].shape[-1] != size:
                raise ValueError(f"{name} has {parts[name].shape[-1]} entries, expected {size}")
        return torch.cat([parts[name] for name in self.names], dim=-1)

    def to_dict(self) -> dict[str, int]:
        """Plain dict of the sizes, for checkpoints and configs."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, int]) -> LatentLayout:
        """Inverse of `to_dict`; unknown keys are an error."""
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown latent layout keys: {sorted(unknown)}")
        return cls(**data)
