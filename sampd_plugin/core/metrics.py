"""DAVIS 2017 (Pont-Tuset et al.) semi-supervised VOS metrics: J, F and their statistics.

numpy + OpenCV only (no FiftyOne). Semantics follow the public DAVIS 2017 evaluation toolkit
(``davis2017/metrics.py``: ``db_eval_iou``, ``db_eval_boundary``, ``_seg2bmap``; ``utils.db_statistics``;
``evaluation.py``); the code is our own. J is vectorised over ``(T, H, W)`` stacks; F works per frame on the
objects' bounding region only (same values as the toolkit's whole-frame computation, ~4x faster at 480p).

Conventions: masks are boolean-like arrays ``(H, W)`` or stacks ``(T, H, W)``; ``void`` has the ground
truth's shape (``(H, W)`` is broadcast over a stack). Where ``pred`` has another resolution than ``gt``
(the toolkit asserts equal shapes; its ``_seg2bmap`` rescaling branch is unused) we evaluate at the ground
truth's resolution:

- J: ``pred`` is resized to ``gt``'s size with exact nearest neighbour (pixel centres, ``INTER_NEAREST_EXACT``);
- F: each boundary map is computed at its mask's own resolution, then ``pred``'s boundary pixels are
  mapped to ground-truth pixels ``(y * H // h, x * W // w)`` (the intent of Martin's ``seg2bmap`` rescaling,
  which keeps 1-pixel boundaries; the half-pixel offset convention is preserved, so an exact 2x
  upsampled mask scores F = 1); the tolerance uses the ground truth's diagonal.

Deliberate differences from the toolkit, none of which changes a value it can produce: ``statistics``
ignores NaN frames in the recall and does not wrap its bin edges past 256 frames (uint8 there);
``aggregate`` skips objects without scored frames (NaN) instead of returning NaN.
"""
from concurrent.futures import ThreadPoolExecutor
from math import ceil, hypot
from typing import NamedTuple

import cv2
import numpy as np

__all__ = [
    "region_similarity", "boundary_f_measure", "boundary_map", "bound_pixels", "disk",
    "statistics", "Stats", "protocol_frames", "aggregate", "youtube_vos_summary",
]


def _as_bool(a):
    a = np.asarray(a)
    return a if a.dtype == bool else a != 0


