"""`handlatent-bench`: speed measurements of the renderer, the model and training on this machine."""
