"""The latent panel: one labelled slider per latent dimension, grouped by sub-latent.

Each group (canonical pose z_y1, viewpoint z_y2, content z_u) is a collapsible section whose
dimensions are ordered by their KL divergence to the prior (the informative ones first); the
near-zero-KL ("inactive") dimensions are folded away until "Show inactive" is ticked. Per group:
reset to 0, randomise (from the source of Latent ▸ Sample from) and a lock. Every action calls
the session; the sliders follow the session's latent (undo, random samples, walks, estimation,
joint drags) with their signals blocked so that syncing never feeds back into the session, at
display rate (app/coalesce.py: during a joint drag the latent changes faster than the eye needs
48 sliders repainted, and each repaint holds up the GUI thread the drag needs).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QHBoxLayout, QLabel, QScrollArea,
                               QSizePolicy, QToolButton, QVBoxLayout, QWidget)
from superqt import QCollapsible, QElidingLabel, QLabeledDoubleSlider

from handlatent.app.coalesce import DISPLAY_INTERVAL_MS, Coalescer

GROUP_TITLES = {"z_y1": "Canonical pose (z_y1)", "z_y2": "Viewpoint (z_y2)",
                "z_u": "Content (z_u)"}
SIGMAS = 3.0            # slider range: ±3σ of the prior N(0, I)
SYNC_TOLERANCE = 1e-6   # sliders closer than this to the session's value are left alone


def group_title(session: Any, part: str) -> str:
    """"Canonical pose (z_y1)" etc.; falls back to the layout's own titles for unknown parts."""
    if part in GROUP_TITLES:
        return GROUP_TITLES[part]
    titles = getattr(session.layout, "TITLES", {})
    return f"{str(titles.get(part, part)).capitalize()} ({part})"


def part_dims(stats: Any, part: str) -> tuple[list[int], list[int]]:
    """(active, inactive) indices into z of `part`'s dimensions, each ordered by KL, largest first.

    The session's statistics decide what "active" means (`active_dims`, `inactive_dims`).
    """
    return ([int(i) for i in stats.active_dims(part)],
            [int(i) for i in stats.inactive_dims(part)])


def slider_range() -> tuple[float, float]:
    """±3σ of the prior N(0, 1) that every latent dimension is sampled from."""
    return -SIGMAS, SIGMAS


WHAT_WIDTH = 84         # the name of what a dimension moves (elided when longer)
SLIDER_MIN_WIDTH = 80   # the slider with its value label gives way to it in a narrow panel


def shrinkable(label: QLabel) -> None:
    """Let `label` be cut when the dock is narrow (it never sets the dock's minimum width)."""
    label.setMinimumWidth(0)
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)


class DimSlider(QWidget):
    """One row: dimension number, what it moves ("index curls"; handlatent.dim_labels), a
    labelled double slider (value shown) and its KL; `row` is its QHBoxLayout."""

    def __init__(self, index: int, part_index: int, kl: float, lo: float, hi: float,
                 what: str = "", what_detail: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.index = index
        self.row = layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        self.name = QLabel(f"{part_index:>2d}")
        self.name.setFixedWidth(22)
        self.name.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.what = QElidingLabel()
        self.what.setFixedWidth(WHAT_WIDTH)
        self.what.setStyleSheet("color: palette(mid);")
        self.set_what(what, what_detail)
        self.slider = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(lo, hi)
        self.slider.setDecimals(2)
        self.slider.setSingleStep(0.05)
        self.slider.setValue(0.0)
        self.slider.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.slider.setMinimumWidth(SLIDER_MIN_WIDTH)
        self.kl = QLabel(f"{kl:.2f}")
        self.kl.setFixedWidth(40)
        self.kl.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.kl.setStyleSheet("color: palette(mid);")
        tip = f"z[{index}] — KL to the prior {kl:.3f} nats"
        for w in (self.name, self.slider, self.kl):
            w.setToolTip(tip)
        layout.addWidget(self.name)
        layout.addWidget(self.what)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.kl)

    def value(self) -> float:
        return float(self.slider.value())

    def set_what(self, what: str, detail: str = "") -> None:
        """Show what this dimension moves (elided to the room left), `detail` as its tip."""
        self.what.setText(what)
        self.what.setToolTip(f"{what}: {detail}" if what else detail)

    def set_value_silently(self, v: float) -> None:
        """Show `v` without emitting valueChanged (used when following the session)."""
        self.slider.blockSignals(True)
        try:
            self.slider.setValue(float(v))
        finally:
            self.slider.blockSignals(False)


