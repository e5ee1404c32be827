"""Small statistics for the benchmarks' figures."""

from __future__ import annotations


def pct(values, q):
    """The `q` quantile of `values` (0 ≤ q ≤ 1): the element at the nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]
