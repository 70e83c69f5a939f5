"""Own photos in, labels out: File ▸ Open photo (the crop step), the Labels menu and its dock.

The annotation loop, a few keys per photo: File ▸ Open photo (Ctrl+Shift+P) → drag the box over
the hand, pick the side, Enter → drag joints in the 3D view to correct the estimate → Labels ▸
Save and next photo (Ctrl+Shift+K), which saves the label and opens the crop step on the next
photo of the same folder, starting from the same box and side. Saving is an undo step
(Edit ▸ Undo takes the item out of the folder again). All work is the session's
(`session.estimate`, `session.labels`); this module only asks and shows.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image
from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QLabel, QListWidget, QMenu, QVBoxLayout, QWidget

from handlatent.app import dialogs
from handlatent.app.crop_dialog import CropDialog
from handlatent.explorer.images import ImageError, read_image
from handlatent.photo_crop import CropBox, PhotoCropError, check_box, default_box

if TYPE_CHECKING:
    from handlatent.app.main_window import MainWindow

CROP_FACTOR = 2   # a square image at most this times the model's size is a crop already


def next_photo(path: str | os.PathLike) -> Path | None:
    """The image after `path` in its folder (sorted by name), or None at the end."""
    path = Path(path)
    try:
        names = sorted(p for p in path.parent.iterdir()
                       if p.is_file() and dialogs.is_image_path(p.name))
    except OSError:
        return None
    later = [p for p in names if p.name > path.name]
    return later[0] if later else None


class PhotoLabels(QObject):
    """The window's photo and label actions (module docstring)."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.session = window.session
        self.crop_dialog: CropDialog | None = None
        self.last_box: tuple[tuple[int, int], CropBox] | None = None   # (photo size, box)
        self.last_side = "left"
        self.photo_path: Path | None = None
        self.list = QListWidget()
        self.folder_label = QLabel("No label folder: Labels ▸ Open folder")
        self.folder_label.setWordWrap(True)
        panel = QWidget()
        layout = QVBoxLayout(panel)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.folder_label)
        layout.addWidget(self.list)
        self.dock = window.add_dock("Labels", "labels-dock", panel,
                                    Qt.DockWidgetArea.RightDockWidgetArea)
        self.dock.hide()
        window.docks.append(self.dock)
        self._install_actions()
        window.bridge.labelsChanged.connect(self.sync)

    def _install_actions(self) -> None:
        w = self.window

        def act(name: str, text: str, slot, shortcut: str | None, tip: str) -> QAction:
            a = QAction(text, w)
            if shortcut:
                a.setShortcut(QKeySequence(shortcut))
                a.setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)
            a.setStatusTip(tip)
            a.triggered.connect(lambda _checked=False: slot())
            w.addAction(a)
            w.actions_by_name[name] = a
            return a

        open_photo = act("open_photo", "Open &photo…", self.open_photo_dialog, "Ctrl+Shift+P",
                         "Crop a hand out of a photo (box and side), then estimate its pose")
        bar = w.menuBar()
        menus = {a.text(): a for a in bar.actions()}
        file_menu = menus["&File"].menu()
        after = file_menu.actions()
        index = after.index(w.actions_by_name["open_image"])
        file_menu.insertAction(after[index + 1] if index + 1 < len(after) else None, open_photo)

        menu = QMenu("La&bels", w)
        menu.addAction(act("labels_open", "&Open folder…", self.open_folder_dialog, None,
                           "Choose the label folder that Labels ▸ Save appends to (created on "
                           "the first save); its items are listed in the Labels dock"))
        menu.addAction(act("labels_save", "&Save", self.save, "Ctrl+K",
                           "Append the photo's crop with the current pose as a label (undo "
                           "takes it out again)"))
        menu.addAction(act("labels_save_next", "Save and &next photo", self.save_and_next,
                           "Ctrl+Shift+K", "Save the label, then crop the next photo of the "
                           "same folder"))
        menu.addSeparator()
        menu.addAction(self.dock.toggleViewAction())
        view = menus.get("&View")
        if view is not None:
            bar.insertMenu(view, menu)
        else:
            bar.addMenu(menu)
        self.menu = menu

    # -- photos ------------------------------------------------------------------------------

    def wants_crop(self, path: str) -> bool:
        """Whether a dropped image goes through the crop step: anything but a square image of
        at most CROP_FACTOR times the model's size (a crop already, estimated as it is)."""
        try:
            with Image.open(path) as im:
                width, height = im.size
        except (OSError, ValueError, Image.DecompressionBombError):
            return False   # open_image reports the problem in one line
        return not (width == height and width <= CROP_FACTOR * self.session.image_size)

    def open_photo_dialog(self) -> None:
        path = dialogs.open_image_path(self.window, "Open photo — crop the hand")
        if path:
            self.open_photo(path)

    def open_photo(self, path: str | os.PathLike, side: str | None = None) -> CropDialog | None:
        """Show the crop step for `path` (non-blocking; Estimate runs the estimate). A photo
        that cannot be read or is too small for a box: one line in the status bar."""
        try:
            photo, _ = read_image(path, needed=1 << 20)
            size = photo.size
            box = default_box(*size, label=os.fspath(path))
        except (ImageError, PhotoCropError) as error:
            self.window.show_message(str(error))
            return None
        if self.last_box is not None and self.last_box[0] == size:
            box = self.last_box[1]           # the next photo of a series: same framing
        if self.crop_dialog is not None:
            self.crop_dialog.close()
        dialog = CropDialog(photo, Path(path).name, box, side or self.last_side, self.window)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        dialog.accepted.connect(lambda: self._estimate(path, size, dialog.box(), dialog.side()))
        dialog.destroyed.connect(lambda *_: self._forget(dialog))
        self.crop_dialog = dialog
        dialog.open()
        return dialog

    def _forget(self, dialog: CropDialog) -> None:
        if self.crop_dialog is dialog:
            self.crop_dialog = None

    def _estimate(self, path: str | os.PathLike, size: tuple[int, int], box: CropBox,
                  side: str) -> bool:
        try:
            check_box(box, *size, label=os.fspath(path))
            self.session.estimate(path, box=box, side=side)
        except ValueError as error:   # ImageError, PhotoCropError: one line naming the file
            self.window.show_message(str(error))
            return False
        self.last_box, self.last_side, self.photo_path = (size, box), side, Path(path)
        self.window.add_recent(os.fspath(path))
        self.window.show_message(f"Estimated the {side} hand in {Path(path).name} (box "
                                 f"{box.as_text()}); correct it by dragging joints, then "
                                 f"Labels ▸ Save")
        return True

    # -- labels ------------------------------------------------------------------------------

    def open_folder_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self.window, "Label folder (new or existing)")
        if path:
            self.open_folder(path)

    def open_folder(self, path: str | os.PathLike) -> bool:
        """Open (or start) a label folder; a bad or unwritable one: one line, nothing changes."""
        try:
            self.session.labels.open(path)
        except ValueError as error:   # LabelFolderError
            self.window.show_message(str(error))
            return False
        self.dock.show()
        self.window.show_message(f"Labels go to {path} ({len(self.session.labels.names)} "
                                 f"saved so far)")
        return True

    def save(self) -> str | None:
        """Labels ▸ Save: the item's name, or None after one line saying why not."""
        if self.session.labels.folder is None:
            self.open_folder_dialog()
            if self.session.labels.folder is None:
                self.window.show_message("No label folder: choose one with Labels ▸ Open folder")
                return None
        try:
            name = self.session.labels.save()
        except ValueError as error:   # no photo, LabelFolderError (unwritable): nothing lost
            self.window.show_message(str(error))
            return None
        self.window.show_message(f"Saved label {name} to {self.session.labels.folder.root} "
                                 f"(Edit ▸ Undo takes it out)")
        return name

    def save_and_next(self) -> CropDialog | None:
        """Save, then open the crop step on the next photo of the same folder."""
        if self.save() is None:
            return None
        following = None if self.photo_path is None else next_photo(self.photo_path)
        if following is None:
            self.window.show_message("Saved; that was the last photo of its folder")
            return None
        return self.open_photo(following)

    def sync(self) -> None:
        """List the open folder's items (newest last)."""
        labels = self.session.labels
        self.list.clear()
        if labels.folder is None:
            return
        self.folder_label.setText(f"{labels.folder.root} · {len(labels.names)} items")
        for name in labels.names:
            try:
                record = labels.folder.record(name)
                source = record.get("source") or {}
                photo = Path(source["photo"]).name if source.get("photo") else "array"
                text = f"{name} · {photo} · {'right' if record.get('is_right') else 'left'}"
            except (ValueError, KeyError, TypeError):
                text = f"{name} · (item unreadable)"
            self.list.addItem(text)
        self.list.scrollToBottom()
