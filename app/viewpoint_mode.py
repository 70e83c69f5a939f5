"""Viewpoint mode: orbiting the 3D view turns the hand (sets z_y2) instead of only the camera.

While the mode is on, the 3D view's camera rests at the reference angles (azimuth, elevation
and roll 0: looking along the image camera's axis, so the 3D view shows the hand as the image
does). When the user orbits it, `handlatent.explorer.viewpoint.orbit_viewpoint` turns the
camera's angles into the viewpoint under which the image camera sees the hand as the user now
sees it, and `Session.set_viewpoint` puts that viewpoint's encoding into z_y2: the image is
re-rendered from the angle the user looks from (through the newest-request-wins decode path).

- A mouse orbit is one undo step. During it the view keeps drawing the pose the orbit started
  from (`SkeletonView.hold`): that is what the user turns. On release the camera returns to the
  reference angles and the view draws the newest decoded pose, which looks as the turned one did
  (up to the model's error): the hand stays put on screen.
- Camera changes are read after each draw of the 3D view and applied at most once per pass of
  the event loop (a zero-time single-shot timer), so a fast drag costs one request per frame.
  A camera turned by code (no mouse button down) is applied at once as its own undo step and the
  camera returns to the reference.
- A latent change from elsewhere during a mouse orbit (undo, a sample) ends the orbit: the rest
  of that drag only moves the camera, which returns to the reference on release.
- Leaving the mode turns the camera back to the usual home angles (`HOME_ANGLES`).

The loop's state is one `Orbit` value (off, resting, turning, applying, cancelled); whether a
mouse button is down is an input beside it.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from handlatent.app.skeleton_view import HOME_ANGLES, SkeletonView
from handlatent.explorer.viewpoint import orbit_viewpoint

REFERENCE_ANGLES = (0.0, 0.0)   # (azimuth, elevation) at rest in viewpoint mode; roll 0


class Orbit(Enum):
    """Where the mode's loop stands (the mouse button itself is an input: `pressed`)."""

    OFF = "off"                # the mode is off: orbiting moves only the camera
    RESTING = "resting"        # on, no orbit: the camera rests at the reference angles
    TURNING = "turning"        # a mouse orbit turns the hand: one undo step, the view holds
    APPLYING = "applying"      # our own set_viewpoint runs (its latent change is no outsider)
    CANCELLED = "cancelled"    # an outside change ended this mouse orbit: until the release,
    #                            the camera moves alone


class ViewpointMode(QObject):
    """Feeds the 3D view's camera rotation into `session.set_viewpoint` while enabled."""

    toggled = Signal(bool)

    def __init__(self, session: Any, bridge: Any, view: SkeletonView,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.view = view
        self.state = Orbit.OFF
        self.pressed = False                      # a mouse button is down on the 3D view
        self.applied = 0                          # set_viewpoint calls made (for tests)
        self._start: np.ndarray | None = None     # viewpoint the turn in progress began at
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self._apply)
        view.drawn.connect(self._on_drawn)
        view.canvas.events.mouse_press.connect(self._on_press)
        view.canvas.events.mouse_release.connect(self._on_release)
        bridge.latentChanged.connect(self._on_latent_changed)

    @property
    def enabled(self) -> bool:
        """Whether the mode is on."""
        return self.state is not Orbit.OFF

    def set_enabled(self, on: bool) -> None:
        """Turn the mode on (camera to the reference, 3D pose shown) or off (camera home)."""
        on = bool(on)
        if on == self.enabled:
            return
        self._finish()
        self.state = Orbit.RESTING if on else Orbit.OFF
        self.view.home_angles = REFERENCE_ANGLES if on else HOME_ANGLES
        if on:
            self.view.set_mode("xyz")
        self.view.look_home()
        self.toggled.emit(on)

    def camera_angles(self) -> tuple[float, float, float]:
        """(azimuth, elevation, roll) of the 3D view's turntable camera, degrees."""
        cam = self.view.view.camera
        return float(cam.azimuth), float(cam.elevation), float(cam.roll)

    def _at_reference(self) -> bool:
        return self.camera_angles() == (*REFERENCE_ANGLES, 0.0)

    def _on_drawn(self, _request_id: Any) -> None:
        if self.state in (Orbit.RESTING, Orbit.TURNING) and not self._at_reference():
            self._timer.start()

    def _on_press(self, _event: Any) -> None:
        self.pressed = True

    def _on_release(self, _event: Any) -> None:
        self.pressed = False
        if self._timer.isActive():                # the last position of the drag counts
            self._timer.stop()
            self._apply()
        if self.state in (Orbit.TURNING, Orbit.CANCELLED):
            self._finish()

    def _apply(self) -> None:
        """Set the viewpoint seen from the camera's current angles (relative to the turn's
        start); a camera turned by code is applied as one step and turned back at once."""
        if self.state not in (Orbit.RESTING, Orbit.TURNING) or self._at_reference():
            return
        if self.state is Orbit.RESTING:
            self._start = self.session.viewpoint()
            if self.pressed:                      # a mouse orbit begins: one undo step
                self.session.begin_edit()
                self.view.hold(True)
                self.state = Orbit.TURNING
        state, self.state = self.state, Orbit.APPLYING
        try:
            self.session.set_viewpoint(orbit_viewpoint(self._start, *self.camera_angles(),
                                                      mirrored=self.view.mirrored))
            self.applied += 1
        finally:
            self.state = state
        if not self.pressed:                      # turned by code, or the release's last move
            self._finish()

    def _on_latent_changed(self, _z: Any) -> None:
        if self.state is Orbit.TURNING:           # undo, a sample...: the turn ends here
            self._end_turn()
            self.state = Orbit.CANCELLED if self.pressed else Orbit.RESTING

    def _end_turn(self) -> None:
        if self.state is Orbit.TURNING:
            self.session.end_edit()
        self._start = None
        self.view.hold(False)

    def _finish(self) -> None:
        """End any turn (one undo step) and turn the camera back to the rest angles."""
        self._timer.stop()
        self._end_turn()
        if self.enabled:
            self.state = Orbit.RESTING
            self.view.look_home()
