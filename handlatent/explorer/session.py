"""The explorer's model: the current latent, loaded images, history, walk; plain callbacks.

The GUI (app/) subscribes to `Session.events` and calls the methods below; scripts and tests use
the same object without Qt. Call the methods from one thread (the GUI's); only `decode_now`,
`encode`, `export_walk` and `export_latents` may also run on a background thread. Decoding for
display runs on a worker thread that always decodes the newest request (see decoder.py); during
a joint drag (`begin_drag` .. `end_drag`) a second such worker optimises the pose latents
(drag.py) and sets the latent from its thread.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
import torch
from PIL import Image

from handlatent.explorer import presets, stats
from handlatent.explorer.atlas import ATLAS_COLUMNS, ATLAS_SPAN, atlas_values, decode_atlas
from handlatent.explorer.decoder import Decoded, DecodeWorker, NewestWorker, decode_batch
from handlatent.explorer.drag import Drag, DragUpdate, check_drag, check_target
from handlatent.explorer.events import Events
from handlatent.explorer.files import write_atomically
from handlatent.explorer.figures import fit_extent, panel_grid
from handlatent.explorer.history import DEFAULT_LIMIT, History
from handlatent.explorer.images import SLOTS, ImageSource, LoadedImage, prepare_image
from handlatent.explorer.sampling import (LatentGaussian, check_source, fit_hands,
                                          hands_from_stats)
from handlatent.explorer.stats import (INACTIVE_KL, encode_hands, images_to_tensor, kl_per_dim,
                                       kl_per_dim_from_stats)
from handlatent.explorer.walk import Cancel, Progress, export_frames, interpolate
from handlatent.model import DVAE

log = logging.getLogger("handlatent.explorer")

EVENTS = ("latent_changed", "decoded", "history_changed", "images_changed", "walk_changed",
          "locks_changed", "transfer_changed", "atlas_changed", "dragged", "error")
WALK_ENDPOINTS = ("A", "B")


def resolve_device(device: str | torch.device) -> torch.device:
    """"auto" -> CUDA if available, else CPU; anything else as torch.device."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _checkpoint_name(path: Path) -> str:
    """A display name: the file stem, with its folder for generic names (runs/foo/best.pt)."""
    if path.stem in ("last", "best", "model", "checkpoint") and path.parent.name:
        return f"{path.parent.name}/{path.stem}"
    return path.stem


