"""`handlatent-gui`: open the latent-space explorer on a checkpoint.

    handlatent-gui [IMAGE] [--checkpoint model.pt] [--device auto|cpu|cuda] [--screenshot out.png]
                   [--atlas] [--follow RUN] [--compare B.pt]

Without --checkpoint the bundled model (the .pt file in assets/models/) is used; without IMAGE
the window opens on the first bundled example hand (assets/examples/). A missing,
corrupt or unsafe checkpoint gives a one-line message on stderr (and a dialog when a window can
be shown) and exit status 2; never a traceback. --screenshot opens the window, waits for the
first decoded frame and a rendered 3D view (and, with --atlas, the whole latent atlas), saves
`window.grab()` and exits 0.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from handlatent.cli_errors import one_line, report_unexpected
from handlatent.threads import GUI_THREADS, configure_gui_threads

PROG = "handlatent-gui"
EXIT_USAGE = 2          # bad checkpoint, no display, bad arguments
EXIT_FAILED = 1         # the window could not produce a screenshot
SCREENSHOT_TIMEOUT_S = 60.0
NO_DIALOG_PLATFORMS = ("offscreen", "minimal")


class CliError(Exception):
    """A failure reported as one line on stderr with an exit status."""

    def __init__(self, message: str, status: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.status = status


def _threads(text: str) -> int:
    """argparse type of --threads: a positive int."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number of threads, got {text!r}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Latent-space explorer for the disentangled hand VAE (dVAE).")
    parser.add_argument("--checkpoint", metavar="MODEL.pt",
                        help="model checkpoint (default: the bundled model in "
                             "assets/models/)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="where the model runs (default: auto = CUDA if available)")
    parser.add_argument("--threads", type=_threads, default=GUI_THREADS, metavar="N",
                        help=f"torch CPU threads (default {GUI_THREADS}: the decode and drag "
                             "workers run at once, each with its own threads; docs/gui.md)")
    parser.add_argument("--screenshot", metavar="OUT.png",
                        help="open the window, save a screenshot once the first frame is "
                             "shown, and exit")
    parser.add_argument("image", nargs="?", metavar="IMAGE",
                        help="an image to open at start: its pose is estimated (as File > Open; "
                             "default: the first bundled example hand)")
    parser.add_argument("--atlas", action="store_true",
                        help="open the Latent atlas dock at start (View > Latent atlas, A)")
    parser.add_argument("--follow", metavar="RUN",
                        help="follow a training run folder (handlatent-train --out): open its "
                             "newest checkpoint and reload each new one (File > Follow run)")
    parser.add_argument("--compare", metavar="B.pt",
                        help="compare with a second model of the same latent layout: one "
                             "latent, both models' images and skeletons (View > Compare with)")
    parser.add_argument("--no-dialogs", action="store_true",
                        help="report startup errors on stderr only (for scripts)")
    return parser.parse_args(argv)


def _has_display() -> bool:
    """Whether Qt can open windows: a platform plugin was chosen, or an X/Wayland display set."""
    if sys.platform in ("win32", "darwin"):
        return True
    return bool(os.environ.get("QT_QPA_PLATFORM") or os.environ.get("DISPLAY")
                or os.environ.get("WAYLAND_DISPLAY"))


def start_checkpoint(checkpoint: str | None, follow: str | None) -> str | None:
    """The checkpoint to open at start: --checkpoint, else the followed run's newest one (if it
    has one yet), else None (the bundled model). CliError if --follow names no folder."""
    if follow is None:
        return checkpoint
    from handlatent.explorer.follow import check_run_folder, newest_checkpoint
    try:
        run = check_run_folder(follow)
    except ValueError as error:
        raise CliError(f"--follow {error}") from None
    newest = newest_checkpoint(run)
    return checkpoint if checkpoint is not None or newest is None else str(newest)


def open_compared(session: Any, path: str) -> None:
    """Open --compare's model beside the session's; CliError with one line if impossible."""
    from handlatent.checkpoint import CheckpointError
    from handlatent.explorer.models import open_model
    try:
        session.compare.open(open_model(path, session.device))
    except (CheckpointError, ValueError) as error:
        raise CliError(one_line(error)) from None


def load_session(checkpoint: str | None, device: str) -> Any:
    """A Session on the checkpoint (or the bundled model); CliError with one line if impossible."""
    from handlatent.checkpoint import CheckpointError, resolve_checkpoint
    from handlatent.explorer import Session

    try:
        path = resolve_checkpoint(checkpoint)
    except CheckpointError as error:
        raise CliError(str(error)) from None
    if device == "cuda":
        import torch
        if not torch.cuda.is_available():
            raise CliError("--device cuda: no CUDA device is available (use --device cpu)")
    try:
        return Session.from_checkpoint(path, device=device)
    except CheckpointError as error:
        raise CliError(one_line(error)) from None
    except (ValueError, RuntimeError, OSError, KeyError, TypeError) as error:
        raise CliError(f"{path}: cannot load the model ({one_line(error)})") from None


def _application(argv0: str) -> Any:
    from PySide6.QtWidgets import QApplication

    from handlatent.app.main_window import APPLICATION, ORGANIZATION
    app = QApplication.instance()
    if app is None:
        app = QApplication([argv0])
        from handlatent.app.theme import apply_dark_theme
        apply_dark_theme(app)
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    return app


def _error_dialog(message: str) -> None:
    from PySide6.QtWidgets import QMessageBox
    box = QMessageBox(QMessageBox.Icon.Critical, PROG, message)
    box.setInformativeText("The explorer needs a handlatent checkpoint (.pt) written by "
                           "handlatent-train.")
    box.exec()


class ScreenshotTaker:
    """Save `window.grab()` once the current latent's decoded frame was painted and the 3D view
    has drawn it (and the latent atlas is complete, if its dock is open)."""

    def __init__(self, window: Any, path: str, app: Any, timeout_s: float) -> None:
        from PySide6.QtCore import QTimer
        self.window, self.path, self.app = window, path, app
        self.status: int | None = None
        self.image_shown = False
        self.gl_drawn = not _gl_available(app)   # no OpenGL: do not wait for the 3D view
        self.atlas_done = not window.atlas_dock.isVisible()
        self.compared_shown = not window.session.compare.active
        window.models.compare_view.pane.frameShown.connect(self._on_compared)
        window.atlas_panel.refreshed.connect(self._on_atlas)
        window.image_pane.frameShown.connect(self._on_image)
        window.skeleton.drawn.connect(self._on_draw)
        self.deadline = time.monotonic() + timeout_s
        self.poll = QTimer()
        self.poll.setInterval(50)
        self.poll.timeout.connect(self._check)
        self.poll.start()

    def _on_image(self, _tag: Any) -> None:
        # the frame of the current latent: not the z = 0 frame shown before the start image's
        import numpy as np
        frame = self.window.last_frame
        self.image_shown = frame is not None and np.array_equal(frame.z,
                                                                self.window.session.latent)

    def _on_compared(self, _tag: Any) -> None:
        import numpy as np
        frame = self.window.session.compare.last_decoded
        self.compared_shown = frame is not None and np.array_equal(frame.z,
                                                                   self.window.session.latent)

    def _on_atlas(self, _request_id: int) -> None:
        self.atlas_done = True

    def _on_draw(self, request_id: Any) -> None:
        if request_id is not None and self.window.skeleton.surface.isVisible():
            self.gl_drawn = True

    def _check(self) -> None:
        if self.image_shown and self.gl_drawn and self.atlas_done and self.compared_shown:
            self.poll.stop()
            from PySide6.QtCore import QTimer
            QTimer.singleShot(150, self._save)   # let the last paints land
        elif time.monotonic() > self.deadline:
            self.poll.stop()
            what = ("decoded frame" if not self.image_shown else "rendered 3D view"
                    if not self.gl_drawn else "compared model's frame"
                    if not self.compared_shown else "complete latent atlas")
            print(f"{PROG}: timed out waiting for the first {what}", file=sys.stderr)
            self.status = EXIT_FAILED
            self.window.close()

    def _save(self) -> None:
        self.app.processEvents()
        if self.window.grab_window().save(self.path):
            print(f"{PROG}: screenshot saved to {self.path}")
            self.status = 0
        else:
            print(f"{PROG}: cannot write the screenshot {self.path}", file=sys.stderr)
            self.status = EXIT_FAILED
        self.window.close()


def _open_start_image(window: Any, image: str | None) -> None:
    """Open IMAGE, else the first bundled example hand, so the window starts on a hand and not
    at z = 0. A bad image is reported in the status bar (and, for an example, on stderr)."""
    if image:
        window.open_image(image)
        return
    from handlatent.resources import EXAMPLES_FOLDER, asset_folder, example_images
    examples = example_images()
    if examples and window.open_example(str(examples[0])):
        return
    if not examples:
        window.show_message(f"no example hands in {asset_folder(EXAMPLES_FOLDER)}: starting "
                            f"from z = 0 (open a hand image with File > Open image)")
    print(f"{PROG}: {window.statusBar().currentMessage()}", file=sys.stderr)


def _quit_on_ctrl_c(app: Any, window: Any) -> None:
    """Ctrl+C in the terminal closes the window (Python only sees signals between Qt events,
    so a slow timer gives it the chance)."""
    import signal

    from PySide6.QtCore import QTimer
    signal.signal(signal.SIGINT, lambda *_: window.close())
    timer = QTimer(window)
    timer.setInterval(250)
    timer.timeout.connect(lambda: None)
    timer.start()


def _gl_available(app: Any) -> bool:
    return app.platformName() not in NO_DIALOG_PLATFORMS


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    dialogs_allowed = (not args.no_dialogs and not args.screenshot
                       and not os.environ.get("HANDLATENT_NO_DIALOGS"))
    app = None
    session = None
    try:
        if not _has_display():
            raise CliError("no display to open a window on (set DISPLAY, run under xvfb-run, "
                           "or set QT_QPA_PLATFORM=offscreen)")
        if args.screenshot:
            folder = Path(args.screenshot).resolve().parent
            if not folder.is_dir():
                raise CliError(f"--screenshot {args.screenshot}: folder {folder} does not exist")
        app = _application(PROG)
        configure_gui_threads(args.threads)
        start = None
        try:
            start = start_checkpoint(args.checkpoint, args.follow)
            session = load_session(start, args.device)
            if args.compare:
                open_compared(session, args.compare)
        except CliError as error:
            print(f"{PROG}: {error}", file=sys.stderr, flush=True)
            if dialogs_allowed and app.platformName() not in NO_DIALOG_PLATFORMS:
                _error_dialog(str(error))
            return error.status
        from handlatent.app.main_window import MainWindow, freeze_startup_objects
        window = MainWindow(session)
        window.atlas_dock.setVisible(args.atlas)
        window.show()
        _open_start_image(window, args.image)
        if args.follow:
            window.models.follow_run(args.follow, shown=start)
        freeze_startup_objects()
        _quit_on_ctrl_c(app, window)
        taker = None
        if args.screenshot:
            taker = ScreenshotTaker(window, args.screenshot, app, SCREENSHOT_TIMEOUT_S)
        status = app.exec()
        if taker is not None:
            status = EXIT_FAILED if taker.status is None else taker.status
        return int(status)
    except CliError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return error.status
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # noqa: BLE001 - the promise is one line, never a traceback
        return report_unexpected(PROG, error)
    finally:
        if session is not None:
            session.close()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
