"""Decoding latents into frames, and the background worker that runs the newest request.

The worker holds one pending slot: a new request replaces any request not yet started, so a
slider drag that asks for hundreds of frames decodes only as many as the model can keep up with
and always ends on the last one asked for. `NewestWorker` runs any job that way (the latent
atlas uses it too); `DecodeWorker` is the one for single latents.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Generic, TypeVar

import numpy as np
import torch

from handlatent.model import DVAE
from handlatent.model.bone_maps import pixel_uv

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
    # a guided image decoder's (ModelConfig.decoder_guide) 2-D keypoints (21, 2) float32, pixels
    # of `image`, and a crop head's side (True: a right hand; then xyz is that hand's); else None
    uv: np.ndarray | None = None
    is_right: bool | None = None


def to_uint8_images(images: torch.Tensor) -> np.ndarray:
    """(B, 3, S, S) in [-1, 1] -> (B, S, S, 3) uint8."""
    x = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def read_only(a: np.ndarray) -> np.ndarray:
    """`a` contiguous and read-only (a copy only if it was not contiguous): safe to share."""
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


def decode_batch(model: DVAE, z: np.ndarray, request_ids: list[int] | None = None,
                 lock: threading.Lock | None = None) -> list[Decoded]:
    """Decode latents `z` (B, d) in one forward pass under `torch.inference_mode()`.

    `lock`, when given, is held while the model runs (the session serialises model use with it).
    """
    z = np.array(z, dtype=np.float32).reshape(-1, model.layout.total)  # a writable copy
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
            uv = (pixel_uv(out["uv"].float(), model.config.image_size).cpu().numpy()
                  if "uv" in out else [None] * len(z))
            right = out["is_right"].cpu().tolist() if "is_right" in out else [None] * len(z)
    finally:
        if lock is not None:
            lock.release()
    elapsed = (time.perf_counter() - start) * 1000 / max(len(z), 1)
    return [Decoded(z=read_only(z[i].copy()), image=read_only(images[i]), xyz=read_only(xyz[i]),
                    cpose=read_only(cpose[i]), viewpoint=read_only(viewpoint[i]),
                    elapsed_ms=elapsed, request_id=ids[i],
                    uv=None if uv[i] is None else read_only(uv[i]), is_right=right[i])
            for i in range(len(z))]


Request = TypeVar("Request")
Result = TypeVar("Result")


class InlineWorker(Generic[Request, Result]):
    """`NewestWorker`'s interface for synchronous sessions: `submit` runs the job at once on the
    calling thread, with the same result and error handling (so the caller has one code path)."""

    def __init__(self, job: Callable[[Request, int], Result | None],
                 on_result: Callable[[Result], None] | None, on_error: Callable[[str], None],
                 name: str = "handlatent-worker", what: str = "decoding") -> None:
        self._job = job
        self._on_result = on_result
        self._on_error = on_error
        self._what = what
        self._closed = False
        self.decoded_count = 0  # jobs run so far (for tests and statistics)

    @property
    def closed(self) -> bool:
        """Whether `close` was called."""
        return self._closed

    @property
    def superseded(self) -> bool:
        """Whether the job should stop early: never, as nothing can be submitted during it."""
        return self._closed

    def submit(self, request: Request, request_id: int) -> None:
        """Run `job(request, request_id)` now and deliver its result (ignored after `close`)."""
        if not self._closed:
            self._run_job(request, request_id)

    def wait_idle(self, timeout: float | None = 5.0) -> bool:
        """Always True: nothing ever waits."""
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Ignore later submissions."""
        self._closed = True

    def _run_job(self, request: Request, request_id: int) -> None:
        """Run the job and hand its result on; any exception becomes one `on_error` line."""
        try:
            try:
                result = self._job(request, request_id)
            except Exception as error:
                self._report(f"{self._what} failed: {type(error).__name__}: {error}")
            else:
                if result is not None and self._on_result is not None:
                    try:
                        self._on_result(result)
                    except Exception as error:
                        self._report(f"a {self._what} result callback raised "
                                     f"{type(error).__name__}: {error}")
        finally:
            self.decoded_count += 1

    def _report(self, message: str) -> None:
        """Pass `message` to `on_error`, keeping the worker alive whatever happens."""
        log.debug(message, exc_info=True)
        try:
            self._on_error(message)
        except Exception:
            log.exception("an 'error' callback raised")


