"""The in-process benchmark runs on a CPU with the tiny preset, so CI exercises every figure it
prints (the GPU figures come from the same code). It runs as its command runs, in a process of
its own; its FLOP arithmetic is checked through the helpers it uses."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch


def unet_flops_per_image(models, size: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    unet = models.text2img.unet
    cfg = unet.config
    latents = torch.zeros(1, cfg.in_channels, size // 8, size // 8)
    text = torch.zeros(1, 77, cfg.cross_attention_dim)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        unet(latents, 10, encoder_hidden_states=text)
    return float(counter.get_total_flops())


# The whole benchmark in a process of its own, baselines included: minutes of CPU on two cores,
# more than the suite's per-test bound on a loaded machine.
@pytest.mark.timeout(2400)
def test_benchmark_prints_every_figure_from_one_run(tiny, model_cache, tmp_path):
    from alertanim.pipeline.config import MethodConfig

    out = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, "-m", "tests.bench.bench_pipeline", "--alerts", "2", "--warmup", "0",
         "--fast", "on", "--burst", "3", "--batch-max", "2", "--baselines",
         "--peak-tflops", "1", "--json", str(out)],
        cwd=Path(__file__).parents[2], env={**os.environ, "ALERTANIM_CACHE": str(model_cache)},
        capture_output=True, text=True)  # the suite's timeout bounds it; on it, the run is killed
    assert done.returncode == 0, done.stderr[-4000:]
    printed = done.stdout
    figures = json.loads(out.read_text())

    med = figures["median"]
    assert set(med) == {"subject", "generate", "score", "mask", "sample", "select", "animate",
                        "total"} == set(figures["p95"])
    assert med["total"] >= med["generate"] + med["sample"] > 0
    assert figures["fast_path"] == ["fuse_qkv", "channels_last", "vae_slicing"]

    # FLOPs: at least every UNet evaluation of the workload (guidance doubles each batch)
    c = MethodConfig()
    evals = 2 * (c.candidates * c.steps + c.variants * int(c.steps * c.strength))
    assert figures["tflop_per_alert"] * 1e12 >= 0.99 * evals * unet_flops_per_image(tiny, 64)
    # (from the unrounded FLOPs: the printed TFLOP may move the last digit)
    assert figures["achieved_tflops"] == pytest.approx(figures["tflop_per_alert"] / med["total"],
                                                       abs=0.011)
    assert figures["flop_limit_seconds"] == round(figures["tflop_per_alert"] / 1.0, 3)

    # the fast path against the fp32 reference at the same seeds
    assert min(figures["psnr_db_vs_fp32"].values()) >= 50

    burst = figures["burst"]
    assert burst["alerts"] == 3 and burst["batch_max"] == 2
    # from the unrounded seconds: the printed (rounded) ones may give one alert/hour more or less
    assert burst["alerts_per_hour"] == pytest.approx(3 / burst["seconds"] * 3600, abs=1)

    for name in ("a", "b"):
        seconds = figures[f"baseline_{name}_seconds"]
        assert seconds > 0
        assert figures[f"speedup_vs_{name}"] == round(seconds / med["total"], 2)
    # baseline (a) runs 50 steps one image per call: more work than the method's 25
    assert figures["baseline_a_seconds"] > figures["baseline_b_seconds"]

    q = figures["quality"]
    assert q["frame_clip_min"] <= q["frame_clip_mean"] and q["largest_step"] <= q["path_cost"]
    assert q["static_change"] == 0.0 and 0 < q["mask_coverage"] <= 1
    # what it printed is the run it wrote down
    assert f"{'total':>10} {med['total']:>10.4f} {figures['p95']['total']:>10.4f}" in printed
    for needle in ("total", "TFLOP/s", "key frames min", "largest step", "FLOP limit", "PSNR", "alerts/hour", "baseline (a)",
                   "baseline (b)"):
        assert needle in printed


def test_counted_workload_matches_a_real_run(tiny):
    """The per-model arithmetic, multiplied out, is what a whole alert actually executes."""
    from alertanim.pipeline.config import MethodConfig
    from tests.support.flops import count_flops, workload

    config = MethodConfig(candidates=3, variants=4, frames=3, steps=4)
    counted = workload("tiny", config)
    measured = count_flops(tiny, config, "A fire has broken out in the building")
    assert abs(counted["total"] - measured) / measured < 0.02
    assert counted["calls"]["unet"] == 2 * (3 * 4 + 4 * 3)
    assert max(counted["flops"], key=counted["flops"].get) == "unet"
