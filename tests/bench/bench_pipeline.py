"""In-process benchmark of the method at the reference workload (512², 10 candidates × 25 steps,
16 variants at strength 0.75, guidance 7.5, CLIP / CLIPSeg / ViT, GIF encode).

    python -m tests.bench.bench_pipeline                       # tiny preset on a CPU (CI runs it)
    python -m tests.bench.bench_pipeline --models random-full --baselines --burst 16
                                                               # the reference workload on a GPU

Prints, from one run:
- per-stage and end-to-end seconds for single alerts (median and p95 after warm-up);
- the workload's FLOPs (torch.utils.flop_counter over the fp32 reference), the achieved TFLOP/s
  and the FLOP limit: the seconds the workload takes at `--peak-tflops` (790 on CUDA: the bf16
  matrix rate measured on an H200);
- peak GPU memory of this one process running every stage (over the warm-up alerts, before any
  other copy of the models is loaded);
- the PSNR of the measured path's candidates and variants against the fp32 reference without the
  fast path, at the same seeds (the variants from the same input image and mask);
- with `--burst N`: N alerts arriving together, batched `--batch-max` at a time through
  text-to-image and masked sampling while earlier animations encode on CPU threads: alerts/hour;
- with `--baselines`: (a) diffusers defaults — fp32, one image per call, 50 steps, sequential
  inpainting (one run); (b) plain diffusers at the measured dtype, candidates and variants each
  batched (after a warm-up, one run after each of the method's alerts; the median).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import torch
from PIL import Image

from alertanim.pipeline.accel import COMPILE_MODES, FastPath, psnr, tune
from alertanim.pipeline.config import MethodConfig
from alertanim.pipeline.generate import generate_candidates
from alertanim.pipeline.mask import STAGE as MASK
from alertanim.pipeline.models import load_models, resolve_device
from alertanim.pipeline.sample import masked_variants
from alertanim.pipeline.stage import Context
from alertanim.pipeline.subject import primary_subject
from alertanim.pipeline.workflow import CPU_PART, MODEL_PART, advance, run_workflow, run_workflow_batch
from tests.support.flops import H200_BF16_TFLOPS, count_flops
from tests.support.stats import pct

TEXTS = [
    "A fire has broken out in the building",
    "Flash flood warning for the river district",
    "서울 강남구 화재 발생, 인근 주민은 대피하세요",
    "Magnitude 5.1 earthquake: expect aftershocks",
    "Chemical leak at the industrial park, close windows",
    "Typhoon approaching the coast, stay indoors",
]


def sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def peak_gb(device) -> float | None:
    if not str(device).startswith("cuda"):
        return None
    return round(torch.cuda.max_memory_allocated() / 2**30, 2)


def reset_peak(device) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


def faithfulness(models, reference, config, text) -> dict[str, float]:
    """PSNR (dB) of `models` against `reference` at the same seeds: candidates from the same
    prompt, variants from the same (reference) best image and mask."""
    kw = dict(steps=config.steps, guidance=config.guidance, size=reference.image_size)
    ref = generate_candidates(reference.text2img, text, n=config.candidates, seed=0, **kw)
    got = generate_candidates(models.text2img, text, n=config.candidates, seed=0, **kw)
    [masked] = MASK.run(Context(reference, config),
                        [{"best": ref[0], "subject": primary_subject(text), "seed": 0}])
    mask = masked["mask"]
    kw = dict(k=config.variants, seed=1, strength=config.strength, steps=config.steps,
              guidance=config.guidance)
    ref_v = masked_variants(reference.inpaint, ref[0], mask, text, **kw)
    got_v = masked_variants(models.inpaint, ref[0], mask, text, **kw)
    return {"candidates": round(psnr(ref, got), 2), "variants": round(psnr(ref_v, got_v), 2)}


def burst(models, config, n: int, batch_max: int, device) -> dict:
    """`n` alerts at once: GPU batches of `batch_max` in this thread, animations on CPU threads
    beside the next batch, as a worker running every stage does."""
    texts = [TEXTS[i % len(TEXTS)] for i in range(n)]
    ctx = Context(models, config)

    def finish(run):
        return advance(ctx, [run], CPU_PART)

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="animate") as pool:
        # one warm-up batch at the full batch size (and shape, for a compiled UNet)
        for f in run_workflow_batch(models, texts[:batch_max], list(range(batch_max)),
                                    config=config, names=MODEL_PART):
            finish(f)
        sync(device)
        reset_peak(device)
        t0 = time.perf_counter()
        futures = []
        for start in range(0, n, batch_max):
            chunk = texts[start:start + batch_max]
            batch = run_workflow_batch(models, chunk, list(range(start, start + len(chunk))),
                                       config=config, names=MODEL_PART)
            futures += [pool.submit(finish, f) for f in batch]
        done_at = []
        for fut in futures:
            fut.result()
            done_at.append(time.perf_counter() - t0)
    wall = max(done_at)
    return {"alerts": n, "batch_max": batch_max, "seconds": round(wall, 3),
            "alerts_per_hour": round(n / wall * 3600), "p50_latency_s": round(pct(done_at, .5), 3),
            "peak_gpu_gb": peak_gb(device)}


def baseline_a(models, config, text, device) -> float:
    """diffusers defaults: fp32, 50 steps, one image per call, one inpainting call per variant."""
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


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--models", default="tiny")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto", choices=("auto", "float32", "float16", "bfloat16"))
    ap.add_argument("--fast", default="auto", choices=("auto", "on", "off"))
    ap.add_argument("--compile", default="off", choices=COMPILE_MODES)
    ap.add_argument("--alerts", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--burst", type=int, default=0, help="alerts arriving together (0: skip)")
    ap.add_argument("--batch-max", type=int, default=4)
    ap.add_argument("--baselines", action="store_true")
    ap.add_argument("--peak-tflops", type=float,
                    help=f"the device's matrix rate for the FLOP limit ({H200_BF16_TFLOPS} on cuda)")
    ap.add_argument("--json", help="also write the figures here")
    return ap.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    device, dtype = resolve_device(args.device, args.dtype)
    fast = FastPath.named(args.fast, device, args.compile)
    peak = args.peak_tflops or (H200_BF16_TFLOPS if device.startswith("cuda") else None)
    config = MethodConfig()

    t_load = time.perf_counter()
    models = tune(load_models(args.models, device=device, dtype=dtype), fast)
    figures: dict = {
        "models": args.models, "device": device,
        "gpu": torch.cuda.get_device_name() if device.startswith("cuda") else None,
        "dtype": str(dtype).removeprefix("torch."), "fast_path": models.fast_path,
        "alerts": args.alerts, "warmup": args.warmup,
        "load_seconds": round(time.perf_counter() - t_load, 3),
    }
    # Peak memory of one process running every stage, over the warm-up alerts: before any other
    # copy of the models is loaded.
    reset_peak(device)
    for i in range(args.warmup):
        run_workflow(models, TEXTS[i % len(TEXTS)], seed=1000 + i, config=config)
    figures["peak_gpu_gb"] = peak_gb(device) if args.warmup else None
    if args.burst:
        figures["burst"] = burst(models, config, args.burst, args.batch_max, device)

    plain = dict(source=args.models, device=device)  # as published: no fast path
    same_dtype = None
    if args.baselines:  # (b) runs between the method's alerts: both see the machine alike
        same_dtype = load_models(**plain, dtype=dtype)
        baseline_b(same_dtype, config, TEXTS[1], device)  # its warm-up
    runs, b_seconds, quality = [], [], []
    for i in range(args.alerts):
        sync(device)
        run = run_workflow(models, TEXTS[i % len(TEXTS)], seed=i, config=config)
        runs.append(run.seconds)
        quality.append(run.quality.as_dict(6))
        sync(device)
        if same_dtype is not None:
            b_seconds.append(baseline_b(same_dtype, config, TEXTS[i % len(TEXTS)], device))
    stages = list(runs[0])
    figures["median"] = {s: round(statistics.median(r[s] for r in runs), 4) for s in stages}
    figures["p95"] = {s: round(pct([r[s] for r in runs], 0.95), 4) for s in stages}
    # how good the results are (pipeline/quality.py): the median over the alerts of each figure
    figures["quality"] = {k: round(statistics.median(float(q[k]) for q in quality), 4)
                          for k in quality[0]}

    # The fp32 reference without the fast path: FLOPs, faithfulness, baseline (a).
    reference = same_dtype if dtype == torch.float32 and same_dtype is not None else \
        load_models(**plain, dtype=torch.float32)
    flops = count_flops(reference, config, TEXTS[0])
    figures["tflop_per_alert"] = round(flops / 1e12, 3)
    figures["achieved_tflops"] = round(flops / 1e12 / figures["median"]["total"], 2)
    if peak:
        figures["peak_tflops"] = peak
        figures["flop_limit_seconds"] = round(flops / 1e12 / peak, 3)
        figures["fraction_of_flop_limit"] = round(
            figures["flop_limit_seconds"] / figures["median"]["total"], 3)
    if models.fast_path or dtype != torch.float32:
        figures["psnr_db_vs_fp32"] = faithfulness(models, reference, config, TEXTS[0])
    if args.baselines:
        figures["baseline_b_seconds"] = round(statistics.median(b_seconds), 3)
        figures["baseline_a_seconds"] = round(baseline_a(reference, config, TEXTS[0], device), 3)
        for name in ("a", "b"):
            figures[f"speedup_vs_{name}"] = round(
                figures[f"baseline_{name}_seconds"] / figures["median"]["total"], 2)
    report(figures, stages)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(figures, fh, indent=2)
    return figures


def report(f: dict, stages: list[str]) -> None:
    print(f"alertanim in-process benchmark: {f['models']} on {f['gpu'] or f['device']} "
          f"({f['dtype']}, fast path: {','.join(f['fast_path']) or 'off'}), "
          f"{f['alerts']} alerts after {f['warmup']} warm-up")
    print(f"{'stage':>10} {'median s':>10} {'p95 s':>10}")
    for s in stages:
        print(f"{s:>10} {f['median'][s]:>10.4f} {f['p95'][s]:>10.4f}")
    print(f"workload {f['tflop_per_alert']} TFLOP/alert; achieved {f['achieved_tflops']} TFLOP/s; "
          f"model load {f['load_seconds']} s")
    q = f["quality"]
    print(f"quality, medians: CLIPScore best {q['clip_score']}, key frames min "
          f"{q['frame_clip_min']} mean {q['frame_clip_mean']}; path cost {q['path_cost']}, "
          f"largest step {q['largest_step']}; pixel change per in-between "
          f"{q['change_per_inbetween']}, outside the mask {q['static_change']}; mask coverage "
          f"{q['mask_coverage']} (subject {q['subject_coverage']})")
    if "flop_limit_seconds" in f:
        print(f"FLOP limit at {f['peak_tflops']} TFLOP/s: {f['flop_limit_seconds']} s "
              f"(median is {1 / f['fraction_of_flop_limit']:.2f}× the limit)")
    if f["peak_gpu_gb"] is not None:
        print(f"peak GPU memory, one process, every stage: {f['peak_gpu_gb']} GB")
    if "psnr_db_vs_fp32" in f:
        p = f["psnr_db_vs_fp32"]
        print(f"PSNR vs fp32 reference, same seeds: candidates {p['candidates']} dB, "
              f"variants {p['variants']} dB")
    if "burst" in f:
        b = f["burst"]
        print(f"burst of {b['alerts']} (batches of {b['batch_max']}): {b['seconds']} s, "
              f"{b['alerts_per_hour']} alerts/hour, p50 latency {b['p50_latency_s']} s"
              + (f", peak GPU memory {b['peak_gpu_gb']} GB" if b["peak_gpu_gb"] else ""))
    for name in ("a", "b"):
        if f"baseline_{name}_seconds" in f:
            print(f"baseline ({name}): {f[f'baseline_{name}_seconds']} s; the median is "
                  f"{f[f'speedup_vs_{name}']}× faster")


if __name__ == "__main__":
    main()