class Session:
    """One model being explored: current latent z, history, locks, image slots, walk, exports.

    Events (`session.events.on(name, callback)`): "latent_changed"(z), "decoded"(Decoded),
    "history_changed"(), "images_changed"(), "walk_changed"(), "locks_changed"(),
    "transfer_changed"(), "atlas_changed"(AtlasRows), "error"(message). "decoded",
    "atlas_changed" and "error" come from worker threads when `asynchronous`; all others come
    synchronously from the calling thread. "dragged"(DragUpdate) follows each joint-drag update;
    during a drag it and that update's "latent_changed" come from the drag worker thread.
    """

    def __init__(self, model: DVAE, *, name: str = "model", device: str = "cpu",
                 latent_stats: Mapping[str, Any] | None = None, asynchronous: bool = True,
                 history_limit: int = DEFAULT_LIMIT) -> None:
        dev = resolve_device(device)
        self.model = model.to(dev).eval()
        self.layout = model.layout
        self.name = name
        self.device = str(dev)
        self.image_size: int = model.config.image_size
        self.asynchronous = asynchronous
        self.events = Events(EVENTS)
        self.last_decoded: Decoded | None = None  # the newest frame emitted by "decoded"
        self.transfer_result: Decoded | None = None
        self.walk_position: float = 0.0
        self._kl = kl_per_dim_from_stats(latent_stats, self.layout.total)
        self._hands = hands_from_stats(latent_stats, self.layout.total)
        self._sampling = "hands"
        self._model_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._ids_lock = threading.Lock()
        self._z = np.zeros(self.layout.total, dtype=np.float32)
        self._history = History(history_limit)
        self._edit_depth = 0
        self._edit_start: np.ndarray | None = None
        self._locks: set[str] = set()
        self._images: dict[str, LoadedImage] = {}
        self._walk: dict[str, np.ndarray | None] = {"A": None, "B": None}
        self._walk_parts: frozenset[str] = frozenset(self.layout.names)
        self._worker = (DecodeWorker(self._decode_one, self._on_decoded, self._report_error)
                        if asynchronous else None)
        self._atlas_worker: NewestWorker | None = (
            NewestWorker(self._decode_atlas, None, self._report_error, name="handlatent-atlas",
                         what="atlas decoding") if asynchronous else None)
        self._drag: Drag | None = None
        self._drag_worker: NewestWorker | None = (
            NewestWorker(self._drag_job, self._on_dragged, self._report_error,
                         name="handlatent-drag", what="drag") if asynchronous else None)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str = "auto",
                        **kw: Any) -> Session:
        """A session on the checkpoint's model; latent_stats from its `extra` if present.

        Raises handlatent.checkpoint.CheckpointError (one line) for a missing or bad file.
        """
        from handlatent.checkpoint import load_checkpoint, load_model
        checkpoint = load_checkpoint(path)
        model = load_model(path, device)
        if kw.get("latent_stats") is None:
            extra = checkpoint.get("extra")
            stored = extra.get("latent_stats") if isinstance(extra, dict) else None
            try:
                kl_per_dim_from_stats(stored, model.layout.total)
                hands_from_stats(stored, model.layout.total)
                kw["latent_stats"] = stored
            except (ValueError, AttributeError) as error:
                log.warning("%s: ignoring its latent_stats (%s)", os.fspath(path), error)
        kw["name"] = kw.get("name") or _checkpoint_name(Path(path))
        return cls(model, device=str(model.image_mean.device), **kw)

    # ------------------------------------------------------------------------------ lifetime

    def close(self) -> None:
        """Stop the decode workers (idempotent); later latent changes are not decoded."""
        for worker in (self._worker, self._atlas_worker, self._drag_worker):
            if worker is not None:
                worker.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------ latent

    @property
    def latent(self) -> np.ndarray:
        """A copy of the current latent z, (d,) float32."""
        return self._z.copy()

    def _part_slice(self, part: str) -> slice:
        try:
            return self.layout.slices[part]
        except KeyError:
            raise ValueError(f"unknown latent part {part!r}; parts are "
                             f"{', '.join(self.layout.names)}") from None

    def _checked_latent(self, z: Any) -> np.ndarray:
        z = np.array(z, dtype=np.float32).reshape(-1)
        if z.shape != (self.layout.total,):
            raise ValueError(f"latent must have {self.layout.total} values, got {z.shape[0]}")
        if not np.isfinite(z).all():
            raise ValueError("latent contains NaN or infinite values")
        return z

    def _apply(self, z: np.ndarray, record: bool) -> bool:
        """Make `z` current (optionally one undo step), emit latent_changed, schedule a decode."""
        if np.array_equal(z, self._z):
            return False
        recorded = record and self._edit_depth == 0
        if recorded:
            self._history.record(self._z)
        self._z = z
        self.events.emit("latent_changed", self._z.copy())
        self._schedule_decode()
        if recorded:
            self.events.emit("history_changed")
        return True

    def set_latent(self, z: Any, *, record: bool = True) -> None:
        """Replace the whole latent (d values); `record=False` makes no undo step."""
        self._apply(self._checked_latent(z), record)

    def set_value(self, index: int, value: float) -> None:
        """Set dimension `index` of z (a slider); one undo step unless inside begin/end_edit."""
        if not isinstance(index, (int, np.integer)) or not 0 <= index < self.layout.total:
            raise ValueError(f"latent index must be an int in [0, {self.layout.total}), "
                             f"got {index!r}")
        z = self._z.copy()
        z[index] = value
        self._apply(self._checked_latent(z), True)

    def set_part(self, name: str, values: Any) -> None:
        """Set the sub-latent `name` ("z_y1", "z_y2" or "z_u") to `values`."""
        s = self._part_slice(name)
        values = np.asarray(values, dtype=np.float32).reshape(-1)
        if values.shape[0] != s.stop - s.start:
            raise ValueError(f"{name} has {s.stop - s.start} values, got {values.shape[0]}")
        z = self._z.copy()
        z[s] = values
        self._apply(self._checked_latent(z), True)

    def reset_part(self, name: str) -> None:
        """Set sub-latent `name` to the prior mean (zeros); locks do not apply."""
        s = self._part_slice(name)
        z = self._z.copy()
        z[s] = 0
        self._apply(z, True)

    def randomize(self, part: str | None = None,
                  rng: np.random.Generator | int | None = None) -> np.ndarray:
        """Draw the whole z (`part` None) or one sub-latent (its marginal) from the sampling
        source (`sampling`); locked parts stay.

        `rng`: a numpy Generator or a seed. Returns the new latent (unchanged if all locked).
        """
        names = self.layout.names if part is None else (part,)
        for name in names:
            self._part_slice(name)
        sample = self.sample_latent(rng)
        z = self._z.copy()
        for name in names:
            if name not in self._locks:
                s = self.layout.slices[name]
                z[s] = sample[s]
        self._apply(z, True)
        return self.latent

    def sample_latent(self, rng: np.random.Generator | int | None = None,
                      source: str | None = None) -> np.ndarray:
        """A whole latent (d,) drawn from `source` (default: `sampling`), session unchanged.

        "hands": the Gaussian fitted to encoded hands (`hands_gaussian`); "prior": N(0, I).
        """
        source = check_source(self._sampling if source is None else source)
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        if source == "hands":
            return self.hands_gaussian.sample(rng)
        return rng.standard_normal(self.layout.total).astype(np.float32)

    @property
    def sampling(self) -> str:
        """Where `randomize` and `sample_latent` draw from: one of sampling.SOURCES."""
        return self._sampling

    @sampling.setter
    def sampling(self, source: str) -> None:
        self._sampling = check_source(source)

    def lock(self, part: str, locked: bool = True) -> None:
        """Lock (or unlock) sub-latent `part` against `randomize`."""
        self._part_slice(part)
        before = part in self._locks
        if locked:
            self._locks.add(part)
        else:
            self._locks.discard(part)
        if before != bool(locked):
            self.events.emit("locks_changed")

    def locked(self, part: str) -> bool:
        """Whether `part` is locked against `randomize`."""
        self._part_slice(part)
        return part in self._locks

    # ------------------------------------------------------------------------------ history

    def begin_edit(self) -> None:
        """Start a compound edit (a slider drag): changes until `end_edit` are one undo step."""
        if self._edit_depth == 0:
            self._edit_start = self._z.copy()
        self._edit_depth += 1

    def end_edit(self) -> None:
        """Finish the edit begun by `begin_edit` (extra calls are ignored)."""
        if self._edit_depth == 0:
            return
        self._edit_depth -= 1
        if self._edit_depth == 0:
            start, self._edit_start = self._edit_start, None
            if start is not None and not np.array_equal(start, self._z):
                self._history.record(start)
                self.events.emit("history_changed")

    @contextmanager
    def edit(self) -> Iterator[None]:
        """`with session.edit(): ...` wraps begin_edit/end_edit."""
        self.begin_edit()
        try:
            yield
        finally:
            self.end_edit()

    def _close_edit(self) -> None:
        self.end_drag()   # undo/redo during a joint drag end it first
        if self._edit_depth:
            self._edit_depth = 1
            self.end_edit()

    @property
    def can_undo(self) -> bool:
        """Whether `undo` would change something."""
        return self._history.can_undo or (self._edit_depth > 0 and self._edit_start is not None
                                          and not np.array_equal(self._edit_start, self._z))

    @property
    def can_redo(self) -> bool:
        """Whether `redo` would change something."""
        return self._history.can_redo

    def undo(self) -> bool:
        """Go back one step (closing an open edit first); False if there is nothing to undo."""
        self._close_edit()
        previous = self._history.undo(self._z)
        if previous is None:
            return False
        self._restore(previous)
        return True

    def redo(self) -> bool:
        """Re-apply the last undone step; False if there is none."""
        self._close_edit()
        following = self._history.redo(self._z)
        if following is None:
            return False
        self._restore(following)
        return True

    def _restore(self, z: np.ndarray) -> None:
        self._z = z
        self.events.emit("latent_changed", self._z.copy())
        self._schedule_decode()
        self.events.emit("history_changed")

    # ------------------------------------------------------------------------------ decoding

    def _next_id(self) -> int:
        with self._ids_lock:
            return next(self._ids)

    def _decode_one(self, z: np.ndarray, request_id: int) -> Decoded:
        return decode_batch(self.model, z[None], [request_id], lock=self._model_lock)[0]

    def _on_decoded(self, frame: Decoded) -> None:
        self.last_decoded = frame
        self.events.emit("decoded", frame)

    def _report_error(self, message: str) -> None:
        if self.events.has_listeners("error"):
            self.events.emit("error", message)
        else:
            log.error("%s", message)

    def _schedule_decode(self) -> None:
        request_id = self._next_id()
        if self._worker is not None:
            self._worker.submit(self._z, request_id)
            return
        try:
            frame = self._decode_one(self._z, request_id)
        except Exception as error:
            self._report_error(f"decoding failed: {type(error).__name__}: {error}")
            return
        self._on_decoded(frame)

    def refresh(self) -> None:
        """Decode the current latent again and emit "decoded" (e.g. once the GUI subscribed)."""
        self._schedule_decode()

    def decode_now(self, z: Any = None) -> Decoded:
        """Decode `z` (default: the current latent) on this thread; emits nothing."""
        z = self._z if z is None else self._checked_latent(z)
        return self._decode_one(z, self._next_id())

    def decode_many(self, latents: np.ndarray) -> list[Decoded]:
        """Decode latents (n, d) in one pass on this thread; emits nothing."""
        latents = np.asarray(latents, dtype=np.float32).reshape(-1, self.layout.total)
        ids = [self._next_id() for _ in range(len(latents))]
        return decode_batch(self.model, latents, ids, lock=self._model_lock)

    def encode(self, images: np.ndarray) -> np.ndarray:
        """Posterior means of uint8 images (S, S, 3) -> (d,), or (B, S, S, 3) -> (B, d)."""
        images = np.asarray(images)
        single = images.ndim == 3
        batch = images[None] if single else images
        expected = (self.image_size, self.image_size, 3)
        if batch.ndim != 4 or batch.shape[1:] != expected or batch.dtype != np.uint8:
            raise ValueError(f"encode expects uint8 images of shape (..., {expected}), got "
                             f"{images.dtype} {images.shape}")
        with self._model_lock, torch.inference_mode():
            mu, _ = self.model.encode_image(images_to_tensor(batch, self.model.image_mean.device))
            z = mu.float().cpu().numpy()
        return z[0] if single else z

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until the newest request is decoded and emitted; False on timeout."""
        return True if self._worker is None else self._worker.wait_idle(timeout)

    @property
    def decoded_count(self) -> int:
        """Frames the worker has decoded (asynchronous sessions; for tests and statistics)."""
        return 0 if self._worker is None else self._worker.decoded_count

    # ------------------------------------------------------------------------------ joint drag

    @property
    def dragging(self) -> tuple[int, str] | None:
        """(joint, mode) of the joint drag in progress, or None."""
        drag = self._drag
        return None if drag is None else (drag.joint, drag.mode)

    def begin_drag(self, joint: int, mode: str = "xyz") -> None:
        """Grab `joint` (1..20, not the palm root) of the 3D pose ("xyz": z_y1 and z_y2 move) or
        of the canonical pose ("cpose": z_y1 moves); z_u never does. Until `end_drag`,
        `drag_to` moves it and all changes are one undo step. ValueError for a bad joint/mode."""
        joint, mode = check_drag(joint, mode)
        self.end_drag()
        self.begin_edit()
        self._drag = Drag(joint, mode, self._z.copy())

    def drag_to(self, target: Any) -> None:
        """Ask for the grabbed joint at `target` (3 numbers in the frame of `Decoded.xyz` or
        `.cpose`, the drag's mode): one optimisation update from the current latent
        (handlatent.explorer.drag), then the latent changes and is decoded as usual.

        Asynchronous sessions optimise on a worker thread that serves only the newest target.
        Without a drag in progress (never begun, or ended by undo) this does nothing.
        ValueError unless `target` is 3 finite numbers.
        """
        point = check_target(target)
        drag = self._drag
        if drag is None:
            return
        if self._drag_worker is not None:
            self._drag_worker.submit((drag, point), self._next_id())
            return
        try:
            result = self._drag_job((drag, point), self._next_id())
        except Exception as error:
            self._report_error(f"drag failed: {type(error).__name__}: {error}")
            return
        if result is not None:
            self._on_dragged(result)

    def end_drag(self) -> None:
        """Finish the joint drag (no-op without one) once its newest update is applied."""
        if self._drag is None:
            return
        if self._drag_worker is not None:
            self._drag_worker.wait_idle()
        self._drag = None
        self.end_edit()

    def _drag_job(self, request: tuple[Drag, np.ndarray],
                  request_id: int) -> tuple[Drag, DragUpdate] | None:
        drag, target = request
        if drag is not self._drag:
            return None     # the drag ended while this request waited
        with self._model_lock:
            return drag, drag.update(self.model, self._z, target)

    def _on_dragged(self, result: tuple[Drag, DragUpdate]) -> None:
        drag, update = result
        if drag is self._drag:
            self._apply(update.z.copy(), record=False)
            self.events.emit("dragged", update)

    # ------------------------------------------------------------------------------ viewpoint

    def viewpoint(self) -> np.ndarray:
        """The rotation (3, 3) decoded from the current z_y2: the viewpoint its frames show."""
        z = torch.from_numpy(self._z[None]).to(self.model.image_mean.device)
        with self._model_lock, torch.inference_mode():
            return self.model.decode_pose(z)["viewpoint"][0].float().cpu().numpy()

    def set_viewpoint(self, rotation: Any) -> None:
        """Set z_y2 to the mean of the viewpoint encoder's posterior q(z_y2 | rotation): the hand
        is then decoded as seen under `rotation` (3x3, xyz = cpose @ rotation).

        One undo step unless inside begin_edit/end_edit (the GUI's viewpoint mode makes a whole
        orbit of its 3D view one). ValueError if `rotation` is not a rotation.
        """
        r = np.asarray(rotation, dtype=np.float32)
        if r.shape != (3, 3) or not np.isfinite(r).all():
            raise ValueError(f"viewpoint must be a finite 3x3 rotation, got shape {r.shape}")
        if np.abs(r.T @ r - np.eye(3)).max() > 1e-3 or np.linalg.det(r) < 0:
            raise ValueError("viewpoint must be a rotation (orthonormal, determinant +1)")
        with self._model_lock, torch.inference_mode():
            mu, _ = self.model.encode_viewpoint(
                torch.from_numpy(r[None]).to(self.model.image_mean.device))
        self.set_part("z_y2", mu[0].float().cpu().numpy())

    # ------------------------------------------------------------------------------ KL stats

    def _estimate_stats(self) -> None:
        """Fill in the KL and the hands' Gaussian that the checkpoint did not hold, from one
        encoding of synthetic hands (can take a second); safe on a background thread."""
        with self._stats_lock:
            if self._kl is None or self._hands is None:
                mu, logvar = encode_hands(self.model, n=stats.KL_SAMPLES, lock=self._model_lock)
                self._kl = kl_per_dim(mu, logvar) if self._kl is None else self._kl
                self._hands = fit_hands(mu, logvar) if self._hands is None else self._hands

    @property
    def kl_per_dim(self) -> np.ndarray:
        """Mean KL (nats) of q(z_i | x) to N(0, 1) per dimension, (d,): from the checkpoint's
        latent_stats, else estimated once from synthetic images."""
        if self._kl is None:
            self._estimate_stats()
        return self._kl.copy()

    @property
    def hands_gaussian(self) -> LatentGaussian:
        """The Gaussian fitted to encoded hands (the "hands" sampling source): from the
        checkpoint's latent_stats, else fitted once to synthetic images."""
        if self._hands is None:
            self._estimate_stats()
        return self._hands

    @property
    def latent_stats(self) -> dict[str, Any]:
        """{"kl_per_dim": [...], "hands": {mean, cov, n}} as a checkpoint's
        extra["latent_stats"] holds it."""
        return {"kl_per_dim": [float(v) for v in self.kl_per_dim],
                "hands": self.hands_gaussian.to_stats()}

    def dim_order(self, part: str) -> list[int]:
        """Indices (into z) of `part`'s dimensions, by KL descending (ties: by index)."""
        s = self._part_slice(part)
        kl = self.kl_per_dim
        return sorted(range(s.start, s.stop), key=lambda i: (-kl[i], i))

    def active_dims(self, part: str, threshold: float = INACTIVE_KL) -> list[int]:
        """`dim_order(part)` without the inactive dimensions (KL < `threshold` nats)."""
        kl = self.kl_per_dim
        return [i for i in self.dim_order(part) if kl[i] >= threshold]

    def inactive_dims(self, part: str, threshold: float = INACTIVE_KL) -> list[int]:
        """`part`'s dimensions with KL < `threshold`, by KL descending."""
        kl = self.kl_per_dim
        return [i for i in self.dim_order(part) if kl[i] < threshold]

    # ------------------------------------------------------------------------------ atlas

    def atlas_dims(self) -> list[int]:
        """The latent atlas' rows: each part's `active_dims` (by KL), parts in layout order."""
        return [i for part in self.layout.names for i in self.active_dims(part)]

    def request_atlas(self, columns: int = ATLAS_COLUMNS, span: float = ATLAS_SPAN,
                      first: Iterable[int] = ()) -> int:
        """Decode the atlas around the current latent: row by row (`atlas_dims`, those in
        `first`, e.g. the rows on screen, before the others) with `columns` values from -span
        to +span σ. The rows arrive in parts as "atlas_changed"(AtlasRows) events; returns the
        request id.

        Asynchronous sessions decode on a worker thread where the newest request wins and a
        request stops early once the latent changed (it is stale); others decode here.
        """
        values = atlas_values(columns, span)
        dims = self.atlas_dims()
        wanted = [d for d in dict.fromkeys(int(i) for i in first) if d in dims]
        order = tuple(wanted + [d for d in dims if d not in wanted])
        request_id = self._next_id()
        if self._atlas_worker is not None:
            self._atlas_worker.submit((self._z, order, values), request_id)
        else:
            self._decode_atlas((self._z, order, values), request_id)
        return request_id

    def _decode_atlas(self, request: tuple[np.ndarray, tuple[int, ...], np.ndarray],
                      request_id: int) -> None:
        z, dims, values = request
        worker = self._atlas_worker

        def cancelled() -> bool:
            return worker is not None and (worker.superseded or not np.array_equal(self._z, z))

        for part in decode_atlas(self.model, z, dims, values, request_id=request_id,
                                 lock=self._model_lock, cancelled=cancelled):
            self.events.emit("atlas_changed", part)

    # ------------------------------------------------------------------------------ images

    @property
    def images(self) -> dict[str, LoadedImage]:
        """Slot -> loaded image (a copy of the mapping)."""
        return dict(self._images)

    def load_image(self, source: ImageSource, slot: str) -> LoadedImage:
        """Read, crop and encode an image into `slot` ("estimate", "pose" or "content").

        Raises ImageError (a ValueError; one line naming the file and the problem) and then
        leaves the session unchanged. Does not change the current latent.
        """
        if slot not in SLOTS:
            raise ValueError(f"unknown image slot {slot!r}; slots are {', '.join(SLOTS)}")
        prepared = prepare_image(source, self.image_size)
        z = self.encode(prepared.model_input)
        loaded = LoadedImage(path=prepared.path, original_size=prepared.original_size,
                             thumbnail=prepared.thumbnail, model_input=prepared.model_input,
                             z=z, decoded=self.decode_now(z))
        self._images[slot] = loaded
        self.events.emit("images_changed")
        if slot in ("pose", "content") and self.transfer_result is not None:
            self.transfer_result = None
            self.events.emit("transfer_changed")
        return loaded

    def clear_image(self, slot: str) -> None:
        """Empty `slot` (no error if it is empty)."""
        if self._images.pop(slot, None) is not None:
            self.events.emit("images_changed")

    def estimate(self, source: ImageSource) -> Decoded:
        """Load `source` into the "estimate" slot, make its encoding the current latent (one undo
        step) and return its decoding (pose estimate: `.xyz`)."""
        loaded = self.load_image(source, "estimate")
        self.set_latent(loaded.z)
        return loaded.decoded

    # ------------------------------------------------------------------------------ transfer

    def transfer(self) -> Decoded:
        """Decode z_y1, z_y2 of the "pose" image with z_u of the "content" image; the result is
        kept as `transfer_result`. Raises ValueError if a needed slot is empty."""
        missing = [slot for slot in ("pose", "content") if slot not in self._images
                   and (slot == "pose" or self.layout.z_u > 0)]
        if missing:
            raise ValueError(f"transfer needs an image in the {' and '.join(missing)} slot"
                             f"{'s' if len(missing) > 1 else ''}")
        z = self._images["pose"].z.copy()
        if self.layout.z_u > 0:
            s = self.layout.slices["z_u"]
            z[s] = self._images["content"].z[s]
        self.transfer_result = self.decode_now(z)
        self.events.emit("transfer_changed")
        return self.transfer_result

    def save_transfer(self, path: str | os.PathLike) -> Path:
        """Write a PNG triptych: pose | content | result, each image above its skeleton."""
        path = Path(path)
        if path.suffix.lower() != ".png":
            raise ValueError(f"{path}: the transfer figure is saved as .png")
        result = self.transfer_result or self.transfer()
        columns = [("pose", self._images["pose"].model_input, self._images["pose"].decoded.xyz)]
        if "content" in self._images:
            content = self._images["content"]
            columns.append(("content", content.model_input, content.decoded.xyz))
        columns.append(("result", result.image, result.xyz))
        figure = Image.fromarray(panel_grid(columns))
        return write_atomically(path, lambda tmp: figure.save(tmp, format="PNG"))

    # ------------------------------------------------------------------------------ walk

    def _endpoint_name(self, which: str) -> str:
        name = str(which).upper()
        if name not in WALK_ENDPOINTS:
            raise ValueError(f"walk endpoint must be 'A' or 'B', got {which!r}")
        return name

    def set_walk_endpoint(self, which: str, z: Any = None) -> None:
        """Set walk endpoint "A" or "B" to `z` (default: the current latent)."""
        name = self._endpoint_name(which)
        self._walk[name] = self.latent if z is None else self._checked_latent(z)
        self.events.emit("walk_changed")

    def walk_endpoint(self, which: str) -> np.ndarray | None:
        """A copy of endpoint "A" or "B", or None if unset."""
        z = self._walk[self._endpoint_name(which)]
        return None if z is None else z.copy()

    @property
    def walk_parts(self) -> frozenset[str]:
        """The sub-latents a walk moves (the others stay at the current latent)."""
        return self._walk_parts

    @walk_parts.setter
    def walk_parts(self, parts: str | Iterable[str]) -> None:
        if isinstance(parts, str):
            parts = self.layout.names if parts == "all" else (parts,)
        parts = frozenset(parts)
        for part in parts:
            self._part_slice(part)
        if parts != self._walk_parts:
            self._walk_parts = parts
            self.events.emit("walk_changed")

    def _walk_ends(self) -> tuple[np.ndarray, np.ndarray]:
        a, b = self._walk["A"], self._walk["B"]
        if a is None or b is None:
            unset = " and ".join(k for k in WALK_ENDPOINTS if self._walk[k] is None)
            raise ValueError(f"set walk endpoint {unset} first")
        return a, b

    def _moving_slices(self) -> list[slice]:
        return [self.layout.slices[p] for p in self.layout.names if p in self._walk_parts]

    def walk_frames(self, n: int) -> np.ndarray:
        """(n, d) latents from A to B (moving parts linear, endpoints exact; others = current)."""
        a, b = self._walk_ends()
        return interpolate(a, b, self._z, self._moving_slices(), int(n))

    def set_walk_position(self, t: float) -> None:
        """Move the current latent to position t in [0, 1] of the walk (not recorded)."""
        t = float(t)
        if not 0.0 <= t <= 1.0:
            raise ValueError(f"walk position must be in [0, 1], got {t}")
        a, b = self._walk_ends()
        z = self._z.copy()
        for s in self._moving_slices():
            z[s] = a[s] if t == 0 else b[s] if t == 1 else (
                (1 - t) * a[s].astype(np.float64) + t * b[s].astype(np.float64))
        self.walk_position = t
        self._apply(z, record=False)

    def export_walk(self, path: str | os.PathLike, n_frames: int, fps: float = 12,
                    progress: Progress | None = None, cancel: Cancel | None = None, *,
                    scale: int = 1) -> Path:
        """Write the walk's `n_frames` as .gif, .mp4 or a .png strip (image | skeleton per frame,
        `scale` times the model's size). Raises ExportCancelled when `cancel()` turns True
        (no file is left), ValueError for a bad path or unset endpoints."""
        return self.export_latents(self.walk_frames(n_frames), path, fps, progress, cancel,
                                   scale=scale)

    def export_latents(self, latents: np.ndarray, path: str | os.PathLike, fps: float = 12,
                       progress: Progress | None = None, cancel: Cancel | None = None, *,
                       scale: int = 1) -> Path:
        """`export_walk` for any latents (n, d), e.g. frames taken with `walk_frames` earlier."""
        latents = np.asarray(latents, dtype=np.float32).reshape(-1, self.layout.total)
        with self._model_lock, torch.inference_mode():
            xyz = self.model.decode_pose(torch.from_numpy(latents).to(
                self.model.image_mean.device))["xyz"].float().cpu().numpy()
        return export_frames(self.decode_many, latents, path, fps=fps,
                             extent=fit_extent(xyz) * 1.05, scale=scale, progress=progress,
                             cancel=cancel)

    # ------------------------------------------------------------------------------ presets

    def save_preset(self, path: str | os.PathLike) -> Path:
        """Write the current latent as a JSON preset."""
        return presets.save_preset(path, self._z, self.layout, self.name)

    def load_preset(self, path: str | os.PathLike) -> np.ndarray:
        """Make a preset's latent current (one undo step); PresetError leaves the session as is."""
        z, _ = presets.read_preset(path, self.layout)
        self._apply(z, True)
        return self.latent
