"""`handlatent-bench`: measure the renderer, the model, training and the GUI; print a table, write JSON."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

from handlatent.bench.timing import machine
from handlatent.threads import GUI_THREADS, configure_gui_threads

SECTIONS = ("synth", "model", "train", "gui")


def _run_section(name: str, args: argparse.Namespace) -> object:
    """Run one benchmark section and return its rows (imports lazily: gui needs Qt)."""
    if name == "synth":
        from handlatent.bench.synth import bench_synth
        return bench_synth(count=args.synth_count)
    if name == "model":
        from handlatent.bench.model import bench_model
        return bench_model(repeats=args.repeats, device=args.device)
    if name == "train":
        from handlatent.bench.train import bench_train
        return bench_train(steps=args.train_steps, device=args.device)
    from handlatent.app.bench import gui_section
    from handlatent.checkpoint import bundled_model
    return gui_section(args.checkpoint or bundled_model(), device=args.device,
                       compare=args.compare, decode_ms=args.decode_ms)


def _threads_for(section: str, threads: int | None) -> int:
    """--threads, else the section's default: handlatent-gui's for gui, all cores otherwise."""
    return threads or (GUI_THREADS if section == "gui" else os.cpu_count() or 1)


def _table(name: str, rows: object) -> str:
    """A plain-text rendering of one section's result."""
    if name == "synth":
        return "\n".join(f"  synth {r['size']:>3} px: {r['images_per_s']:8.0f} images/s"
                         for r in rows)
    if name == "model":
        return "\n".join(
            f"  model {r['size']:>3} px, {r['decoder']:<19}: decode median {r['decode']['median_ms']:6.2f} ms "
            f"(p95 {r['decode']['p95_ms']:6.2f}), encode median {r['encode']['median_ms']:6.2f} ms"
            for r in rows)
    if name == "train":
        return "\n".join(f"  train {r['size']:>3} px, {r['precision']:<18}: "
                         f"{r['images_per_s']:6.1f} images/s "
                         f"(batch {r['batch_size']}), data wait {100 * r['data_wait']:.1f} %"
                         for r in rows)
    return "\n".join(f"  gui {k}: {v:.2f}" if isinstance(v, float) else f"  gui {k}: {v}"
                     for k, v in rows.items())


def main(argv: list[str] | None = None) -> int:
    """Entry point of `handlatent-bench`."""
    parser = argparse.ArgumentParser(prog="handlatent-bench", description=__doc__)
    parser.add_argument("sections", nargs="*", metavar="SECTION",
                        help=f"what to measure (default: {' '.join(SECTIONS[:3])}; gui needs a "
                             "display, e.g. xvfb-run)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] for model and train")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: all cores; for gui, handlatent-gui's "
                             f"default, {GUI_THREADS})")
    parser.add_argument("--repeats", type=int, default=200, help="timed decode calls per size")
    parser.add_argument("--synth-count", type=int, default=2048, help="images per synth run")
    parser.add_argument("--train-steps", type=int, default=40, help="steps per training run")
    parser.add_argument("--checkpoint", default=None,
                        help="model for the gui section (default: the bundled model)")
    parser.add_argument("--decode-ms", type=float, default=None, metavar="MS",
                        help="gui: a stand-in decoder of MS ms per decode (the model's own, "
                             "stretched by extra computation) instead of the model's own")
    parser.add_argument("--compare", default=None, metavar="B.pt",
                        help="gui: the model compared in the compare run (default: the "
                             "--checkpoint model again; same latent layout)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section {unknown[0]!r} (choose from {', '.join(SECTIONS)})")
    sections = args.sections or list(SECTIONS[:3])
    torch.set_num_threads(_threads_for(sections[0], args.threads))
    result: dict[str, object] = {"machine": machine()}
    print(f"machine: {result['machine']}")
    for name in sections:
        if name == "gui":
            configure_gui_threads(_threads_for(name, args.threads))   # as handlatent-gui does
        else:
            torch.set_num_threads(_threads_for(name, args.threads))
        try:
            result[name] = _run_section(name, args)
        except (OSError, ValueError, RuntimeError) as exc:
            print(f"handlatent-bench: {name}: {exc}", file=sys.stderr)
            return 2
        print(_table(name, result[name]), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
