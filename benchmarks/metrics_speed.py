"""Speed of J and F (sampd_plugin.metrics) over 480p mask pairs; prints frames/s.

    python benchmarks/metrics_speed.py [--frames 1000] [--height 480] [--width 854] [--chunk 100]

Pairs are DAVIS-like: a random blob (union of ellipses, ~5-30 % of the frame) and a prediction shifted by a
few pixels with a spurious patch, so both boundaries are non-trivial. Masks are generated in chunks of
``--chunk`` frames (bounded memory); only the metric calls are timed. ``--reference`` also times a
full-frame implementation (boundary maps + disk dilation of the whole frame, as the DAVIS toolkit does)
for the speed-up ratio.
"""
import argparse
import os
import sys
import time

import cv2
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from sampd_plugin.metrics import (  # noqa: E402
    boundary_f_measure, boundary_map, bound_pixels, disk, region_similarity)


def make_pairs(rng, t, h, w):
    """``t`` (gt, pred) bool stacks ``(t, h, w)``."""
    gt, pred = np.zeros((t, h, w), np.uint8), np.zeros((t, h, w), np.uint8)
    for k in range(t):
        cx, cy = rng.integers(w // 4, 3 * w // 4), rng.integers(h // 4, 3 * h // 4)
        for _ in range(3):
            ax = (int(rng.integers(20, w // 6)), int(rng.integers(20, h // 4)))
            c = (int(cx + rng.integers(-60, 60)), int(cy + rng.integers(-40, 40)))
            cv2.ellipse(gt[k], c, ax, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        dx, dy = rng.integers(-6, 7, 2)
        pred[k] = np.roll(gt[k], (dy, dx), axis=(0, 1))
        cv2.circle(pred[k], (int(rng.integers(0, w)), int(rng.integers(0, h))), int(rng.integers(3, 30)), 1, -1)
    return gt.astype(bool), pred.astype(bool)


def full_frame_f(pred, gt, bound_th=0.008):
    """Whole-frame F (toolkit-style data flow) for the speed comparison only."""
    k = disk(bound_pixels(bound_th, gt.shape[-2:]))
    out = []
    for p, g in zip(pred, gt):
        pb, gb = boundary_map(p).astype(np.uint8), boundary_map(g).astype(np.uint8)
        n_p, n_g = pb.sum(), gb.sum()
        if n_p == 0 or n_g == 0:
            out.append(float(n_p == n_g))
            continue
        prec, rec = (pb & cv2.dilate(gb, k)).sum() / n_p, (gb & cv2.dilate(pb, k)).sum() / n_g
        out.append(0.0 if prec + rec == 0 else 2 * prec * rec / (prec + rec))
    return np.array(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--width", type=int, default=854)
    ap.add_argument("--chunk", type=int, default=100)
    ap.add_argument("--reference", action="store_true", help="also time the whole-frame F")
    ap.add_argument("--threads", type=int, default=1, help="cv2.setNumThreads (default 1: single core)")
    args = ap.parse_args()
    cv2.setNumThreads(args.threads)
    rng = np.random.default_rng(0)
    tj = tf = tr = 0.0
    j_all, f_all = [], []
    for start in range(0, args.frames, args.chunk):
        gt, pred = make_pairs(rng, min(args.chunk, args.frames - start), args.height, args.width)
        t0 = time.perf_counter()
        j_all.append(region_similarity(pred, gt))
        t1 = time.perf_counter()
        f = boundary_f_measure(pred, gt)
        t2 = time.perf_counter()
        f_all.append(f)
        tj, tf = tj + t1 - t0, tf + t2 - t1
        if args.reference:
            r = full_frame_f(pred, gt)
            tr += time.perf_counter() - t2
            assert np.allclose(r, f), "cropped F differs from whole-frame F"
    n = args.frames
    print(f"{n} mask pairs {args.height}x{args.width}, cv2 threads={args.threads}, "
          f"mean J={np.mean(np.concatenate(j_all)):.3f} F={np.mean(np.concatenate(f_all)):.3f}")
    print(f"J: {n / tj:10.1f} frames/s  ({1e3 * tj / n:.3f} ms/frame)")
    print(f"F: {n / tf:10.1f} frames/s  ({1e3 * tf / n:.3f} ms/frame)")
    if args.reference:
        print(f"F whole-frame reference: {n / tr:.1f} frames/s  (cropped is {tr / tf:.1f}x faster)")


if __name__ == "__main__":
    main()
