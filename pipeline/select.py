"""Stage 4a: choose the most analogous ordered frames.

ViT-B/16 features of the best image and its variants, pairwise Euclidean distances, and a dynamic
programme over combinations. The DP itself (`select_path`) is pure Python so it can be checked
against brute force without torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class FramePath:
    indices: tuple[int, ...]  # into the distance matrix, starting with `start`
    cost: float  # summed distance between consecutive frames (and back to start when closed)


def visit_order(dist: Sequence[Sequence[float]], start: int) -> list[int]:
    """All nodes by distance from `start` (ties by index), `start` first.

    The animation drifts away from the best image in this order; the DP picks which of them to keep.
    """
    others = sorted((i for i in range(len(dist)) if i != start), key=lambda i: (dist[start][i], i))
    return [start, *others]


def select_path(
    dist: Sequence[Sequence[float]], k: int, start: int = 0, closed: bool = False
) -> FramePath:
    """Min-cost ordered path of `k` distinct frames, beginning at `start`.

    Candidates are taken in `visit_order`; a path is any combination of k of them that keeps that
    order and begins at `start`. best[j][i] is the cheapest such path of j+1 frames ending at rank
    i, so the whole table costs O(k·n²).
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
    cost = best[k - 1][end] + tail(end)
    ranks = [end]
    for j in range(k - 1, 0, -1):
        ranks.append(back[j][ranks[-1]])
    return FramePath(indices=tuple(order[r] for r in reversed(ranks)), cost=cost)


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
    """Best image first, then the variants that make the most analogous ordered path.

    Returns the chosen images and the path over [best, *variants] (index 0 is the best image).
    """
    images = [best_image, *variants]
    dist = distance_matrix(image_features(vit, processor, images))
    path = select_path(dist, min(k, len(images)), start=0, closed=closed)
    return [images[i] for i in path.indices], path, dist
