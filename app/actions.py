"""Menus, toolbar and keyboard shortcuts of the main window.

Every action only calls a main-window slot, which calls the session; the menu order here is the
order of Help ▸ Keyboard shortcuts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QAction, QActionGroup, QIcon, QKeySequence
from PySide6.QtWidgets import QMenu, QStyle, QToolBar

from handlatent.app.icons import die_icon
from handlatent.joint_orders import ORDERS
from handlatent.resources import example_images

if TYPE_CHECKING:
    from handlatent.app.main_window import MainWindow

PART_SHORTCUTS = {"z_y1": "Shift+1", "z_y2": "Shift+2", "z_u": "Shift+3"}
PART_NAMES = {"z_y1": "pose", "z_y2": "viewpoint", "z_u": "content"}
EXPORT_ORDER_TEXT = {"handlatent": "&handlatent order (RHD, palm first)",
                     "rhd": "&RHD order (wrist first)", "stb": "&STB order",
                     "freihand": "&FreiHAND / MANO / MediaPipe / OpenPose order"}


def install_actions(w: "MainWindow") -> dict[str, QAction]:
    """Create the window's actions, menus and toolbar; returns the actions by name."""
    actions: dict[str, QAction] = {}
    style = w.style()

    def act(name: str, text: str, slot: Callable, shortcut=None, tip: str = "",
            checkable: bool = False, icon=None) -> QAction:
        a = QAction(text, w)
        if shortcut is not None:
            keys = shortcut if isinstance(shortcut, (list, tuple)) else [shortcut]
            a.setShortcuts([QKeySequence(k) for k in keys])
        if tip:
            a.setStatusTip(tip)
            a.setToolTip(f"{tip} ({a.shortcut().toString()})" if a.shortcuts() else tip)
        if icon is not None:
            a.setIcon(icon if isinstance(icon, QIcon) else style.standardIcon(icon))
        a.setCheckable(checkable)
        # The 3D view may sit in its own native window: let shortcuts work from there too.
        a.setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)
        if checkable:
            a.toggled.connect(slot)
        else:
            a.triggered.connect(lambda _checked=False: slot())
        w.addAction(a)   # shortcuts work even while the menu bar is hidden
        actions[name] = a
        return a

    sp = QStyle.StandardPixmap
    bar = w.menuBar()

    file_menu = bar.addMenu("&File")
    file_menu.addAction(act("open_image", "&Open image…", w.open_image_dialog,
                            QKeySequence.StandardKey.Open,
                            "Estimate the pose of a hand image", icon=sp.SP_DialogOpenButton))
    w.recent_menu = QMenu("Open &recent", w)
    w.recent_menu.aboutToShow.connect(w.rebuild_recent_menu)
    file_menu.addMenu(w.recent_menu)
    file_menu.addMenu(_examples_menu(w))
    file_menu.addSeparator()
    file_menu.addAction(act("open_model", "Open &model…", w.models.open_model_dialog,
                            "Ctrl+Shift+O", "Switch the explorer to another checkpoint (.pt); "
                            "the loaded images are re-encoded, the latent kept if it fits"))
    w.recent_models_menu = QMenu("Recent mo&dels", w)
    w.recent_models_menu.aboutToShow.connect(w.models.rebuild_recent_menu)
    file_menu.addMenu(w.recent_models_menu)
    file_menu.addAction(act("follow_run", "&Follow run…", w.models.follow_run_dialog,
                            tip="Open a training run's newest checkpoint and reload each new one"))
    file_menu.addAction(act("stop_follow", "Stop follo&wing", w.models.stop_following,
                            tip="Keep the model shown; stop reloading the run's checkpoints"))
    file_menu.addAction(act("follow_from_image", "Follow: latent from the &image",
                            w.models.set_follow_from_image, checkable=True,
                            tip="Following a run with an image loaded, set the latent from "
                                "each new checkpoint's encoding of it (off: keep the latent)"))
    actions["follow_from_image"].blockSignals(True)      # the default, no message
    actions["follow_from_image"].setChecked(w.models.follow_from_image)
    actions["follow_from_image"].blockSignals(False)
    file_menu.addSeparator()
    file_menu.addAction(act("load_preset", "&Load preset…", w.load_preset_dialog, "Ctrl+L",
                            "Load a latent from a preset JSON file"))
    file_menu.addAction(act("save_preset", "&Save preset…", w.save_preset_dialog,
                            QKeySequence.StandardKey.Save, "Save the current latent as JSON",
                            icon=sp.SP_DialogSaveButton))
    file_menu.addSeparator()
    file_menu.addAction(act("save_image", "Save &image…", w.save_image_dialog, "Ctrl+E",
                            "Save the decoded image as PNG"))
    pose_menu = file_menu.addMenu("Export &pose")
    for order in ORDERS.values():
        pose_menu.addAction(act(
            f"export_pose_{order.name}", f"{EXPORT_ORDER_TEXT[order.name]}…",
            lambda o=order.name: w.export_pose_dialog(o),
            tip=f"Save the current 3D pose, 2D keypoints and CPose as JSON or CSV, "
                f"keypoints in {order.description}"))
    file_menu.addAction(act("save_screenshot", "Save screens&hot…", w.save_screenshot_dialog,
                            "Ctrl+Shift+S", "Save a screenshot of the whole window"))
    file_menu.addSeparator()
    file_menu.addAction(act("quit", "&Quit", w.close, QKeySequence.StandardKey.Quit))

    edit_menu = bar.addMenu("&Edit")
    edit_menu.addAction(act("undo", "&Undo", w.undo, ["Ctrl+Z"], "Undo the last latent change",
                            icon=sp.SP_ArrowBack))
    edit_menu.addAction(act("redo", "&Redo", w.redo, ["Ctrl+Shift+Z", "Ctrl+Y"],
                            "Redo", icon=sp.SP_ArrowForward))
    edit_menu.addSeparator()
    edit_menu.addAction(act("copy_image", "&Copy image", w.copy_image,
                            QKeySequence.StandardKey.Copy,
                            "Copy the decoded image to the clipboard"))

    latent_menu = bar.addMenu("&Latent")
    latent_menu.addAction(act("random_all", "&Random sample", lambda: w.randomize(None), "R",
                              "Draw the whole latent (locked parts stay) from the source chosen "
                              "in Latent ▸ Sample from", icon=die_icon()))
    for part in w.session.layout.names:
        if part in PART_SHORTCUTS and w.session.layout.slices[part].stop > \
                w.session.layout.slices[part].start:
            latent_menu.addAction(act(
                f"random_{part}", f"Random {PART_NAMES[part]} ({part})",
                lambda p=part: w.randomize(p), PART_SHORTCUTS[part],
                f"Draw {part} from the source chosen in Latent ▸ Sample from"))
    sources = latent_menu.addMenu("Sample &from")
    group = QActionGroup(w)
    for source, text, tip in (
            ("hands", "&Hands (Gaussian fitted to encoded hands)",
             "Random latents where the model's encoded hands lie: they decode to hands"),
            ("prior", "&Prior N(0, I)",
             "Random latents from the prior, as in the paper: far from most encoded hands")):
        a = act(f"sample_{source}", text, lambda on, s=source: on and w.set_sampling(s),
                tip=tip, checkable=True)
        a.setChecked(w.session.stats.sampling == source)
        group.addAction(a)
        sources.addAction(a)
    latent_menu.addSeparator()
    latent_menu.addAction(act("reset_all", "Reset all to &zero", w.reset_all, "Ctrl+0",
                              "Set every latent dimension to 0"))

    walk_menu = bar.addMenu("&Walk")
    walk_menu.addAction(act("walk_play", "&Play / pause walk", w.walk_panel.toggle_play,
                            "Space", "Play or pause the latent walk"))
    walk_menu.addAction(act("walk_export", "&Export walk…", w.walk_panel.export_dialog,
                            "Ctrl+Shift+E", "Export the walk as GIF, MP4 or PNG strip"))
    walk_menu.addAction(act("walk_export_bvh", "Export walk as &BVH…",
                            w.walk_panel.export_bvh_dialog,
                            tip="Save the walk's 3D poses as a BVH skeleton animation "
                                "(Blender: File ▸ Import ▸ Motion Capture)"))

    view_menu = bar.addMenu("&View")
    a = act("canonical", "&Canonical pose in 3D view", w.set_canonical_view, "C",
            "Show the canonical pose (viewpoint removed) instead of the 3D pose",
            checkable=True)
    view_menu.addAction(a)
    view_menu.addAction(act("show_inactive", "Show &inactive dimensions",
                            lambda on: w.latent_panel.set_show_inactive(on), "I",
                            "Show latent dimensions with KL ≈ 0", checkable=True))
    view_menu.addAction(act("reset_camera", "Reset 3D &camera", w.skeleton.reset_camera,
                            "Home", "Look along the image camera's axis again"))
    view_menu.addAction(act("viewpoint_mode", "&Viewpoint mode", w.set_viewpoint_mode, "V",
                            "Orbiting the 3D view turns the hand: the image is re-rendered from "
                            "the angle you look from", checkable=True))
    actions["viewpoint_mode"].setIconText("Viewpoint")   # short: it sits in the 3D view's bar
    view_menu.addAction(act("compare", "Com&pare with…", w.models.compare_dialog,
                            "Ctrl+Shift+C", "Decode the same latent with a second model of the "
                            "same latent layout, side by side"))
    view_menu.addAction(act("stop_compare", "Stop comparing", w.models.stop_comparing,
                            tip="Close the compared model"))
    view_menu.addSeparator()
    for dock in w.docks:
        view_menu.addAction(dock.toggleViewAction())
    atlas = w.atlas_dock.toggleViewAction()
    atlas.setShortcut(QKeySequence("A"))
    atlas.setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)
    atlas.setStatusTip("Strips of decoded thumbnails from -2σ to +2σ per active dimension")
    w.addAction(atlas)
    actions["atlas"] = atlas
    measures = w.measures_dock.toggleViewAction()
    measures.setShortcut(QKeySequence("M"))
    measures.setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)
    measures.setStatusTip("Joint angles, spreads and bone lengths of the shown hand, with a "
                          "warning when an angle leaves the human range")
    w.addAction(measures)
    actions["measures"] = measures

    help_menu = bar.addMenu("&Help")
    help_menu.addAction(act("shortcuts", "&Keyboard shortcuts", w.show_shortcuts,
                            QKeySequence.StandardKey.HelpContents))
    help_menu.addAction(act("about", "&About handlatent", w.show_about))

    toolbar = QToolBar("Main", w)
    toolbar.setObjectName("main-toolbar")
    toolbar.setIconSize(QSize(18, 18))
    toolbar.setMovable(False)
    for name in ("open_image", "save_preset", None, "undo", "redo", None, "random_all"):
        if name is None:
            toolbar.addSeparator()
        else:
            toolbar.addAction(actions[name])
    for part in ("z_y1", "z_y2", "z_u"):
        if f"random_{part}" in actions:
            b = QAction(f"Random {PART_NAMES[part]}", w)
            b.setToolTip(f"Draw {part} at random ({PART_SHORTCUTS[part]})")
            b.triggered.connect(actions[f"random_{part}"].trigger)
            toolbar.addAction(b)
    toolbar.addSeparator()
    toolbar.addAction(actions["walk_play"])
    toolbar.addAction(actions["viewpoint_mode"])
    toolbar.addAction(actions["atlas"])
    w.addToolBar(toolbar)
    w.toolbar = toolbar
    return actions


def _examples_menu(w: "MainWindow") -> QMenu:
    """File ▸ Open example: the bundled example hands, each with its picture as the icon."""
    menu = QMenu("Open e&xample", w)
    menu.setObjectName("examples-menu")
    examples = example_images()
    if not examples:
        menu.addAction("(none shipped)").setEnabled(False)
    for path in examples:
        a = menu.addAction(QIcon(str(path)), path.stem)
        a.setStatusTip(f"Estimate the pose of the bundled example {path.name}")
        a.triggered.connect(lambda _=False, p=str(path): w.open_example(p))
    return menu


def shortcut_actions(actions: dict[str, QAction]) -> list[QAction]:
    """The actions in menu order (for the shortcut sheet)."""
    return list(actions.values())