class LatentGroup(QCollapsible):
    """A collapsible section for one sub-latent: tools row, active and inactive sliders."""

    def __init__(self, session: Any, part: str, parent: QWidget | None = None) -> None:
        super().__init__(group_title(session, part), parent)
        self.session = session
        self.part = part
        self.setDuration(0)   # no animation: with 64 sliders it only costs time
        body = QWidget()
        column = QVBoxLayout(body)
        column.setContentsMargins(4, 2, 4, 6)
        column.setSpacing(2)

        tools = QHBoxLayout()
        tools.setSpacing(4)
        self.reset_button = QToolButton(text="Reset")
        self.reset_button.setToolTip(f"Set every {part} dimension to 0")
        self.random_button = QToolButton(text="Randomise")
        self.random_button.setToolTip(f"Draw {part} at random (Latent ▸ Sample from)")
        self.lock_box = QCheckBox("Lock")
        self.lock_box.setToolTip(f"Keep {part} fixed when sampling or walking")
        self.count = QLabel(alignment=Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.count.setStyleSheet("color: palette(mid);")
        shrinkable(self.count)
        tools.addWidget(self.reset_button)
        tools.addWidget(self.random_button)
        tools.addWidget(self.lock_box)
        tools.addWidget(self.count, 1)
        column.addLayout(tools)

        kl = np.asarray(session.stats.kl_per_dim, dtype=float)
        self.labels = session.dim_labels
        start = session.layout.slices[part].start
        self.active, self.inactive = part_dims(session.stats, part)
        self.sliders: dict[int, DimSlider] = {}
        self.active_box = self._slider_box(self.active, kl, start)
        self.inactive_box = self._slider_box(self.inactive, kl, start)
        self.inactive_box.setVisible(False)
        column.addWidget(self.active_box)
        self.inactive_note = QLabel()
        self.inactive_note.setStyleSheet("color: palette(mid); font-style: italic;")
        column.addWidget(self.inactive_note)
        column.addWidget(self.inactive_box)
        self.addWidget(body)
        self.count.setText(f"{len(self.active)} active / {len(self.active) + len(self.inactive)}")
        self.set_show_inactive(False)

        self.reset_button.clicked.connect(lambda: session.reset_part(part))
        self.random_button.clicked.connect(lambda: session.randomize(part))
        self.lock_box.toggled.connect(lambda on: session.lock(part, bool(on)))

    def _slider_box(self, indices: Sequence[int], kl: np.ndarray, start: int) -> QWidget:
        box = QWidget()
        grid = QVBoxLayout(box)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(0)
        for i in indices:
            lo, hi = slider_range()
            row = DimSlider(i, i - start, float(kl[i]), lo, hi, self.labels.names[i],
                            self.labels.details[i])
            self.sliders[i] = row
            grid.addWidget(row)
        return box

    def set_show_inactive(self, show: bool) -> None:
        self.inactive_box.setVisible(bool(show) and bool(self.inactive))
        n = len(self.inactive)
        self.inactive_note.setVisible(n > 0 and not show)
        self.inactive_note.setText(f"{n} inactive dimension{'s' if n != 1 else ''} "
                                   f"(KL ≈ 0) hidden")

    def sync_lock(self) -> None:
        self.lock_box.blockSignals(True)
        self.lock_box.setChecked(bool(self.session.locked(self.part)))
        self.lock_box.blockSignals(False)


class LatentPanel(QWidget):
    """All groups in a scroll area, plus the global "Show inactive dimensions" toggle.

    `bridge` is the SessionBridge whose latentChanged the sliders follow.
    """

    showInactiveChanged = Signal(bool)

    def __init__(self, session: Any, bridge: Any, parent: QWidget | None = None, *,
                 sync_interval_ms: int = DISPLAY_INTERVAL_MS) -> None:
        super().__init__(parent)
        self.session = session
        self.size = session.layout.total    # the latent size the sliders were made for
        self.follower = Coalescer(self.sync, sync_interval_ms, self)
        self._editing = 0
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(4)

        header = QHBoxLayout()
        header.setContentsMargins(6, 4, 6, 0)
        self.show_inactive = QCheckBox("Show inactive")
        self.show_inactive.setToolTip("Dimensions whose KL to the prior is ≈ 0 carry no "
                                      "information; they are hidden by default")
        legend = QLabel("value · KL (nats)")
        legend.setStyleSheet("color: palette(mid);")
        legend.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        shrinkable(legend)
        header.addWidget(self.show_inactive)
        header.addWidget(legend, 1)
        outer.addLayout(header)

        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        inner = QWidget()
        column = QVBoxLayout(inner)
        column.setContentsMargins(4, 0, 4, 4)
        column.setSpacing(2)
        self.groups: dict[str, LatentGroup] = {}
        for part, size in zip(session.layout.names, session.layout.sizes):
            if size == 0:
                continue
            group = LatentGroup(session, part)
            self.groups[part] = group
            column.addWidget(group)
            group.expand(animate=False)
        column.addStretch(1)
        scroll.setWidget(inner)
        outer.addWidget(scroll, 1)
        self.scroll = scroll
        # never narrower than a row (no horizontal scrolling: value and KL would be cut off)
        scroll.setMinimumWidth(inner.minimumSizeHint().width()
                               + scroll.verticalScrollBar().sizeHint().width())

        self.sliders: dict[int, DimSlider] = {}
        for group in self.groups.values():
            self.sliders.update(group.sliders)
        for i, row in self.sliders.items():
            self._connect(i, row)
        self.show_inactive.toggled.connect(self.set_show_inactive)
        bridge.latentChanged.connect(self.follower.push)
        bridge.locksChanged.connect(self.sync_locks)
        self.sync(session.latent)
        self.sync_locks()

    def _connect(self, i: int, row: DimSlider) -> None:
        slider = row.slider
        slider.valueChanged.connect(lambda v, i=i: self.session.set_value(i, float(v)))
        slider.sliderPressed.connect(self._begin_drag)
        slider.sliderReleased.connect(self._end_drag)

    def _begin_drag(self) -> None:
        if self._editing == 0:
            self.session.begin_edit()
        self._editing += 1

    def _end_drag(self) -> None:
        if self._editing > 0:
            self._editing -= 1
            if self._editing == 0:
                self.session.end_edit()

    def set_show_inactive(self, show: bool) -> None:
        if self.show_inactive.isChecked() != bool(show):
            self.show_inactive.setChecked(bool(show))   # re-enters via toggled
            return
        for group in self.groups.values():
            group.set_show_inactive(show)
        self.showInactiveChanged.emit(bool(show))

    def sync(self, z: Any = None) -> None:
        """Move the sliders to the session's latent without feeding back into the session."""
        values = np.asarray(self.session.latent if z is None else z, dtype=float).reshape(-1)
        if values.shape[0] != self.size:
            return          # a panel replaced after a model switch, until it is deleted
        for i, row in self.sliders.items():
            v = float(values[i])
            lo, hi = row.slider.minimum(), row.slider.maximum()
            shown = min(max(v, lo), hi)
            if abs(row.value() - shown) > SYNC_TOLERANCE:
                row.set_value_silently(shown)

    def sync_locks(self) -> None:
        for group in self.groups.values():
            group.sync_lock()

    def set_kl(self, kl: Sequence[float], labels: Any = None) -> None:
        """Show new KL values and, given, the names of what each dimension moves (a DimLabels):
        the same layout under a reloaded model; the order stays."""
        for i, row in self.sliders.items():
            row.kl.setText(f"{float(kl[i]):.2f}")
            if labels is not None:
                row.set_what(labels.names[i], labels.details[i])

    def slider(self, index: int) -> QLabeledDoubleSlider:
        """The slider widget of latent dimension `index` (global index into z)."""
        return self.sliders[index].slider
