"""Loading another model into the running window without stalling it.

`ModelLoader` reads a checkpoint and prepares the session's switch to it
(`handlatent.explorer.models.prepare_switch`: latent statistics, re-encoded images) on a worker
thread (`workers.Job`); back on the GUI thread it hands the result to `Session.switch_model` or
to `session.compare.open`, which take a few milliseconds. One load runs at a time; a request
made meanwhile waits, and only the newest waiting one runs (a run that wrote three checkpoints
during one load is reloaded once, from the newest).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from handlatent.app.workers import Job
from handlatent.explorer.models import ModelSwitch, OpenedModel, open_model, prepare_switch
from handlatent.resources import example_images

PURPOSES = ("open", "compare")


class ModelLoader(QObject):
    """Opens checkpoints for `session` off the GUI thread.

    Signals (GUI thread): `switched(path, summary)` after the session runs the new model,
    `comparing(path)` after a compared model was opened, `failed(path, message)` with the
    one-line reason (the session is unchanged), `busyChanged(bool)`.
    """

    switched = Signal(str, str)
    comparing = Signal(str)
    failed = Signal(str, str)
    busyChanged = Signal(bool)

    def __init__(self, session: Any, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.job: Job | None = None
        self._running: tuple[str, str, bool] | None = None
        self._waiting: tuple[str, str, bool] | None = None
        self._images: dict = {}
        self.apply_ms: list[float] = []     # GUI-thread time of each switch applied

    @property
    def busy(self) -> bool:
        """Whether a load runs."""
        return self._running is not None

    def load(self, path: str | Path, purpose: str = "open", from_image: bool = False) -> None:
        """Open `path` as the session's model ("open") or as the compared model ("compare");
        `from_image`: set the latent from the new model's encoding of the loaded image
        (`prepare_switch`), rather than keep it."""
        if purpose not in PURPOSES:
            raise ValueError(f"purpose must be one of {PURPOSES}, got {purpose!r}")
        request = (str(path), purpose, bool(from_image))
        if self._running is not None:
            self._waiting = request
            return
        self._start(request)

    def _start(self, request: tuple[str, str, bool]) -> None:
        path, purpose, from_image = request
        device = self.session.device
        latent, layout = self.session.latent, self.session.layout
        self._images = images = dict(self.session.images)
        examples = [str(p) for p in example_images()[:1]]

        def work(_progress: Any, _cancel: Any) -> OpenedModel | ModelSwitch:
            opened = open_model(path, device)
            if purpose == "compare":
                return opened
            return prepare_switch(opened, latent, layout, images, examples,
                                  from_image=from_image)

        self._running = request
        self.job = Job(work, self)
        self.job.finished.connect(self._finished)
        self.job.failed.connect(lambda message: self._done(path, message))
        self.busyChanged.emit(True)
        self.job.start()

    def _finished(self, result: OpenedModel | ModelSwitch) -> None:
        path, purpose, _ = self._running
        if self._waiting is not None:       # a newer request supersedes this result
            self._done(path, None)
            return
        now = dict(self.session.images)
        if purpose == "open" and (now.keys() != self._images.keys()
                                  or any(now[k] is not v for k, v in self._images.items())):
            request, self._running = self._running, None  # images changed: prepare again
            self._start(request)
            return
        message = None
        start = time.perf_counter()
        if purpose == "compare":
            try:
                self.session.compare.open(result)
            except ValueError as error:
                message = str(error)
        else:
            if result.same_layout and not result.from_image \
                    and result.opened.layout == self.session.layout:
                # the latent as it is now: the user may have moved on during the load
                result = dataclasses.replace(result, latent=self.session.latent)
            self.session.switch_model(result)
            self.apply_ms.append((time.perf_counter() - start) * 1000)
        self._done(path, message, result if message is None else None)

    def _done(self, path: str, message: str | None, result: Any = None) -> None:
        purpose = self._running[1] if self._running else "open"
        self._running = None
        if message is not None:
            self.failed.emit(path, message)
        elif isinstance(result, ModelSwitch):
            self.switched.emit(path, result.summary)
        elif isinstance(result, OpenedModel) and purpose == "compare":
            self.comparing.emit(path)
        if self._waiting is not None:
            request, self._waiting = self._waiting, None
            self._start(request)
        else:
            self.busyChanged.emit(False)

    def wait(self, msecs: int = 30000) -> bool:
        """Block until the running load's thread ended (for tests and shutdown)."""
        return self.job is None or self.job.wait(msecs)
