"""The "Pose measurements" dock: joint angles, spreads and bone lengths of the shown hand.

It follows the bridge's `decoded` signal like the skeleton view (sliders, joint drags, walks and
estimates all end in a decoded frame; the bridge delivers only the newest one, so this runs at
most once per frame shown) and measures the frame's canonical pose with handlatent.pose_measures
(a few numpy operations on 21 points): the 3D pose is that pose turned by the viewpoint, and
mirrored where a model draws a right hand, so angles and lengths are the same, and the
canonical pose is the left hand the measurements' signs assume. While the dock is hidden nothing is measured; it catches up
from the session's newest frame when shown. Labels are rewritten only when their text changes.
A pose decoded by the model is in bone units (the middle finger's MCP-PIP bone is 1); bone
lengths are shown in millimetres once the user gives that bone's length.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QDoubleSpinBox, QGridLayout, QGroupBox, QHBoxLayout, QLabel,
                               QVBoxLayout, QWidget)

from handlatent.pose_measures import (BONE_NAMES, FLEXION_JOINTS, PoseMeasures,
                                      flexion_range, measure_pose, spread_range)
from handlatent.skeleton import FINGERS

WARN_STYLE = "color: #e5533d; font-weight: bold;"
OK_STYLE = "color: palette(mid);"
ANGLE_HEADERS = ("MCP", "PIP", "DIP", "spread")
LENGTH_HEADERS = ("palm", "1st", "2nd", "3rd")


def _range_tip(what: str, bounds: Any) -> str:
    if bounds is None:
        return f"{what}: not checked (no human range for it from keypoints)"
    return f"{what}: human range {bounds.lo:g}…{bounds.hi:g}° ({bounds.source})"


class MeasuresPanel(QWidget):
    """Angle and length tables and a plausibility line for the newest decoded frame."""

    def __init__(self, session: Any, bridge: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.measures: PoseMeasures | None = None
        self.measured_id: int | None = None      # request id of the frame measured last
        self.measure_count = 0
        self._frame: Any = None
        self._texts: dict[QLabel, str] = {}
        outer = QVBoxLayout(self)
        outer.setContentsMargins(6, 4, 6, 4)
        outer.setSpacing(4)

        angles, grid = self._table("Flexion and spread (degrees)", ANGLE_HEADERS)
        self.angle_cells: list[list[QLabel]] = []
        for f, finger in enumerate(FINGERS):
            name = "thumb (CMC·MCP·IP)" if f == 0 else finger
            grid.addWidget(QLabel(name), f + 1, 0)
            row = []
            for c in range(4):
                cell = self._cell()
                joint = FLEXION_JOINTS[f][c] if c < 3 else "spread"
                bounds = flexion_range(f, c) if c < 3 else spread_range(f)
                cell.setToolTip(_range_tip(f"{finger} {joint}", bounds))
                grid.addWidget(cell, f + 1, c + 1)
                row.append(cell)
            self.angle_cells.append(row)
        outer.addWidget(angles)

        lengths, grid = self._table("Bone lengths", LENGTH_HEADERS)
        self.length_cells: list[list[QLabel]] = []
        for f, finger in enumerate(FINGERS):
            grid.addWidget(QLabel(finger), f + 1, 0)
            row = []
            for c in range(4):
                cell = self._cell()
                cell.setToolTip(f"{finger}: {BONE_NAMES[f][c]} bone")
                grid.addWidget(cell, f + 1, c + 1)
                row.append(cell)
            self.length_cells.append(row)
        scale_row = QHBoxLayout()
        scale_row.addWidget(QLabel("1 bone unit ="))
        self.scale = QDoubleSpinBox()
        self.scale.setRange(0.0, 80.0)
        self.scale.setDecimals(1)
        self.scale.setSuffix(" mm")
        self.scale.setSpecialValueText("unknown")
        self.scale.setToolTip("A decoded pose is in bone units: the middle finger's MCP-PIP "
                              "bone (about 40 mm on an adult hand), which the decoder holds "
                              "only approximately. Give its length to see millimetres")
        scale_row.addWidget(self.scale)
        scale_row.addStretch(1)
        grid.addLayout(scale_row, 6, 0, 1, 5)
        self.unit = QLabel()
        self.unit.setStyleSheet(OK_STYLE)
        grid.addWidget(self.unit, 7, 0, 1, 5)
        outer.addWidget(lengths)

        self.warning = QLabel()
        self.warning.setWordWrap(True)
        outer.addWidget(self.warning)
        outer.addStretch(1)

        self.scale.valueChanged.connect(lambda _: self._show(self._frame, force=True))
        bridge.decoded.connect(self.on_decoded)
        if session.last_decoded is not None:
            self.on_decoded(session.last_decoded)

    def _table(self, title: str, headers) -> tuple[QGroupBox, QGridLayout]:
        """A titled box whose grid has `headers` over columns 1.. (column 0: the fingers)."""
        box = QGroupBox(title)
        grid = QGridLayout(box)
        grid.setHorizontalSpacing(10)
        grid.setVerticalSpacing(1)
        for c, head in enumerate(headers):
            grid.addWidget(self._header(head), 0, c + 1)
        return box, grid

    @staticmethod
    def _header(text: str) -> QLabel:
        label = QLabel(text)
        label.setStyleSheet("font-weight: bold;")
        label.setAlignment(Qt.AlignmentFlag.AlignRight)
        return label

    @staticmethod
    def _cell() -> QLabel:
        cell = QLabel("–")
        cell.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        cell.setMinimumWidth(44)
        return cell

    def _set(self, label: QLabel, text: str, style: str | None = None) -> None:
        """Rewrite `label` only when its text (or style) changes: labels re-layout on setText."""
        key = text if style is None else text + "\0" + style
        if self._texts.get(label) != key:
            self._texts[label] = key
            label.setText(text)
            if style is not None:
                label.setStyleSheet(style)

    def on_decoded(self, frame: Any) -> None:
        """A new frame: measured now if the dock can be seen, else when it is shown."""
        self._frame = frame
        if self.isVisible():
            self._show(frame)

    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        self._show(self._frame)

    def _show(self, frame: Any, force: bool = False) -> None:
        if frame is None or (frame.request_id == self.measured_id and not force):
            return
        scale = self.scale.value()
        m = measure_pose(np.asarray(frame.cpose), mm_per_unit=scale if scale > 0 else None)
        self.measures, self.measured_id = m, frame.request_id
        self.measure_count += 1
        flagged = {(w.finger, w.what) for w in m.implausible()}
        for f in range(5):
            for c in range(4):
                value = m.flexion[f, c] if c < 3 else m.spread[f]
                what = FLEXION_JOINTS[f][c] if c < 3 else "spread"
                self._set(self.angle_cells[f][c], f"{value:.0f}°",
                          WARN_STYLE if (f, what) in flagged else "")
                self._set(self.length_cells[f][c], f"{m.bone_lengths[f, c]:.1f}"
                          if scale > 0 else f"{m.bone_lengths[f, c]:.2f}")
        self._set(self.unit, "in millimetres" if scale > 0 else
                  "in bone units (the middle MCP–PIP bone ≈ 1): give its mm for millimetres")
        found = m.implausible()
        if found:
            self._set(self.warning, "Implausible: " + "; ".join(str(w) for w in found),
                      WARN_STYLE)
            self.warning.setToolTip("\n".join(f"{w}: {w.range.source}" for w in found))
        else:
            self._set(self.warning, "Every checked angle is within the human range", OK_STYLE)
            self.warning.setToolTip("Ranges: Lin, Wu & Huang, HUMO 2000 (finger flexion and "
                                    "abduction); AAOS 1965 (MCP extension, thumb)")
