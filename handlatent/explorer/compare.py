"""A second model that decodes the session's latent beside the first (`session.compare`).

One latent, two answers: every change of the session's latent (a slider, a walk, a sample, a
drag) is decoded by the compared model too, on its own newest-request worker, and a pose
transfer's result latent is decoded by it as well. Only a model with the session's latent
layout can be compared: the same numbers must mean the same parts of z.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable

import numpy as np

from handlatent.explorer.decoder import Decoded, DecodeWorker, InlineWorker
from handlatent.explorer.events import Events
from handlatent.explorer.models import OpenedModel, describe_layout
from handlatent.explorer.runner import ModelRunner

COMPARE_SPACING_S = 1 / 30   # the compared model decodes at most 30 frames/s: during a slider
#   drag it leaves the cores to the GUI thread and to model A (it always ends on the newest z)


class Comparison:
    """The compared model B of a session (none until `open`).

    Events: "compare_changed"() after B was opened or closed; "compared"(Decoded) B's frame of
    the session's newest latent (from B's worker when `asynchronous`); "compared_transfer"
    (Decoded or None) B's decoding of the transfer result latent, or None when there is none.
    """

    EVENTS = ("compare_changed", "compared", "compared_transfer")

    def __init__(self, host: Any, on_error: Callable[[str], None],
                 asynchronous: bool = True) -> None:
        self.events = Events(self.EVENTS)
        self.runner: ModelRunner | None = None
        self.name: str | None = None
        self.last_decoded: Decoded | None = None
        self.transfer_result: Decoded | None = None
        self._host = host
        self._on_error = on_error
        self._asynchronous = asynchronous
        self._ids = itertools.count(1)
        self._worker: InlineWorker | None = None
        host.events.on("latent_changed", self._latent_changed)
        host.events.on("model_changed", self._model_changed)
        host.images.events.on("transfer_changed", self._transfer_changed)

    @property
    def active(self) -> bool:
        """Whether a model is being compared."""
        return self.runner is not None

    def check(self, opened: OpenedModel) -> None:
        """ValueError (one line) unless `opened` has the session's latent layout."""
        if opened.layout != self._host.layout:
            raise ValueError(
                f"{opened.path}: cannot compare: its latent layout ({describe_layout(opened.layout)}"
                f") differs from {self._host.name}'s ({describe_layout(self._host.layout)}); only "
                f"models with the same latent layout share one latent")

    def open(self, opened: OpenedModel) -> None:
        """Compare the session's model with `opened` (replacing any compared model); ValueError
        if the latent layouts differ, and then nothing changes."""
        self.check(opened)
        self.close(emit=False)
        self.runner = ModelRunner(opened.model, opened.model.image_mean.device)
        self.name = opened.name
        self._worker = (DecodeWorker(self._decode_one, self._decoded, self._on_error,
                                     name="handlatent-compare", spacing_s=COMPARE_SPACING_S)
                        if self._asynchronous else
                        InlineWorker(self._decode_one, self._decoded, self._on_error))
        self._host.walk.compared = self.decode
        self.events.emit("compare_changed")
        self._latent_changed(self._host.latent)
        self._transfer_changed()

    def close(self, emit: bool = True) -> None:
        """Stop comparing (idempotent)."""
        if self._worker is not None:
            self._worker.close()
        was = self.runner is not None
        self.runner = self.name = self._worker = None
        self.last_decoded = self.transfer_result = None
        self._host.walk.compared = None
        if emit and was:
            self.events.emit("compare_changed")

    def decode(self, latents: np.ndarray) -> list[Decoded]:
        """B's frames of latents (n, d) (any thread); ValueError when nothing is compared."""
        runner = self.runner
        if runner is None:
            raise ValueError("no model is being compared")
        return runner.decode(latents)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until B's newest frame was decoded and emitted; False on timeout."""
        return self._worker is None or self._worker.wait_idle(timeout)

    def _decode_one(self, z: np.ndarray, request_id: int) -> Decoded | None:
        runner = self.runner
        return None if runner is None else runner.decode_if_fits(z, request_id)

    def _decoded(self, frame: Decoded) -> None:
        self.last_decoded = frame
        self.events.emit("compared", frame)

    def _latent_changed(self, z: np.ndarray) -> None:
        if self._worker is not None:
            self._worker.submit(z, next(self._ids))

    def _transfer_changed(self) -> None:
        result = self._host.images.transfer_result
        if self.runner is None:
            return
        self.transfer_result = None if result is None else self.decode(result.z[None])[0]
        self.events.emit("compared_transfer", self.transfer_result)

    def _model_changed(self, *_: Any) -> None:
        """The session switched models: keep comparing only while the layouts agree."""
        if self.runner is not None and self.runner.model.layout != self._host.layout:
            name = self.name
            self.close()
            self._on_error(f"stopped comparing with {name}: the new model's latent layout "
                           f"({describe_layout(self._host.layout)}) differs from its")
