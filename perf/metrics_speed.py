"""Speed of J and F (sampd_plugin.core.metrics) over 480p mask pairs against the official DAVIS toolkit; prints ratios.

    python perf/metrics_speed.py [--frames 1000] [--height 480] [--width 854] [--chunk 100] [--reference]
        [--threads 2] [--kinds smooth hard]

Pairs are DAVIS-like (``tests/mask_pairs.py``), of two kinds: ``smooth`` (a compact blob and a shifted prediction
with a spurious patch) and ``hard`` (thin limbs across the frame, jagged boundaries, specks and holes anywhere:
long noisy boundaries whose bounding region is most of the frame). Masks are generated in chunks of ``--chunk``
frames (bounded memory); only the metric calls are timed, in CPU time of this process (fair on a shared machine)
for the single-threaded runs, and in wall time for ``--threads`` > 1; the kinds and the implementations are
interleaved chunk by chunk, so each ratio is measured in one run under the same load. ``--reference`` also runs
a line-by-line re-implementation of the official toolkit's ``db_eval_iou`` / ``db_eval_boundary``
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
from tests.mask_pairs import KINDS, make_pairs  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1000, help="mask pairs per kind")
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--width", type=int, default=854)
    ap.add_argument("--chunk", type=int, default=100)
    ap.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    ap.add_argument("--reference", action="store_true", help="also time (and check against) the official toolkit")
    ap.add_argument("--threads", type=int, default=2, help="threads of the multi-threaded F run (1: skip it)")
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    rng = np.random.default_rng(0)
    t = {k: dict(j=0.0, f=0.0, f_mt=0.0, j_ref=0.0, f_ref=0.0) for k in args.kinds}
    scores = {k: ([], []) for k in args.kinds}
    for start in range(0, args.frames, args.chunk):
        for kind in args.kinds:
            tk = t[kind]
            gt, pred = make_pairs(rng, min(args.chunk, args.frames - start), args.height, args.width, kind)
            t0 = time.process_time()
            j = region_similarity(pred, gt)
            t1 = time.process_time()
            f = boundary_f_measure(pred, gt, threads=1)
            t2 = time.process_time()
            tk["j"], tk["f"] = tk["j"] + t1 - t0, tk["f"] + t2 - t1
            scores[kind][0].append(j)
            scores[kind][1].append(f)
            if args.threads > 1:
                w0 = time.perf_counter()
                f_mt = boundary_f_measure(pred, gt, threads=args.threads)
                tk["f_mt"] += time.perf_counter() - w0
                assert np.array_equal(f_mt, f), "multi-threaded F differs"
            if args.reference:
                t3 = time.process_time()
                j_ref = db_eval_iou(gt, pred)
                t4 = time.process_time()
                f_ref = db_eval_boundary(gt, pred)
                t5 = time.process_time()
                tk["j_ref"], tk["f_ref"] = tk["j_ref"] + t4 - t3, tk["f_ref"] + t5 - t4
                assert np.abs(j - j_ref).max() <= 1e-9, f"J differs from the toolkit ({kind})"
                assert np.abs(f - f_ref).max() <= 1e-9, f"F differs from the toolkit ({kind})"
    n = args.frames
    for kind, tk in t.items():
        js, fs = (np.concatenate(v) for v in scores[kind])
        print(f"[{kind}] {n} mask pairs {args.height}x{args.width}, mean J={js.mean():.3f} F={fs.mean():.3f}")
        print(f"  J: {n / tk['j']:10.1f} frames/s  ({1e3 * tk['j'] / n:.3f} ms/frame, CPU time, 1 thread)")
        print(f"  F: {n / tk['f']:10.1f} frames/s  ({1e3 * tk['f'] / n:.3f} ms/frame, CPU time, 1 thread)")
        if args.threads > 1:
            print(f"  F: {n / tk['f_mt']:10.1f} frames/s  ({1e3 * tk['f_mt'] / n:.3f} ms/frame, wall time, "
                  f"{args.threads} threads)")
        if args.reference:
            print(f"  official toolkit (re-implemented): J {n / tk['j_ref']:.1f} frames/s, F {n / tk['f_ref']:.1f} "
                  f"frames/s (CPU time); J and F equal to 1e-9")
            print(f"  ratio J ours/toolkit: {tk['j_ref'] / tk['j']:.1f}x; F ours/toolkit: {tk['f_ref'] / tk['f']:.1f}x "
                  f"(1 thread, CPU time; target >= 5x)")
            if args.threads > 1:
                print(f"  ratio F ours ({args.threads} threads, wall) / toolkit (CPU time): "
                      f"{tk['f_ref'] / tk['f_mt']:.1f}x")
    return t


if __name__ == "__main__":
    main()