class NewestWorker(InlineWorker[Request, Result]):
    """One daemon thread running `job(request, request_id)` on the newest submitted request.

    `job`, `on_result(result)` and `on_error(message)` run on the worker thread; a job that
    returns None reports nothing (it gave up, e.g. because `superseded` turned True, or it
    delivered its results itself). `submit` never blocks on the job. `what` names the job in
    error messages ("decoding failed: ..."); `on_result` None: the job delivers its results.
    `spacing_s` > 0 starts jobs at least that far apart (newer requests replace the waiting one
    meanwhile): a cap on the rate of work that should leave the cores to the GUI thread and the
    other workers (the compared model's decoding).
    """

    def __init__(self, job: Callable[[Request, int], Result | None],
                 on_result: Callable[[Result], None] | None, on_error: Callable[[str], None],
                 name: str = "handlatent-worker", what: str = "decoding",
                 spacing_s: float = 0.0) -> None:
        super().__init__(job, on_result, on_error, name=name, what=what)
        self._spacing_s = spacing_s
        self._cond = threading.Condition()
        self._pending: tuple[Request, int] | None = None
        self._busy = False
        self.replaced_count = 0  # requests dropped because a newer one replaced them
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def superseded(self) -> bool:
        """Whether a newer request waits (or the worker closed): a long job may stop early."""
        return self._pending is not None or self._closed

    def submit(self, request: Request, request_id: int) -> None:
        """Ask for `request` to be run, replacing any pending request (ignored after `close`).

        The request is kept as given: pass a copy of anything the caller may change later.
        """
        with self._cond:
            if self._closed:
                return
            if self._pending is not None:
                self.replaced_count += 1
            self._pending = (request, request_id)
            self._cond.notify_all()

    def wait_idle(self, timeout: float | None = 5.0) -> bool:
        """Block until nothing is pending or running (the newest request's result was emitted)."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("wait_idle called from the worker itself (a result callback); "
                               "that would deadlock")
        with self._cond:
            return self._cond.wait_for(lambda: self._pending is None and not self._busy,
                                       timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Drop any pending request, let a running job finish, stop the thread."""
        with self._cond:
            self._closed = True
            self._pending = None
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _run(self) -> None:
        started = -float("inf")
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not None or self._closed)
                rest = started + self._spacing_s - time.monotonic()
                if rest > 0:        # newer requests replace the pending one meanwhile
                    self._cond.wait_for(lambda: self._closed, rest)
                if self._closed:
                    self._cond.notify_all()
                    return
                request, request_id = self._pending
                self._pending = None
                self._busy = True
            started = time.monotonic()
            try:
                self._run_job(request, request_id)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()


class DecodeWorker(NewestWorker[np.ndarray, Decoded]):
    """The NewestWorker for single latents: `decode(z, request_id) -> Decoded`, results go to
    `on_decoded`; `submit` copies z, so the caller may reuse its array."""

    def __init__(self, decode: Callable[[np.ndarray, int], Decoded],
                 on_decoded: Callable[[Decoded], None],
                 on_error: Callable[[str], None], name: str = "handlatent-decoder",
                 spacing_s: float = 0.0) -> None:
        super().__init__(decode, on_decoded, on_error, name=name, spacing_s=spacing_s)

    def submit(self, z: np.ndarray, request_id: int) -> None:
        """Ask for `z` to be decoded, replacing any pending request (ignored after `close`)."""
        super().submit(np.array(z, dtype=np.float32), request_id)
