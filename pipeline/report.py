"""One alert's animation explained on one page: a self-contained HTML file.

Every image is inline (data: URIs), the style is inline and there is no script, so the file
opens from disk, from an e-mail attachment or from an offline machine exactly as it was written.
Plots are matplotlib `Figure`s drawn by Agg, never pyplot, so rendering a report leaves no global
figure state behind in a worker.

Elements that readers (and tests) count carry stable classes and data attributes: one
`.candidate` per candidate (the best one also `.best`), `.variant`, `.frame`, `.rendition`,
and `data-candidates` / `data-variants` / `data-frames` on their sections.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from .config import MethodConfig
from .workflow import AlertRun

THUMB = 256  # longest side of a photo in the page; the GIF itself is shown at its own size
# The page's own policy, wherever it is opened from (disk, a mail, a presigned URL): its inline
# images and style, nothing fetched, no script.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
_OVERLAY = (230, 40, 40)

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1200px;color:#222;
background:#fff}
h1{font-size:20px}h2{font-size:16px;margin-top:28px;border-bottom:1px solid #ddd}
.alert{white-space:pre-wrap;background:#f6f6f6;padding:10px;border-left:4px solid #c33}
.grid{display:flex;flex-wrap:wrap;gap:10px}
figure{margin:0;text-align:center;font-size:12px}
figure img{width:160px;height:auto;image-rendering:pixelated;border:3px solid transparent}
figure.best img,figure.on-path img{border-color:#c33}
img.plot{max-width:100%;height:auto}
table{border-collapse:collapse}td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:left}
.over{color:#c00;font-weight:bold}
"""


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _attrs(**attrs) -> str:
    return "".join(f' {k.replace("_", "-")}="{_e(v)}"' for k, v in attrs.items() if v is not None)


def _uri(data: bytes, media_type: str) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"


def _photo(image: Image.Image, lossless: bool = False) -> str:
    """A thumbnail: JPEG for photographs (a tenth of PNG's time and bytes at this size), PNG
    where an edge must stay where it was (a mask over the image)."""
    image = image.convert("RGB")
    image.thumbnail((THUMB, THUMB))
    buf = io.BytesIO()
    if lossless:
        image.save(buf, "PNG", compress_level=6)
        return _uri(buf.getvalue(), "image/png")
    image.save(buf, "JPEG", quality=88)
    return _uri(buf.getvalue(), "image/jpeg")


