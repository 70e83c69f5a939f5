"""A stand-in for a slower image decoder: the model's own decode, stretched to a chosen cost.

The GUI must keep up with heavier models than the bundled one (a decoder that takes 4 ms per
image instead of 1.8). `slow_decoder(model, ms)` makes `model.decode` cost about `ms` at batch 1
by doing extra matrix products after each real decode, in proportion to the model's own cost
at that batch size (calibrated at batch 1 and 32, linear between: a batch is stretched by the
same factor as a single image, so batching keeps the gain it has on the real model). The extra work is real computation in torch (it uses the
torch threads and releases the interpreter lock as a convolution does), not a sleep; its
amount is fixed at calibration (from the fastest of repeated calls: the cost on a quiet core),
so a busy machine slows it down as it would slow a real model.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
import torch

CALIBRATION_CALLS = 30
CALIBRATION_BATCH = 32
BURN_SIZE = 96            # side of the square matrices multiplied as the extra work


def _fastest_ms(fn: Callable[[], Any], calls: int) -> float:
    """The fastest of `calls` calls, ms: the cost on a quiet core (a busy machine only adds)."""
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return float(np.min(times))


def slow_decoder(model: Any, decode_ms: float) -> dict[str, float]:
    """Make `model.decode` take about `decode_ms` per batch-1 call (in place; returns what was
    calibrated: the model's own decode time, the stretch factor, one product's time).

    ValueError if `decode_ms` is not above the model's own batch-1 decode time."""
    device = model.image_mean.device
    z = torch.zeros(CALIBRATION_BATCH, model.layout.total, device=device)
    real = model.decode
    a = torch.randn(BURN_SIZE, BURN_SIZE, device=device)
    with torch.inference_mode():
        own_ms = _fastest_ms(lambda: real(z[:1]), CALIBRATION_CALLS)
        batch_ms = _fastest_ms(lambda: real(z), max(3, CALIBRATION_CALLS // 5))
        product_ms = _fastest_ms(lambda: torch.mm(a, a), 3 * CALIBRATION_CALLS)
    if not decode_ms > own_ms:
        raise ValueError(f"a stand-in decoder of {decode_ms:g} ms must be slower than the "
                         f"model's own decode ({own_ms:.2f} ms at batch 1)")
    factor = decode_ms / own_ms
    per_latent = max(0.0, (batch_ms - own_ms) / (CALIBRATION_BATCH - 1))

    def decode(zs: torch.Tensor, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        out = real(zs, *args, **kwargs)
        own_cost = own_ms + per_latent * (len(zs) - 1)     # the quiet model's cost of this batch
        count = int(round((factor - 1) * own_cost / max(product_ms, 1e-4)))
        with torch.inference_mode():
            for _ in range(count):
                torch.mm(a, a)
        return out

    model.decode = decode
    return {"own_decode_ms": round(own_ms, 3), "stand_in_decode_ms": float(decode_ms),
            "own_batch32_ms": round(batch_ms, 3), "factor": round(factor, 3), "product_ms": round(product_ms, 4)}
