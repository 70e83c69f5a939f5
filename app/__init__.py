"""The Qt desktop explorer (installed as handlatent.app): views and wiring over
handlatent.explorer.Session. Entry point: handlatent-gui (handlatent.app.cli:main)."""
