"""The 3D skeleton view: a vispy SceneCanvas embedded in Qt (napari's vispy-adapter pattern).

`SkeletonView` subscribes to the bridge's `decoded` signal and, in its handler, pushes the frame's
joints into a Markers visual and its bones into a segment Line (per-bone colours from
`handlatent.skeleton.BONE_COLORS`), then calls `node.update()`. It owns no model state: the mode
toggle only picks which of the frame's arrays is drawn ("3D pose" xyz, or "canonical pose" cpose).

Display frame: the model's points are in the camera frame (x right, y down, z away from the
camera). The scene shows them as (x, z, -y) so that "up" in the image is up on screen under the
turntable camera (whose up axis is +z), and the default view looks along the camera's z axis.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QColor, QGuiApplication, QImage, QMouseEvent, QPainter
from PySide6.QtWidgets import (QButtonGroup, QHBoxLayout, QLabel, QRadioButton, QSizePolicy, QToolButton,
                               QVBoxLayout, QWidget)
from vispy import app as vispy_app
from vispy import scene
from vispy.visuals.transforms import STTransform

from handlatent.explorer.drag import DRAG_MODES, DRAGGABLE_JOINTS
from handlatent.explorer.viewpoint import CAMERA_TO_DISPLAY
from handlatent.app.coalesce import Coalescer
from handlatent.skeleton import BONE_COLORS, BONES, FINGER_COLORS, FINGER_OF_KEYPOINT, FINGERS

BACKGROUND = "#1b1d22"
GRID_COLOR = (0.55, 0.58, 0.65, 0.35)
ROOT_COLOR = (0.92, 0.92, 0.92)
COMPARED_COLOR = (1.0, 0.55, 0.1, 0.95)   # the compared model's skeleton (overlay), orange
MODES = ("xyz", "cpose")
MODE_LABELS = {"xyz": "3D pose", "cpose": "Canonical"}
HOME_ANGLES = (0.0, 15.0)   # (azimuth, elevation) of "Reset view": a little from above

_vispy_ready = False


SOFTWARE_RENDERERS = ("llvmpipe", "softpipe", "swrast", "software")
_renderer: str | None = None


def gl_renderer() -> str:
    """The OpenGL renderer string of a throwaway context ("" if there is no OpenGL)."""
    global _renderer
    if _renderer is None:
        _renderer = ""
        try:
            from PySide6.QtGui import QOffscreenSurface, QOpenGLContext
            context, surface = QOpenGLContext(), QOffscreenSurface()
            surface.create()
            if context.create() and context.makeCurrent(surface):
                _renderer = str(context.functions().glGetString(0x1F01) or "")  # GL_RENDERER
                context.doneCurrent()
        except Exception:  # noqa: BLE001 - no OpenGL at all
            _renderer = ""
    return _renderer


def embedding_mode() -> str:
    """How the vispy canvas is shown: "native" (canvas.native, a QOpenGLWidget, in the layout)
    or "offscreen" (rendered offscreen, shown by a raster widget: `OffscreenSurface`).

    "offscreen" with a software OpenGL renderer (llvmpipe etc.) or without OpenGL, "native"
    with a GPU. HANDLATENT_GL_EMBED=native|offscreen overrides.
    """
    forced = os.environ.get("HANDLATENT_GL_EMBED", "").strip().lower()
    if forced in ("native", "offscreen"):
        return forced
    if QGuiApplication.platformName() in ("offscreen", "minimal"):
        return "offscreen"
    renderer = gl_renderer().lower()
    return "offscreen" if not renderer or any(r in renderer for r in SOFTWARE_RENDERERS) \
        else "native"


def ensure_vispy_backend() -> None:
    """Make vispy use the running PySide6 application (idempotent)."""
    global _vispy_ready
    if not _vispy_ready:
        vispy_app.use_app("pyside6")
        _vispy_ready = True


def finger_hex(finger: int) -> str:
    """"#rrggbb" of finger `finger` (0 thumb … 4 little), as its bones are drawn."""
    return "#" + "".join(f"{round(255 * c):02x}" for c in FINGER_COLORS[finger])


def finger_legend() -> QLabel:
    """One line under the 3D view naming the fingers in their colours ("● thumb ● index …")."""
    entries = [f'<span style="color:{finger_hex(f)}; font-size:15px;">●</span>&nbsp;{name}'
               for f, name in enumerate(FINGERS)]
    label = QLabel("&nbsp;&nbsp;&nbsp;".join(entries))
    label.setObjectName("finger-legend")
    label.setTextFormat(Qt.TextFormat.RichText)
    label.setStyleSheet(f"background: {BACKGROUND}; color: #c8ccd2; padding: 2px 6px;")
    label.setToolTip("Bone and joint colours of the skeleton; the palm root is white")
    return label


def joint_colors() -> np.ndarray:
    """(21, 4) RGBA: the root light grey, each finger's joints in its finger colour."""
    colors = np.array([ROOT_COLOR if f < 0 else FINGER_COLORS[f] for f in FINGER_OF_KEYPOINT])
    return np.hstack([colors, np.ones((len(colors), 1))]).astype(np.float32)


