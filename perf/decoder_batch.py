"""Decoder batch size: ms per prompt of SAM's mask decoder when P prompts are decoded in batches of b.

    python perf/decoder_batch.py [--prompts 54 162] [--batches 1 2 4 8 16 32 0] [--repeats 2] [--multimask]
        [--clock wall|cpu] [--threads N] [--device cpu]

Uses the tiny random-weight SAM (sampd_plugin.backends.tiny), whose prompt encoder and mask decoder are SAM's real
ones at real width (256), through SamBackend.decode: the same code path as a real checkpoint. P = 54 is a typical
SAM-PD frame (18 box prompts x 3 objects, Sec. III-C), 162 a crowded one. Batch 0 means unlimited (one call).
On the CPU the mask decoder repeats the image embedding per prompt, so big batches can be slower per prompt; the
fastest size is SamBackend's CPU ``preferred_batch_size``. Runs on the CPU, and on CUDA too when present (unless
--device is given). Needs only torch, segment_anything and sampd_plugin.backends (no FiftyOne).
"""
import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from sampd_plugin.backends.tiny import tiny_backend  # noqa: E402


def random_boxes(rng, n, h, w):
    """``(n, 4)`` xyxy boxes, image pixels, 5-40 % of the frame side."""
    cx, cy = rng.uniform(0.2, 0.8, n) * w, rng.uniform(0.2, 0.8, n) * h
    bw, bh = rng.uniform(0.05, 0.4, n) * w, rng.uniform(0.05, 0.4, n) * h
    return torch.tensor(np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1), dtype=torch.float32)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def time_decode(backend, state, boxes, batch, multimask, clock="wall"):
    """Seconds (``clock``: wall, or this process's CPU time) to decode all ``boxes`` in chunks of ``batch``
    (0: one call)."""
    now = CLOCKS[clock]
    size = batch or boxes.shape[0]
    sync(backend.device)
    t = now()
    for i in range(0, boxes.shape[0], size):
        backend.decode(state, boxes=boxes[i : i + size], multimask=multimask)
    sync(backend.device)
    return now() - t


def run(device, prompts, batches, repeats, multimask, height, width, clock="wall"):
    backend = tiny_backend(seed=0, device=device)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    backend.encode(image)  # warm-up
    sync(backend.device)
    t = time.perf_counter()
    state = backend.encode(image)
    sync(backend.device)
    print(f"\n== {backend.device}: tiny SAM, {height}x{width} frame encoded in {1e3 * (time.perf_counter() - t):.0f} ms, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"multimask={multimask}, {clock} clock, best of {repeats} rounds")
    time_decode(backend, state, random_boxes(rng, 8, height, width), 8, multimask)  # warm-up
    boxes = {p: random_boxes(np.random.default_rng(p), p, height, width) for p in prompts}
    # round-robin over the batch sizes, best of `repeats` rounds: load from other processes hits all sizes alike
    table = {b: [float("inf")] * len(prompts) for b in batches}
    for r in range(repeats):
        for b in batches:
            for j, p in enumerate(prompts):
                ms = 1e3 * time_decode(backend, state, boxes[p], b, multimask, clock) / p
                table[b][j] = min(table[b][j], ms)
        print(f"round {r + 1}/{repeats} done", flush=True)
    print("batch".rjust(10) + "".join(f"P={p}".rjust(14) for p in prompts) + "   (ms/prompt)")
    for b, row in table.items():
        print(("unlimited" if b == 0 else str(b)).rjust(10) + "".join(f"{ms:14.1f}" for ms in row))
    mean = {b: float(np.mean(r)) for b, r in table.items()}
    best = min(mean, key=mean.get)
    print(f"fastest: batch {'unlimited' if best == 0 else best} ({mean[best]:.1f} ms/prompt, mean over P); "
          f"SamBackend.preferred_batch_size on {backend.device.type} = {backend.preferred_batch_size}")
    return table


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prompts", type=int, nargs="+", default=[54, 162])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 0], help="0 = unlimited")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--multimask", action="store_true", help="3 masks per prompt (refinement stage) instead of 1")
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=854)
    p.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                   help="cpu: this process's CPU time, robust to other processes on a shared machine (use with "
                        "--threads 1; with several threads it counts spin-waiting)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--device", default=None, help="cpu | cuda (default: cpu, and cuda when available)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = [args.device] if args.device else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for d in devices:
        run(torch.device(d), args.prompts, args.batches, args.repeats, args.multimask, args.height, args.width,
            "wall" if d == "cuda" else args.clock)


if __name__ == "__main__":
    main()