def _plot(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return _uri(buf.getvalue(), "image/png")


def _overlay(image: Image.Image, mask: Image.Image) -> Image.Image:
    """`mask` tinted over `image` at half strength."""
    base = image.convert("RGB")
    tint = Image.new("RGB", base.size, _OVERLAY)
    alpha = mask.convert("L").resize(base.size, Image.Resampling.NEAREST).point(lambda v: v // 2)
    return Image.composite(tint, base, alpha)


def _figure(uri: str, caption: str, cls: str, **data) -> str:
    return (f'<figure class="{cls}"{_attrs(**data)}><img src="{uri}" alt="{_e(caption)}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _table(rows: Iterable[tuple], cls: str | None = None, head: tuple = ()) -> str:
    out = [f"<table{_attrs(**{'class': cls})}>"]
    if head:
        out.append("<tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>")
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>")
    out.append("</table>")
    return "".join(out)


def _scores_chart(values, best: int) -> Figure:
    fig = Figure(figsize=(max(4, 0.5 * len(values) + 2), 2.6))
    ax = fig.add_subplot()
    colors = ["#c33" if i == best else "#888" for i in range(len(values))]
    ax.bar(range(len(values)), values, color=colors)
    ax.set_xticks(range(len(values)))
    ax.set_xlabel("candidate")
    ax.set_ylabel("CLIPScore")
    ax.set_title(f"best: candidate {best} ({values[best]:.2f})")
    return fig


def _distance_chart(distances, indices, closed: bool, cost: float, largest: float) -> Figure:
    """The heat map of frame distances with the chosen path walked over it: step a → b is the
    cell in row a, column b."""
    d = np.asarray(distances, dtype=float)
    n = len(d)
    side = min(8.0, 2.5 + 0.35 * n)
    fig = Figure(figsize=(side + 1.2, side))
    ax = fig.add_subplot()
    im = ax.imshow(d, cmap="viridis")
    fig.colorbar(im, ax=ax, label="ViT feature distance")
    labels = ["best", *(f"v{i}" for i in range(1, n))]
    ax.set_xticks(range(n), labels, rotation=90, fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    pairs = list(zip(indices, indices[1:]))
    if closed and len(indices) > 1:
        pairs.append((indices[-1], indices[0]))
    for step, (a, b) in enumerate(pairs, 1):
        ax.plot(b, a, marker="s", markersize=max(6, 120 / n), markerfacecolor="none",
                markeredgecolor="#f33", markeredgewidth=2)
        ax.annotate(str(step), (b, a), color="white", ha="center", va="center", fontsize=8,
                    fontweight="bold")
    if pairs:
        ax.plot([b for _, b in pairs], [a for a, _ in pairs], color="#f33", linewidth=1,
                alpha=0.6)
    ax.set_xlabel("to")
    ax.set_ylabel("from")
    ax.set_title(f"path {' → '.join(labels[i] for i in indices)}"
                 f"{' → best' if closed and len(indices) > 1 else ''}\n"
                 f"cost {cost:.3f}, largest step {largest:.3f}", fontsize=9)
    return fig


def _seconds_chart(seconds: dict[str, float]) -> Figure:
    stages = [k for k in seconds if k != "total"]
    fig = Figure(figsize=(6, 0.35 * len(stages) + 1.0))
    ax = fig.add_subplot()
    ax.barh(stages, [seconds[s] for s in stages], color="#468")
    ax.invert_yaxis()
    ax.set_xlabel("seconds")
    ax.set_title(f"total {seconds.get('total', sum(seconds.values())):.2f} s")
    return fig


def _budget(media_type: str, config: MethodConfig) -> int | None:
    return {"image/gif": config.gif_max_bytes, "video/mp4": config.mp4_max_bytes}.get(media_type)


_REMEDIES = {"none": "none needed", "slower": "slowed down (key frames further apart)",
             "fewer key frames": "key frames dropped from the path",
             "still": "held still (the best image)"}


def _flash_table(flash) -> str:
    """WCAG 2.3.1 as measured on the loop (pipeline.flash): as built, what was done, as
    delivered. Empty for a run that did not measure it."""
    if flash is None:
        return ""
    rows = [("flashes per second, as built", f"{flash.built_flashes_per_second:g}"),
            ("made flash-safe", _REMEDIES.get(flash.remedy, flash.remedy)),
            ("flashes per second, as delivered", f"{flash.flashes_per_second:g}"),
            ("red flashes per second, as delivered", f"{flash.red_flashes_per_second:g}"),
            ("three flashes or below threshold (WCAG 2.3.1)",
             "pass" if flash.flash_safe else "FAIL")]
    data = _attrs(data_flash_safe=str(flash.flash_safe).lower(),
                  data_flashes_per_second=f"{flash.flashes_per_second:g}",
                  data_remedy=flash.remedy)
    return f'<h3>Flashes</h3><div id="flash"{data}>{_table(rows, cls="flash")}</div>'


def render_report(run: AlertRun, config: MethodConfig) -> str:
    """The HTML page for one finished run (`config` is the one it ran with)."""
    subject, scores, path = run.subject, run.scores, run.path
    coverage = run.mask_coverage
    on_path = set(path.indices)
    parts = [
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        f"<title>alertanim: {_e(subject.word)}</title><style>{_CSS}</style></head><body>",
        "<h1>How this alert became an animation</h1>",
        f'<section id="alert"><h2>Alert</h2><div class="alert">{_e(run.text)}</div>',
        _table([("word", subject.word),
                ("hazard", subject.hazard if subject.hazard is not None
                 else "none found (neutral scene)"),
                ("language", subject.language), ("source", subject.source),
                ("matched", subject.matched if subject.matched is not None else "—"),
                ("prompt", subject.prompt)], cls="subject"),
        "</section>",
    ]

    parts.append(f'<section id="candidates"{_attrs(data_candidates=len(run.candidates))}>'
                 f"<h2>Candidates and their CLIPScore</h2>"
                 f'<img class="plot" id="scores-chart" alt="CLIPScore per candidate" '
                 f'src="{_plot(_scores_chart(scores.values, scores.best_index))}"><div class="grid">')
    for i, (image, score) in enumerate(zip(run.candidates, scores.values)):
        best = i == scores.best_index
        parts.append(_figure(_photo(image), f"{i}: {score:.2f}{' (best)' if best else ''}",
                             "candidate best" if best else "candidate", data_index=i,
                             data_score=f"{score:.4f}"))
    parts.append("</div></section>")

    parts.append('<section id="masks"><h2>Masks over the best image</h2><div class="grid">')
    parts.append(_figure(_photo(run.best_image), "best image", "mask-base"))
    parts.append(_figure(_photo(_overlay(run.best_image, run.values["subject_mask"]), True),
                         f"subject mask ({subject.word}): {coverage.subject:.1%}", "mask",
                         id="subject-mask", data_coverage=f"{coverage.subject:.4f}"))
    parts.append(_figure(_photo(_overlay(run.best_image, run.mask), True),
                         f"united mask (repainted): {coverage.combined:.1%}", "mask",
                         id="united-mask", data_coverage=f"{coverage.combined:.4f}"))
    parts.append("</div></section>")

    parts.append(f'<section id="variants"{_attrs(data_variants=len(run.variants))}>'
                 f'<h2>Variants (outlined: on the path)</h2><div class="grid">')
    for i, image in enumerate(run.variants, 1):
        cls = "variant on-path" if i in on_path else "variant"
        parts.append(_figure(_photo(image), f"v{i}", cls, data_index=i))
    parts.append("</div></section>")

    heat = _distance_chart(run.values["distances"], path.indices, config.loop, path.cost,
                           path.largest_step)
    parts.append(f'<section id="distances"{_attrs(data_cost=f"{path.cost:.4f}")}'
                 f'{_attrs(data_largest_step=f"{path.largest_step:.4f}")}>'
                 f"<h2>Distances and the chosen path</h2>"
                 f'<img class="plot" id="distance-chart" alt="distance matrix with the path" '
                 f'src="{_plot(heat)}"></section>')

    parts.append(f'<section id="frames"{_attrs(data_frames=len(run.frames))}>'
                 f'<h2>Key frames, in order</h2><div class="grid">')
    for step, (image, index) in enumerate(zip(run.frames, path.indices)):
        name = "best" if index == 0 else f"v{index}"
        parts.append(_figure(_photo(image), f"{step + 1}: {name}", "frame", data_index=index))
    parts.append("</div></section>")

    gif = run.gif
    rows = []
    for a in run.animations:
        budget = _budget(a.content_type, config)
        over = ' class="over"' if budget is not None and len(a.data) > budget else ""
        rows.append(f'<tr class="rendition"{_attrs(data_type=a.content_type)}'
                    f'{_attrs(data_bytes=len(a.data), data_budget=budget)}>'
                    f"<td>{_e(a.content_type)}</td><td>{a.width}×{a.height}</td>"
                    f"<td>{a.frame_count}</td><td{over}>"
                    f"{len(a.data):,}</td>"
                    f"<td>{'—' if budget is None else f'{len(a.data) / budget:.0%} of {budget:,}'}"
                    f"</td></tr>")
    parts.append(
        '<section id="animation"><h2>The animation</h2>'
        f'<figure class="animation"><img id="animation-gif" src="{_uri(gif.data, "image/gif")}" '
        f'alt="{_e(subject.word)} animation" style="width:384px;max-width:100%">'
        f"<figcaption>GIF, {gif.frame_count} frames, {gif.duration_ms} ms a loop</figcaption>"
        "</figure><table><tr><th>rendition</th><th>size</th><th>frames</th><th>bytes</th>"
        f"<th>budget</th></tr>{''.join(rows)}</table></section>")

    parts.append('<section id="seconds"><h2>Seconds per stage</h2>'
                 f'<img class="plot" id="seconds-chart" alt="seconds per stage" '
                 f'src="{_plot(_seconds_chart(run.seconds))}"></section>')
    parts.append('<section id="quality"><h2>Quality</h2>'
                 + _table(run.quality.as_dict().items(), cls="quality")
                 + _flash_table(run.values.get("flash")) + "</section>")
    parts.append("</body></html>")
    return "\n".join(parts)
