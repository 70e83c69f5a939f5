"""Dialogs: file choosers, error boxes, the keyboard-shortcut sheet, the export progress dialog."""

from __future__ import annotations

import os
from typing import Iterable

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFileDialog, QHeaderView, QMessageBox,
                               QProgressDialog, QTableWidget, QTableWidgetItem, QVBoxLayout,
                               QWidget)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                  ".pgm")
IMAGE_FILTER = "Images (" + " ".join(f"*{s}" for s in IMAGE_SUFFIXES) + ");;All files (*)"
MODEL_SUFFIX = ".pt"
MODEL_FILTER = "handlatent checkpoints (*.pt);;All files (*)"
PRESET_FILTER = "Latent presets (*.json);;All files (*)"
PNG_FILTER = "PNG image (*.png);;JPEG image (*.jpg *.jpeg);;All files (*)"
WALK_FILTER = "Animated GIF (*.gif);;MP4 video (*.mp4);;PNG strip (*.png)"
POSE_FILTER = "Pose JSON (*.json);;Pose CSV (*.csv)"
BVH_FILTER = "BVH skeleton animation (*.bvh)"
WALK_SUFFIX_OF_FILTER = {"Animated GIF (*.gif)": ".gif", "MP4 video (*.mp4)": ".mp4",
                         "PNG strip (*.png)": ".png", "Pose CSV (*.csv)": ".csv"}


def is_image_path(path: str) -> bool:
    """Whether `path` has an image file suffix (for drag & drop)."""
    return os.path.splitext(path)[1].lower() in IMAGE_SUFFIXES


def is_model_path(path: str) -> bool:
    """Whether `path` names a checkpoint (.pt), for drag & drop."""
    return os.path.splitext(path)[1].lower() == MODEL_SUFFIX


def is_image_or_model_path(path: str) -> bool:
    """What the main window takes when dropped: images and checkpoints."""
    return is_image_path(path) or is_model_path(path)


def open_model_path(parent: QWidget | None, title: str = "Open model") -> str | None:
    path, _ = QFileDialog.getOpenFileName(parent, title, "", MODEL_FILTER)
    return path or None


def open_run_folder(parent: QWidget | None) -> str | None:
    path = QFileDialog.getExistingDirectory(parent, "Follow a training run (its --out folder)")
    return path or None


class ImageFolder:
    """Where image dialogs open: the bundled example hands the first time (a new user has
    something to open at once), then the folder of the image last chosen."""

    folder: str | None = None

    @classmethod
    def get(cls) -> str:
        if cls.folder is None:
            from handlatent.resources import EXAMPLES_FOLDER, asset_folder
            cls.folder = str(asset_folder(EXAMPLES_FOLDER))
        return cls.folder


def open_image_path(parent: QWidget | None, title: str = "Open image",
                    directory: str | None = None) -> str | None:
    """An image file chosen by the user, the dialog opening in `directory` (default: the
    examples the first time, then the last image's folder, `ImageFolder`)."""
    path, _ = QFileDialog.getOpenFileName(parent, title, directory or ImageFolder.get(),
                                          IMAGE_FILTER)
    if path:
        ImageFolder.folder = os.path.dirname(path)
    return path or None


def open_preset_path(parent: QWidget | None, directory: str = "") -> str | None:
    path, _ = QFileDialog.getOpenFileName(parent, "Load latent preset", directory,
                                          PRESET_FILTER)
    return path or None


def save_path(parent: QWidget | None, title: str, name: str, file_filter: str,
              default_suffix: str) -> str | None:
    """A save-file chooser; the suffix is added when the user typed none."""
    path, chosen = QFileDialog.getSaveFileName(parent, title, name, file_filter)
    if not path:
        return None
    if not os.path.splitext(path)[1]:
        path += WALK_SUFFIX_OF_FILTER.get(chosen, default_suffix)
    return path


def show_error(parent: QWidget | None, title: str, message: str, *,
               modal: bool = False) -> QMessageBox:
    """An error box; window-modal and non-blocking unless `modal` (then it runs exec())."""
    box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok,
                      parent)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
    if modal:
        box.exec()
    else:
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.open()
    return box


def export_progress(parent: QWidget | None, label: str, n: int) -> QProgressDialog:
    """A cancellable progress dialog for a walk export of `n` frames."""
    dialog = QProgressDialog(label, "Cancel", 0, max(n, 1), parent)
    dialog.setWindowTitle("Exporting latent walk")
    dialog.setWindowModality(Qt.WindowModality.WindowModal)
    dialog.setMinimumDuration(0)
    dialog.setAutoClose(False)
    dialog.setAutoReset(False)
    dialog.setValue(0)
    return dialog


class ShortcutsDialog(QDialog):
    """Help ▸ Keyboard shortcuts: every action that has a shortcut, in menu order."""

    def __init__(self, actions: Iterable[QAction], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        rows = []
        for action in actions:
            keys = [k.toString(k.SequenceFormat.NativeText) for k in action.shortcuts()]
            if keys:
                rows.append((action.text().replace("&", "").rstrip(".…"), ", ".join(keys)))
        rows.append(("Drag a slider", "one undo step per drag"))
        rows.append(("Left-drag a fingertip or knuckle in the 3D view",
                     "the pose follows the joint (one undo step)"))
        rows.append(("Drop image files", "estimate the pose (a photo: the crop step first; "
                                         "onto the transfer panes: load)"))
        rows.append(("Orbit the 3D view in viewpoint mode", "turns the hand (one undo step)"))
        rows.append(("Click a latent-atlas thumbnail", "sets that value (one undo step)"))
        self.table = QTableWidget(len(rows), 2)
        self.table.setHorizontalHeaderLabels(["Action", "Shortcut"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QTableWidget.SelectionMode.NoSelection)
        self.table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.table.setWordWrap(False)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().setDefaultSectionSize(24)
        for r, (name, keys) in enumerate(rows):
            self.table.setItem(r, 0, QTableWidgetItem(name))
            self.table.setItem(r, 1, QTableWidgetItem(keys))
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(buttons)
        self.resize(520, 640)


def about_text(session_name: str, device: str) -> str:
    return ("<b>handlatent</b> — latent-space explorer for the disentangled hand VAE "
            "(Yang &amp; Yao, CVPR 2019).<br><br>"
            f"Model: {session_name}<br>Device: {device}<br><br>"
            "z = [z_y1 canonical pose | z_y2 viewpoint | z_u content]")

