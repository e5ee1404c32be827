"""In-process benchmark of the method: per-stage and end-to-end seconds over several alerts.

    python -m tests.bench.bench_pipeline                       # tiny preset on CPU
    python -m tests.bench.bench_pipeline --models random-full --device cuda --dtype float16 \\
        --baselines                                            # reference workload on a GPU

Prints the median and p95 of every stage after warm-up, the workload's FLOPs counted with
torch.utils.flop_counter and the achieved TFLOP/s, peak GPU memory, and with --baselines two
reference points measured in the same run: (a) diffusers defaults — fp32, one image per call,
50 steps, sequential inpainting; (b) plain diffusers at the chosen dtype with candidates and
variants each batched.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from pipeline.models import load_models
from pipeline.workflow import MethodConfig, run_workflow

TEXTS = [
    "A fire has broken out in the building",
    "Flash flood warning for the river district",
    "서울 강남구 화재 발생, 인근 주민은 대피하세요",
    "Magnitude 5.1 earthquake: expect aftershocks",
    "Chemical leak at the industrial park, close windows",
    "Typhoon approaching the coast, stay indoors",
]


def pct(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def count_flops(models, config, text) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        run_workflow(models, text, seed=0, config=config)
    return float(counter.get_total_flops())


def baseline_a(models, config, text, device) -> float:
    """diffusers defaults: fp32, 50 steps, one image per call, one inpainting call per variant."""
    from PIL import Image

    sd, inpaint = models.text2img, models.inpaint
    t0 = time.perf_counter()
    images = [sd(text, num_inference_steps=50, height=models.image_size, width=models.image_size,
                 generator=torch.Generator(device).manual_seed(i)).images[0]
              for i in range(config.candidates)]
    mask = Image.new("L", images[0].size, 255)
    for i in range(config.variants):
        inpaint(text, image=images[0], mask_image=mask, strength=config.strength,
                num_inference_steps=50, generator=torch.Generator(device).manual_seed(i))
    sync(device)
    return time.perf_counter() - t0


def baseline_b(models, config, text, device) -> float:
    """Plain diffusers, candidates batched in one call and variants in another."""
    from PIL import Image

    t0 = time.perf_counter()
    images = models.text2img(text, num_images_per_prompt=config.candidates,
                             num_inference_steps=config.steps, height=models.image_size,
                             width=models.image_size,
                             generator=torch.Generator(device).manual_seed(0)).images
    models.inpaint(text, image=images[0], mask_image=Image.new("L", images[0].size, 255),
                   num_images_per_prompt=config.variants, strength=config.strength,
                   num_inference_steps=config.steps,
                   generator=torch.Generator(device).manual_seed(1))
    sync(device)
    return time.perf_counter() - t0


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--models", default="tiny")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"))
    ap.add_argument("--alerts", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--baselines", action="store_true")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args(argv)

    dtype = getattr(torch, args.dtype)
    t_load = time.perf_counter()
    models = load_models(args.models, device=args.device, dtype=dtype)
    load_s = time.perf_counter() - t_load
    config = MethodConfig()
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    for i in range(args.warmup):
        run_workflow(models, TEXTS[i % len(TEXTS)], seed=1000 + i, config=config)
    runs = []
    for i in range(args.alerts):
        sync(args.device)
        r = run_workflow(models, TEXTS[i % len(TEXTS)], seed=i, config=config)
        sync(args.device)
        runs.append(r.seconds)
    stages = list(runs[0])
    figures = {
        "models": args.models, "device": args.device, "dtype": args.dtype,
        "alerts": args.alerts, "load_seconds": round(load_s, 3),
        "median": {s: round(statistics.median(r[s] for r in runs), 4) for s in stages},
        "p95": {s: round(pct([r[s] for r in runs], 0.95), 4) for s in stages},
    }
    flops = count_flops(models, config, TEXTS[0])
    figures["tflop_per_alert"] = round(flops / 1e12, 4)
    figures["achieved_tflops"] = round(flops / 1e12 / figures["median"]["total"], 3)
    if args.device.startswith("cuda"):
        figures["peak_gpu_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    if args.baselines:
        figures["baseline_b_seconds"] = round(baseline_b(models, config, TEXTS[0], args.device), 3)
        fp32 = models if dtype == torch.float32 else load_models(args.models, device=args.device)
        figures["baseline_a_seconds"] = round(baseline_a(fp32, config, TEXTS[0], args.device), 3)
        for name in ("a", "b"):
            figures[f"speedup_vs_{name}"] = round(
                figures[f"baseline_{name}_seconds"] / figures["median"]["total"], 2)

    print(f"alertanim in-process benchmark: {args.models} on {args.device} ({args.dtype}), "
          f"{args.alerts} alerts after {args.warmup} warm-up")
    print(f"{'stage':>10} {'median s':>10} {'p95 s':>10}")
    for s in stages:
        print(f"{s:>10} {figures['median'][s]:>10.4f} {figures['p95'][s]:>10.4f}")
    print(f"workload {figures['tflop_per_alert']} TFLOP/alert, achieved "
          f"{figures['achieved_tflops']} TFLOP/s; model load {figures['load_seconds']} s")
    for key in ("peak_gpu_gb", "baseline_a_seconds", "baseline_b_seconds", "speedup_vs_a",
                "speedup_vs_b"):
        if key in figures:
            print(f"{key}: {figures[key]}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(figures, fh, indent=2)
    return figures


if __name__ == "__main__":
    main()