def bone_vertex_colors() -> np.ndarray:
    """(40, 4) RGBA: both ends of bone b get BONE_COLORS[b] (segments are drawn flat)."""
    rgba = np.hstack([np.asarray(BONE_COLORS, dtype=np.float32),
                      np.ones((len(BONE_COLORS), 1), np.float32)])
    return np.repeat(rgba, 2, axis=0)


MIRROR_X = np.array([-1.0, 1.0, 1.0], dtype=np.float32)


def to_display(points: np.ndarray, mirrored: bool = False) -> np.ndarray:
    """(21, 3) camera-frame points -> display frame (see the module docstring); `mirrored`:
    x negated first (a right hand shown in its photo's frame, handlatent.photo_crop)."""
    points = np.asarray(points, dtype=np.float32)
    return (points * MIRROR_X if mirrored else points) @ CAMERA_TO_DISPLAY.T


def from_display(points: np.ndarray, mirrored: bool = False) -> np.ndarray:
    """Display-frame points (..., 3) -> the model's frame (inverse of `to_display`)."""
    points = np.asarray(points, dtype=np.float32) @ CAMERA_TO_DISPLAY
    return points * MIRROR_X if mirrored else points


PICK_RADIUS_PX = 12.0  # a left-press this close to a draggable joint grabs it
JOINT_SIZE, GRABBED_SIZE = 11.0, 18.0  # marker sizes (px); the grabbed joint is drawn larger ...
GRABBED_EDGE = (1.0, 1.0, 1.0, 1.0)    # ... with a white rim
REFRAME_ABOVE = 2.0    # re-frame the camera when the hand grows beyond this factor ...
REFRAME_BELOW = 0.3    # ... or shrinks below this one


def _radius(points: np.ndarray) -> float:
    """Largest distance of a joint from the centre of the joints' bounding box (> 0)."""
    center = (points.min(0) + points.max(0)) / 2
    r = float(np.linalg.norm(points - center, axis=1).max())
    return r if np.isfinite(r) and r > 1e-3 else 1e-3


def nice_step(span: float) -> float:
    """A 1-2-5 step giving about 8 grid cells over `span`."""
    raw = max(span / 8.0, 1e-9)
    power = 10.0 ** np.floor(np.log10(raw))
    for m in (1.0, 2.0, 5.0, 10.0):
        if raw <= m * power:
            return float(m * power)
    return float(10 * power)


def ground_grid(center: tuple[float, float], half: float, z: float) -> np.ndarray:
    """Segment endpoints of a square grid around `center` (x, y) in the plane display-z = `z`."""
    step = nice_step(2 * half)
    cx, cy = (round(c / step) * step for c in center)
    n = int(np.ceil(half / step))
    ticks = np.arange(-n, n + 1, dtype=np.float32) * step
    lo, hi = -n * step, n * step
    segs = []
    for t in ticks:
        segs += [(cx + t, cy + lo, z), (cx + t, cy + hi, z),
                 (cx + lo, cy + t, z), (cx + hi, cy + t, z)]
    return np.asarray(segs, dtype=np.float32)


