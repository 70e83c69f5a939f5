"""The main window: latent sliders, decoded image, 3D skeleton, walk, transfer, atlas and pose
measurement docks.

It wires views to one `handlatent.explorer.Session` through a `SessionBridge`; every user action
is a session call, every view update comes from a session event.
"""

from __future__ import annotations

import gc
import os
from typing import Any

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import (QAction, QCloseEvent, QGuiApplication,
                           QPixmap)
from PySide6.QtWidgets import (QDockWidget, QLabel, QMainWindow, QMessageBox, QSplitter,
                               QToolButton, QWidget)

from handlatent.app import dialogs
from handlatent.app.actions import install_actions
from handlatent.app.atlas_panel import AtlasPanel
from handlatent.app.bridge import SessionBridge
from handlatent.app.image_pane import ImagePane
from handlatent.app.latent_panel import LatentPanel
from handlatent.app.measures_panel import MeasuresPanel
from handlatent.app.model_control import ModelControl
from handlatent.app.photo_labels import PhotoLabels
from handlatent.app.skeleton_view import SkeletonView
from handlatent.app.transfer_panel import ImageDropMixin, TransferPanel
from handlatent.app.viewpoint_mode import ViewpointMode
from handlatent.app.walk_panel import WalkPanel
from handlatent.explorer.drag import FREE_PARTS
from handlatent.explorer.labels import crop_keypoints
from handlatent.explorer.sampling import SOURCE_LABELS
from handlatent.joint_orders import joint_order
from handlatent.pose_export import write_pose
from handlatent.skeleton import KEYPOINT_NAMES

ORGANIZATION = "handlatent"
APPLICATION = "handlatent-gui"
RECENT_KEY = "recentFiles"
MAX_RECENT = 10
DEFAULT_SIZE = (1400, 900)
MESSAGE_MS = 8000
CENTRE_MIN = 128   # the images' narrowest (the model's resolution): the docks fit at 1,400 px
CENTRE_WEIGHTS = {"input": 0.3, "decoded": 0.34, "skeleton": 0.36}   # the centre's default split


def freeze_startup_objects() -> None:
    """Move everything allocated at startup (torch, Qt, vispy, the model) out of the garbage
    collector's reach: without this, a full collection scans them all and stalls the GUI thread
    for 50-150 ms in the middle of a slider drag (measured under Xvfb on 2 cores)."""
    gc.collect()
    gc.freeze()


def settings() -> QSettings:
    """The GUI's persistent settings (organisation "handlatent")."""
    return QSettings(ORGANIZATION, APPLICATION)


