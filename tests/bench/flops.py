"""The method's arithmetic, counted without weights or a GPU: each model of a preset is built on
PyTorch's meta device from its config, torch.utils.flop_counter counts one call of each, and the
reference workload multiplies them out.

    python -m tests.bench.flops                        # random-full: the default checkpoints' sizes
    python -m tests.bench.flops --preset tiny

The FLOP limit is the workload at `--peak-tflops` (790: the bf16 matrix rate measured on an H200).
"""

from __future__ import annotations

import argparse

from tests.support.flops import H200_BF16_TFLOPS, workload


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--preset", default="random-full", choices=("random-full", "tiny"))
    ap.add_argument("--peak-tflops", type=float, default=H200_BF16_TFLOPS)
    args = ap.parse_args(argv)
    w = workload(args.preset)
    print(f"one alert of the reference workload, {args.preset} models")
    print(f"{'model':>13} {'TFLOP/call':>11} {'calls':>6} {'TFLOP':>9} {'share':>7}")
    for name, flops in w["flops"].items():
        print(f"{name:>13} {w['per_call'][name] / 1e12:>11.4f} {w['calls'][name]:>6} "
              f"{flops / 1e12:>9.3f} {flops / w['total']:>7.2%}")
    print(f"{'total':>13} {'':>11} {'':>6} {w['total'] / 1e12:>9.3f}")
    print(f"FLOP limit at {args.peak_tflops} TFLOP/s: {w['total'] / 1e12 / args.peak_tflops:.3f} s")
    return w


if __name__ == "__main__":
    main()
