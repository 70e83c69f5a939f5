"""When a tensor derived from weights (a folded matrix, a rebuilt kernel) may be kept, and what
it is kept against."""

from __future__ import annotations

from typing import Iterable

import torch


def weights_key(tensors: Iterable[torch.Tensor | None]) -> tuple:
    """Changes when any of `tensors` is written in place (an optimiser step), replaced (a state
    dict loaded into new storage) or moved; `None` entries (absent biases) count as themselves.
    Inference tensors carry no version counter: their storage alone keys them."""
    return tuple(None if t is None else
                 (t.data_ptr(), t.dtype, t.device, None if t.is_inference() else t._version)
                 for t in tensors)


def weights_frozen(weight: torch.Tensor) -> bool:
    """Whether no gradient can reach `weight` in this call (gradients off, or it wants none):
    only then may a derivation kept from earlier calls stand in for it."""
    return not (torch.is_grad_enabled() and weight.requires_grad)
