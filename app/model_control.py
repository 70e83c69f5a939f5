"""The window's models: open and switch (File ▸ Open model, a dropped .pt, File ▸ Recent
models), follow a training run (File ▸ Follow run, `--follow`), compare with a second model
(View ▸ Compare with, `--compare`).

`ModelControl` wires these actions to the session through a `ModelLoader` (loads off the GUI
thread) and a `RunWatcher`; `CompareView` shows the compared model's answers: a second decoded
image beside the first, its skeleton over the first in one colour, its transfer result.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QSettings, Qt
from PySide6.QtWidgets import QLabel

from handlatent.app import dialogs
from handlatent.app.follow_panel import CurvesPanel, RunWatcher
from handlatent.app.image_pane import ImagePane
from handlatent.app.model_loader import ModelLoader

if TYPE_CHECKING:
    from handlatent.app.main_window import MainWindow

RECENT_MODELS_KEY = "recentModels"
MAX_RECENT_MODELS = 10


def _settings() -> QSettings:
    from handlatent.app.main_window import settings   # main_window imports this module
    return settings()


class CompareView(QObject):
    """The compared model's pane and overlays in `window` (hidden while nothing is compared)."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.pane = ImagePane("Decoded image · compared", empty_text="decoding…")
        self.pane.setVisible(False)
        window.splitter.insertWidget(window.splitter.indexOf(window.image_pane) + 1, self.pane)
        bridge = window.bridge
        bridge.compared.connect(self._on_frame)
        bridge.compareChanged.connect(self.sync)
        bridge.comparedTransfer.connect(self._on_transfer)
        bridge.modelChanged.connect(lambda _switch: self.sync())
        self.sync()                     # a model compared before the window (--compare)
        if window.session.compare.last_decoded is not None:
            self._on_frame(window.session.compare.last_decoded)

    def _on_frame(self, frame: Any) -> None:
        if self.window.session.compare.active:
            self.pane.set_image(self.window.shown(frame.image), tag=frame.request_id)
            self.window.skeleton.show_compared(frame)

    def _on_transfer(self, frame: Any) -> None:
        self.window.transfer_panel.show_compared(frame, self.window.session.compare.name)

    def sync(self) -> None:
        """Show or hide the compared model's views and name both models in the titles."""
        session, window = self.window.session, self.window
        active = session.compare.active
        window.image_pane.title.setText(f"Decoded image · {session.name}" if active
                                        else "Decoded image")
        self.pane.title.setText(f"Decoded image · {session.compare.name} (orange skeleton)"
                                if active else "")
        if active != self.pane.isVisible():
            self.pane.setVisible(active)
            sizes = window.splitter.sizes()
            i = window.splitter.indexOf(self.pane)
            if active:
                sizes[i] = sizes[i - 1] = (sizes[i - 1] + sizes[i]) // 2 or 240
                window.splitter.setSizes(sizes)
        if not active:
            self.pane.set_image(None)
            window.skeleton.show_compared(None)
            window.transfer_panel.show_compared(None, None)