def _resize_nearest(mask, hw):
    """Resize a bool ``(..., h, w)`` mask to ``hw = (H, W)`` by exact nearest neighbour."""
    if mask.shape[-2:] == tuple(hw):
        return mask
    flat = mask.reshape(-1, *mask.shape[-2:]).astype(np.uint8)
    out = [cv2.resize(m, (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST_EXACT) for m in flat]
    return np.stack(out).reshape(*mask.shape[:-2], *hw).astype(bool)


def region_similarity(pred, gt, void=None):
    """Region similarity J (Jaccard index / IoU) of binary masks, DAVIS 2017 (Pont-Tuset et al.).

    Args:
        pred, gt: ``(H, W)`` or ``(T, H, W)`` masks (``pred`` may have another resolution, see module doc).
        void: optional ``(H, W)`` or ``(T, H, W)`` mask of pixels ignored in both.
    Returns:
        float for ``(H, W)`` inputs, else ``(T,)`` float array. ``|P n G| / |P u G|``; 1 when the union is empty.
    """
    gt = _as_bool(gt)
    pred = _resize_nearest(_as_bool(pred), gt.shape[-2:])
    if void is not None:
        keep = ~_as_bool(void)
        pred, gt = pred & keep, gt & keep
    inter = _counts(pred & gt)
    union = _counts(pred) + _counts(gt) - inter
    j = np.where(union == 0, 1.0, inter / np.maximum(union, 1))
    return float(j) if j.ndim == 0 else j


def _counts(masks):
    """Non-zero count of each ``(H, W)`` frame of a bool ``(..., H, W)`` array -> int array ``(...)``.
    Per-frame ``cv2.countNonZero`` is ~3x faster than ``np.count_nonzero(axis=(-2, -1))``."""
    flat = np.ascontiguousarray(masks).reshape(-1, *masks.shape[-2:]).view(np.uint8)
    return np.array([cv2.countNonZero(m) for m in flat]).reshape(masks.shape[:-2])


_QUAD = np.ones((2, 2), np.uint8)


def boundary_map(mask):
    """One-pixel boundary map of a binary mask, as DAVIS' ``_seg2bmap`` (D. Martin, 2003).

    A pixel is a boundary pixel when it differs from its east, south or south-east neighbour (boundaries
    sit half a pixel towards the origin); on the last row only the east neighbour, on the last column only
    the south neighbour is compared, and the bottom-right pixel is never a boundary (the image border is
    not a boundary: a full-frame mask has none). Equivalently, with the border replicated: the 2x2 block
    whose top-left is the pixel is not constant (max != min, two OpenCV 2x2 morphologies).
    ``mask``: ``(..., H, W)``; returns uint8 0/1 ``(..., H, W)``.
    """
    m = np.ascontiguousarray(_as_bool(mask)).view(np.uint8)
    flat = m.reshape(-1, *m.shape[-2:])
    out = [cv2.dilate(f, _QUAD, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)
           ^ cv2.erode(f, _QUAD, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE) for f in flat]
    return np.stack(out).reshape(m.shape) if out else np.zeros_like(m)


def bound_pixels(bound_th, shape):
    """Tolerance in pixels: ``bound_th`` if ``>= 1`` else ``ceil(bound_th * ||(H, W)||)`` (8 px at 480x854)."""
    return bound_th if bound_th >= 1 else ceil(bound_th * hypot(shape[0], shape[1]))


def disk(radius):
    """Disk structuring element ``x^2 + y^2 <= r^2`` on ``arange(-r, r + 1)`` (= ``skimage.morphology.disk``)."""
    ax = np.arange(-radius, radius + 1)
    return (ax[:, None] ** 2 + ax[None, :] ** 2 <= radius ** 2).astype(np.uint8)


def _grown_bbox(mask):
    """``(y0, y1, x0, x1)`` of a bool ``(H, W)`` mask's bounding box grown by one pixel (clipped by slicing),
    or None if empty. Its boundary (``boundary_map``) lies inside, and is the same computed on any crop
    containing this box."""
    x, y, w, h = cv2.boundingRect(np.ascontiguousarray(mask).view(np.uint8))
    if w == 0:
        return None
    return max(y - 1, 0), y + h + 1, max(x - 1, 0), x + w + 1


def _rescaled_boundary(mask, hw):
    """``boundary_map`` of ``mask`` at its own resolution, boundary pixels moved to ``(y * H // h, x * W // w)``
    of an ``hw = (H, W)`` uint8 map (other-resolution predictions, see module doc)."""
    ys, xs = np.nonzero(boundary_map(mask))
    out = np.zeros(hw, np.uint8)
    out[ys * hw[0] // mask.shape[0], xs * hw[1] // mask.shape[1]] = 1
    return out


def _count_matched(src, dst, src_box, dst_box, kernel):
    """``countNonZero(dst & dilate(src, kernel))`` for uint8 maps, dilating only where a match is possible:
    ``dst``'s box within kernel reach of ``src``'s box (boxes ``(y0, y1, x0, x1)`` bound the non-zeros)."""
    m = kernel.shape[0] // 2  # reach of the (centred) kernel
    y0, y1 = max(dst_box[0], src_box[0] - m), min(dst_box[1], src_box[1] + m)
    x0, x1 = max(dst_box[2], src_box[2] - m), min(dst_box[3], src_box[3] + m)
    if y0 >= y1 or x0 >= x1:
        return 0
    cy, cx = max(y0 - m, 0), max(x0 - m, 0)
    dil = cv2.dilate(src[cy:y1 + m, cx:x1 + m], kernel)
    return cv2.countNonZero(dst[y0:y1, x0:x1] & dil[y0 - cy:y1 - cy, x0 - cx:x1 - cx])


def _f_frame(pred, gt, kernel):
    """F of one frame (void already removed). Same resolution: computed on the union of the masks' grown
    bounding boxes (boundaries lie inside), each dilation only where it can match (``_count_matched``)."""
    if pred.shape == gt.shape:
        bp, bg = _grown_bbox(pred), _grown_bbox(gt)
        if bp is None and bg is None:
            return 1.0
        boxes = [b for b in (bp, bg) if b is not None]
        y0, y1, x0, x1 = (f(b[k] for b in boxes) for k, f in enumerate((min, max, min, max)))
        pb, gb = boundary_map(pred[y0:y1, x0:x1]), boundary_map(gt[y0:y1, x0:x1])
        full = (0, y1 - y0, 0, x1 - x0)
        bp, bg = [full if b is None else (b[0] - y0, b[1] - y0, b[2] - x0, b[3] - x0) for b in (bp, bg)]
    else:
        pb, gb = _rescaled_boundary(pred, gt.shape), boundary_map(gt)
        bp = bg = (0, gt.shape[0], 0, gt.shape[1])
    n_p, n_g = cv2.countNonZero(pb), cv2.countNonZero(gb)
    if n_p == 0 or n_g == 0:
        return float(n_p == n_g)  # both boundaries empty: 1, exactly one empty: 0
    precision = _count_matched(gb, pb, bg, bp, kernel) / n_p
    recall = _count_matched(pb, gb, bp, bg, kernel) / n_g
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def boundary_f_measure(pred, gt, void=None, bound_th=0.008, threads=1):
    """Boundary measure F, DAVIS 2017 (Pont-Tuset et al.).

    Boundary maps (``boundary_map``) of ``pred`` and ``gt`` (void pixels removed from both masks first) are
    matched within ``bound_pixels(bound_th, gt.shape[-2:])`` pixels by dilation with ``disk(r)`` (OpenCV);
    precision = matched pred boundary / pred boundary, recall = matched gt boundary / gt boundary,
    F = 2PR / (P + R). Both boundaries empty gives 1, exactly one empty gives 0.

    Args:
        pred, gt: ``(H, W)`` or ``(T, H, W)`` masks (``pred`` may have another resolution, see module doc).
        void: optional ``(H, W)`` or ``(T, H, W)`` mask at ``gt``'s resolution.
        bound_th: tolerance as a fraction of the image diagonal (< 1) or in pixels (>= 1).
        threads: frames of a stack are scored on this many threads (OpenCV releases the GIL; values are the
            same for any number; a worker passes :func:`sampd_plugin.ops.threads.num_threads`).
    Returns:
        float for ``(H, W)`` inputs, else ``(T,)`` float array.
    """
    gt, pred = _as_bool(gt), _as_bool(pred)
    if gt.ndim not in (2, 3) or pred.ndim != gt.ndim:
        raise ValueError(f"expected (H, W) or (T, H, W) masks, got {pred.shape} and {gt.shape}")
    kernel = disk(bound_pixels(bound_th, gt.shape[-2:]))
    single = gt.ndim == 2
    gt, pred = (gt[None], pred[None]) if single else (gt, pred)
    if void is not None:
        keep = ~_as_bool(void)
        gt = gt & keep
        pred = pred & (keep if pred.shape[-2:] == gt.shape[-2:] else _resize_nearest(keep, pred.shape[-2:]))
    threads = max(1, min(int(threads), len(gt) // 8))  # a thread per >= 8 frames, or it does not pay
    if threads == 1:
        f = np.array([_f_frame(p, g, kernel) for p, g in zip(pred, gt)])
    else:
        with ThreadPoolExecutor(threads) as pool:
            f = np.array(list(pool.map(_f_frame, pred, gt, [kernel] * len(gt))))
    return float(f[0]) if single else f


class Stats(NamedTuple):
    """Per-object statistics of a per-frame measure (DAVIS: M, O, D)."""
    mean: float
    recall: float
    decay: float


def statistics(values):
    """Mean, recall and decay of per-frame values (DAVIS ``db_statistics``), NaN-safe.

    - mean: ``nanmean``; recall: fraction of the non-NaN values ``> 0.5`` (the toolkit counts NaN as a
      failure, but never produces NaN);
    - decay: mean of the first bin minus mean of the last of 4 bins; bin edges are the toolkit's
      ``round(linspace(1, T, 5)) - 1`` (round half up) and bin ``i`` is ``values[e[i] : e[i+1] + 1]``
      (consecutive bins share their edge frame). E.g. T = 10: edges 0, 2, 5, 7, 9, first bin frames
      0-2, last bin frames 7-9. (The toolkit stores edges as uint8, wrapping past 256 frames; we do not.)
    Returns ``Stats``; NaN for values that are all NaN / empty.
    """
    v = np.asarray(values, dtype=float).ravel()
    ok = ~np.isnan(v)
    if not ok.any():
        return Stats(np.nan, np.nan, np.nan)
    e = (np.floor(np.linspace(1, v.size, 5) + 0.5) - 1).astype(int)
    first, last = v[e[0]:e[1] + 1], v[e[3]:e[4] + 1]
    with np.errstate(invalid="ignore"):
        decay = _nanmean(first) - _nanmean(last)
    return Stats(float(v[ok].mean()), float(np.mean(v[ok] > 0.5)), float(decay))


def _nanmean(v):
    v = v[~np.isnan(v)]
    return v.mean() if v.size else np.nan


def protocol_frames(num_frames, first=0, exclude_last=True):
    """Frame indices scored for an object (DAVIS 2017 semi-supervised protocol): those after its first
    (given) frame ``first`` (0-based), excluding the sequence's last frame if ``exclude_last``.
    Returns an int array (empty when nothing is left)."""
    return np.arange(first + 1, num_frames - 1 if exclude_last else num_frames)


def aggregate(j_stats, f_stats):
    """DAVIS global scores from per-object ``Stats`` lists (one entry per object of every sequence).

    Each of J/F mean, recall and decay is the mean over objects; ``J&F-Mean = (J-Mean + F-Mean) / 2``.
    Objects whose statistics are NaN (no scored frame) are skipped. Returns a dict with the toolkit's
    column names ``J&F-Mean, J-Mean, J-Recall, J-Decay, F-Mean, F-Recall, F-Decay``.
    """
    out = {}
    for name, stats in (("J", j_stats), ("F", f_stats)):
        a = np.array([tuple(s) for s in stats], dtype=float).reshape(-1, 3)
        for k, col in enumerate(("Mean", "Recall", "Decay")):
            out[f"{name}-{col}"] = float(_nanmean(a[:, k]))
    out = {"J&F-Mean": (out["J-Mean"] + out["F-Mean"]) / 2, **out}
    return out


def youtube_vos_summary(j_means, f_means, categories, seen):
    """YouTube-VOS aggregation: J and F means over objects of seen / unseen categories and the overall
    ``G = mean(J_seen, F_seen, J_unseen, F_unseen)`` (of the groups that have objects).

    Args:
        j_means, f_means: per-object J and F means; categories: per-object category names;
        seen: iterable of the categories seen in training.
    Returns: dict ``G, J_seen, F_seen, J_unseen, F_unseen`` (NaN for an empty group).
    """
    j, f = np.asarray(j_means, float), np.asarray(f_means, float)
    seen = set(seen)
    is_seen = np.array([c in seen for c in categories], dtype=bool)
    out = {}
    for group, sel in (("seen", is_seen), ("unseen", ~is_seen)):
        out[f"J_{group}"] = float(_nanmean(j[sel]))
        out[f"F_{group}"] = float(_nanmean(f[sel]))
    parts = np.array(list(out.values()))
    return {"G": float(_nanmean(parts)), **out}


def object_name(row):
    """``"<sequence>_<index>"``, the DAVIS toolkit's per-object row name."""
    return f"{row['sequence']}_{row['index']}"

