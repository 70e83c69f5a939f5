"""The latent atlas: per active dimension, a strip of decodings from -2σ to +2σ; `Atlas`, the
session part that decodes it around the current latent (`session.atlas`).

The traversal figures of β-VAE papers, made around the current latent: row i varies z[dims[i]]
over `values` (the prior is N(0, 1), so σ = 1) and keeps every other dimension as it is. Rows are
decoded in batches of whole rows under the session's model lock, which is released between
batches so that the slider's decodes are not held up for long; a request can stop between
batches when it is no longer wanted.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence

import numpy as np

from handlatent.explorer.decoder import InlineWorker, NewestWorker, decode_batch, read_only
from handlatent.explorer.events import Events
from handlatent.explorer.latent import LatentHost
from handlatent.model import DVAE

if TYPE_CHECKING:
    from handlatent.explorer.runner import ModelRunner
    from handlatent.explorer.stats import LatentStats

ATLAS_SPAN = 2.0        # strips run from -2σ to +2σ
ATLAS_COLUMNS = 7       # values per strip
BATCH_LATENTS = 8       # at most this many latents per forward pass (whole rows, >= 1)


@dataclass(frozen=True)
class AtlasRows:
    """Decoded strips for some rows of one atlas request (a request arrives in parts).

    Arrays are read-only, so parts can be handed between threads.
    """

    request_id: int
    z: np.ndarray              # (d,) float32: the latent the strips vary around
    values: np.ndarray         # (columns,) float32: the value each column sets
    dims: tuple[int, ...]      # the rows here: indices into z
    images: np.ndarray         # (len(dims), columns, S, S, 3) uint8
    last: bool                 # whether this is the last part of its request
    elapsed_ms: float          # model time for this part


def atlas_values(columns: int = ATLAS_COLUMNS, span: float = ATLAS_SPAN) -> np.ndarray:
    """`columns` evenly spaced values from -span to +span (float32)."""
    if columns < 2:
        raise ValueError(f"an atlas strip needs at least 2 columns, got {columns}")
    if not span > 0:
        raise ValueError(f"atlas span must be > 0, got {span}")
    return np.linspace(-span, span, int(columns)).astype(np.float32)


def atlas_latents(z: np.ndarray, dims: Sequence[int], values: np.ndarray) -> np.ndarray:
    """(len(dims), len(values), d) copies of z, row i with z[dims[i]] set to each value."""
    z = np.asarray(z, dtype=np.float32).reshape(-1)
    values = np.asarray(values, dtype=np.float32).reshape(-1)
    latents = np.repeat(np.repeat(z[None, None], len(dims), 0), len(values), 1)
    for row, dim in enumerate(dims):
        if not 0 <= int(dim) < z.shape[0]:
            raise ValueError(f"atlas dimension {dim} is not an index into z (d = {z.shape[0]})")
        latents[row, :, int(dim)] = values
    return latents


def decode_atlas(model: DVAE, z: np.ndarray, dims: Sequence[int], values: np.ndarray, *,
                 request_id: int = 0, lock: threading.Lock | None = None,
                 batch_latents: int = BATCH_LATENTS,
                 cancelled: Callable[[], bool] | None = None) -> Iterator[AtlasRows]:
    """Decode the strips of `dims` in batches of whole rows, yielding each batch's `AtlasRows`.

    `cancelled()` is asked before each batch; once it is True no more batches are decoded.
    """
    z = read_only(np.asarray(z, dtype=np.float32).reshape(-1).copy())
    values = read_only(np.asarray(values, dtype=np.float32).reshape(-1).copy())
    dims = [int(d) for d in dims]
    latents = atlas_latents(z, dims, values)
    if not dims:
        size = model.config.image_size
        yield AtlasRows(request_id=request_id, z=z, values=values, dims=(),
                        images=read_only(np.zeros((0, len(values), size, size, 3), np.uint8)),
                        last=True, elapsed_ms=0.0)
        return
    rows_per_batch = max(1, int(batch_latents) // len(values))
    for start in range(0, len(dims), rows_per_batch):
        if cancelled is not None and cancelled():
            return
        stop = min(start + rows_per_batch, len(dims))
        begin = time.perf_counter()
        frames = decode_batch(model, latents[start:stop].reshape(-1, z.shape[0]), lock=lock)
        images = np.stack([f.image for f in frames]).reshape(
            stop - start, len(values), *frames[0].image.shape)
        yield AtlasRows(request_id=request_id, z=z, values=values,
                        dims=tuple(dims[start:stop]), images=read_only(images),
                        last=stop == len(dims),
                        elapsed_ms=(time.perf_counter() - begin) * 1000)


class Atlas:
    """Decodes the atlas around the host's current latent, its rows `stats.atlas_dims()`.

    Event: "atlas_changed"(AtlasRows), one per part of a request, from the atlas worker (from
    the caller when not `asynchronous`); errors go to `on_error(message)`.
    """

    EVENTS = ("atlas_changed",)

    def __init__(self, host: LatentHost, runner: ModelRunner, stats: LatentStats,
                 on_error: Callable[[str], None], asynchronous: bool = True) -> None:
        self.events = Events(self.EVENTS)
        self._host = host
        self._runner = runner
        self._stats = stats
        self._ids = itertools.count(1)
        self._worker = (NewestWorker if asynchronous else InlineWorker)(
            self._decode, None, on_error, name="handlatent-atlas", what="atlas decoding")

    def request(self, columns: int = ATLAS_COLUMNS, span: float = ATLAS_SPAN,
                first: Iterable[int] = ()) -> int:
        """Decode the atlas around the current latent: row by row (those in `first`, e.g. the
        rows on screen, before the others) with `columns` values from -span to +span σ; the
        rows arrive in parts as "atlas_changed" events. Returns the request id. Asynchronous:
        the newest request wins, and one stops early once the latent changed (it is stale)."""
        values = atlas_values(columns, span)
        dims = self._stats.atlas_dims()
        wanted = [d for d in dict.fromkeys(int(i) for i in first) if d in dims]
        request_id = next(self._ids)
        self._worker.submit((self._host.latent, tuple(wanted + [d for d in dims
                                                                if d not in wanted]), values),
                            request_id)
        return request_id

    def _decode(self, request: tuple[np.ndarray, tuple[int, ...], np.ndarray],
                request_id: int) -> None:
        z, dims, values = request

        def cancelled() -> bool:
            return self._worker.superseded or not np.array_equal(self._host.latent, z)

        for part in self._runner.atlas(z, dims, values, request_id, cancelled):
            self.events.emit("atlas_changed", part)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until the newest request was decoded; False on timeout."""
        return self._worker.wait_idle(timeout)

    def close(self) -> None:
        """Stop decoding (idempotent)."""
        self._worker.close()
