"""Record a GIF of a joint drag in the real explorer window.

    xvfb-run -a -s "-screen 0 1600x1000x24" python -m handlatent.app.record_drag OUT.gif \
        [IMAGE] [--checkpoint MODEL.pt] [--joint index_tip] [--mode xyz|cpose] [--frames 40]

Opens the main window (the bundled model by default; IMAGE, if given, is opened first as with
File > Open, so that the drag starts from its estimated pose), hides the bottom docks, grabs the
joint in the 3D view with
simulated mouse events (QTest on the view's surface: the path a real drag takes) and moves it
round a loop. After each move it waits until the drag update is applied and the image pane and
the 3D view show it, then grabs the window and draws the cursor on the grab. A bad argument, a
missing display or model: one line on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from handlatent.explorer.drag import DRAG_MODES, DRAGGABLE_JOINTS
from handlatent.skeleton import KEYPOINT_NAMES

PROG = "record_drag"
WINDOW_SIZE = (1200, 720)
STEP_TIMEOUT_S = 20.0
DRAGGABLE_NAMES = tuple(KEYPOINT_NAMES[j] for j in DRAGGABLE_JOINTS)


def drag_path(start: np.ndarray, radius: float, n: int) -> np.ndarray:
    """(n, 2) pixel positions: one loop of a circle through `start`, ending back at it."""
    angles = np.linspace(0.0, 2 * np.pi, n + 1)[1:]
    return start + radius * np.stack([np.cos(angles) - 1, -np.sin(angles)], 1)


def _wait(app: Any, done: Any, what: str) -> None:
    """Process events until `done()`; CliError naming `what` after STEP_TIMEOUT_S."""
    from handlatent.app.cli import CliError
    deadline = time.perf_counter() + STEP_TIMEOUT_S
    while not done():
        if time.perf_counter() > deadline:
            raise CliError(f"timed out waiting for {what}", status=1)
        app.processEvents()
        time.sleep(0.002)


def _grab_with_cursor(window: Any, cursor: Any) -> Image.Image:
    """The window's pixels with a ring marking the cursor (QPoint in window coordinates)."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QColor, QImage, QPainter, QPen

    image = window.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    for color, width in ((QColor(0, 0, 0), 5), (QColor(255, 255, 255), 2)):
        painter.setPen(QPen(color, width))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawEllipse(cursor, 9, 9)
    painter.end()
    width, height = image.width(), image.height()
    pixels = np.frombuffer(image.constBits(), np.uint8).reshape(height, image.bytesPerLine())
    return Image.fromarray(pixels[:, :3 * width].reshape(height, width, 3).copy())


def record_drag(window: Any, app: Any, joint: int, frames: int,
                radius: float) -> list[Image.Image]:
    """Drag `joint` round a loop of `frames` mouse moves; one grab of the window per move."""
    from PySide6.QtCore import QPoint, Qt
    from PySide6.QtTest import QTest

    from handlatent.app.cli import CliError
    view, session = window.skeleton, window.session
    updates: list[Any] = []
    session.events.on("dragged", updates.append)
    start = view.screen_positions()[joint, :2]
    points = [QPoint(int(round(x)), int(round(y))) for x, y in drag_path(start, radius, frames)]
    QTest.mousePress(view.surface, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     QPoint(int(round(start[0])), int(round(start[1]))))
    if view.grabbed != joint:
        raise CliError(f"could not grab {KEYPOINT_NAMES[joint]} in the 3D view", status=1)
    shots = []
    for point in points:
        served = len(updates)
        QTest.mouseMove(view.surface, point)
        _wait(app, lambda: len(updates) > served, "the drag update")
        _wait(app, lambda: window.last_frame is not None and view.frame is window.last_frame
              and np.array_equal(window.last_frame.z, session.latent), "the decoded frame")
        shots.append(_grab_with_cursor(window, view.surface.mapTo(window, point)))
    QTest.mouseRelease(view.surface, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier, points[-1])
    session.events.off("dragged", updates.append)
    return shots


def save_gif(shots: list[Image.Image], path: Path, fps: float, width: int) -> None:
    """Write the grabs as a looping GIF, scaled to `width` pixels, one shared palette."""
    height = round(shots[0].height * width / shots[0].width)
    scaled = [s.resize((width, height), Image.Resampling.LANCZOS) for s in shots]
    palette = scaled[len(scaled) // 2].quantize(colors=128, method=Image.Quantize.MEDIANCUT)
    frames = [s.quantize(palette=palette, dither=Image.Dither.NONE) for s in scaled]
    frames[0].save(path, save_all=True, append_images=frames[1:], loop=0, optimize=True,
                   duration=round(1000 / fps))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m handlatent.app.{PROG}",
                                     description="Record a GIF of a joint drag in the explorer.")
    parser.add_argument("out", metavar="OUT.gif")
    parser.add_argument("image", nargs="?", metavar="IMAGE",
                        help="an image whose estimated pose the drag starts from")
    parser.add_argument("--checkpoint", metavar="MODEL.pt", help="default: the bundled model")
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--joint", default="index_tip", choices=DRAGGABLE_NAMES)
    parser.add_argument("--mode", default="xyz", choices=DRAG_MODES,
                        help="xyz: the 3D pose (z_y1, z_y2 move); cpose: the canonical pose")
    parser.add_argument("--frames", type=int, default=40, help="mouse moves, one frame each")
    parser.add_argument("--radius", type=float, default=35.0, help="loop radius in pixels")
    parser.add_argument("--fps", type=float, default=12.0)
    parser.add_argument("--width", type=int, default=900, help="GIF width in pixels")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    from handlatent.app.cli import CliError, _application, _has_display, load_session
    args = parse_args(argv)
    session = window = None
    try:
        out = Path(args.out)
        if out.suffix.lower() != ".gif":
            raise CliError(f"{out}: the recording is written as .gif")
        if not out.resolve().parent.is_dir():
            raise CliError(f"{out}: folder {out.resolve().parent} does not exist")
        if args.frames < 2 or not args.fps > 0 or args.width < 64 or not args.radius > 0:
            raise CliError("need --frames >= 2, --fps > 0, --width >= 64 and --radius > 0")
        if not _has_display():
            raise CliError("no display to open a window on (run under xvfb-run -a)")
        app = _application(PROG)
        session = load_session(args.checkpoint, args.device)
        from handlatent.app.main_window import MainWindow, freeze_startup_objects
        window = MainWindow(session)
        window.resize(*WINDOW_SIZE)
        for dock in (window.walk_dock, window.transfer_dock):
            dock.hide()
        window.show()
        if args.image and not window.open_image(args.image):
            raise CliError(window.statusBar().currentMessage())
        window.skeleton.set_mode(args.mode)
        _wait(app, lambda: window.skeleton.frame is not None and np.array_equal(
            window.skeleton.frame.z, session.latent), "the first decoded frame")
        freeze_startup_objects()
        shots = record_drag(window, app, KEYPOINT_NAMES.index(args.joint), args.frames,
                            args.radius)
        save_gif(shots, out, args.fps, args.width)
        size_mib = out.stat().st_size / 2**20
        print(f"{PROG}: {len(shots)} frames written to {out} ({size_mib:.2f} MiB)")
        return 0
    except CliError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return error.status
    except OSError as error:
        print(f"{PROG}: {args.out}: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    finally:
        if window is not None:
            window.shutdown()
        if session is not None:
            session.close()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
