"""A dark Fusion palette (napari-like), applied once to the QApplication."""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

_COLORS = {
    QPalette.ColorRole.Window: "#26282d",
    QPalette.ColorRole.WindowText: "#e3e5e8",
    QPalette.ColorRole.Base: "#1d1f23",
    QPalette.ColorRole.AlternateBase: "#2b2e33",
    QPalette.ColorRole.ToolTipBase: "#2f3237",
    QPalette.ColorRole.ToolTipText: "#e3e5e8",
    QPalette.ColorRole.PlaceholderText: "#8a8f98",
    QPalette.ColorRole.Text: "#e3e5e8",
    QPalette.ColorRole.Button: "#33363c",
    QPalette.ColorRole.ButtonText: "#e3e5e8",
    QPalette.ColorRole.BrightText: "#ff6b6b",
    QPalette.ColorRole.Highlight: "#3d7bd9",
    QPalette.ColorRole.HighlightedText: "#ffffff",
    QPalette.ColorRole.Link: "#6aa5ff",
    QPalette.ColorRole.Mid: "#8a8f98",
    QPalette.ColorRole.Dark: "#17181b",
    QPalette.ColorRole.Light: "#3a3d44",
}
_DISABLED = {
    QPalette.ColorRole.WindowText: "#6d727a",
    QPalette.ColorRole.Text: "#6d727a",
    QPalette.ColorRole.ButtonText: "#6d727a",
}

STYLE_SHEET = """
QToolTip { border: 1px solid #4a4e56; padding: 4px; }
QGroupBox { border: 1px solid #3a3d44; border-radius: 4px; margin-top: 1.1em; padding-top: 2px; }
QGroupBox::title { subcontrol-origin: margin; left: 8px; padding: 0 3px; color: #b9bec6; }
QDockWidget::title { padding: 4px 6px; background: #2d3035; }
QStatusBar QLabel { color: #b9bec6; padding: 0 6px; }
"""


def apply_dark_theme(app: QApplication) -> None:
    """Fusion style with a dark palette and a few style-sheet touches."""
    app.setStyle("Fusion")
    palette = QPalette()
    for role, color in _COLORS.items():
        palette.setColor(role, QColor(color))
    for role, color in _DISABLED.items():
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor(color))
    app.setPalette(palette)
    app.setStyleSheet(STYLE_SHEET)
