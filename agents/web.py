"""The worker's web port: the status page and its snapshot, the thumbnails and reports of the
alerts on the page (read from the store by keys the ledger derives, never by a path a client
names), health, readiness and Prometheus metrics. Faust's own pages are off (agents/app.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from alertanim.pipeline.library import entries
from alertanim.schemas.errors import ArtifactMissing

from .status import Board, render_status

PAGE_CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'"
REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def add_routes(app, *, settings, stages: tuple[str, ...], board: Board, ledger, store, metrics,
               page_threads, library, ready_now: Callable[[], tuple[bool, str]]) -> None:
    known = {e.name for e in entries()}
    async def stored(key: str, content_type: str, web):
        try:
            data = await asyncio.get_running_loop().run_in_executor(page_threads, store.get, key)
        except ArtifactMissing:
            return web.text("not in the store", status=404)
        except Exception as exc:  # noqa: BLE001 - unreachable: the page goes on
            return web.text(f"store unavailable: {type(exc).__name__}", status=503)
        # a run's objects never change under their keys
        headers = {"Cache-Control": "private, max-age=86400, immutable",
                   "X-Content-Type-Options": "nosniff"}
        if content_type == "text/html":  # the report: inline images and style, nothing else
            headers["Content-Security-Policy"] = REPORT_CSP
            return web.html(data.decode("utf-8"), headers=headers)
        return web.bytes(data, content_type=content_type, headers=headers)

    @app.page("/")
    async def status_page(web, request):
        try:
            shelf = await asyncio.get_running_loop().run_in_executor(page_threads,
                                                                     library.listing)
        except Exception:  # noqa: BLE001 - the store is away: the page goes on without it
            shelf = None
        return web.html(render_status(board, worker=f"{settings.app_id} · {', '.join(stages)}",
                                      library=shelf),
                        headers={"Content-Security-Policy": PAGE_CSP,
                                 "X-Content-Type-Options": "nosniff",
                                 "Cache-Control": "no-store"})

    @app.page("/status.json")
    async def status_json(web, request):
        return web.json(board.snapshot())

    @app.page("/alerts/{alert_id}/animation.gif")
    async def thumbnail(web, request, alert_id):
        row = board.ready_run(alert_id)  # only alerts on the page; keys from the ledger
        if row is None or "image/gif" not in row.media:
            return web.text("no such animation", status=404)
        return await stored(ledger.rendition_key(alert_id, row.run, "image/gif"), "image/gif",
                            web)

    @app.page("/alerts/{alert_id}/report.html")
    async def report(web, request, alert_id):
        row = board.ready_run(alert_id)
        if row is None or not row.report:
            return web.text("no such report", status=404)
        return await stored(ledger.report_key(alert_id, row.run), "text/html", web)

    @app.page("/library/{entry}/animation.gif")
    async def library_thumbnail(web, request, entry):
        if entry not in known:  # only entries the library can hold; keys from the ledger
            return web.text("no such entry", status=404)
        return await stored(ledger.library_rendition_key(library.run, entry, "image/gif"),
                            "image/gif", web)

    @app.page("/library/{entry}/report.html")
    async def library_report(web, request, entry):
        if entry not in known:
            return web.text("no such entry", status=404)
        return await stored(ledger.library_report_key(library.run, entry), "text/html", web)

    @app.page("/healthz")
    async def healthz(web, request):
        return web.json({"ok": True})

    @app.page("/ready")
    async def readiness(web, request):
        ok, why = ready_now()
        return web.json({"ready": ok, "detail": why, "stages": list(stages)},
                        status=200 if ok else 503)

    @app.page("/metrics")
    async def prometheus(web, request):
        return web.bytes(metrics.render(), content_type="text/plain; version=0.0.4")
