"""Package data of handlatent (installed as `handlatent.assets`): the bundled model in models/
and the example hands in examples/. Read them through `handlatent.resources`."""