class MainWindow(ImageDropMixin, QMainWindow):
    """The explorer window for `session` (which the caller owns and closes)."""

    accepts_drop = staticmethod(dialogs.is_image_or_model_path)   # images and .pt files

    firstFrameShown = Signal()

    def __init__(self, session: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.bridge = SessionBridge(session, self)
        self.frames_shown = 0
        self.last_frame: Any = None
        self.setWindowTitle(f"handlatent — {session.name}")
        self.setAcceptDrops(True)
        self.setDockOptions(QMainWindow.DockOption.AnimatedDocks
                            | QMainWindow.DockOption.AllowTabbedDocks)

        # Centre: [input image (after an estimate) | decoded image | 3D skeleton]
        self.input_pane = ImagePane("Input image (estimate)", empty_text="", min_size=CENTRE_MIN)
        self.input_pane.setVisible(False)
        self.image_pane = ImagePane("Decoded image", empty_text="decoding…", min_size=CENTRE_MIN)
        self.skeleton = SkeletonView(self.bridge)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setChildrenCollapsible(False)
        for w in (self.input_pane, self.image_pane, self.skeleton):
            self.splitter.addWidget(w)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setStretchFactor(2, 1)
        self._arranged = False
        self.setCentralWidget(self.splitter)

        self.latent_panel = LatentPanel(session, self.bridge)
        self.walk_panel = WalkPanel(session.walk, session.stats, self.bridge)
        self.transfer_panel = TransferPanel(session.images, self.bridge, self.current_image)
        self.latent_dock = self.add_dock("Latent z", "latent-dock", self.latent_panel,
                                      Qt.DockWidgetArea.LeftDockWidgetArea)
        self.walk_dock = self.add_dock("Latent walk", "walk-dock", self.walk_panel,
                                    Qt.DockWidgetArea.BottomDockWidgetArea)
        self.transfer_dock = self.add_dock("Pose transfer", "transfer-dock", self.transfer_panel,
                                        Qt.DockWidgetArea.BottomDockWidgetArea)
        self.tabifyDockWidget(self.walk_dock, self.transfer_dock)
        self.walk_dock.raise_()
        # The atlas decodes (#active dims × columns) images per refresh: closed until asked for.
        self.atlas_panel = AtlasPanel(session, self.bridge)
        self.atlas_dock = self.add_dock("Latent atlas", "atlas-dock", self.atlas_panel,
                                     Qt.DockWidgetArea.RightDockWidgetArea)
        self.atlas_dock.hide()
        self.measures_panel = MeasuresPanel(session, self.bridge)
        self.measures_dock = self.add_dock("Pose measurements", "measures-dock",
                                           self.measures_panel,
                                           Qt.DockWidgetArea.RightDockWidgetArea)
        self.measures_dock.hide()
        self.atlas_dock.visibilityChanged.connect(self._atlas_shown)
        self.docks = [self.latent_dock, self.atlas_dock, self.measures_dock, self.walk_dock,
                      self.transfer_dock]
        self.viewpoint_mode = ViewpointMode(session, self.bridge, self.skeleton, self)

        self.device_label = QLabel(f"Device: {session.device}")
        self.model_label = QLabel(f"Model: {session.name} · {session.image_size} px · "
                                  f"d = {session.layout.total}")
        self.decode_label = QLabel("decode: – ms")
        self.decode_label.setMinimumWidth(120)
        for label in (self.device_label, self.model_label, self.decode_label):
            self.statusBar().addPermanentWidget(label)

        self.recent_menu = None
        self.recent_models_menu = None
        self.toolbar = None
        self.models = ModelControl(self)
        self.docks.append(self.models.curves_dock)
        self.actions_by_name: dict[str, QAction] = install_actions(self)
        self.photos = PhotoLabels(self)   # File ▸ Open photo, the Labels menu and dock
        viewpoint_button = QToolButton()
        viewpoint_button.setDefaultAction(self.actions_by_name["viewpoint_mode"])
        self.skeleton.bar.insertWidget(self.skeleton.bar.count() - 1, viewpoint_button)

        self.bridge.decoded.connect(self.on_decoded)
        self.bridge.historyChanged.connect(self.sync_history)
        self.bridge.imagesChanged.connect(self.sync_images)
        self.bridge.modelChanged.connect(self.on_model_changed)
        self.bridge.error.connect(lambda m: self.show_message(f"Error: {m}"))
        self.skeleton.modeChanged.connect(self._sync_mode_action)
        self.skeleton.jointGrabbed.connect(self.begin_joint_drag)
        self.skeleton.jointDragged.connect(self.drag_joint)
        self.skeleton.jointReleased.connect(session.end_drag)
        self.viewpoint_mode.toggled.connect(self._sync_viewpoint_action)
        self.bridge.samplingChanged.connect(self._sync_sampling_actions)
        self.latent_panel.showInactiveChanged.connect(self._sync_inactive_action)
        for panel in (self.walk_panel, self.transfer_panel):
            panel.message.connect(self.show_message)
        self.sync_history()
        self.resize(*DEFAULT_SIZE)
        self.resizeDocks([self.latent_dock], [400], Qt.Orientation.Horizontal)
        self.resizeDocks([self.walk_dock], [200], Qt.Orientation.Vertical)
        self.arrange_centre()
        session.refresh()   # the first frame: decoded on the worker, shown when it arrives

    def add_dock(self, title: str, name: str, widget: QWidget,
              area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(area, dock)
        return dock

    # -- session -> views ----------------------------------------------------------------------

    def shown(self, image: Any) -> Any:
        """An image of the model's frame as the window shows it: mirrored back while the
        estimate is a right hand (handlatent.photo_crop: the model sees it mirrored)."""
        return image[:, ::-1] if self.skeleton.mirrored else image

    def on_decoded(self, frame: Any) -> None:
        self.last_frame = frame
        self.image_pane.set_image(self.shown(frame.image), tag=frame.request_id)
        self.show_label_keypoints()
        self.decode_label.setText(f"decode: {frame.elapsed_ms:.1f} ms")
        self.frames_shown += 1
        if self.frames_shown == 1:
            self.firstFrameShown.emit()

    def on_model_changed(self, switch: Any) -> None:
        """The session runs another model: name it, and rebuild the views made for the old
        latent layout (a reload of the same layout only updates the KL numbers: cheap)."""
        s = self.session
        self.setWindowTitle(f"handlatent — {s.name}")
        self.model_label.setText(f"Model: {s.name} · {s.image_size} px · d = {s.layout.total}")
        if switch.same_layout:
            self.latent_panel.set_kl(s.stats.kl_per_dim, s.dim_labels)
        else:
            show = self.latent_panel.show_inactive.isChecked()
            old, self.latent_panel = self.latent_panel, LatentPanel(s, self.bridge)
            self.latent_dock.setWidget(self.latent_panel)
            old.deleteLater()
            self.latent_panel.showInactiveChanged.connect(self._sync_inactive_action)
            self.latent_panel.set_show_inactive(show)
        if (set(self.atlas_panel.grid.labels) != set(s.stats.atlas_dims())
                or self.atlas_panel.dim_names != s.dim_labels.names):
            old_atlas, self.atlas_panel = self.atlas_panel, AtlasPanel(s, self.bridge)
            old_atlas.timer.stop()
            self.atlas_dock.setWidget(self.atlas_panel)
            old_atlas.deleteLater()
        if self.atlas_dock.isVisible():
            self.atlas_panel.timer.start()
        self.transfer_panel.run_transfer()

    def sync_history(self) -> None:
        self.actions_by_name["undo"].setEnabled(bool(self.session.can_undo))
        self.actions_by_name["redo"].setEnabled(bool(self.session.can_redo))

    def show_label_keypoints(self) -> None:
        """Over the input crop, the 2D keypoints Labels ▸ Save would write for the current pose
        (handlatent.explorer.labels.crop_keypoints): a check that the estimate fits the hand."""
        loaded = self.session.images.get("estimate")
        frame = self.last_frame
        self.input_pane.set_keypoints(None if loaded is None or frame is None
                                      else crop_keypoints(loaded, frame.cpose, frame.viewpoint))

    def sync_images(self) -> None:
        loaded = self.session.images.get("estimate")
        right = loaded is not None and loaded.side == "right"
        if right != self.skeleton.mirrored:   # show a right hand in its photo's frame
            self.skeleton.set_mirrored(right)
            if self.last_frame is not None:
                self.image_pane.set_image(self.shown(self.last_frame.image),
                                          tag=self.last_frame.request_id)
        if loaded is None:
            self.input_pane.set_image(None)
            self.input_pane.setVisible(False)
            return
        self.input_pane.set_image(self.shown(loaded.model_input))
        self.show_label_keypoints()
        self.input_pane.title.setText(f"Input image · {loaded.label}")
        if not self.input_pane.isVisible():
            self.input_pane.setVisible(True)
            self.arrange_centre()

    def current_image(self) -> tuple[Any, str] | None:
        """The image on screen and its name: the loaded input image (its file, else its
        pixels), else the decoded image; None before the first frame."""
        loaded = self.session.images.get("estimate")
        if loaded is not None:
            if loaded.path is not None and loaded.path.is_file():
                return str(loaded.path), loaded.label
            return loaded.model_input, f"the input image ({loaded.label})"
        if self.last_frame is not None:
            return self.last_frame.image, "the decoded image"
        return None

    def arrange_centre(self) -> None:
        """The centre's default split: the decoded images (the model's product) at least as
        large as the input image, the 3D view beside them; the user may drag the handles."""
        splitter = self.splitter
        total = max(sum(splitter.sizes()), splitter.width())
        role = {id(self.input_pane): "input", id(self.skeleton): "skeleton"}
        widgets = [splitter.widget(i) for i in range(splitter.count())]
        weights = [0.0 if w.isHidden() else CENTRE_WEIGHTS[role.get(id(w), "decoded")]
                   for w in widgets]
        scale = total / max(sum(weights), 1e-9)
        sizes = [weight * scale for weight in weights]
        floors = [w.minimumSizeHint().width() if weight else 0.0
                  for w, weight in zip(widgets, weights)]
        short = sum(max(0.0, f - x) for f, x in zip(floors, sizes))
        spare = sum(max(0.0, x - f) for f, x in zip(floors, sizes))
        # widgets below their minimum get it, the others give way in proportion to their spare
        sizes = [f if x <= f else x - short * (x - f) / max(spare, 1e-9)
                 for f, x in zip(floors, sizes)]
        splitter.setSizes([int(x) for x in sizes])

    def _atlas_shown(self, visible: bool) -> None:
        """The atlas takes its width from the sliders' dock (down to where a row still shows
        its value and KL), not from the images."""
        if visible and not self.atlas_dock.isFloating():
            self.resizeDocks([self.latent_dock, self.atlas_dock],
                             [self.latent_panel.minimumSizeHint().width(),
                              self.atlas_panel.minimumWidth()], Qt.Orientation.Horizontal)

    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        if not self._arranged:       # once the window is laid out: share out the centre
            self._arranged = True
            QTimer.singleShot(0, self.arrange_centre)

    def _sync_mode_action(self, mode: str) -> None:
        a = self.actions_by_name["canonical"]
        a.blockSignals(True)
        a.setChecked(mode == "cpose")
        a.blockSignals(False)

    def _sync_viewpoint_action(self, on: bool) -> None:
        a = self.actions_by_name["viewpoint_mode"]
        a.blockSignals(True)
        a.setChecked(on)
        a.blockSignals(False)

    def _sync_sampling_actions(self, source: str) -> None:
        # exclusive group: the other action unchecks; set_sampling then finds nothing to change
        self.actions_by_name[f"sample_{source}"].setChecked(True)

    def _sync_inactive_action(self, show: bool) -> None:
        a = self.actions_by_name["show_inactive"]
        a.blockSignals(True)
        a.setChecked(show)
        a.blockSignals(False)

    def show_message(self, text: str) -> None:
        """One line in the status bar (errors included)."""
        self.statusBar().showMessage(" ".join(str(text).split()), MESSAGE_MS)

    # -- actions (each one a session call) ------------------------------------------------------

    def undo(self) -> None:
        if not self.session.undo():
            self.show_message("Nothing to undo")

    def redo(self) -> None:
        if not self.session.redo():
            self.show_message("Nothing to redo")

    def randomize(self, part: str | None) -> None:
        """A random sample of the whole latent (locked parts kept) or of one sub-latent."""
        if part is not None and self.session.locked(part):
            self.show_message(f"{part} is locked: unlock it to sample it")
            return
        self.session.randomize(part)
        locked = [p for p in self.session.layout.names if self.session.locked(p)]
        source = SOURCE_LABELS[self.session.stats.sampling]
        if part is not None:
            self.show_message(f"Sampled {part} from {source}")
        else:
            self.show_message(f"Sampled z from {source}" +
                              (f" (kept locked {', '.join(locked)})" if locked else ""))

    def set_sampling(self, source: str) -> None:
        """Where Random draws from: "hands" (the fitted Gaussian) or "prior" (N(0, I))."""
        self.session.stats.sampling = source
        self.show_message(f"Random samples now come from {SOURCE_LABELS[source]}")

    def reset_all(self) -> None:
        self.session.begin_edit()
        try:
            for part in self.session.layout.names:
                self.session.reset_part(part)
        finally:
            self.session.end_edit()

    def begin_joint_drag(self, joint: int, mode: str) -> None:
        self.session.begin_drag(joint, mode)
        self.show_message(f"Dragging {KEYPOINT_NAMES[joint]}: {' and '.join(FREE_PARTS[mode])} "
                          f"follow the mouse; release to finish (one undo step)")

    def drag_joint(self, target: Any) -> None:
        try:
            self.session.drag_to(target)
        except ValueError as error:   # a target off the numbers (a degenerate camera)
            self.show_message(str(error))

    def set_canonical_view(self, on: bool) -> None:
        self.skeleton.set_mode("cpose" if on else "xyz")

    def set_viewpoint_mode(self, on: bool) -> None:
        self.viewpoint_mode.set_enabled(on)

    def open_image_dialog(self) -> None:
        path = dialogs.open_image_path(self, "Open image — estimate the pose")
        if path:
            self.open_image(path)

    def open_image(self, path: str, remember: bool = True) -> bool:
        """Estimate the pose of an image file; a bad file leaves the session unchanged.
        `remember`: list it in File ▸ Open recent."""
        try:
            self.session.estimate(path)
        except ValueError as error:   # ImageError: one line naming the file and the problem
            self.show_message(str(error))
            return False
        if remember:
            self.add_recent(path)
        self.show_message(f"Estimated the pose of {os.path.basename(path)}")
        return True

    def open_example(self, path: str) -> bool:
        """Open a bundled example hand (File ▸ Open example), kept out of the recent files."""
        if not self.open_image(path, remember=False):
            return False
        self.show_message(f"Estimated the pose of the example hand {os.path.basename(path)} "
                          f"(File ▸ Open example lists the others, File ▸ Open image opens yours)")
        return True

    def load_preset_dialog(self) -> None:
        path = dialogs.open_preset_path(self)
        if path:
            self.load_preset(path)

    def load_preset(self, path: str) -> bool:
        try:
            self.session.load_preset(path)
        except ValueError as error:   # PresetError
            self.show_message(str(error))
            return False
        self.add_recent(path)
        self.show_message(f"Loaded preset {os.path.basename(path)}")
        return True

    def save_preset_dialog(self) -> None:
        path = dialogs.save_path(self, "Save latent preset", "preset.json",
                                 dialogs.PRESET_FILTER, ".json")
        if path:
            self.save_preset(path)

    def save_preset(self, path: str) -> bool:
        try:
            written = self.session.save_preset(path)
        except (ValueError, OSError) as error:
            self.show_message(f"Cannot save preset: {' '.join(str(error).split())}")
            return False
        self.add_recent(str(written))
        self.show_message(f"Preset saved to {written}")
        return True

    def export_pose_dialog(self, order: str = "handlatent") -> None:
        path = dialogs.save_path(self, f"Export pose ({joint_order(order).description})",
                                 "pose.json", dialogs.POSE_FILTER, ".json")
        if path:
            self.export_pose(path, order)

    def export_pose(self, path: str, order: str = "handlatent") -> bool:
        """Write the current pose (3D, 2D, CPose, viewpoint) as JSON or CSV in `order`."""
        try:
            written = write_pose(path, self.session.decode_now(), self.session.image_size, order)
        except (ValueError, OSError) as error:
            self.show_message(f"Cannot export the pose: {error}")
            return False
        self.show_message(f"Pose exported to {written} ({joint_order(order).name} order)")
        return True

    def save_image_dialog(self) -> None:
        path = dialogs.save_path(self, "Save decoded image", "decoded.png", dialogs.PNG_FILTER,
                                 ".png")
        if path:
            self.save_image(path)

    def save_image(self, path: str) -> bool:
        image = self.image_pane.qimage()
        if image is None or not image.save(path):
            self.show_message(f"Cannot save the image to {path}")
            return False
        self.show_message(f"Image saved to {path}")
        return True

    def copy_image(self) -> None:
        image = self.image_pane.qimage()
        if image is None:
            self.show_message("No image to copy yet")
            return
        QGuiApplication.clipboard().setImage(image)
        self.show_message(f"Copied the decoded image ({image.width()}×{image.height()}) "
                          f"to the clipboard")

    def save_screenshot_dialog(self) -> None:
        path = dialogs.save_path(self, "Save screenshot", "handlatent.png", dialogs.PNG_FILTER,
                                 ".png")
        if path:
            self.save_screenshot(path)

    def grab_window(self) -> QPixmap:
        """A screenshot of the whole window (the 3D view included)."""
        return self.grab()

    def save_screenshot(self, path: str) -> bool:
        ok = self.grab_window().save(path)
        self.show_message(f"Screenshot saved to {path}" if ok else
                          f"Cannot save the screenshot to {path}")
        return bool(ok)

    def show_shortcuts(self) -> None:
        dialog = dialogs.ShortcutsDialog(self.actions_by_name.values(), self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        dialog.open()

    def show_about(self) -> None:
        QMessageBox.about(self, "About handlatent",
                          dialogs.about_text(self.session.name, self.session.device))

    # -- recent files ----------------------------------------------------------------------

    def recent_files(self) -> list[str]:
        value = settings().value(RECENT_KEY, [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def add_recent(self, path: str) -> None:
        path = os.path.abspath(path)
        files = [path] + [p for p in self.recent_files() if p != path]
        settings().setValue(RECENT_KEY, files[:MAX_RECENT])

    def rebuild_recent_menu(self) -> None:
        menu = self.recent_menu
        menu.clear()
        files = [p for p in self.recent_files() if os.path.exists(p)]
        if not files:
            a = menu.addAction("(none)")
            a.setEnabled(False)
            return
        for path in files:
            a = menu.addAction(os.path.basename(path))
            a.setToolTip(path)
            a.setStatusTip(path)
            a.triggered.connect(lambda _=False, p=path: self.open_recent(p))
        menu.addSeparator()
        menu.addAction("Clear list", lambda: settings().setValue(RECENT_KEY, []))

    def open_recent(self, path: str) -> bool:
        if path.lower().endswith(".json"):
            return self.load_preset(path)
        if self.photos.wants_crop(path):   # a photo, as for drops: the crop step first
            return self.photos.open_photo(path) is not None
        return self.open_image(path)

    # -- drag & drop ------------------------------------------------------------------------

    def image_dropped(self, path: str) -> None:
        if dialogs.is_model_path(path):
            self.models.open_model(path)
        elif self.photos.wants_crop(path):   # a photo, not a model-sized crop: the crop step
            self.photos.open_photo(path)
        else:
            self.open_image(path)

    # -- lifetime ----------------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop timers and exports and stop listening to the session (idempotent)."""
        self.walk_panel.timer.stop()
        self.atlas_panel.timer.stop()
        self.models.shutdown()
        self.viewpoint_mode.set_enabled(False)
        job = self.walk_panel.job
        if job is not None and job.is_running():
            job.cancel()
            job.wait(10000)
        self.bridge.detach()
        self.skeleton.shutdown()
