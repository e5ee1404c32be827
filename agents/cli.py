"""`alertanim`: run the method in-process, run stream workers, publish alerts, watch results."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from pipeline.accel import COMPILE_MODES


def _progress(stream=sys.stderr):
    tty = stream.isatty()

    def report(stage: str, done: int, total: int) -> None:
        if done < total and not tty:
            return  # in logs, one line per stage
        start = "\r" if tty else ""
        end = "\n" if done >= total else ""
        stream.write(f"{start}[{stage:>8}] {done}/{total}{end}")
        stream.flush()
    return report


def cmd_run(args: argparse.Namespace) -> int:
    import torch

    from pipeline.accel import FastPath
    from pipeline.models import ModelsUnavailable, load_models, resolve_device
    from pipeline.workflow import MethodConfig, run_workflow

    torch.use_deterministic_algorithms(True, warn_only=True)
    config = MethodConfig(candidates=args.candidates, variants=args.variants, frames=args.frames,
                          inbetween=args.inbetween, steps=args.steps)
    device, dtype = resolve_device(args.device, args.dtype)
    try:
        fast = FastPath.named(args.fast, device, args.compile)
        models = load_models(args.models, device=device, dtype=dtype, fast=fast)
    except (ModelsUnavailable, ValueError) as exc:
        print(f"alertanim: {exc}", file=sys.stderr)
        return 2
    result = run_workflow(models, args.text, seed=args.seed, config=config,
                          progress=None if args.quiet else _progress())
    out = Path(args.out)
    out.write_bytes(result.gif.data)
    summary = result.summary()
    summary["out"] = str(out)
    if result.webp is not None and args.webp:
        Path(args.webp).write_bytes(result.webp.data)
        summary["webp"] = args.webp
    if args.json:
        text = json.dumps(summary, indent=2, ensure_ascii=False)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")
    if not args.quiet:
        print(f"wrote {out} ({len(result.gif.data)} bytes, {result.gif.frame_count} frames, "
              f"subject {result.subject.word!r}, CLIPScore {result.scores.best:.2f}, "
              f"{result.seconds['total']:.2f} s)", file=sys.stderr)
    return 0


def cmd_export_models(args: argparse.Namespace) -> int:
    from pipeline.accel import FastPath
    from pipeline.models import ModelsUnavailable, export_models, load_models

    try:
        models = load_models(args.models, fast=FastPath.off())  # the weights as published
    except ModelsUnavailable as exc:
        print(f"alertanim: {exc}", file=sys.stderr)
        return 2
    print(export_models(models, args.dir))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alertanim", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="turn one alert into an animation, in-process (no Kafka)")
    run.add_argument("text", help="the alert text, any language")
    run.add_argument("--out", default="alert.gif", help="GIF path (default: alert.gif)")
    run.add_argument("--webp", help="also write the animated WebP here")
    run.add_argument("--json", nargs="?", const="-",
                     help="write the summary as JSON to this path, or stdout when no path")
    run.add_argument("--models", default="default",
                     help="'default' (public checkpoints), 'tiny', 'random-full', or a directory")
    run.add_argument("--device", default="auto", help="auto (cuda when present), cpu, cuda, cuda:1...")
    run.add_argument("--dtype", default="auto", choices=("auto", "float32", "float16", "bfloat16"),
                     help="auto: float16 on cuda, float32 on a cpu")
    run.add_argument("--fast", default="auto", choices=("auto", "on", "off"),
                     help="the execution fast path (fused QKV, channels_last, VAE slicing); "
                          "auto: on for cuda")
    run.add_argument("--compile", default="off", choices=COMPILE_MODES,
                     help="torch.compile the UNet with this mode (minutes of compilation first)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--candidates", type=int, default=10)
    run.add_argument("--variants", type=int, default=16)
    run.add_argument("--frames", type=int, default=8)
    run.add_argument("--inbetween", type=int, default=3)
    run.add_argument("--steps", type=int, default=25)
    run.add_argument("--quiet", action="store_true")
    run.set_defaults(func=cmd_run)

    export = sub.add_parser("export-models",
                            help="write every model into one directory to mount in workers")
    export.add_argument("dir")
    export.add_argument("--models", default="default")
    export.set_defaults(func=cmd_export_models)

    from . import stream_cli

    stream_cli.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
