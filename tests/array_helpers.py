"""Array helpers shared by the numpy/torch property tests (skeleton, rotations)."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import settings

fast = settings(max_examples=50, deadline=None)


def convert(a, backend, dtype):
    """`a` as an array of the given backend and dtype."""
    return torch.as_tensor(np.asarray(a), dtype=dtype) if backend == "torch" else \
        np.asarray(a, dtype=dtype)


def as_numpy(a):
    return a.detach().cpu().numpy().astype(np.float64) if isinstance(a, torch.Tensor) else \
        np.asarray(a, dtype=np.float64)


def tolerance(dtype):
    """Relative tolerance of a round trip in `dtype`."""
    return 1e-5 if dtype in (np.float32, torch.float32) else 1e-10
