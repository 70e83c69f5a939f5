"""What a tensor derived from weights (a folded matrix, a rebuilt kernel) is kept against."""

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
