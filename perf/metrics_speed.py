"""Speed of J and F (sampd_plugin.core.metrics) over 480p mask pairs against the official DAVIS toolkit; prints ratios.

    python perf/metrics_speed.py [--frames 1000] [--height 480] [--width 854] [--chunk 100] [--reference]
        [--threads 2]

Pairs are DAVIS-like: a random blob (union of ellipses, ~5-30 % of the frame) and a prediction shifted by a
few pixels with a spurious patch, so both boundaries are non-trivial. Masks are generated in chunks of
``--chunk`` frames (bounded memory); only the metric calls are timed, in CPU time of this process (fair on a shared
machine) for the single-threaded runs, and in wall time for ``--threads`` > 1. ``--reference`` also runs a
line-by-line re-implementation of the official toolkit's ``db_eval_iou`` / ``db_eval_boundary``
(``tests/davis_toolkit.py``; the toolkit is not on PyPI), checks that J and F are equal to 1e-9 and prints the
speed-up ratios.
"""
import argparse
import os
import sys
import time

import cv2
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from sampd_plugin.core.metrics import boundary_f_measure, region_similarity  # noqa: E402
from tests.davis_toolkit import db_eval_boundary, db_eval_iou  # noqa: E402


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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--width", type=int, default=854)
    ap.add_argument("--chunk", type=int, default=100)
    ap.add_argument("--reference", action="store_true", help="also time (and check against) the official toolkit")
    ap.add_argument("--threads", type=int, default=2, help="threads of the multi-threaded F run (1: skip it)")
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    rng = np.random.default_rng(0)
    t = dict(j=0.0, f=0.0, f_mt=0.0, j_ref=0.0, f_ref=0.0)
    j_all, f_all = [], []
    for start in range(0, args.frames, args.chunk):
        gt, pred = make_pairs(rng, min(args.chunk, args.frames - start), args.height, args.width)
        t0 = time.process_time()
        j = region_similarity(pred, gt)
        t1 = time.process_time()
        f = boundary_f_measure(pred, gt, threads=1)
        t2 = time.process_time()
        t["j"], t["f"] = t["j"] + t1 - t0, t["f"] + t2 - t1
        j_all.append(j)
        f_all.append(f)
        if args.threads > 1:
            w0 = time.perf_counter()
            f_mt = boundary_f_measure(pred, gt, threads=args.threads)
            t["f_mt"] += time.perf_counter() - w0
            assert np.array_equal(f_mt, f), "multi-threaded F differs"
        if args.reference:
            t3 = time.process_time()
            j_ref = db_eval_iou(gt, pred)
            t4 = time.process_time()
            f_ref = db_eval_boundary(gt, pred)
            t5 = time.process_time()
            t["j_ref"], t["f_ref"] = t["j_ref"] + t4 - t3, t["f_ref"] + t5 - t4
            assert np.abs(j - j_ref).max() <= 1e-9, "J differs from the toolkit"
            assert np.abs(f - f_ref).max() <= 1e-9, "F differs from the toolkit"
    n = args.frames
    print(f"{n} mask pairs {args.height}x{args.width}, "
          f"mean J={np.mean(np.concatenate(j_all)):.3f} F={np.mean(np.concatenate(f_all)):.3f}")
    print(f"J: {n / t['j']:10.1f} frames/s  ({1e3 * t['j'] / n:.3f} ms/frame, CPU time, 1 thread)")
    print(f"F: {n / t['f']:10.1f} frames/s  ({1e3 * t['f'] / n:.3f} ms/frame, CPU time, 1 thread)")
    if args.threads > 1:
        print(f"F: {n / t['f_mt']:10.1f} frames/s  ({1e3 * t['f_mt'] / n:.3f} ms/frame, wall time, "
              f"{args.threads} threads)")
    if args.reference:
        print(f"official toolkit (re-implemented): J {n / t['j_ref']:.1f} frames/s, F {n / t['f_ref']:.1f} frames/s "
              f"(CPU time); J and F equal to 1e-9")
        print(f"ratio J ours/toolkit: {t['j_ref'] / t['j']:.1f}x; F ours/toolkit: {t['f_ref'] / t['f']:.1f}x "
              f"(1 thread, CPU time; target >= 5x)")
        if args.threads > 1:
            print(f"ratio F ours ({args.threads} threads, wall) / toolkit (CPU time): {t['f_ref'] / t['f_mt']:.1f}x")
    return t


if __name__ == "__main__":
    main()
