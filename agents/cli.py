"""`alertanim`: run the method in-process, run stream workers, publish alerts, watch results."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from alertanim.pipeline.accel import COMPILE_MODES


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
    from alertanim.pipeline.config import MethodConfig

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
    from alertanim.pipeline.config import MethodConfig

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

    from alertanim.schemas import InvalidAlert, parse_alert

    if (args.text is None) == (args.cap is None):
        print("alertanim: give the alert's text or --cap FILE (one of them)", file=sys.stderr)
        return 2
    # The same checks as the stream's ingest, so the command refuses what the stream refuses.
    body = {"id": args.id, "text": args.text, "event": args.event, "language": args.language,
            "event_codes": [dict(zip(("value_name", "value"), c.split("=", 1)))
                            for c in args.event_code] or None}
    cap_document = None
    try:
        if args.cap is not None:
            cap_document, alert = _from_cap(args.cap)
        else:
            alert = parse_alert(json.dumps({k: v for k, v in body.items()
                                            if v is not None}).encode())
        config = _method(args)
    except InvalidAlert as exc:
        print(f"alertanim: the alert is refused ({exc.reason}): {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        print(f"alertanim: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"alertanim: cannot read {args.cap}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if args.out_cap and cap_document is None:
        print("alertanim: --out-cap answers a CAP alert: give --cap FILE", file=sys.stderr)
        return 2
    problem = _unwritable([args.out, args.out_webp, args.out_mp4, args.out_poster, args.out_cap,
                           args.json, args.report])
    if problem:
        print(f"alertanim: {problem}", file=sys.stderr)
        return 2

    from alertanim.pipeline.accel import FastPath, tune
    from alertanim.pipeline.models import ModelsUnavailable, deterministic, load_models, resolve_device
    from alertanim.pipeline.workflow import run_workflow

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
    for path, media_type in ((args.out_webp, "image/webp"), (args.out_mp4, "video/mp4"),
                             (args.out_poster, "image/jpeg")):
        rendition = result.rendition(media_type)
        if path and rendition is not None:
            Path(path).write_bytes(rendition.data)
            summary[f"out_{media_type.split('/')[1]}"] = path
    if alert.cap is not None:
        summary["cap"] = alert.cap.model_dump()
        summary["status"] = alert.status
    if args.out_cap:
        Path(args.out_cap).write_bytes(_cap_answer(cap_document, result, summary))
        summary["out_cap"] = args.out_cap
    if args.report:
        from alertanim.pipeline.report import render_report

        Path(args.report).write_text(render_report(result, config), encoding="utf-8")
        summary["report"] = args.report
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


def _from_cap(path: str):
    """The CAP document in `path` and the Alert the stream would animate from it, read with the
    stream's byte limit (the settings' max_cap_bytes, ALERTANIM_MAX_CAP_BYTES)."""
    from alertanim.agents.settings import CAP_LANGUAGES, Settings
    from alertanim.schemas import parse_cap
    from alertanim.schemas.cap import alert_to_animate

    document = Path(path).read_bytes()
    return document, alert_to_animate(parse_cap(document, Settings().max_cap_bytes),
                                      CAP_LANGUAGES)


def _cap_answer(document: bytes, result, summary: dict) -> bytes:
    """The CAP Update the stream would publish, with the written files as its resources."""
    import time
    from datetime import datetime, timezone

    from alertanim.schemas import CapResource, cap_update

    written = {"image/gif": summary["out"], "image/webp": summary.get("out_webp"),
               "video/mp4": summary.get("out_mp4"), "image/jpeg": summary.get("out_jpeg")}
    resources = [CapResource.of(a.data, a.content_type, Path(written[a.content_type]).resolve()
                                .as_uri(), f"{a.content_type} of the alert ({summary['subject']})")
                 for a in result.animations if written.get(a.content_type)]
    return cap_update(document, resources, sender="alertanim@localhost",
                      identifier=f"alertanim.{summary['cap']['identifier']}",
                      sent=datetime.fromtimestamp(int(time.time()), timezone.utc),
                      note=summary["alt_text"])


def cmd_export_models(args: argparse.Namespace) -> int:
    from alertanim.pipeline.models import ModelsUnavailable, export_models, load_models

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
    run.add_argument("text", nargs="?", help="the alert text, any language")
    run.add_argument("--cap", metavar="FILE",
                     help="a CAP 1.2 document instead of the text: its best info block is "
                          "animated, as the stream does")
    run.add_argument("--event", help="CAP event, e.g. 'Flood Warning'")
    run.add_argument("--language", help="BCP 47 tag of the text, e.g. ko-KR")
    run.add_argument("--event-code", action="append", default=[], metavar="NAME=VALUE",
                     help="CAP eventCode, e.g. SAME=TOR (repeatable)")
    run.add_argument("--id", default="cli", help="alert id (checked as the stream checks it)")
    run.add_argument("--out", default="alert.gif", help="GIF path (default: alert.gif)")
    run.add_argument("--out-webp", help="also write the animated WebP here")
    run.add_argument("--out-mp4", help="also write the MP4 (H.264) here")
    run.add_argument("--out-poster", help="also write the poster still (JPEG) here")
    run.add_argument("--out-cap", help="with --cap: write the CAP 1.2 Update that carries the "
                                       "written files as <resource>s here")
    run.add_argument("--report", metavar="FILE",
                     help="write one self-contained HTML page explaining the animation here")
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

    from . import library_cli, stream_cli

    stream_cli.add_commands(sub)
    library_cli.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
