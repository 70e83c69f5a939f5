"""The torch thread setting of the explorer, shared by `handlatent-gui` and `handlatent-bench gui`
(a module of its own so that both read it without importing torch)."""

GUI_THREADS = 1   # the explorer's decode, drag and atlas workers run at once, each with its own
#   team of torch threads: on few cores one thread each keeps joint drags fastest (docs/gui.md)
