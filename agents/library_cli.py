"""`alertanim library build|list`: the scene library of the deployment's run, in-process.

Settings come from ALERTANIM_* as for a worker (the store, the models, the method), so what is
built is exactly what the workers' instant events will find. `build` is resumable: entries that
are stored are skipped, so a build stopped half-way goes on where it stopped.
"""

from __future__ import annotations

import argparse
import json
import sys


def _library(settings):
    from alertanim.pipeline import graph

    from .host import ModelHost
    from .ledger import Ledger, run_id
    from .library import Library
    from .storage import store_from_settings

    store = store_from_settings(settings)
    library = Library(settings, store, Ledger(store, settings.presign_expiry_s),
                      run_id(settings.method, settings.models))
    return library, ModelHost(settings, graph.NAMES[1:])


def _wanted(only: str | None):
    from alertanim.pipeline.library import entries

    every = entries()
    if not only:
        return every
    names = [n.strip() for n in only.split(",") if n.strip()]
    known = {e.name: e for e in every}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"no library entries {', '.join(unknown)}; the entries are "
                         f"{', '.join(known)}")
    return [known[n] for n in names]


def cmd_build(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .settings import Settings

    settings = Settings(**({"models": args.models} if args.models else {}))
    library, host = _library(settings)
    try:
        wanted = _wanted(args.only)
    except ValueError as exc:
        print(f"alertanim: {exc}", file=sys.stderr)
        return 2
    todo = [e for e in wanted if library.get(e.name) is None]
    print(f"library {library.run}: {len(wanted) - len(todo)} of {len(wanted)} entries stored, "
          f"{len(todo)} to build", file=sys.stderr)
    if not todo:
        return 0
    models = host.models()
    with tqdm(total=len(todo), unit="entry", disable=args.quiet, file=sys.stderr) as bar:
        def done(entry, built):
            bar.set_postfix_str(entry.name)
            bar.update(1)
        built = library.build(models, todo, batch=args.batch, on_entry=done)
    print(f"built {len(built)} entries", file=sys.stderr)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from .settings import Settings

    settings = Settings(**({"models": args.models} if args.models else {}))
    library, _ = _library(settings)
    rows = []
    for entry, stored in library.listing():
        gif = stored and next((r for r in stored.renditions if r.media_type == "image/gif"),
                              None)
        rows.append({"entry": entry.name, "hazard": entry.subject.hazard,
                     "stored": stored is not None, "prompt": entry.subject.prompt,
                     "gif_bytes": gif.bytes if gif else None,
                     "report_key": stored.report_key if stored else None})
    if args.json:
        print(json.dumps({"run": library.run, "entries": rows}, indent=2))
    else:
        print(f"library {library.run}: {sum(r['stored'] for r in rows)} of {len(rows)} stored")
        for r in rows:
            print(f"  {'✓' if r['stored'] else '·'} {r['entry']:<24} "
                  f"{(str(r['gif_bytes']) + ' B') if r['gif_bytes'] else '':>10}")
    return 0


def add_commands(sub) -> None:
    library = sub.add_parser("library", help="the scene library behind instant events")
    verbs = library.add_subparsers(dest="verb", required=True)
    build = verbs.add_parser("build", help="render the missing entries into the store")
    build.add_argument("--only", metavar="ENTRY,...", help="these entries only (hazard keys, "
                                                           "or 'neutral')")
    build.add_argument("--models", help="as ALERTANIM_MODELS")
    build.add_argument("--batch", type=int, default=1, help="entries rendered per model call")
    build.add_argument("--quiet", action="store_true")
    build.set_defaults(func=cmd_build)
    listing = verbs.add_parser("list", help="what the library holds")
    listing.add_argument("--models", help="as ALERTANIM_MODELS")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_list)
