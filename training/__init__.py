"""handlatent.training (the `training/` folder): the dVAE trainer `handlatent-train`
(config.py, train.py, run_dir.py, distributed.py, cli.py; docs/training.md) and the evaluation
`handlatent-eval`. Importing the package imports nothing heavy."""