class ModelControl(QObject):
    """File ▸ Open model / Recent models / Follow run and View ▸ Compare with, for `window`."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.loader = ModelLoader(window.session, self)
        self.watcher: RunWatcher | None = None
        self.follow_from_image = True   # following: the latent from each model's image encoding
        self.compare_view = CompareView(window)
        self.curves = CurvesPanel()
        self.curves_dock = window.add_dock("Validation curves", "curves-dock", self.curves,
                                        Qt.DockWidgetArea.RightDockWidgetArea)
        self.curves_dock.hide()
        self.run_label = QLabel("")
        window.statusBar().addPermanentWidget(self.run_label)
        self.run_label.setVisible(False)
        self.loader.switched.connect(self._switched)
        self.loader.comparing.connect(self._comparing)
        self.loader.failed.connect(self._failed)
        self.loader.busyChanged.connect(
            lambda busy: busy and window.show_message("Loading the model…"))

    # -- open / switch ---------------------------------------------------------------------

    def open_model_dialog(self) -> None:
        path = dialogs.open_model_path(self.window, "Open model — switch the explorer to it")
        if path:
            self.open_model(path)

    def open_model(self, path: str) -> None:
        """Switch to the checkpoint at `path` (loaded off the GUI thread); stops following."""
        self.stop_following()
        self.loader.load(path, "open")

    def _switched(self, path: str, summary: str) -> None:
        if self.watcher is None:
            self.add_recent(path)
            self.window.show_message(summary)

    def _failed(self, path: str, message: str) -> None:
        if self.watcher is None or Path(path).parent != self.watcher.run:
            self.window.show_message(message)   # the session keeps the model it had

    # -- recent models ---------------------------------------------------------------------

    def recent_models(self) -> list[str]:
        """The checkpoints opened before, newest first (QSettings: kept across runs)."""
        value = _settings().value(RECENT_MODELS_KEY, [])
        return [str(v) for v in ([value] if isinstance(value, str) else value or [])]

    def add_recent(self, path: str) -> None:
        """Put `path` first in File ▸ Recent models."""
        path = os.path.abspath(path)
        paths = [path] + [p for p in self.recent_models() if p != path]
        _settings().setValue(RECENT_MODELS_KEY, paths[:MAX_RECENT_MODELS])

    def rebuild_recent_menu(self) -> None:
        """Fill File ▸ Recent models as it opens (files that still exist)."""
        menu = self.window.recent_models_menu
        menu.clear()
        paths = [p for p in self.recent_models() if os.path.exists(p)]
        if not paths:
            menu.addAction("(none)").setEnabled(False)
            return
        for path in paths:
            a = menu.addAction(f"{Path(path).parent.name}/{Path(path).name}")
            a.setToolTip(path)
            a.setStatusTip(path)
            a.triggered.connect(lambda _=False, p=path: self.open_model(p))
        menu.addSeparator()
        menu.addAction("Clear list",
                       lambda: _settings().setValue(RECENT_MODELS_KEY, []))

    # -- follow a run ----------------------------------------------------------------------

    def follow_run_dialog(self) -> None:
        path = dialogs.open_run_folder(self.window)
        if path:
            self.follow_run(path)

    def follow_run(self, path: str, shown: str | None = None) -> bool:
        """Watch the run folder `path`: open its newest checkpoint now (or wait for the first)
        and each new one the trainer writes; `shown`: the checkpoint the session opened already
        (not loaded again). False (and a status line) if `path` is no folder."""
        self.stop_following()
        try:
            watcher = RunWatcher(path, self.loader, self)
        except ValueError as error:
            self.window.show_message(str(error))
            return False
        if shown is not None:
            watcher.follower.already_open(Path(shown))
        watcher.from_image = self.follow_from_image
        self.watcher = watcher
        watcher.status.connect(self._run_status)
        watcher.message.connect(self.window.show_message)
        watcher.metricsChanged.connect(self.curves.set_metrics)
        self.curves.clear()
        self.curves_dock.setWindowTitle(f"Validation curves · {watcher.run.name}")
        self.curves_dock.show()
        self.run_label.setVisible(True)
        watcher.poll()
        return True

    def set_follow_from_image(self, on: bool) -> None:
        """Following a run, each new checkpoint sets the latent from its encoding of the loaded
        image (`on`, the default) or keeps the latent (File ▸ Follow: latent from the image)."""
        self.follow_from_image = bool(on)
        if self.watcher is not None:
            self.watcher.from_image = self.follow_from_image
            self.watcher.poll()                  # says the new choice in the run's status
        self.window.show_message(
            "Following: each new checkpoint re-encodes the loaded image and sets the latent "
            "from it" if on else
            "Following: the latent is kept; each new checkpoint decodes it with newer weights")

    def _run_status(self, text: str) -> None:
        self.run_label.setText(text)
        if "waiting" in text:
            self.window.show_message(text)

    def stop_following(self) -> None:
        """Stop reloading the followed run's checkpoints; the model shown stays."""
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher.deleteLater()
            self.watcher = None
            self.run_label.setVisible(False)

    # -- compare ---------------------------------------------------------------------------

    def compare_dialog(self) -> None:
        path = dialogs.open_model_path(self.window, "Compare with — a model of the same latent "
                                                    "layout")
        if path:
            self.compare_with(path)

    def compare_with(self, path: str) -> None:
        """Open `path` as the compared model (off the GUI thread); a layout that differs from
        the session's is refused with one status line."""
        self.loader.load(path, "compare")

    def _comparing(self, path: str) -> None:
        self.window.show_message(f"Comparing {self.window.session.name} with "
                                 f"{self.window.session.compare.name}: one latent, both "
                                 f"models' images; the compared skeleton is orange")

    def stop_comparing(self) -> None:
        """Close the compared model."""
        self.window.session.compare.close()

    def shutdown(self) -> None:
        """Stop following and wait for a load in progress (the window closes)."""
        self.stop_following()
        self.loader.wait()

