"""The explorer's model (napari's ViewerModel pattern): the latent z, its history, decoding, the
joint drag, and parts with their own events: `walk` (walk.Walk), `images` (slots.ImageSlots:
image slots, pose transfer), `stats` (stats.LatentStats: KL per dimension, sampling), `atlas`
(atlas.Atlas), `compare` (compare.Comparison: a second model on the same latent) and `labels`
(labels.Labels: the label folder that Labels ▸ Save appends to). The model
runs through one `runner` (runner.ModelRunner), which `switch_model` points at another model
(models.py). The GUI (app/) subscribes to the events and calls the methods, as scripts do.

Threads: one thread drives the session (the GUI's); every change of state happens on it.
Workers compute and hand results back: frames (decoded on a thread that takes the newest
request, decoder.py), atlas strips, and joint-drag updates, which the driving thread applies in
`apply_pending` (the event "pending" says one waits: the GUI's bridge then calls it; `drag_to`,
`end_drag` and `wait_idle` call it too). `walk.export` and `runner` may run on any thread.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
import weakref
from collections import deque
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from handlatent.dim_labels import DimLabels
from handlatent.explorer import presets
from handlatent.explorer.atlas import Atlas
from handlatent.explorer.compare import Comparison
from handlatent.explorer.decoder import Decoded, DecodeWorker, InlineWorker, NewestWorker
from handlatent.explorer.drag import Drag, DragUpdate, check_drag, check_target
from handlatent.explorer.events import Events
from handlatent.explorer.history import DEFAULT_LIMIT, Action, History, Step
from handlatent.explorer.images import ImageSource
from handlatent.explorer.labels import Labels
from handlatent.explorer.latent import check_latent, part_slice
from handlatent.explorer.models import ModelSwitch, open_model
from handlatent.explorer.runner import ModelRunner
from handlatent.explorer.slots import ImageSlots
from handlatent.explorer.stats import LatentStats
from handlatent.explorer.viewpoint import check_rotation
from handlatent.explorer.walk import Walk
from handlatent.model import DVAE
from handlatent.photo_crop import CropBox

log = logging.getLogger("handlatent.explorer")

EVENTS = ("latent_changed", "decoded", "history_changed", "locks_changed", "dragged", "error",
          "pending", "model_changed")
DRAG_WAIT_S = 5.0   # longest wait for one drag update as a drag ends
DECODE_SPACING_S = 1 / 60   # decodes start at most 60 times a second (a display's rate): a
#   joint drag or a fast slider asks for more, and every frame decoded costs the GUI a paint


def _close_at_exit(session_ref: weakref.ref) -> None:
    """Close the session if it still lives: worker threads still running inside torch while the
    interpreter shuts down abort the process ("terminate called without an active exception")."""
    session = session_ref()
    if session is not None:
        session.close()


class Session:
    """One model being explored: current latent z, history, locks, decoding, drag, parts.

    Events (`session.events.on(name, callback)`), from the driving thread: "latent_changed"(z),
    "history_changed"(), "locks_changed"(), "dragged"(DragUpdate, after its latent_changed),
    "model_changed"(ModelSwitch, before its latent_changed);
    from workers when `asynchronous`: "decoded"(Decoded), "error"(message), "pending"().
    """

    def __init__(self, model: DVAE, *, name: str = "model", device: str = "cpu",
                 latent_stats: Mapping[str, Any] | None = None, asynchronous: bool = True,
                 history_limit: int = DEFAULT_LIMIT, dim_labels: DimLabels | None = None) -> None:
        self.runner = ModelRunner(model, device)
        self.layout, self.name = model.layout, name
        self.device, self.image_size = str(self.runner.device), self.runner.image_size
        self.asynchronous = asynchronous
        self.events = Events(EVENTS)
        self.stats = LatentStats(self.runner, self.layout, latent_stats)
        self.images = ImageSlots(self.runner)
        self.walk = Walk(self, self.runner)
        self.atlas = Atlas(self, self.runner, self.stats, self._report_error, asynchronous)
        self.compare = Comparison(self, self._report_error, asynchronous)
        self.labels = Labels(self)
        self.last_decoded: Decoded | None = None  # the newest frame emitted by "decoded"
        self._dim_labels = dim_labels
        self._z = np.zeros(self.layout.total, dtype=np.float32)  # replaced, never changed
        self._history = History(history_limit)
        self._locks: set[str] = set()
        self._ids = itertools.count(1)
        self._ids_lock = threading.Lock()
        self._drag: Drag | None = None
        self._pending: deque[Callable[[], None]] = deque()   # results for the driving thread
        self._decoder = (DecodeWorker(self.runner.decode_if_fits, self._on_decoded,
                                      self._report_error, spacing_s=DECODE_SPACING_S)
                         if asynchronous else
                         InlineWorker(self.runner.decode_if_fits, self._on_decoded,
                                      self._report_error))
        self._dragger = (NewestWorker if asynchronous else InlineWorker)(
            self._drag_job, None, self._report_error, name="handlatent-drag", what="drag")
        # A script may end without close(): its workers are stopped at interpreter exit.
        self._at_exit = weakref.finalize(self, _close_at_exit, weakref.ref(self))

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str = "auto", **kw: Any) -> Session:
        """A session on the checkpoint's model; latent_stats from its `extra` if present.
        Raises handlatent.checkpoint.CheckpointError (one line) for a missing or bad file."""
        opened = open_model(path, device)
        if kw.get("latent_stats") is None:
            kw["latent_stats"] = opened.latent_stats
        kw["name"] = kw.get("name") or opened.name
        kw.setdefault("dim_labels", opened.dim_labels)
        return cls(opened.model, device=str(opened.model.image_mean.device), **kw)

    @property
    def model(self) -> DVAE:
        """The model (run it through `runner`, which holds the lock that serialises its use)."""
        return self.runner.model

    @property
    def dim_labels(self) -> DimLabels:
        """What each latent dimension moves, named (the checkpoint's, else computed on first
        use: about 0.1 s on the calling thread)."""
        if self._dim_labels is None:
            self._dim_labels = self.runner.label_dimensions()
        return self._dim_labels

    @property
    def parts(self) -> dict[str, Any]:
        """The session's parts by name; each has its own `events`."""
        return {"walk": self.walk, "images": self.images, "stats": self.stats, "atlas": self.atlas,
                "compare": self.compare, "labels": self.labels}

    # ------------------------------------------------------------------------------ lifetime

    def close(self) -> None:
        """Stop the workers (idempotent); later latent changes are not decoded. Runs by itself
        at interpreter exit, and on leaving a `with Session...(...) as session:` block."""
        self._at_exit.detach()
        for worker in (self._decoder, self.atlas, self._dragger, self.compare):
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

    def _apply(self, z: np.ndarray, record: bool) -> None:
        """Make `z` current (an undo step unless `record` is False or an edit is open)."""
        if not np.array_equal(z, self._z):
            recorded = record and not self._history.editing
            if recorded:
                self._history.record(self._z)
            self._set(z, recorded)

    def _set(self, z: np.ndarray, history_changed: bool) -> None:
        """Make `z` current and ask for its decoding; then tell the listeners."""
        self._z = z     # a new array on every change (never written in place): read-only ok
        self.refresh()
        self.events.emit("latent_changed", z.copy())
        if history_changed:
            self.events.emit("history_changed")

    def set_latent(self, z: Any, *, record: bool = True) -> None:
        """Replace the whole latent (d values); `record=False` makes no undo step."""
        self._apply(check_latent(z, self.layout), record)

    def set_value(self, index: int, value: float) -> None:
        """Set dimension `index` of z (a slider); one undo step unless inside begin/end_edit."""
        if not isinstance(index, (int, np.integer)) or not 0 <= index < self.layout.total:
            raise ValueError(f"latent index must be an int in [0, {self.layout.total}), "
                             f"got {index!r}")
        z = self._z.copy()
        z[index] = value
        self._apply(check_latent(z, self.layout), True)

    def set_part(self, name: str, values: Any) -> None:
        """Set the sub-latent `name` ("z_y1", "z_y2" or "z_u") to `values`."""
        s = part_slice(self.layout, name)
        values = np.asarray(values, dtype=np.float32).reshape(-1)
        if values.shape[0] != s.stop - s.start:
            raise ValueError(f"{name} has {s.stop - s.start} values, got {values.shape[0]}")
        z = self._z.copy()
        z[s] = values
        self._apply(check_latent(z, self.layout), True)

    def reset_part(self, name: str) -> None:
        """Set sub-latent `name` to the prior mean (zeros); locks do not apply."""
        s = part_slice(self.layout, name)
        self.set_part(name, np.zeros(s.stop - s.start, np.float32))

    def randomize(self, part: str | None = None,
                  rng: np.random.Generator | int | None = None) -> np.ndarray:
        """Draw z (`part` None) or one sub-latent from `stats.sampling`, locked parts kept; `rng`:
        a numpy Generator or a seed. Returns the new latent (unchanged if all locked)."""
        names = self.layout.names if part is None else (part,)
        [part_slice(self.layout, name) for name in names]
        sample = self.stats.sample(rng)
        z = self._z.copy()
        for name in names:
            if name not in self._locks:
                z[self.layout.slices[name]] = sample[self.layout.slices[name]]
        self._apply(z, True)
        return self.latent

    def lock(self, part: str, locked: bool = True) -> None:
        """Lock (or unlock) sub-latent `part` against `randomize`."""
        if self.locked(part) != bool(locked):
            (self._locks.add if locked else self._locks.discard)(part)
            self.events.emit("locks_changed")

    def locked(self, part: str) -> bool:
        """Whether `part` is locked against `randomize`."""
        part_slice(self.layout, part)
        return part in self._locks

    def estimate(self, source: ImageSource, *, box: CropBox | None = None,
                 side: str = "left") -> Decoded:
        """Load `source` into the "estimate" slot (cropped to `box`, mirrored for a right hand:
        handlatent.photo_crop), make its encoding current (one undo step), return its decoding
        (pose estimate: `.xyz`, in the model's frame: mirrored for a right hand)."""
        loaded = self.images.load(source, "estimate", box=box, side=side)
        self.set_latent(loaded.z)
        return loaded.decoded

    def viewpoint(self) -> np.ndarray:
        """The rotation (3, 3) decoded from the current z_y2: the viewpoint its frames show."""
        return self.runner.decode_pose(self._z[None])["viewpoint"][0]

    def set_viewpoint(self, rotation: Any) -> None:
        """Set z_y2 to the mean of q(z_y2 | rotation): the hand is decoded as seen under `rotation`
        (3x3, xyz = cpose @ rotation). One undo step; ValueError if it is not a rotation."""
        self.set_part("z_y2", self.runner.encode_viewpoint(check_rotation(rotation)))

    def save_preset(self, path: str | os.PathLike) -> Path:
        """Write the current latent as a JSON preset."""
        return presets.save_preset(path, self._z, self.layout, self.name)

    def load_preset(self, path: str | os.PathLike) -> np.ndarray:
        """Make a preset's latent current (one undo step); PresetError leaves the session as is."""
        z, _ = presets.read_preset(path, self.layout)
        self._apply(z, True)
        return self.latent

    def switch_model(self, switch: ModelSwitch) -> None:
        """Run the model of `switch` (models.prepare_switch, off this thread) with its images and
        latent; history kept only if the layout is the same. "model_changed", "latent_changed"."""
        self.end_drag()
        self.runner.swap(switch.model)
        self.layout, self.name, self.image_size = switch.opened.layout, switch.opened.name, \
            self.runner.image_size
        self.stats.adopt(switch.stats)
        self._dim_labels = switch.dim_labels
        self.walk.adopt(self.layout)
        self.images.adopt(switch.images)
        if not switch.same_layout:
            self._history = History(self._history.limit)
        self.events.emit("model_changed", switch)
        self._set(check_latent(switch.latent, self.layout), history_changed=True)

    # ------------------------------------------------------------------------------ history

    def begin_edit(self) -> None:
        """Start a compound edit (a slider drag): changes until `end_edit` are one undo step."""
        self._history.begin(self._z)

    def end_edit(self) -> None:
        """Finish the edit begun by `begin_edit` (extra calls are ignored)."""
        if self._history.end(self._z):
            self.events.emit("history_changed")

    @contextmanager
    def edit(self) -> Iterator[None]:
        """`with session.edit(): ...` wraps begin_edit/end_edit."""
        self.begin_edit()
        try:
            yield
        finally:
            self.end_edit()

    @property
    def can_undo(self) -> bool:
        """Whether `undo` would change something."""
        return self._history.can_undo_from(self._z)

    @property
    def can_redo(self) -> bool:
        """Whether `redo` would change something."""
        return self._history.can_redo

    def undo(self) -> bool:
        """Go back one step (ending a drag or edit first); False if there is nothing to undo."""
        return self._step(self._history.undo, undo=True)

    def redo(self) -> bool:
        """Re-apply the last undone step; False if there is none."""
        return self._step(self._history.redo, undo=False)

    def record_action(self, action: Action) -> None:
        """Put an action done outside the latent (a saved label) in the history: Undo reverts
        it, Redo repeats it, in order with the latent's steps."""
        self._history.record_action(action)
        self.events.emit("history_changed")

    def _step(self, move: Callable[[np.ndarray], Step | None], undo: bool) -> bool:
        self.end_drag()
        self._history.close(self._z)
        step = move(self._z)
        if isinstance(step, Action):
            try:
                (step.undo if undo else step.redo)()
            except BaseException:   # e.g. the label folder became unwritable: nothing moved
                self._history.put_back(step, undone=undo)
                raise
            self.events.emit("history_changed")
        elif step is not None:
            self._set(step, history_changed=True)
        return step is not None

    # ------------------------------------------------------------------------------ decoding

    def _next_id(self) -> int:
        with self._ids_lock:
            return next(self._ids)

    def _on_decoded(self, frame: Decoded) -> None:
        self.last_decoded = frame
        self.events.emit("decoded", frame)

    def _report_error(self, message: str) -> None:
        if self.events.has_listeners("error"):
            self.events.emit("error", message)
        else:
            log.error("%s", message)

    def refresh(self) -> None:
        """Decode the current latent (again) and emit "decoded" (e.g. once the GUI subscribed)."""
        self._decoder.submit(self._z, self._next_id())

    def decode_now(self, z: Any = None) -> Decoded:
        """Decode `z` (default: the current latent) on this thread; emits nothing."""
        z = self._z if z is None else check_latent(z, self.layout)
        return self.runner.decode(z[None], [self._next_id()])[0]

    def _post(self, apply: Callable[[], None]) -> None:
        """Hand a worker's result to the driving thread (any thread)."""
        self._pending.append(apply)
        self.events.emit("pending")

    def apply_pending(self) -> None:
        """Apply the results workers handed back (joint-drag updates), on the driving thread."""
        while self._pending:
            self._pending.popleft()()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block (on the driving thread) until the drag's updates are applied and the newest
        frame was decoded and emitted; False on timeout."""
        deadline = time.monotonic() + timeout
        return (self._settle_drag(timeout)
                and self._decoder.wait_idle(max(0.0, deadline - time.monotonic())))

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
        self._drag = Drag(joint, mode, self._z.copy(), expected=self._z)

    def drag_to(self, target: Any) -> None:
        """Ask for the grabbed joint at `target` (3 numbers in the frame of `Decoded.xyz` or
        `.cpose`, the drag's mode): one optimisation update from the current latent
        (handlatent.explorer.drag), applied here once computed (asynchronous: on a worker serving
        the newest target). No drag: does nothing. ValueError unless 3 finite numbers."""
        point = check_target(target)
        self.apply_pending()
        if self._drag is not None:
            self._submit_drag(self._drag, point)
            self.apply_pending()

    def end_drag(self) -> None:
        """Finish the joint drag (no-op without one) once its newest update is applied."""
        if self._drag is not None:
            self._settle_drag(DRAG_WAIT_S)
            self._drag = None
            self.end_edit()

    def _settle_drag(self, timeout: float) -> bool:
        """Wait for the drag worker and apply its results until both are done; False on timeout."""
        deadline = time.monotonic() + timeout
        while self._dragger.wait_idle(max(0.0, deadline - time.monotonic())):
            if not self._pending:
                return True
            self.apply_pending()
        return False

    def _submit_drag(self, drag: Drag, target: np.ndarray) -> None:
        if self._z is not drag.expected:        # the latent changed from elsewhere: a new chain
            drag.expected, drag.generation = self._z, drag.generation + 1
        drag.target = target
        self._dragger.submit((drag, drag.generation, self._z, target), self._next_id())

    def _drag_job(self, request: tuple[Drag, int, np.ndarray, np.ndarray],
                  request_id: int) -> None:
        """Worker: one update, continuing its generation's chain, handed back to `_drag_done`."""
        drag, generation, base, target = request
        try:
            update: DragUpdate | None = self.runner.drag(
                drag, drag.continue_from(generation, base), target)
            drag.chain = update.z
        except Exception as error:
            self._report_error(f"drag failed: {type(error).__name__}: {error}")
            update = None
        self._post(lambda: self._drag_done(drag, generation, target, update))

    def _drag_done(self, drag: Drag, generation: int, target: np.ndarray,
                   update: DragUpdate | None) -> None:
        if drag is not self._drag or update is None:
            return              # the drag ended (undo) while its update ran, or it failed
        if generation == drag.generation and self._z is drag.expected:
            self._apply(update.z, record=False)
            drag.expected = self._z
            self.events.emit("dragged", update)
        elif target is drag.target:      # stale, and nothing newer asked: ask from the new z
            self._submit_drag(drag, target)
