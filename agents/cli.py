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


def _method_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per field of the method's settings, made from `MethodConfig` itself."""
    from pipeline.config import MethodConfig

    group = parser.add_argument_group("the method (pipeline.config.MethodConfig)")
    for name, field in MethodConfig.model_fields.items():
        flag = "--" + name.replace("_", "-")
        if field.annotation is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None,
                               help=f"{field.description} (default: {field.default})")
        else:
            group.add_argument(flag, type=field.annotation, default=None, metavar="N",
                               help=f"{field.description} (default: {field.default})")


def _method(args: argparse.Namespace):
    from pipeline.config import MethodConfig

    return MethodConfig(**{name: getattr(args, name) for name in MethodConfig.model_fields
                           if getattr(args, name) is not None})


def _unwritable(paths) -> str | None:
    for path in paths:
        if path is None or path == "-":
            continue
        parent = Path(path).resolve().parent
        if not parent.is_dir():
            return f"cannot write {path}: no directory {parent}"
        if not os.access(parent, os.W_OK):
            return f"cannot write {path}: {parent} is not writable"
    return None


def cmd_run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from schemas import InvalidAlert, parse_alert

    # The same checks as the stream's ingest, so the command refuses what the stream refuses.
    body = {"id": args.id, "text": args.text, "event": args.event, "language": args.language,
            "event_codes": [dict(zip(("value_name", "value"), c.split("=", 1)))
                            for c in args.event_code] or None}
    try:
        alert = parse_alert(json.dumps({k: v for k, v in body.items() if v is not None}).encode())
        config = _method(args)
    except InvalidAlert as exc:
        print(f"alertanim: the alert is refused ({exc.reason}): {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        print(f"alertanim: {exc}", file=sys.stderr)
        return 2
    problem = _unwritable([args.out, args.out_webp, args.json])
    if problem:
        print(f"alertanim: {problem}", file=sys.stderr)
        return 2

    from pipeline.accel import FastPath, tune
    from pipeline.models import ModelsUnavailable, deterministic, load_models, resolve_device
    from pipeline.workflow import run_workflow

    deterministic()
    device, dtype = resolve_device(args.device, args.dtype)
    try:
        fast = FastPath.named(args.fast, device, args.compile)
        models = tune(load_models(args.models, device=device, dtype=dtype), fast)
    except (ModelsUnavailable, ValueError) as exc:
        print(f"alertanim: {exc}", file=sys.stderr)
        return 2
    result = run_workflow(models, alert.text, seed=args.seed, config=config, event=alert.event,
                          language=alert.language, event_codes=alert.code_pairs(),
                          progress=None if args.quiet else _progress())
    out = Path(args.out)
    out.write_bytes(result.gif.data)
    summary = result.summary()
    summary["out"] = str(out)
    if args.out_webp and result.webp is not None:
        Path(args.out_webp).write_bytes(result.webp.data)
        summary["out_webp"] = args.out_webp
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
    from pipeline.models import ModelsUnavailable, export_models, load_models

    try:
        models = load_models(args.models)  # the weights as published
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
    run.add_argument("--event", help="CAP event, e.g. 'Flood Warning'")
    run.add_argument("--language", help="BCP 47 tag of the text, e.g. ko-KR")
    run.add_argument("--event-code", action="append", default=[], metavar="NAME=VALUE",
                     help="CAP eventCode, e.g. SAME=TOR (repeatable)")
    run.add_argument("--id", default="cli", help="alert id (checked as the stream checks it)")
    run.add_argument("--out", default="alert.gif", help="GIF path (default: alert.gif)")
    run.add_argument("--out-webp", help="also write the animated WebP here")
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
    run.add_argument("--quiet", action="store_true")
    _method_flags(run)
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