class SkeletonCanvas(scene.SceneCanvas):
    """The 3D view's vispy canvas, drawable into an `OffscreenSurface` through public hooks.

    vispy's Qt backend makes an offscreen OpenGL context current while it builds the canvas:
    `make_current()` makes that context current again (other windows' contexts may be). While
    `update_hook` is set, every redraw request goes to it instead of the canvas' own (never
    shown) widget; `surface_size`, when set, is the size in physical pixels the scene is drawn
    at (a hidden widget never learns it from Qt).
    """

    def __init__(self, **kwargs: Any) -> None:
        self.update_hook: Any = None
        self.surface_size: tuple[int, int] | None = None
        super().__init__(**kwargs)
        from PySide6.QtGui import QOpenGLContext
        context = QOpenGLContext.currentContext()
        self.unfreeze()   # vispy's canvases refuse new attributes after their __init__
        self.offscreen_context = context
        self.offscreen_surface = context.surface() if context is not None else None
        self.freeze()

    @property
    def physical_size(self) -> tuple[int, int]:
        """The drawing size in physical pixels (`surface_size` while one is set)."""
        return self.surface_size if self.surface_size is not None else super().physical_size

    def update(self, node: Any = None) -> None:
        """Ask for a redraw: of `update_hook` while set, else of vispy's own widget."""
        if self.update_hook is not None:
            self.update_hook()
        else:
            super().update(node)

    def make_current(self) -> None:
        """Make the canvas' offscreen OpenGL context current."""
        if self.offscreen_context is not None and self.offscreen_surface is not None:
            self.offscreen_context.makeCurrent(self.offscreen_surface)


