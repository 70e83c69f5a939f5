"""Decoding latents into frames, and the background worker that decodes the newest request.

The worker holds one pending slot: a new request replaces any request not yet started, so a
slider drag that asks for hundreds of frames decodes only as many as the model can keep up with
and always ends on the last one asked for.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from handlatent.model import DVAE

log = logging.getLogger("handlatent.explorer")


@dataclass(frozen=True)
class Decoded:
    """One decoded frame; its arrays are read-only, so it can be shared between threads."""

    z: np.ndarray          # (d,) float32: the latent it came from
    image: np.ndarray      # (S, S, 3) uint8
    xyz: np.ndarray        # (21, 3) float32: 3D pose, root-relative, normalised units
    cpose: np.ndarray      # (21, 3) float32
    viewpoint: np.ndarray  # (3, 3) float32
    elapsed_ms: float      # model time (decode + copy to host)
    request_id: int        # increasing; a frame with a smaller id than the one shown is stale


def to_uint8_images(images: torch.Tensor) -> np.ndarray:
    """(B, 3, S, S) in [-1, 1] -> (B, S, S, 3) uint8."""
    x = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


def decode_batch(model: DVAE, z: np.ndarray, request_ids: list[int] | None = None,
                 lock: threading.Lock | None = None) -> list[Decoded]:
    """Decode latents `z` (B, d) in one forward pass under `torch.inference_mode()`.

    `lock`, when given, is held while the model runs (the session serialises model use with it).
    """
    z = np.asarray(z, dtype=np.float32).reshape(-1, model.layout.total)
    ids = list(request_ids) if request_ids is not None else [0] * len(z)
    device = model.image_mean.device
    start = time.perf_counter()
    if lock is not None:
        lock.acquire()
    try:
        with torch.inference_mode():
            out = model.decode(torch.from_numpy(z).to(device))
            images = to_uint8_images(out["image"])
            xyz, cpose, viewpoint = (out[k].float().cpu().numpy()
                                     for k in ("xyz", "cpose", "viewpoint"))
    finally:
        if lock is not None:
            lock.release()
    elapsed = (time.perf_counter() - start) * 1000 / max(len(z), 1)
    return [Decoded(z=_frozen(z[i].copy()), image=_frozen(images[i]), xyz=_frozen(xyz[i]),
                    cpose=_frozen(cpose[i]), viewpoint=_frozen(viewpoint[i]),
                    elapsed_ms=elapsed, request_id=ids[i]) for i in range(len(z))]


class DecodeWorker:
    """One daemon thread decoding the newest submitted latent; results go to `on_decoded`.

    `decode(z, request_id) -> Decoded` runs on the worker thread, and so do `on_decoded(frame)`
    and `on_error(message)`. `submit` never blocks on the model.
    """

    def __init__(self, decode: Callable[[np.ndarray, int], Decoded],
                 on_decoded: Callable[[Decoded], None],
                 on_error: Callable[[str], None], name: str = "handlatent-decoder") -> None:
        self._decode = decode
        self._on_decoded = on_decoded
        self._on_error = on_error
        self._cond = threading.Condition()
        self._pending: tuple[np.ndarray, int] | None = None
        self._busy = False
        self._closed = False
        self.decoded_count = 0  # frames decoded so far (for tests and statistics)
        self.replaced_count = 0  # requests dropped because a newer one replaced them
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def closed(self) -> bool:
        """Whether `close` was called."""
        return self._closed

    def submit(self, z: np.ndarray, request_id: int) -> None:
        """Ask for `z` to be decoded, replacing any pending request (ignored after `close`)."""
        with self._cond:
            if self._closed:
                return
            if self._pending is not None:
                self.replaced_count += 1
            self._pending = (np.array(z, dtype=np.float32), request_id)
            self._cond.notify_all()

    def wait_idle(self, timeout: float | None = 5.0) -> bool:
        """Block until nothing is pending or running (the newest request's frame was emitted)."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("wait_idle called from the decode worker itself (a 'decoded' "
                               "callback); that would deadlock")
        with self._cond:
            return self._cond.wait_for(lambda: self._pending is None and not self._busy,
                                       timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Drop any pending request, let a running decode finish, stop the thread."""
        with self._cond:
            self._closed = True
            self._pending = None
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not None or self._closed)
                if self._closed:
                    self._cond.notify_all()
                    return
                z, request_id = self._pending
                self._pending = None
                self._busy = True
            try:
                try:
                    frame = self._decode(z, request_id)
                except Exception as error:
                    self._report(f"decoding failed: {type(error).__name__}: {error}")
                else:
                    try:
                        self._on_decoded(frame)
                    except Exception as error:
                        self._report(f"a 'decoded' callback raised {type(error).__name__}: "
                                     f"{error}")
            finally:
                with self._cond:
                    self._busy = False
                    self.decoded_count += 1
                    self._cond.notify_all()

    def _report(self, message: str) -> None:
        """Pass `message` to `on_error`, keeping the worker alive whatever happens."""
        log.debug(message, exc_info=True)
        try:
            self._on_error(message)
        except Exception:
            log.exception("an 'error' callback raised")
