"""The status page: what the worker group is doing, as any of its workers sees it.

Every worker follows the stage topics, `ready` and `failed` from a little before their ends with a
consumer of its own (no group: each reads everything), so every worker shows the same list. The
`Board` is what it has read: the last N alerts and the stage timings of the last minutes. It is
plain data, fed by `follow`, and drawn as HTML by `render_status`: no script, no file from
outside the worker; the page reloads itself.

Only alerts for the public are listed: an alert whose CAP `<scope>` is Restricted or Private
(`Alert.scope`) never gets a row, nor one whose scope the board cannot know (a CAP alert seen
only by its `ready` event); such an alert's failure shows its id and reason, never its text.
The per-stage figures and the lag count every alert.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import time
from collections import OrderedDict, deque
from dataclasses import asdict, dataclass
from urllib.parse import quote

from alertanim.pipeline import graph
from alertanim.schemas import AnimationReady, FailureRecord, StageMessage
from alertanim.schemas.cap import is_cap, parse_cap

from .topology import INGEST

log = logging.getLogger("alertanim")

TEXT_WORDS = 12  # how much of an alert's text a row shows
_MAX_TIMINGS = 20_000  # a hard bound on the window, whatever the rate
_ORDER = {stage: i for i, stage in enumerate(graph.NAMES)}


@dataclass
class AlertRow:
    alert_id: str
    text: str = ""
    subject: str | None = None
    state: str = "received"  # a stage's name (waiting for it), "ready" or "failed"
    reason: str | None = None  # why it failed
    received_at: float | None = None
    latency_s: float | None = None  # received → ready
    run: str | None = None
    media: tuple[str, ...] = ()  # the renditions' media types, when ready
    report: bool = False
    updated_at: float = 0.0


@dataclass(frozen=True)
class StageFigures:
    stage: str
    per_minute: float | None  # messages that reached the stage, per minute over the window
    p50_s: float | None  # seconds the stage took, over the alerts completed in the window
    p95_s: float | None
    count: int  # completed alerts the percentiles are over


def _first_words(text: str, n: int = TEXT_WORDS) -> str:
    words = text.split()
    return " ".join(words[:n]) + (" …" if len(words) > n else "")


def is_public(scope: str | None) -> bool:
    """An alert's scope allows the page: CAP's Public, or none given (a JSON alert)."""
    return scope in (None, "Public")


def _payload_scope(record: FailureRecord) -> tuple[bool, str | None]:
    """What a failure record's payload says of its alert's scope: (read, scope). The payload is
    the input itself (CAP XML or a JSON alert) or a stage message; a cut or unreadable one says
    nothing."""
    if record.payload_encoding != "utf-8" or record.payload_truncated:
        return False, None
    raw = record.payload.encode("utf-8")
    if is_cap(raw):
        try:
            return True, parse_cap(raw).scope
        except Exception:  # noqa: BLE001 - InvalidAlert, or anything a broken document gives
            return False, None
    try:
        body = json.loads(raw)
    except ValueError:
        return True, None  # not JSON: not an alert at all, so no scope to keep
    if isinstance(body, dict) and isinstance(body.get("alert"), dict):
        body = body["alert"]  # a stage message
    if not isinstance(body, dict):
        return True, None
    scope = body.get("scope")
    return True, scope if isinstance(scope, str) or scope is None else "unreadable"


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    i = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[i]


class Board:
    def __init__(self, settings, keep: int | None = None, window_s: float | None = None,
                 clock=time.time):
        self.settings = settings
        self.keep = keep or settings.status_alerts
        self.window_s = window_s or settings.status_window_s
        self.clock = clock
        self.rows: OrderedDict[str, AlertRow] = OrderedDict()
        self._arrivals: deque[tuple[float, str]] = deque()  # (when, stage) a message reached
        self._timings: deque[tuple[float, dict[str, float]]] = deque()  # (when, stage seconds)
        self.lag: dict[str, int] = {}  # the group's lag per topic it reads
        self.lag_at: float | None = None
        self.read = 0  # records read
        # ids of the last alerts known not to be for the public: never given a row; and of rows
        # made from a failure whose scope could not be read (shown without text)
        self._hidden: OrderedDict[str, None] = OrderedDict()
        self._unsure: OrderedDict[str, None] = OrderedDict()
        self._stage_of = {settings.stage_topic(s): s for s in graph.NAMES}

    # -- what was read -----------------------------------------------------------------------
    def observe(self, topic: str, value: bytes, timestamp: float | None = None) -> None:
        """One record of a followed topic. A record that cannot be read is skipped: the page
        shows what the group did, and the `failed` topic already holds every refusal."""
        when = timestamp if timestamp is not None else self.clock()
        self.read += 1
        try:
            if topic == self.settings.topic_ready:
                self._ready(AnimationReady.from_bytes(value), when)
            elif topic == self.settings.topic_failed:
                self._failed(FailureRecord.from_bytes(value), when)
            elif topic in self._stage_of:
                self._stage(self._stage_of[topic], StageMessage.from_bytes(value), when)
        except ValueError:
            return

    def _row(self, alert_id: str, when: float) -> AlertRow:
        row = self.rows.get(alert_id)
        if row is None:
            row = self.rows[alert_id] = AlertRow(alert_id)
        row.updated_at = max(row.updated_at, when)
        self.rows.move_to_end(alert_id)
        while len(self.rows) > self.keep:
            self.rows.popitem(last=False)
        return row

    def _mark(self, ids: OrderedDict, alert_id: str) -> None:
        ids[alert_id] = None
        ids.move_to_end(alert_id)
        while len(ids) > 4 * self.keep:
            ids.popitem(last=False)

    def _hide(self, alert_id: str) -> None:
        self.rows.pop(alert_id, None)
        self._unsure.pop(alert_id, None)
        self._mark(self._hidden, alert_id)

    def _known_public(self, alert_id: str) -> bool:
        return alert_id in self.rows and alert_id not in self._unsure

    def _stage(self, stage: str, msg: StageMessage, when: float) -> None:
        self._arrivals.append((when, stage))
        if not is_public(msg.alert.scope):
            self._hide(msg.alert_id)
            self._trim(when)
            return
        self._unsure.pop(msg.alert_id, None)
        row = self._row(msg.alert_id, when)
        row.text = _first_words(msg.alert.text)
        row.received_at = msg.received_at
        subject = msg.artifacts.get("subject")
        if subject is not None and isinstance(getattr(subject, "value", None), dict):
            row.subject = subject.value.get("word") or row.subject
        # topics are read side by side: a stage only ever moves an alert forward
        if row.state not in ("ready", "failed") and _ORDER[stage] >= _ORDER.get(row.state, -1):
            row.state = stage
        self._trim(when)

    def _ready(self, ready: AnimationReady, when: float) -> None:
        self._timings.append((when, dict(ready.stage_seconds)))
        self._trim(when)
        # The event does not carry the scope: a CAP alert is shown only once its stage
        # messages said it is Public (a JSON alert without a row has none to say otherwise).
        if ready.alert_id in self._hidden or (ready.cap is not None
                                              and not self._known_public(ready.alert_id)):
            return
        row = self._row(ready.alert_id, when)
        row.state, row.reason = "ready", None
        row.subject, row.run = ready.subject, ready.run
        row.latency_s = ready.latency_seconds
        row.media = tuple(r.media_type for r in ready.renditions)
        row.report = ready.report is not None
        if not row.text and ready.alt_text:
            row.text = _first_words(ready.alt_text)

    def _failed(self, record: FailureRecord, when: float) -> None:
        if record.alert_id is None:  # unreadable input: it has no row, only a reason
            alert_id = f"(no id) {record.payload_sha256[:12]}"
        else:
            alert_id = record.alert_id[:128]  # unchecked where ingest refused it
        if alert_id in self._hidden:
            return
        show_text = self._known_public(alert_id)
        if not show_text:
            read, scope = _payload_scope(record)
            if read and not is_public(scope):
                self._hide(alert_id)
                return
            show_text = read  # an input whose scope cannot be read keeps only id and reason
            if read:
                self._unsure.pop(alert_id, None)
            else:
                self._mark(self._unsure, alert_id)
        row = self._row(alert_id, when)
        if row.state == "ready":  # a late record of a copy; the alert itself went out
            return
        row.state, row.reason = "failed", record.reason
        if show_text and not row.text and record.payload_encoding == "utf-8":
            row.text = _first_words(record.payload[:400])

    def _trim(self, now: float) -> None:
        horizon = now - self.window_s
        for q in (self._arrivals, self._timings):
            while q and (q[0][0] < horizon or len(q) > _MAX_TIMINGS):
                q.popleft()

    # -- what is shown -----------------------------------------------------------------------
    def recent(self) -> list[AlertRow]:
        return sorted(self.rows.values(), key=lambda r: r.updated_at, reverse=True)

    def figures(self) -> list[StageFigures]:
        now = self.clock()
        horizon = now - self.window_s
        minutes = self.window_s / 60
        out = []
        for stage in (INGEST, *graph.NAMES):
            # (ingest reads the alerts topic, which the page does not follow: raw input)
            arrivals = (None if stage == INGEST else
                        round(sum(1 for t, s in self._arrivals if t >= horizon and s == stage)
                              / minutes, 2))
            seconds = [d[stage] for t, d in self._timings if t >= horizon and stage in d]
            out.append(StageFigures(stage, arrivals,
                                    _percentile(seconds, .5), _percentile(seconds, .95),
                                    len(seconds)))
        return out

    def snapshot(self) -> dict:
        return {"alerts": [asdict(r) for r in self.recent()],
                "stages": [asdict(f) for f in self.figures()],
                "lag": dict(self.lag), "lag_at": self.lag_at, "read": self.read,
                "window_s": self.window_s}

    def ready_run(self, alert_id: str) -> AlertRow | None:
        row = self.rows.get(alert_id)
        return row if row is not None and row.state == "ready" and row.run else None


# -- following the topics ---------------------------------------------------------------------
async def follow(board: Board, settings, on_lag=None, lag_every_s: float = 5.0) -> None:
    """Read the followed topics into `board` until cancelled; broker trouble is waited out."""
    while True:
        try:
            await _follow_once(board, settings, on_lag, lag_every_s)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the page must never take the worker down
            log.warning("status page: cannot follow the topics (%r); retrying", exc)
            await asyncio.sleep(2.0)


async def _follow_once(board: Board, settings, on_lag, lag_every_s: float) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    kw = settings.kafka_client_kwargs()
    consumer = AIOKafkaConsumer(**kw, group_id=None, enable_auto_commit=False,
                                isolation_level="read_committed")
    admin = AIOKafkaAdminClient(**kw)
    try:
        await consumer.start()
        await admin.start()
        followed = [settings.topic_ready, settings.topic_failed,
                    *(settings.stage_topic(s) for s in graph.NAMES)]
        grouped = [settings.topic_alerts, *(settings.stage_topic(s) for s in graph.NAMES)]
        partitions = {t["topic"]: sorted(p["partition"] for p in t["partitions"])
                      for t in await admin.describe_topics([*followed, settings.topic_alerts])}
        tps = [TopicPartition(t, p) for t in followed for p in partitions.get(t, ())]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        begins = await consumer.beginning_offsets(tps)
        for tp in tps:  # a little before the end: enough for the list, not the whole history
            consumer.seek(tp, max(begins[tp], ends[tp] - board.keep))
        lag_tps = [TopicPartition(t, p) for t in grouped for p in partitions.get(t, ())]
        if not tps or not lag_tps:
            raise RuntimeError("the pipeline's topics are not there yet")
        next_lag = 0.0
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=500)
            for tp, records in batches.items():
                for r in records:
                    board.observe(tp.topic, r.value or b"", r.timestamp / 1000)
            if time.monotonic() >= next_lag:
                next_lag = time.monotonic() + lag_every_s
                await _lag(board, settings, consumer, admin, lag_tps, on_lag)
    finally:
        await _quietly(consumer.stop())
        await _quietly(admin.close())


async def _quietly(closing) -> None:
    try:
        await closing
    except Exception:  # noqa: BLE001 - closing what may never have started
        pass


async def _lag(board: Board, settings, consumer, admin, tps, on_lag) -> None:
    """The group's lag per topic: the end of each partition less what the group committed."""
    committed = await admin.list_consumer_group_offsets(settings.app_id)
    ends = await consumer.end_offsets(tps)
    begins = await consumer.beginning_offsets(tps)
    lag: dict[str, int] = {}
    for tp in tps:
        meta = committed.get(tp)
        done = meta.offset if meta is not None and meta.offset >= 0 else begins[tp]
        lag[tp.topic] = lag.get(tp.topic, 0) + max(0, ends[tp] - done)
    board.lag, board.lag_at = lag, time.time()
    if on_lag is not None:
        on_lag(lag)