class SkeletonView(QWidget):
    """Joints + bones of the newest decoded frame in a turntable-camera 3D scene.

    `mode` is "xyz" (the 3D pose: canonical pose under the decoded viewpoint) or "cpose".
    """

    modeChanged = Signal(str)
    framePushed = Signal(object)   # request_id of the frame just pushed into the visuals
    drawn = Signal(object)         # the scene was drawn; request_id of the frame it showed
    jointGrabbed = Signal(int, str)   # a joint drag began: joint index, mode ("xyz"/"cpose")
    jointDragged = Signal(object)     # its target under the cursor: (3,) in the mode's frame
    jointReleased = Signal()          # the joint drag ended

    def __init__(self, bridge: Any = None, parent: QWidget | None = None,
                 title: str = "3D skeleton") -> None:
        super().__init__(parent)
        ensure_vispy_backend()
        self.mode = "xyz"
        self.mirrored = False   # set_mirrored: a right hand's photo frame
        self.frame: Any = None
        self.positions = np.zeros((21, 3), np.float32)   # display-frame joints now drawn
        self.grabbed: int | None = None  # the joint being dragged with the mouse
        self._grab_depth = 0.0           # its screen depth when grabbed: the drag's plane
        self.home_angles = HOME_ANGLES   # where the camera turns back to (look_home)
        self._holding = False
        self._held: Any = None           # the newest frame that arrived while holding

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        bar = QHBoxLayout()
        bar.setContentsMargins(4, 0, 4, 0)
        label = QLabel(title)
        label.setStyleSheet("font-weight: 600; padding: 2px 0px;")
        label.setMinimumWidth(0)     # the title gives way first when the view is narrow
        label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        bar.addWidget(label, 1)          # the title takes the room the buttons leave
        self.mode_buttons = QButtonGroup(self)
        for mode in MODES:
            button = QRadioButton(MODE_LABELS[mode])
            button.setChecked(mode == self.mode)
            button.setToolTip("3D pose: the canonical pose seen from the decoded viewpoint"
                              if mode == "xyz" else
                              "Canonical pose: the hand in its own frame (viewpoint removed)")
            self.mode_buttons.addButton(button)
            button.toggled.connect(lambda on, m=mode: on and self.set_mode(m))
            bar.addWidget(button)
        self.reset_button = QToolButton(text="Reset view")
        self.reset_button.setToolTip("Reset the camera to look along the image camera's axis")
        self.reset_button.clicked.connect(self.reset_camera)
        bar.addWidget(self.reset_button)
        layout.addLayout(bar)
        self.bar = bar   # other views' controls (the viewpoint-mode button) join this bar

        self.canvas = SkeletonCanvas(keys=None, bgcolor=BACKGROUND, show=False,
                                     size=(480, 480))
        self.canvas.native.setMinimumSize(200, 200)
        self.view = self.canvas.central_widget.add_view()
        self.view.camera = scene.TurntableCamera(fov=35.0, elevation=15.0, azimuth=0.0,
                                                 up="+z")
        self.grid = scene.visuals.Line(pos=ground_grid((0, 0), 4.0, -3.0), color=GRID_COLOR,
                                       connect="segments", method="gl", antialias=True,
                                       parent=self.view.scene)
        self.axes = scene.visuals.XYZAxis(width=2, parent=self.view.scene)
        self.axes.transform = STTransform(scale=(1.0, 1.0, 1.0))
        self._fitted = False
        self._fit_radius = 1.0
        self.bones = scene.visuals.Line(pos=np.zeros((2 * len(BONES), 3), np.float32),
                                        color=bone_vertex_colors(), connect="segments",
                                        width=4.0, method="gl", antialias=True,
                                        parent=self.view.scene)
        self.joints = scene.visuals.Markers(spherical=True, scaling="fixed",
                                            parent=self.view.scene)
        self.joints.set_gl_state("translucent", depth_test=True)
        self._colors = joint_colors()
        self.compared: Any = None        # the compared model's frame, drawn over in one colour
        self.compared_bones = scene.visuals.Line(
            pos=np.zeros((2 * len(BONES), 3), np.float32), color=COMPARED_COLOR,
            connect="segments", width=3.0, method="gl", antialias=True, parent=self.view.scene)
        self.compared_joints = scene.visuals.Markers(spherical=True, scaling="fixed",
                                                     parent=self.view.scene)
        self.compared_bones.visible = self.compared_joints.visible = False
        self._set_visuals(self.positions)
        self.joints.visible = False
        self.bones.visible = False
        self.embedding = embedding_mode()
        if self.embedding == "offscreen":
            self.surface: QWidget = OffscreenSurface(self.canvas)
            self.surface.rendered.connect(self._on_drawn)
        else:
            self.surface = self.canvas.native
            self.canvas.events.draw.connect(lambda _event: self._on_drawn())
        layout.addWidget(self.surface, 1)
        self.legend = finger_legend()
        layout.addWidget(self.legend)
        self.surface.installEventFilter(self)   # joint drags, before the camera sees the mouse
        self.reset_camera()
        if bridge is not None:
            bridge.decoded.connect(self.on_decoded)

    def _on_drawn(self) -> None:
        self.drawn.emit(getattr(self.frame, "request_id", None))

    # -- model -> visuals ------------------------------------------------------------------

    def on_decoded(self, frame: Any) -> None:
        """Handler for a new decoded frame: push its joints into the visuals (or keep it for
        later while `hold` is on)."""
        if self._holding:
            self._held = frame
            return
        self.frame = frame
        self._refresh()

    def hold(self, on: bool) -> None:
        """Keep drawing the current frame while `on` (a viewpoint-mode orbit: the camera shows
        the pose being turned); turning it off draws the newest frame that arrived meanwhile."""
        self._holding = bool(on)
        if not on and self._held is not None:
            frame, self._held = self._held, None
            self.on_decoded(frame)

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if mode == self.mode:
            return
        self.release_joint()
        self.mode = mode
        for button in self.mode_buttons.buttons():
            button.blockSignals(True)
            button.setChecked(button.text() == MODE_LABELS[mode])
            button.blockSignals(False)
        self._refresh()
        self.modeChanged.emit(mode)

    def set_mirrored(self, on: bool) -> None:
        """Show the poses mirrored (x negated): a right hand's estimate in its photo's frame.
        Drag targets come back in the model's frame all the same."""
        if bool(on) != self.mirrored:
            self.release_joint()
            self.mirrored = bool(on)
            self._refresh()

    def toggle_mode(self) -> None:
        self.set_mode("cpose" if self.mode == "xyz" else "xyz")

    def show_compared(self, frame: Any) -> None:
        """Draw a compared model's frame over the skeleton in `COMPARED_COLOR` (None: hide)."""
        self.compared = frame
        visible = frame is not None
        if visible:
            points = to_display(getattr(frame, self.mode), self.mirrored)
            self.compared_joints.set_data(points, size=JOINT_SIZE * 0.8,
                                          face_color=COMPARED_COLOR, edge_width=0)
            self.compared_bones.set_data(pos=points[BONES.reshape(-1)])
        self.compared_bones.visible = self.compared_joints.visible = visible
        self.compared_bones.update()
        self.compared_joints.update()

    def _refresh(self) -> None:
        if self.compared is not None:
            self.show_compared(self.compared)
        if self.frame is None:
            return
        points = np.asarray(getattr(self.frame, self.mode), dtype=np.float32)
        self.positions = to_display(points, self.mirrored)
        self._set_visuals(self.positions)
        self.joints.visible = True
        self.bones.visible = True
        if not self._fitted or (self.grabbed is None and self._out_of_frame()):
            self.fit_view()
        self.framePushed.emit(getattr(self.frame, "request_id", None))

    def _set_visuals(self, positions: np.ndarray) -> None:
        size = np.full(len(positions), JOINT_SIZE, np.float32)
        edge = np.tile(np.float32([0.05, 0.05, 0.05, 0.9]), (len(positions), 1))
        if self.grabbed is not None:
            size[self.grabbed] = GRABBED_SIZE
            edge[self.grabbed] = GRABBED_EDGE
        self.joints.set_data(positions, size=size, face_color=self._colors, edge_color=edge,
                             edge_width=1.5)
        self.bones.set_data(pos=positions[BONES.reshape(-1)])
        self.joints.update()
        self.bones.update()

    # -- dragging a joint ----------------------------------------------------------------------

    def screen_positions(self) -> np.ndarray:
        """(21, 3): the drawn joints' pixel x, y in the 3D view (from its top left) and depth."""
        mapped = self.view.scene.node_transform(self.canvas.scene).map(
            self.positions.astype(np.float64))
        return mapped[:, :3] / mapped[:, 3:4]

    def unproject(self, x: float, y: float, depth: float) -> np.ndarray:
        """The point (3,) in the model's frame drawn at pixel (x, y) and screen depth `depth`
        (a joint's depth: the plane through that joint parallel to the screen)."""
        point = self.view.scene.node_transform(self.canvas.scene).imap(
            np.array([[x, y, depth, 1.0]]))[0]
        return from_display(point[:3] / point[3], self.mirrored)

    def pick(self, x: float, y: float) -> int | None:
        """The draggable joint (not the palm root) drawn nearest to pixel (x, y), if within
        PICK_RADIUS_PX; None otherwise or when nothing is drawn."""
        if self.frame is None or self.mode not in DRAG_MODES or not self.joints.visible:
            return None
        joints = np.asarray(DRAGGABLE_JOINTS)
        screen = self.screen_positions()[joints]
        distance = np.hypot(screen[:, 0] - x, screen[:, 1] - y)
        best = int(np.argmin(distance))
        return int(joints[best]) if distance[best] <= PICK_RADIUS_PX else None

    def release_joint(self) -> None:
        """End the joint drag, if any: drop the highlight and emit jointReleased."""
        if self.grabbed is None:
            return
        self.grabbed = None
        self._set_visuals(self.positions)
        self.surface.unsetCursor()
        self.jointReleased.emit()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        """A plain left-press on a draggable joint grabs it; until the release, the mouse moves
        the joint (jointDragged: the point under the cursor on the joint's screen-parallel
        plane) and never reaches the camera, which therefore does not orbit."""
        if not isinstance(event, QMouseEvent):   # no zooming either while a joint is held
            return self.grabbed is not None and event.type() == QEvent.Type.Wheel
        left = event.button() == Qt.MouseButton.LeftButton
        position = event.position()
        if self.grabbed is None:
            if event.type() != QEvent.Type.MouseButtonPress or not left \
                    or event.modifiers() != Qt.KeyboardModifier.NoModifier:
                return False
            joint = self.pick(position.x(), position.y())
            if joint is None:
                return False
            self.grabbed = joint
            self._grab_depth = float(self.screen_positions()[joint, 2])
            self._set_visuals(self.positions)
            self.surface.setCursor(Qt.CursorShape.ClosedHandCursor)
            self.jointGrabbed.emit(joint, self.mode)
            return True
        if event.type() == QEvent.Type.MouseMove:
            self.jointDragged.emit(self.unproject(position.x(), position.y(), self._grab_depth))
        elif event.type() == QEvent.Type.MouseButtonRelease and left:
            self.release_joint()
        return True

    # -- camera ------------------------------------------------------------------------------

    def _out_of_frame(self) -> bool:
        """Whether the hand became much larger or smaller than what the camera was framed for
        (then the view re-frames itself; ordinary exploration never triggers it)."""
        radius = _radius(self.positions)
        return not REFRAME_BELOW * self._fit_radius <= radius <= REFRAME_ABOVE * self._fit_radius

    def fit_view(self) -> None:
        """Frame the joints now shown: camera centre and zoom, grid under the hand, axes size.

        Done on the first frame and on "Reset view" only, so that the scene does not jump
        while the user explores.
        """
        pts = self.positions
        if self.frame is None or not np.isfinite(pts).all():
            return
        lo, hi = pts.min(0), pts.max(0)
        center = (lo + hi) / 2
        radius = _radius(pts)
        self._fit_radius = radius
        cam = self.view.camera
        cam.center = tuple(float(c) for c in center)
        self.look_home()
        cam.distance = None
        cam.scale_factor = 2.4 * radius
        self.grid.set_data(pos=ground_grid((float(center[0]), float(center[1])), 1.6 * radius,
                                           float(lo[2]) - 0.25 * radius))
        self.axes.transform.scale = (0.45 * radius,) * 3
        self._fitted = True
        self.canvas.update()

    def reset_camera(self) -> None:
        """Look along the image camera's axis at the current joints."""
        if self.frame is None:
            self.look_home()
            self.canvas.update()
            return
        self.fit_view()

    def look_home(self) -> None:
        """Turn the camera to `home_angles` (roll 0), keeping its centre and zoom."""
        cam = self.view.camera
        cam.azimuth, cam.elevation = self.home_angles
        cam.roll = 0.0

    def render(self) -> np.ndarray:
        """The 3D view's pixels (H, W, 4) uint8, rendered now (needs OpenGL)."""
        if isinstance(self.surface, OffscreenSurface):
            self.canvas.make_current()
        return self.canvas.render()

    def shutdown(self) -> None:
        """Stop rendering (idempotent); the canvas goes with the widget."""
        if isinstance(self.surface, OffscreenSurface):
            self.surface.stop()


