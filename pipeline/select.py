"""The select stage (the seed's step 4a): choose the most analogous ordered frames.

ViT-B/16 features of the best image and its variants, pairwise Euclidean distances, and an exact
dynamic programme (`select_path`) for the cheapest path of k frames: which k-1 variants follow the
best image *and in which order*, minimising the summed distance between consecutive frames (plus
the way back to the best image when the animation loops).

The DP is Held–Karp over subsets of the n-1 frames other than the start: a state is (the set of
frames used so far, the frame it stands on), and only sets of fewer than k frames are ever formed
(the last step only adds the way back, if any). That is at most Σ_{s=1}^{k-2} C(n-1, s)·(n-1)
states with n-1 moves each, O(2^(n-1)·n²) when k = n and far less when k is small against n: at
the method's n = 17, k = 8, 14,892 sets and 3.8 M additions. Each layer of equal-sized sets is one
numpy min-plus product, so a selection takes a few milliseconds. It is still exponential in n:
at n = 30, k = 8 it takes about 0.5 s and 0.5 GB (2.5 s on the first call, which builds the
subset index that later calls reuse).

`select_path_in_order` is the earlier approximation, kept for comparison (tests/bench/
bench_select.py): it fixes the order in advance (by distance from the start) and only chooses
which frames to keep, which is optimal inside that order and not in general.

Neither needs torch, so both can be checked against brute force without the models.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .score import Scores, clip_scores
from .stage import Context, Kind, Port, Row, Stage, row_by_row

# Equal-cost paths summed in different orders differ in the last bits; costs this close (relative
# to k times the largest distance) are treated as equal so that the tie rule, not rounding, picks.
_TIE_RTOL = 1e-12
# Sets are bitmasks in int64.
_MAX_NODES = 63


@dataclass(frozen=True)
class FramePath:
    indices: tuple[int, ...]  # into the distance matrix, starting with `start`
    cost: float  # summed distance between consecutive frames (and back to start when closed)
    steps: tuple[float, ...] = ()  # each of those distances, in path order

    @property
    def largest_step(self) -> float:
        return max(self.steps, default=0.0)

    @classmethod
    def along(cls, d: np.ndarray, indices: Sequence[int], closed: bool) -> FramePath:
        """The path through `indices`, its steps summed in path order as anyone checking it
        would (not in the DP's order of additions)."""
        indices = tuple(int(i) for i in indices)
        pairs = list(zip(indices, indices[1:]))
        if closed and len(indices) > 1:
            pairs.append((indices[-1], indices[0]))
        steps = tuple(float(d[a][b]) for a, b in pairs)
        return cls(indices=indices, cost=sum(steps), steps=steps)


def _as_matrix(dist) -> np.ndarray:
    d = np.asarray(dist, dtype=np.float64)
    if d.size == 0:
        d = d.reshape(0, 0)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ValueError(f"dist must be a square matrix, got shape {d.shape}")
    if not np.isfinite(d).all():
        raise ValueError("dist must be finite")
    return d


@lru_cache(maxsize=8)
def _subset_layers(m: int, depth: int) -> tuple[tuple[np.ndarray, np.ndarray | None], ...]:
    """Index of the subsets of {0..m-1} with 1..depth-1 elements, one entry per size s.

    Entry s-1 is (free, up), both (m, sets): free[x, l] says x is not in the l-th s-subset;
    up[x, l] is the column of that subset plus x among the (s+1)-subsets (0 where x is not free;
    None for the last size). Element-major because the DP's min-plus product then runs over
    contiguous rows. Subsets are in colex order (= ascending bitmask), so a subset's column is its
    colex rank, computed from binomials instead of a 2^m lookup table; that keeps memory at the
    size of the DP itself when k is small against n. Depends on (m, depth) only: built once.
    """
    bits = np.int64(1) << np.arange(m, dtype=np.int64)
    # binom[b, t] = C(b, t); t runs to m + 1 because an element's rank term can be C(b, s + 1)
    binom = np.array([[math.comb(b, t) for t in range(m + 2)] for b in range(m)], dtype=np.int64)
    rows = np.arange(m)[:, None]
    masks = bits  # the 1-subsets; {x} has rank x
    layers = []
    for s in range(1, depth):
        member = ((masks[None, :] >> rows) & 1).astype(bool)
        free = ~member
        up = None
        if s < depth - 1:
            # colex rank of M ∪ {x} = Σ over M's elements b below x of C(b, ord + 1)
            #                         + C(x, #below + 1) + Σ over those above x of C(b, ord + 2)
            below = np.cumsum(member, axis=0) - member  # elements of M below each position
            lo = np.where(member, binom[rows, below + 1], 0)
            hi = np.where(member, binom[rows, below + 2], 0)
            up = (np.cumsum(lo, axis=0) - lo) + binom[rows, below + 1] \
                + (hi.sum(axis=0, keepdims=True) - np.cumsum(hi, axis=0))
            up = np.where(free, up, 0).astype(np.intp)
            grown = np.empty(math.comb(m, s + 1), dtype=np.int64)
            grown[up[free]] = (masks[None, :] | bits[:, None])[free]
            masks = grown
        for a in (free, up):
            if a is not None:
                a.setflags(write=False)
        layers.append((free, up))
    return tuple(layers)


def _first_within(costs: np.ndarray, tol: float) -> int:
    return int(np.flatnonzero(costs <= costs.min() + tol)[0])


def select_path(dist, k: int, start: int = 0, closed: bool = False) -> FramePath:
    """The cheapest path of `k` distinct frames beginning at `start`, over every set and order.

    Cost is the sum of dist[a][b] over consecutive frames, plus dist[last][start] when `closed`.
    The matrix need not be symmetric (each edge is read in the direction it is walked). Among
    paths of equal cost the lexicographically smallest index tuple wins: the path is rebuilt from
    the start, each step taking the smallest next frame that still completes an optimal path.

    The DP runs backward from the end: finish[s][j, U] is the cheapest way to finish from frame j
    having used the s-set U (j in U), so choosing each next frame from the start needs only table
    lookups, which is what lets the tie rule be applied front to back.
    """
    d = _as_matrix(dist)
    n = len(d)
    if not 1 <= k <= n:
        raise ValueError(f"k must be in 1..{n}, got {k}")
    if not 0 <= start < n:
        raise ValueError(f"start must be in 0..{n - 1}, got {start}")
    if n > _MAX_NODES:
        raise ValueError(f"at most {_MAX_NODES} frames, got {n}")
    if k == 1:
        return FramePath(indices=(start,), cost=0.0)

    others = np.array([i for i in range(n) if i != start])
    m = n - 1
    step = d[np.ix_(others, others)]  # step[a, b]: from the a-th other frame to the b-th
    leave = d[start, others]
    tail = d[others, start] if closed else np.zeros(m)  # what finishing at each frame adds
    depth = k - 1  # frames after the start
    layers = _subset_layers(m, depth)
    rows = np.arange(m)

    def ahead(s: int, cols) -> np.ndarray:
        """Cost of stepping to each free x from the s-sets at `cols` and finishing from there."""
        free, up = layers[s - 1]
        if s == depth - 1:
            nxt = np.broadcast_to(tail[:, None], free.shape)[:, cols]
        else:
            nxt = finish[s + 1][rows[:, None], up[:, cols]]
        return np.where(free[:, cols], nxt, np.inf)

    finish: dict[int, np.ndarray] = {}
    for s in range(depth - 1, 0, -1):
        g = ahead(s, slice(None))
        # min-plus product f[j, U] = min_x step[j, x] + g[x, U], one x at a time so the
        # temporary stays (m × sets) rather than (m × m × sets)
        f = step[:, 0, None] + g[0]
        buf = np.empty_like(f)
        for x in range(1, m):
            np.add(step[:, x, None], g[x], out=buf)
            np.minimum(f, buf, out=f)
        finish[s] = f

    # the 1-set {j} is column j of the first layer
    first = leave + (finish[1][rows, rows] if depth > 1 else tail)
    tol = _TIE_RTOL * k * float(np.abs(d).max())
    j = _first_within(first, tol)
    chosen, col = [j], j
    for s in range(1, depth):
        x = _first_within(step[j] + ahead(s, [col])[:, 0], tol)
        if s < depth - 1:
            col = int(layers[s - 1][1][x, col])
        chosen.append(x)
        j = x

    return FramePath.along(d, (start, *(int(others[x]) for x in chosen)), closed)


def visit_order(dist: Sequence[Sequence[float]], start: int) -> list[int]:
    """All nodes by distance from `start` (ties by index), `start` first: the order that
    `select_path_in_order` is restricted to."""
    others = sorted((i for i in range(len(dist)) if i != start), key=lambda i: (dist[start][i], i))
    return [start, *others]


def select_path_in_order(
    dist: Sequence[Sequence[float]], k: int, start: int = 0, closed: bool = False
) -> FramePath:
    """The earlier approximation, kept for comparison: the cheapest `k` frames in `visit_order`.

    A path is any combination of k candidates that keeps that order and begins at `start`.
    best[j][i] is the cheapest such path of j+1 frames ending at rank i, so the table costs
    O(k·n²); it is optimal within the fixed order only (`select_path` is optimal over all orders).
    """
    n = len(dist)
    if not 1 <= k <= n:
        raise ValueError(f"k must be in 1..{n}, got {k}")
    order = visit_order(dist, start)
    d = [[float(dist[a][b]) for b in order] for a in order]
    inf = math.inf
    best = [[inf] * n for _ in range(k)]
    back = [[-1] * n for _ in range(k)]
    best[0][0] = 0.0
    for j in range(1, k):
        for i in range(j, n):
            for p in range(j - 1, i):
                c = best[j - 1][p] + d[p][i]
                if c < best[j][i]:
                    best[j][i], back[j][i] = c, p
    tail = (lambda i: d[i][0]) if closed else (lambda i: 0.0)
    end = min(range(k - 1, n), key=lambda i: (best[k - 1][i] + tail(i), i))
    ranks = [end]
    for j in range(k - 1, 0, -1):
        ranks.append(back[j][ranks[-1]])
    return FramePath.along(dist, [order[r] for r in reversed(ranks)], closed)


def pairwise_distances(features: Sequence[Sequence[float]]) -> list[list[float]]:
    """Euclidean distance matrix of row vectors (pure Python; the torch path is `distance_matrix`)."""
    return [[math.dist(a, b) for b in features] for a in features]


def image_features(vit, processor, images, device=None):
    """CLS-token ViT features, one row per image."""
    import torch

    device = device or vit.device
    inputs = processor(images=images, return_tensors="pt").to(device)
    with torch.inference_mode():
        out = vit(pixel_values=inputs["pixel_values"].to(vit.dtype))
    return out.last_hidden_state[:, 0].float()


def distance_matrix(features) -> list[list[float]]:
    import torch

    return torch.cdist(features[None].double(), features[None].double())[0].cpu().tolist()


def select_frames(vit, processor, best_image, variants, k: int, closed: bool = False):
    """Best image first, then the variants that make the cheapest path of k frames from it.

    Returns the chosen images and the path over [best, *variants] (index 0 is the best image).
    """
    images = [best_image, *variants]
    dist = distance_matrix(image_features(vit, processor, images))
    path = select_path(dist, min(k, len(images)), start=0, closed=closed)
    return [images[i] for i in path.indices], path, dist


@row_by_row
def _run(ctx: Context, row: Row) -> dict:
    m, c = ctx.models, ctx.config
    frames, path, dist = select_frames(m.vit, m.vit_processor, row["best"], row["variants"],
                                       c.frames, c.loop)
    # How well every key frame, not only the best candidate, still shows the prompt.
    scores = clip_scores(m.clip, m.clip_processor, frames, row["subject"].prompt, c.score_weight)
    # Rounded: the matrix travels in stream messages, which must stay small.
    distances = tuple(tuple(round(v, 4) for v in r) for r in dist)
    return {"frames": frames, "path": path, "frame_scores": scores, "distances": distances}


STAGE = Stage("select", _run, inputs=("best", "variants", "subject"),
              outputs=(Port("frames", Kind.IMAGES), Port("path", Kind.VALUE, FramePath),
                       Port("frame_scores", Kind.VALUE, Scores),
                       # [best, *variants] × the same; for reading the choice, not for re-making it
                       Port("distances", Kind.VALUE, tuple[tuple[float, ...], ...])),
              components=("vit", "clip"),
              doc="ViT-B/16 features, distances, the cheapest ordered path of k frames; the "
                  "key frames' CLIPScores")
