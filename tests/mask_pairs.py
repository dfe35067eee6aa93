"""DAVIS-like (ground truth, prediction) mask pairs at any resolution, for ``tests/test_metrics.py`` and
``perf/metrics_speed.py``: two kinds, because what F costs depends on the boundaries' extent.

- ``smooth``: a blob (union of 3 ellipses, ~5-30 % of the frame); the prediction is shifted by a few pixels and
  has a spurious disk, so both boundaries are non-trivial but compact;
- ``hard``: the same blob with thin limbs (1-3 px lines to anywhere in the frame) as the ground truth; the
  prediction shifted; both with jagged boundaries (a quarter of the pixels within 2 px of the boundary flipped)
  and salt-and-pepper specks / holes anywhere (0.2 % of the pixels): long, noisy boundaries spread over the frame.
"""
import cv2
import numpy as np

KINDS = ("smooth", "hard")


def _blob(rng, h, w, out):
    cx, cy = int(rng.integers(w // 4, 3 * w // 4)), int(rng.integers(h // 4, 3 * h // 4))
    for _ in range(3):
        ax = (int(rng.integers(20, max(21, w // 6))), int(rng.integers(20, max(21, h // 4))))
        c = (int(cx + rng.integers(-60, 60)), int(cy + rng.integers(-40, 40)))
        cv2.ellipse(out, c, ax, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    return cx, cy


def make_pairs(rng, t, h, w, kind="smooth"):
    """``t`` pairs of ``(h, w)`` masks of ``kind`` (``KINDS``) -> bool stacks ``(gt, pred)``, each ``(t, h, w)``."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    gt, pred = np.zeros((t, h, w), np.uint8), np.zeros((t, h, w), np.uint8)
    for k in range(t):
        cx, cy = _blob(rng, h, w, gt[k])
        if kind == "smooth":
            dx, dy = rng.integers(-6, 7, 2)
            pred[k] = np.roll(gt[k], (dy, dx), axis=(0, 1))
            cv2.circle(pred[k], (int(rng.integers(0, w)), int(rng.integers(0, h))), int(rng.integers(3, 30)), 1, -1)
            continue
        for _ in range(int(rng.integers(2, 6))):  # thin limbs
            end = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            cv2.line(gt[k], (cx, cy), end, 1, int(rng.integers(1, 4)))
        pred[k] = np.roll(gt[k], tuple(int(v) for v in rng.integers(-4, 5, 2)), axis=(0, 1))
        for m in (gt[k], pred[k]):
            band = cv2.morphologyEx(m, cv2.MORPH_GRADIENT, np.ones((5, 5), np.uint8)).astype(bool)
            m ^= (band & (rng.random((h, w)) < 0.25)).astype(np.uint8)  # jagged boundary
            m ^= (rng.random((h, w)) < 0.002).astype(np.uint8)  # specks and holes
    return gt.astype(bool), pred.astype(bool)