class OffscreenSurface(QWidget):
    """Shows a `SkeletonCanvas` rendered offscreen, and feeds it the mouse (raster widget).

    The canvas' own QOpenGLWidget is never shown: the scene is drawn into a framebuffer object
    in the canvas' offscreen context (`SceneCanvas.render`) whenever vispy asks for an update,
    and the pixels are painted here. The window stays a raster window: a QOpenGLWidget would
    make Qt composite the *whole* main window with OpenGL on every repaint of any widget, which
    costs ~25-35 ms a repaint with a software rasteriser (Mesa llvmpipe, Xvfb). Mouse and wheel
    events are passed to the canvas' backend, so vispy's cameras work as in an embedded canvas.
    """

    rendered = Signal()

    def __init__(self, canvas: SkeletonCanvas, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.canvas = canvas
        self.native = canvas.native
        self.image: QImage | None = None
        self._pixels: np.ndarray | None = None
        self.error: str | None = None
        self.render_ms = 0.0
        self.setMinimumSize(200, 200)
        self.setMouseTracking(False)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, True)
        self._dirty = True
        self._just_rendered = False
        self._stopped = False
        self._rendering = False
        # Every vispy update request (visual data changed, camera moved) schedules one render,
        # at display rate: a software rasteriser takes ~8 ms of the GUI thread per render, and
        # frames arrive faster than that during a joint drag.
        self.repaints = Coalescer(lambda _: self.update(), parent=self)
        canvas.update_hook = self.schedule

    def schedule(self) -> None:
        """vispy wants a redraw: repaint this widget (at most DISPLAY_INTERVAL_MS apart), which
        renders the scene. Requests made while the scene is being drawn are for that drawing:
        ignored."""
        if not self._stopped and not self._rendering:
            self._dirty = True
            self.repaints.push(None)

    def stop(self) -> None:
        self._stopped = True

    def _render(self) -> None:
        self._dirty = False
        if self._stopped or self.width() < 2 or self.height() < 2:
            return
        start = time.perf_counter()
        self._rendering = True
        try:
            self.canvas.make_current()
            pixels = np.ascontiguousarray(self.canvas.render(alpha=True))
        except Exception as error:  # noqa: BLE001 - no OpenGL here: say so in the view
            self.error = " ".join(str(error).split()) or type(error).__name__
            self.image, self._pixels = None, None
        else:
            self.error = None
            h, w = pixels.shape[:2]
            # The QImage shares the array's memory: keep the array alive with it (no copy).
            self._pixels = pixels
            self.image = QImage(pixels.data, w, h, pixels.strides[0],
                                QImage.Format.Format_RGBX8888)
            self.image.setDevicePixelRatio(self.devicePixelRatioF())
        finally:
            self._rendering = False
        self.render_ms = (time.perf_counter() - start) * 1000
        self._just_rendered = True

    def paintEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        if self._dirty:
            self._render()
        painter = QPainter(self)
        if self.image is not None:
            painter.drawImage(0, 0, self.image)
        else:
            painter.fillRect(self.rect(), QColor(BACKGROUND))
            if self.error:
                painter.setPen(QColor("#8a8f98"))
                painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter,
                                 "3D view unavailable (no OpenGL)")
        painter.end()
        if self._just_rendered:
            self._just_rendered = False
            self.rendered.emit()

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        w, h = max(self.width(), 1), max(self.height(), 1)
        ratio = self.devicePixelRatioF()
        self.native.resize(w, h)      # hidden: geometry only, which vispy reads as its size
        physical = (int(w * ratio), int(h * ratio))
        self.canvas.surface_size = physical
        self.canvas.events.resize(size=(w, h), physical_size=physical)
        self.schedule()

    # Mouse and wheel go to the canvas backend, which turns them into vispy events.
    def mousePressEvent(self, event: Any) -> None:  # noqa: N802
        self.native.mousePressEvent(event)

    def mouseReleaseEvent(self, event: Any) -> None:  # noqa: N802
        self.native.mouseReleaseEvent(event)

    def mouseMoveEvent(self, event: Any) -> None:  # noqa: N802
        self.native.mouseMoveEvent(event)

    def mouseDoubleClickEvent(self, event: Any) -> None:  # noqa: N802
        self.native.mouseDoubleClickEvent(event)

    def wheelEvent(self, event: Any) -> None:  # noqa: N802
        self.native.wheelEvent(event)
