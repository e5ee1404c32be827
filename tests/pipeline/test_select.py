import ast
import itertools
import random
from pathlib import Path

import pytest

import pipeline.select as select_module
from pipeline.select import pairwise_distances, select_path, visit_order


def brute_force(dist, k, start, closed):
    order = visit_order(dist, start)
    best = None
    for combo in itertools.combinations(order[1:], k - 1):
        path = (start, *combo)
        cost = sum(dist[a][b] for a, b in zip(path, path[1:]))
        if closed:
            cost += dist[path[-1]][start]
        if best is None or cost < best[0] - 1e-12:
            best = (cost, path)
    return best


def random_points(rng, n, dim=4):
    return [[rng.random() for _ in range(dim)] for _ in range(n)]


@pytest.mark.parametrize("closed", [False, True])
def test_dp_equals_brute_force(closed):
    rng = random.Random(1234)
    for trial in range(150):
        n = rng.randint(1, 8)
        k = rng.randint(1, n)
        start = rng.randrange(n)
        dist = pairwise_distances(random_points(rng, n))
        path = select_path(dist, k, start=start, closed=closed)
        cost, expected = brute_force(dist, k, start, closed)
        assert path.cost == pytest.approx(cost, abs=1e-9), (trial, n, k)
        assert path.indices[0] == start
        assert len(set(path.indices)) == k
        recomputed = sum(dist[a][b] for a, b in zip(path.indices, path.indices[1:]))
        if closed:
            recomputed += dist[path.indices[-1]][start]
        assert recomputed == pytest.approx(path.cost)


def test_points_on_a_line_are_walked_in_order():
    xs = [0.0, 5.0, 1.0, 3.0, 2.0, 4.0]
    dist = [[abs(a - b) for b in xs] for a in xs]
    path = select_path(dist, 6, start=0)
    assert [xs[i] for i in path.indices] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert path.cost == pytest.approx(5.0)


def test_dp_skips_the_outlier():
    xs = [0.0, 1.0, 2.0, 50.0, 3.0]
    dist = [[abs(a - b) for b in xs] for a in xs]
    assert 3 not in select_path(dist, 4, start=0).indices


def test_k_out_of_range_is_refused():
    with pytest.raises(ValueError, match="k must be"):
        select_path([[0.0]], 2)


def test_the_dp_module_does_not_import_torch_at_top_level():
    tree = ast.parse(Path(select_module.__file__).read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = {a.name for n in top for a in n.names} | {getattr(n, "module", None) for n in top}
    assert "torch" not in names


def test_select_frames_with_vit(tiny):
    from PIL import Image

    from pipeline.select import select_frames

    rng = random.Random(0)
    images = [Image.new("RGB", (64, 64), tuple(rng.randrange(256) for _ in range(3)))
              for _ in range(6)]
    frames, path, dist = select_frames(tiny.vit, tiny.vit_processor, images[0], images[1:], 4)
    assert len(frames) == 4 and path.indices[0] == 0
    assert frames[0] is images[0]
    assert len(dist) == 6 and all(d[i] == pytest.approx(0, abs=1e-4) for i, d in enumerate(dist))
    assert select_path(dist, 4).indices == path.indices