# -- the page ---------------------------------------------------------------------------------
_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:20px;color:#222;background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 6px}
table{border-collapse:collapse}td,th{padding:4px 10px;border-bottom:1px solid #eee;
text-align:left;vertical-align:middle}th{background:#f4f4f4}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.state-ready{color:#16692e;font-weight:bold}.state-failed{color:#b00020;font-weight:bold}
.state-flight{color:#8a5a00}img.thumb{width:96px;height:96px;object-fit:cover;display:block}
.muted{color:#777}
"""


def _e(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _s(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def render_status(board: Board, refresh_s: int = 5, worker: str = "", library=None) -> str:
    """The page. `library`: the scene library's entries with what is stored for each
    ((Entry, LibraryEntry | None) pairs), shown so an operator sees every picture the public
    may get; None leaves the section out."""
    rows = board.recent()
    counts = {k: sum(1 for r in rows if r.state == k) for k in ("ready", "failed")}
    flight = len(rows) - counts["ready"] - counts["failed"]
    parts = [
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        f'<meta http-equiv="refresh" content="{int(refresh_s)}">',
        f"<title>alertanim status</title><style>{_CSS}</style></head>",
        f'<body data-alerts="{len(rows)}" data-ready="{counts["ready"]}" '
        f'data-failed="{counts["failed"]}" data-in-flight="{flight}">',
        "<h1>alertanim: the last alerts of this worker group</h1>",
        f'<p class="muted">{_e(worker)} · refreshes every {int(refresh_s)} s · '
        f"{counts['ready']} ready, {counts['failed']} failed, {flight} in flight of the last "
        f"{board.keep} · page drawn {time.strftime('%H:%M:%S UTC', time.gmtime())}</p>",
        '<h2>Alerts</h2><table id="alerts"><tr><th>animation</th><th>alert</th><th>text</th>'
        "<th>subject</th><th>status</th><th>latency (s)</th><th>report</th></tr>",
    ]
    for r in rows:
        aid = quote(r.alert_id, safe="")
        if r.state == "ready":
            status, cls = "ready", "state-ready"
        elif r.state == "failed":
            status, cls = f"failed: {r.reason}", "state-failed"
        else:
            status, cls = f"at {r.state}", "state-flight"
        thumb = (f'<img class="thumb" src="/alerts/{aid}/animation.gif" alt="{_e(r.subject)}">'
                 if "image/gif" in r.media else "")
        report = (f'<a class="report" href="/alerts/{aid}/report.html">report</a>'
                  if r.report else "")
        parts.append(
            f'<tr class="alert" data-id="{_e(r.alert_id)}" data-state="{_e(r.state)}"'
            f' data-reason="{_e(r.reason)}"><td>{thumb}</td><td>{_e(r.alert_id)}</td>'
            f"<td>{_e(r.text)}</td><td>{_e(r.subject)}</td>"
            f'<td class="{cls}">{_e(status)}</td><td class="num">{_s(r.latency_s)}</td>'
            f"<td>{report}</td></tr>")
    parts.append("</table>")
    minutes = board.window_s / 60
    parts.append(f"<h2>Stages, last {minutes:g} minutes</h2><table id=\"stages\"><tr>"
                 "<th>stage</th><th>messages / min</th><th>p50 s</th><th>p95 s</th>"
                 "<th>completed alerts</th></tr>")
    for f in board.figures():
        parts.append(f'<tr class="stage" data-stage="{_e(f.stage)}"><td>{_e(f.stage)}</td>'
                     f'<td class="num">{_s(f.per_minute)}</td><td class="num">{_s(f.p50_s, 3)}'
                     f'</td><td class="num">{_s(f.p95_s, 3)}</td><td class="num">{f.count}</td>'
                     "</tr>")
    parts.append("</table>")
    parts.append('<h2>Consumer lag (messages not yet processed)</h2><table id="lag">'
                 "<tr><th>topic</th><th>lag</th></tr>")
    for topic, lag in sorted(board.lag.items()):
        parts.append(f'<tr class="lag" data-topic="{_e(topic)}"><td>{_e(topic)}</td>'
                     f'<td class="num">{lag}</td></tr>')
    if not board.lag:
        parts.append('<tr><td colspan="2" class="muted">not read yet</td></tr>')
    parts.append("</table>")
    if library is not None:
        stored = sum(1 for _, e in library if e is not None)
        parts.append(f'<h2>Scene library ({stored} of {len(library)} entries)</h2>'
                     '<p class="muted">What an alert\'s instant event shows, by hazard.</p>'
                     '<table id="library"><tr><th>animation</th><th>entry</th><th>scene</th>'
                     "<th>report</th></tr>")
        for entry, found in library:
            name = quote(entry.name, safe="")
            thumb = (f'<img class="thumb" src="/library/{name}/animation.gif" '
                     f'alt="{_e(entry.subject.word)}">' if found is not None else
                     '<span class="muted">not built</span>')
            report = (f'<a class="report" href="/library/{name}/report.html">report</a>'
                      if found is not None and found.report_key else "")
            parts.append(f'<tr class="entry" data-entry="{_e(entry.name)}" '
                         f'data-stored="{str(found is not None).lower()}"><td>{thumb}</td>'
                         f"<td>{_e(entry.name)}</td><td>{_e(entry.subject.prompt)}</td>"
                         f"<td>{report}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)
