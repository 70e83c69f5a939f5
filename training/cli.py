"""`handlatent-train`: train the dVAE from a YAML config.

    handlatent-train --config synth-128 --out runs/synth-128    # a bundled config, by name
    handlatent-train --config my-run.yaml --out runs/mine       # or any YAML file
    handlatent-train --list-configs                             # the bundled configs
    handlatent-train --out runs/synth-128 --resume            # after Ctrl-C / SIGTERM
    handlatent-train --config ... --set optim.lr=3e-4 --set run.steps=500
    torchrun --nproc_per_node=4 -m handlatent.training.cli --config ... --out ...

Exit status: 0 when the run finished or stopped cleanly on SIGINT/SIGTERM (last.pt saved),
2 for a problem with the config, the data or the checkpoint (one line on stderr), 130 when a
second Ctrl-C interrupted the run without saving.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

PROG = "handlatent-train"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog=PROG, description="Train the dVAE (Yang & Yao, CVPR 2019) from a YAML config.",
        epilog="examples:\n" + "\n\n".join(__doc__.split("\n\n")[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", metavar="FILE|NAME",
                   help="YAML config: a file, or the name of a bundled config (--list-configs); "
                        "with --resume it defaults to OUT/config.yaml")
    p.add_argument("--list-configs", action="store_true",
                   help="list the bundled configs, one line each, and exit")
    p.add_argument("--out", metavar="DIR",
                   help="run directory (default: runs/<config name>)")
    p.add_argument("--set", dest="sets", metavar="KEY=VALUE", action="append", default=[],
                   help="override a config value, e.g. --set optim.lr=3e-4 (repeatable)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in OUT from OUT/last.pt")
    p.add_argument("--device", metavar="DEV",
                   help="auto, cpu, cuda or cuda:N (same as --set run.device=DEV)")
    args = p.parse_args(argv)
    if args.list_configs:
        return args
    if args.config is None and not (args.resume and args.out):
        p.error("--config is required (or --resume with --out)")
    return args


def _is_rank0() -> bool:
    return os.environ.get("RANK", "0") == "0"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from handlatent.checkpoint import CheckpointError
    from handlatent.training.config import ConfigError, load_config
    from handlatent.training.config_files import config_listing, resolve_config

    if args.list_configs:
        print(config_listing())
        return 0

    try:
        out = Path(args.out) if args.out else Path("runs") / Path(args.config).stem
        config_file = resolve_config(args.config) if args.config else out / "config.yaml"
        if args.resume and not (out / "last.pt").exists():
            raise ConfigError(f"nothing to resume: {out / 'last.pt'} does not exist")
        sets = list(args.sets) + ([f"run.device={args.device}"] if args.device else [])
        cfg = load_config(config_file, sets)
        from handlatent.training.train import train
        train(cfg, out, resume=args.resume)
    except (ConfigError, CheckpointError) as err:
        if _is_rank0():
            print(f"{PROG}: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if _is_rank0():
            print(f"{PROG}: interrupted (second signal); last.pt is from the last checkpoint "
                  "interval", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
