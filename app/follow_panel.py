"""Following a training run: a folder watcher that reloads new checkpoints, and the dock that
plots the run's validation curves.

`RunWatcher` watches the run folder and its metrics.jsonl with a `QFileSystemWatcher` (no
polling): the trainer's atomic writes (temp file, rename) and its appended metric lines each
restart a short debounce timer, after which the watcher reads the metrics and asks
`handlatent.explorer.follow.RunFollower` whether a checkpoint is new; a new one is loaded off
the GUI thread by the window's `ModelLoader`, which re-encodes the loaded images. With an image
loaded, the latent is set from the new model's encoding of it (`from_image`, the default: the
skeleton is the current model's reading of the image), or kept (for watching one fixed latent
decoded by newer weights); the status line says which.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QFileSystemWatcher, QObject, QTimer, Signal
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from handlatent.explorer.follow import METRICS, RunFollower, RunMetrics

DEBOUNCE_MS = 400
CURVE_COLORS = {"total": "#e8e8e8", "dis": "#5fa8ff", "emb": "#ff9a3c"}


class RunWatcher(QObject):
    """Reloads the newest checkpoint of `run` through `loader` whenever the trainer writes one.

    Signals: `status(str)` the run's step, validation losses and the checkpoint shown (or that
    it waits for the first one); `metricsChanged(RunMetrics)`; `message(str)` one-line news for
    the status bar (a reload, a checkpoint that failed to load).
    """

    status = Signal(str)
    metricsChanged = Signal(object)
    message = Signal(str)

    def __init__(self, run: str | Path, loader: Any, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.follower = RunFollower(run)      # ValueError (one line) if not a folder
        self.loader = loader
        self.from_image = True                # latent from each checkpoint's encoding
        self.metrics = RunMetrics()
        self._pending: dict[str, Any] = {}    # checkpoint path -> stamp being loaded
        self.watcher = QFileSystemWatcher(self)
        self.watcher.addPath(str(self.follower.run))
        self.watcher.directoryChanged.connect(self._changed)
        self.watcher.fileChanged.connect(self._changed)
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(DEBOUNCE_MS)
        self.timer.timeout.connect(self.poll)
        loader.switched.connect(self._switched)
        loader.failed.connect(self._failed)

    @property
    def run(self) -> Path:
        """The run folder followed."""
        return self.follower.run

    def _changed(self, _path: str) -> None:
        self.timer.start()          # restarts: one poll after a burst of changes

    def poll(self) -> None:
        """Read the metrics and load the newest checkpoint if it is new (GUI thread, cheap)."""
        metrics_file = str(self.run / METRICS)
        if metrics_file not in self.watcher.files() and (self.run / METRICS).exists():
            self.watcher.addPath(metrics_file)
        self.metrics = self.follower.metrics()
        self.metricsChanged.emit(self.metrics)
        new = self.follower.check()
        if new is not None and self._pending.get(str(new[0])) != new[1]:
            self._pending[str(new[0])] = new[1]
            self.loader.load(new[0], "open", from_image=self.from_image)
        self._say()

    def _say(self) -> None:
        current = self.follower.current
        if current is None and not self._pending:
            self.status.emit(self.follower.waiting_message())
            return
        shown = f"showing {current.name}" if current is not None else "loading…"
        summary = self.metrics.summary()
        latent = ("latent: the image re-encoded per checkpoint" if self.from_image
                  else "latent kept across checkpoints")
        self.status.emit(f"Run {self.run.name}: " + (f"{summary} · " if summary else "")
                         + f"{shown} · {latent}")

    def _switched(self, path: str, summary: str) -> None:
        now = self._pending.pop(path, None)
        if now is not None:
            self.follower.tried(Path(path), now, ok=True)
            kept = summary.split(": ", 1)[-1]      # "kept the latent; re-encoded …" or
            #                                         "the latent is its encoding of …"
            self.message.emit(f"Reloaded {Path(path).name} of {self.run.name}: {kept}")
            self._say()

    def _failed(self, path: str, text: str) -> None:
        now = self._pending.pop(path, None)
        if now is not None:
            self.follower.tried(Path(path), now, ok=False)
            self.message.emit(f"Following {self.run.name}: {text} (keeping the model shown)")
            self._say()

    def stop(self) -> None:
        """Stop watching (idempotent)."""
        self.timer.stop()
        paths = self.watcher.files() + self.watcher.directories()
        if paths:
            self.watcher.removePaths(paths)


class CurvesPanel(QWidget):
    """The run's validation losses against the step, one curve per loss."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        self.label = QLabel("No run followed (File ▸ Follow run…)")
        self.label.setStyleSheet("color: palette(mid);")
        self.plot = pg.PlotWidget(background="#1b1d22")
        self.log_scale = True
        self.plot.setLogMode(y=True)
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot.setLabel("bottom", "step")
        self.plot.setLabel("left", "validation loss")
        self.plot.addLegend(offset=(-10, 10))
        self.plot.setMinimumHeight(140)
        layout.addWidget(self.label)
        layout.addWidget(self.plot, 1)
        self.curves: dict[str, Any] = {}

    def set_metrics(self, metrics: RunMetrics) -> None:
        """Show `metrics`' validation curves (log scale unless a loss is <= 0, as the
        calibrated image likelihood's can be)."""
        curves = metrics.curves()
        positive = all(v > 0 for _, values in curves.values() for v in values)
        if positive != self.log_scale:
            self.log_scale = positive
            self.plot.setLogMode(y=positive)
        for name, (steps, values) in curves.items():
            if name not in self.curves:
                self.curves[name] = self.plot.plot(
                    [], [], name=name, symbol="o", symbolSize=4,
                    pen=pg.mkPen(CURVE_COLORS.get(name, "#cccccc"), width=2),
                    symbolBrush=CURVE_COLORS.get(name, "#cccccc"))
            self.curves[name].setData(steps, values)
        self.label.setText(metrics.summary() or "no validation yet")

    def clear(self) -> None:
        """Forget the curves (another run is followed)."""
        for curve in self.curves.values():
            self.plot.removeItem(curve)
        self.curves = {}
        self.plot.plotItem.legend.clear()
