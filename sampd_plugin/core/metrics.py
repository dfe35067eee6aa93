"""DAVIS 2017 (Pont-Tuset et al.) semi-supervised VOS metrics: J, F and their statistics.

numpy + OpenCV only (no FiftyOne). Semantics follow the public DAVIS 2017 evaluation toolkit
(``davis2017/metrics.py``: ``db_eval_iou``, ``db_eval_boundary``, ``_seg2bmap``; ``utils.db_statistics``;
``evaluation.py``); the code is our own. J is vectorised over ``(T, H, W)`` stacks; F packs the boundary maps 64
pixels per machine word, on the objects' common bounding region, and matches them with an exact word-wise disk
dilation (the same values as the toolkit's whole-frame ``cv2.dilate``, at a cost that follows the region's area
/ 64 rather than area x disk size; ``perf/metrics_speed.py``).

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
from functools import lru_cache
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
    inter = pixel_counts(pred & gt)
    union = pixel_counts(pred) + pixel_counts(gt) - inter
    j = np.where(union == 0, 1.0, inter / np.maximum(union, 1))
    return float(j) if j.ndim == 0 else j


def pixel_counts(masks):
    """Foreground pixels of each ``(H, W)`` frame of a bool ``(..., H, W)`` array -> int array ``(...)``.
    Per-frame ``cv2.countNonZero`` is ~3x faster than ``np.count_nonzero(axis=(-2, -1))``."""
    flat = np.ascontiguousarray(masks).reshape(-1, *masks.shape[-2:]).view(np.uint8)
    return np.array([cv2.countNonZero(m) for m in flat]).reshape(masks.shape[:-2])


def _pack_rows(masks, pad):
    """Bool ``(..., H, W)`` -> uint64 ``(..., H, B)``: pixel ``x`` of a row is bit ``x % 64`` of word ``x // 64``;
    each row ends in at least ``pad`` zero bits (``B = ceil((W + pad) / 64)``)."""
    words = -(-(masks.shape[-1] + pad) // 64)
    out = np.zeros((*masks.shape[:-1], 8 * words), np.uint8)
    out[..., :(masks.shape[-1] + 7) // 8] = np.packbits(masks, axis=-1, bitorder="little")
    return out.view("<u8")


@lru_cache(maxsize=64)
def _row_mask(n, words):
    """uint64 ``(words,)`` with the first ``n`` bits of a packed row set."""
    return np.packbits(np.arange(64 * words) < n, bitorder="little").view("<u8")


def _packed_boundary(bits, width):
    """``boundary_map`` of rows packed by ``_pack_rows`` (``width`` pixels, >= 1 padding bit): the 2x2 block whose
    top-left is the pixel is not constant iff it differs from its east neighbour, or its south neighbour, or the
    south pixel from its own east neighbour; the last column has no east difference (replicated border), the
    last row no south one. Returns packed ``(..., H, B)`` with zero padding."""
    flat = bits.reshape(-1)
    east = flat >> np.uint64(1)
    east[:-1] |= flat[1:] << np.uint64(63)  # the next word's first pixel
    east = (flat ^ east).reshape(bits.shape)
    east &= _row_mask(width - 1, bits.shape[-1])
    out = np.empty_like(bits)
    out[..., :-1, :] = east[..., :-1, :] | east[..., 1:, :] | (bits[..., :-1, :] ^ bits[..., 1:, :])
    out[..., -1, :] = east[..., -1, :]
    return out


def boundary_map(mask):
    """One-pixel boundary map of a binary mask, as DAVIS' ``_seg2bmap`` (D. Martin, 2003).

    A pixel is a boundary pixel when it differs from its east, south or south-east neighbour (boundaries
    sit half a pixel towards the origin); on the last row only the east neighbour, on the last column only
    the south neighbour is compared, and the bottom-right pixel is never a boundary (the image border is
    not a boundary: a full-frame mask has none). Equivalently, with the border replicated: the 2x2 block
    whose top-left is the pixel is not constant. Computed 64 pixels per machine word (``_packed_boundary``).
    ``mask``: ``(..., H, W)``; returns uint8 0/1 ``(..., H, W)``.
    """
    m = _as_bool(mask)
    bits = _packed_boundary(_pack_rows(m, 1), m.shape[-1])
    return np.unpackbits(bits.view(np.uint8), axis=-1, count=m.shape[-1], bitorder="little")


def bound_pixels(bound_th, shape):
    """Tolerance in pixels: ``bound_th`` if ``>= 1`` (a whole number of pixels, else ``ValueError``) else
    ``ceil(bound_th * ||(H, W)||)`` (8 px at 480x854)."""
    if bound_th >= 1:
        if bound_th != int(bound_th):
            raise ValueError(f"bound_th >= 1 is a tolerance in pixels and must be a whole number, got {bound_th}")
        return int(bound_th)
    return ceil(bound_th * hypot(shape[0], shape[1]))


def disk(radius):
    """Disk structuring element ``x^2 + y^2 <= r^2`` on ``arange(-r, r + 1)`` (= ``skimage.morphology.disk``)."""
    ax = np.arange(-radius, radius + 1)
    return (ax[:, None] ** 2 + ax[None, :] ** 2 <= radius ** 2).astype(np.uint8)


@lru_cache(maxsize=16)
def _half_widths(radius):
    """``w(dy)``, ``dy = 0 .. radius``: row ``dy`` of ``disk(radius)`` is the run ``|dx| <= w(dy)``."""
    return tuple((int(n) - 1) // 2 for n in disk(radius).sum(1)[radius:])


def _grow_rows(bits, s):
    """OR of packed rows with themselves shifted by ``+s`` and ``-s`` pixels (``0 < s < 64``), on the flat bit
    string: carries between words, and between rows through their zero padding."""
    flat = bits.reshape(-1)
    s, c = np.uint64(s), np.uint64(64 - s)
    out = flat << s
    out |= flat
    out |= flat >> s
    out[1:] |= flat[:-1] >> c
    out[:-1] |= flat[1:] << c
    return out.reshape(bits.shape)


def _dilate_disk(bits, radius):
    """``cv2.dilate(map, disk(radius))`` of packed rows (``_pack_rows`` with ``pad >= radius``): exact on each
    row's pixels, its padding bits are left unspecified.

    The disk is the union of its rows: row ``dy`` is the run ``|dx| <= w(dy)``, so the dilation is the OR over
    ``|dy| <= radius`` of the row-wise dilation by ``w(dy)`` shifted by ``dy`` rows. The row-wise dilations are
    grown incrementally (doubling), 64 pixels per word: the work is a few passes over ``H * W / 64`` words per
    distinct ``w`` and one per row of the disk, where a pixel-wise dilation costs the disk's area per pixel.
    """
    half_widths = _half_widths(radius)
    out = np.zeros_like(bits)
    grown, width = bits, 0
    for dy in range(radius, -1, -1):  # w(dy) grows as |dy| shrinks
        while width < half_widths[dy]:
            s = min(width + 1, half_widths[dy] - width, 63)
            grown, width = _grow_rows(grown, s), width + s
        if dy == 0:
            out |= grown
        elif dy < bits.shape[-2]:
            out[..., dy:, :] |= grown[..., :-dy, :]
            out[..., :-dy, :] |= grown[..., dy:, :]
    return out


def _rescaled_boundary(mask, hw):
    """``boundary_map`` of ``mask`` at its own resolution, boundary pixels moved to ``(y * H // h, x * W // w)``
    of an ``hw = (H, W)`` bool map (other-resolution predictions, see module doc)."""
    ys, xs = np.nonzero(boundary_map(mask))
    out = np.zeros(hw, bool)
    out[ys * hw[0] // mask.shape[0], xs * hw[1] // mask.shape[1]] = True
    return out


def _boundary_windows(bounds, radius):
    """Crops of packed boundary maps ``(2, T, H, B)`` (pred, gt) for the matching: frame by frame, the rows and
    words holding either map's boundary, followed by at least ``radius`` zero bits (so ``_dilate_disk``'s carries
    stay exact); one size for all frames (the largest), each crop placed over its frame's own region. A frame
    whose maps are both empty gets any crop (it is scored 1 from its counts). Returns ``(2, T, h, b)``."""
    either = bounds[0] | bounds[1]
    rows, cols = either.any(-1), np.bitwise_or.reduce(either, axis=-2) != 0  # (T, H), (T, B)
    (t, height), words = rows.shape, cols.shape[-1]
    y0, y1 = rows.argmax(-1), height - rows[:, ::-1].argmax(-1)
    x0, x1 = cols.argmax(-1), np.minimum(words - cols[:, ::-1].argmax(-1) + -(-radius // 64), words)
    some = rows.any(-1)
    h, b = (int(v[some].max(initial=1)) for v in (y1 - y0, x1 - x0))
    view = np.lib.stride_tricks.sliding_window_view(bounds, (h, b), axis=(-2, -1))
    return view[:, np.arange(t), np.minimum(y0, height - h), np.minimum(x0, words - b)]


def _f_frames(pred, gt, radius):
    """F of ``(T, h, w)`` / ``(T, H, W)`` bool stacks (void already removed), ``(T,)``: both boundary maps
    packed 64 pixels per word, cropped to each frame's boundary region (``_boundary_windows``), each dilated
    by ``disk(radius)`` (``_dilate_disk``) and matched against the other with word-wise AND and popcount."""
    pad = max(radius, 1)
    if pred.shape == gt.shape:
        bounds = _packed_boundary(np.stack([_pack_rows(pred, pad), _pack_rows(gt, pad)]), gt.shape[-1])
    else:
        maps = [_rescaled_boundary(p, gt.shape[-2:]) for p in pred] + [boundary_map(g).view(bool) for g in gt]
        bounds = _pack_rows(np.stack(maps).reshape(2, *gt.shape), pad)
    count = lambda b: np.bitwise_count(b).sum(axis=(-2, -1))  # noqa: E731
    n_p, n_g = count(bounds)
    windows = _boundary_windows(bounds, radius)
    m_p, m_g = count(_dilate_disk(windows, radius)[::-1] & windows)  # pred matched by gt's dilation, and back
    with np.errstate(divide="ignore", invalid="ignore"):
        precision, recall = m_p / n_p, m_g / n_g
        f = np.where(precision + recall == 0, 0.0, 2 * precision * recall / (precision + recall))
    # both boundaries empty: 1, exactly one empty: 0
    return np.where((n_p == 0) | (n_g == 0), (n_p == n_g).astype(float), f)


_F_CHUNK = 8  # frames packed and matched together (their words stay in cache)


def boundary_f_measure(pred, gt, void=None, bound_th=0.008, threads=1):
    """Boundary measure F, DAVIS 2017 (Pont-Tuset et al.).

    Boundary maps (``boundary_map``) of ``pred`` and ``gt`` (void pixels removed from both masks first) are
    matched within ``bound_pixels(bound_th, gt.shape[-2:])`` pixels: a boundary pixel is matched when the other
    boundary's dilation by ``disk(r)`` covers it (the toolkit's ``cv2.dilate``; computed exactly, 64 pixels per
    word, see ``_dilate_disk``); precision = matched pred boundary / pred boundary, recall = matched gt boundary
    / gt boundary, F = 2PR / (P + R). Both boundaries empty gives 1, exactly one empty gives 0.

    Args:
        pred, gt: ``(H, W)`` or ``(T, H, W)`` masks (``pred`` may have another resolution, see module doc).
        void: optional ``(H, W)`` or ``(T, H, W)`` mask at ``gt``'s resolution.
        bound_th: tolerance as a fraction of the image diagonal (< 1) or in whole pixels (>= 1).
        threads: chunks of frames of a stack are scored on this many threads (numpy releases the GIL; values
            are the same for any number; a worker passes :func:`sampd_plugin.ops.threads.num_threads`).
    Returns:
        float for ``(H, W)`` inputs, else ``(T,)`` float array.
    """
    gt, pred = _as_bool(gt), _as_bool(pred)
    if gt.ndim not in (2, 3) or pred.ndim != gt.ndim:
        raise ValueError(f"expected (H, W) or (T, H, W) masks, got {pred.shape} and {gt.shape}")
    radius = bound_pixels(bound_th, gt.shape[-2:])
    single = gt.ndim == 2
    gt, pred = (gt[None], pred[None]) if single else (gt, pred)
    if void is not None:
        keep = ~_as_bool(void)
        gt = gt & keep
        pred = pred & (keep if pred.shape[-2:] == gt.shape[-2:] else _resize_nearest(keep, pred.shape[-2:]))
    chunks = [slice(k, k + _F_CHUNK) for k in range(0, len(gt), _F_CHUNK)]
    threads = max(1, min(int(threads), len(chunks)))
    score = lambda c: _f_frames(pred[c], gt[c], radius)  # noqa: E731
    if threads == 1:
        parts = [score(c) for c in chunks]
    else:
        with ThreadPoolExecutor(threads) as pool:
            parts = list(pool.map(score, chunks))
    f = np.concatenate(parts) if parts else np.zeros(0)
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

