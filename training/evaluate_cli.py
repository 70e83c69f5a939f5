"""`handlatent-eval`: evaluate a dVAE checkpoint on a dataset (docs/evaluation.md).

    handlatent-eval --checkpoint runs/synth-128/best.pt --data data/synth-test --json eval.json
    handlatent-eval --checkpoint best.pt --data data/rhd-eval --plots plots/ --no-disentanglement
    handlatent-eval --checkpoint best.pt --data data/synth-test --figures figures/ --limit 300
    handlatent-eval --checkpoint best.pt --data data/synth-test --full --json paper.json

Prints a table (3D pose AUC / EPE / PCK, viewpoint error, image MSE, KL per sub-latent, Table 4,
β-VAE score); --json writes every number. The default sizes are quick (about 2 CPU-minutes for
1,000 images at 128 px); --full uses the supplement's β-VAE sizes (about 15; docs/evaluation.md).
Progress: bars on a terminal, else one line per stage on stderr. Exit status 0, or 2 for a bad
checkpoint, dataset or output path (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

PROG = "handlatent-eval"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit status 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = _Parser(prog=PROG, description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, metavar="FILE", help="model checkpoint (.pt)")
    p.add_argument("--data", required=True, metavar="PATH", help="dataset (handlatent.data.open_dataset)")
    p.add_argument("--json", metavar="OUT", help="write all results as JSON to OUT")
    p.add_argument("--plots", metavar="DIR", help="write pck.png and reconstructions.png to DIR")
    p.add_argument("--figures", metavar="DIR", help="write the supplement's figures 2-6 to DIR")
    p.add_argument("--batch-size", type=_positive, default=64, metavar="N")
    p.add_argument("--limit", type=_positive, metavar="N", help="evaluate the first N samples only")
    p.add_argument("--device", default="auto", metavar="DEV", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--threads", type=_positive, metavar="N",
                   help="torch CPU threads (default: os.cpu_count(); on a machine shared with "
                        "other jobs 1 can be several times faster)")
    p.add_argument("--disentanglement", action=argparse.BooleanOptionalAction, default=True,
                   help="Table 4 regression and, on synthetic data, the β-VAE score (default: on)")
    g = p.add_argument_group("disentanglement sizes")
    g.add_argument("--full", action="store_true",
                   help="the supplement's β-VAE sizes (L = 32 pairs, 500 + 500 points: about "
                        "8x the time) instead of the quick default (L = 16, 100 + 100); the "
                        "options below override either")
    g.add_argument("--regression-samples", type=_positive, default=1000, metavar="N",
                   help="labelled samples for Table 4, split 50/50 (default 1000; paper 300)")
    g.add_argument("--beta-vae-pairs", type=_positive, metavar="L",
                   help="pairs averaged per β-VAE point (default 16; --full and the "
                        "supplement: 32)")
    g.add_argument("--beta-vae-train", type=_positive, metavar="N",
                   help="β-VAE training points (default 100; --full: 500)")
    g.add_argument("--beta-vae-eval", type=_positive, metavar="N",
                   help="β-VAE held-out points (default 100; --full: 500)")
    g.add_argument("--beta-vae-factors", nargs="+", metavar="GROUP",
                   help="factor groups of the generator the β-VAE score tells apart (default "
                        "all: pose shape viewpoint skin light background; the supplement's "
                        "d = 8 model: pose viewpoint)")
    p.add_argument("--sample-count", type=int, default=256, metavar="N",
                   help="random samples per source scored against reconstructions (Fréchet "
                        "distance of thumbnails; default 256, 0 skips)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bars or stage lines")
    args = p.parse_args(argv)
    from handlatent.training.evaluate import BETA_VAE_FULL, BETA_VAE_QUICK
    sizes = BETA_VAE_FULL if args.full else BETA_VAE_QUICK
    for name, size in zip(("beta_vae_pairs", "beta_vae_train", "beta_vae_eval"), sizes):
        if getattr(args, name) is None:
            setattr(args, name, size)
    return args


def _sampling_gaussian(path: str, model, log):
    """The checkpoint's sampling Gaussian (latent_stats.hands), else one fitted to 512
    synthetic hands, as the explorer would fit it."""
    from handlatent.checkpoint import load_checkpoint
    from handlatent.explorer.sampling import fit_hands, hands_from_stats
    from handlatent.explorer.stats import encode_hands
    extra = load_checkpoint(path).get("extra")
    try:
        stored = hands_from_stats(extra.get("latent_stats") if isinstance(extra, dict) else None,
                                  model.layout.total)
    except ValueError as err:
        print(f"{PROG}: {path}: ignoring its latent_stats ({err})", file=sys.stderr)
        stored = None
    if stored is not None:
        return stored
    log("fitting the sampling Gaussian to 512 encoded synthetic hands")
    return fit_hands(*encode_hands(model, n=512))


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from handlatent.checkpoint import CheckpointError, load_model
    from handlatent.data.crop import ReaderError
    from handlatent.training.evaluate import (EvalOptions, EvaluationError, StageLog, evaluate,
                                              format_results, sample_score_skipped, save_plots)

    threads_before = torch.get_num_threads()
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    try:
        _check_outputs(args)
        device = _device(args.device)
        try:
            model = load_model(args.checkpoint, device=device)
        except CheckpointError as err:
            raise _Fail(_one_line(err)) from None
        except (RuntimeError, OSError) as err:  # a bad device string, an unreadable file
            raise _Fail(f"{args.checkpoint}: {_one_line(err)}") from None
        dataset = _open_data(args.data, model.config.image_size)
        options = EvalOptions(batch_size=args.batch_size, limit=args.limit,
                              disentanglement=args.disentanglement,
                              regression_samples=args.regression_samples,
                              beta_vae_pairs=args.beta_vae_pairs, beta_vae_train=args.beta_vae_train,
                              beta_vae_eval=args.beta_vae_eval,
                              beta_vae_factors=(tuple(args.beta_vae_factors)
                                                if args.beta_vae_factors else None),
                              sample_count=args.sample_count, seed=args.seed,
                              progress=not args.quiet)
        count = len(dataset) if args.limit is None else min(len(dataset), args.limit)
        needs_hands = args.figures or (args.sample_count > 0
                                       and sample_score_skipped(args.sample_count, count) is None)
        log = StageLog(not args.quiet)
        hands = _sampling_gaussian(args.checkpoint, model, log) if needs_hands else None
        try:
            results, collected = evaluate(model, dataset, options, device=device, hands=hands,
                                          log=log)
        except EvaluationError as err:
            raise _Fail(f"{args.data}: {_one_line(err)}") from None
        except ReaderError as err:  # an unreadable image of a real dataset: `PATH: problem`
            raise _Fail(_one_line(err)) from None
        results = {"checkpoint": str(args.checkpoint), "data": str(args.data), **results}
        print(format_results(results))
        if args.json:
            _write(Path(args.json), lambda p: p.write_text(json.dumps(results, indent=2) + "\n"))
            print(f"\nresults: {args.json}")
        if args.plots:
            paths = _write(Path(args.plots), lambda p: save_plots(results, collected, p))
            print(f"plots: {', '.join(str(x) for x in paths)}")
        if args.figures:
            from handlatent.training.figures import make_figures
            log("the supplement's figures 2-6")
            try:
                paths = _write(Path(args.figures), lambda p: make_figures(
                    model, dataset, p, device=device, seed=args.seed, limit=args.limit,
                    hands=hands))
            except EvaluationError as err:
                raise _Fail(f"{args.data}: {_one_line(err)}") from None
            print(f"figures: {', '.join(str(x) for x in paths)}")
        log("done")
    except _Fail as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 2
    finally:
        torch.set_num_threads(threads_before)  # main() may run inside another program (tests)
    return 0


class _Fail(Exception):
    """A problem the user can fix: reported as one line, exit status 2."""


def _device(name: str):
    """`--device` as a torch.device ("auto": CUDA when available, else the CPU)."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise _Fail(f"--device {name}: not a device (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise _Fail(f"--device {name}: CUDA is not available")
    if device.type not in ("cpu", "cuda"):
        raise _Fail(f"--device {name}: only cpu and cuda are supported")
    return device


def _open_data(path: str, image_size: int):
    from handlatent.data import CROPPING_READERS, open_dataset, spec_kind

    try:
        # photographs (rhd:, stb:, freihand:) are cropped to the model's input size
        kwargs = {"size": image_size} if spec_kind(path) in CROPPING_READERS else {}
        dataset = open_dataset(path, **kwargs)
    except (OSError, ValueError, KeyError) as err:
        problem = _one_line(err)
        if isinstance(err, FileNotFoundError) and err.filename is not None:
            problem = f"no such file or directory: {err.filename}"
        if problem.startswith(str(path)):
            raise _Fail(problem) from None
        raise _Fail(f"{path}: cannot open dataset ({problem})") from None
    if len(dataset) == 0:
        raise _Fail(f"{path}: the dataset is empty")
    return dataset


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse output paths that cannot work before spending time on the evaluation."""
    if args.json:
        parent = Path(args.json).absolute().parent
        if Path(args.json).is_dir():
            raise _Fail(f"--json {args.json}: is a directory")
        if not parent.is_dir():
            raise _Fail(f"--json {args.json}: directory {parent} does not exist")
    for option, value in (("--plots", args.plots), ("--figures", args.figures)):
        if value and Path(value).exists() and not Path(value).is_dir():
            raise _Fail(f"{option} {value}: exists and is not a directory")


def _write(path: Path, write):
    """Run `write(path)`; an OSError (no permission, a file where a folder should be) → _Fail."""
    try:
        return write(path)
    except OSError as err:
        raise _Fail(f"{path}: cannot write ({err.strerror or _one_line(err)})") from None


if __name__ == "__main__":
    sys.exit(main())
