"""Video instance segmentation (VIS) metrics: video-level mask AP and AR with spatio-temporal IoU, as the
YouTube-VIS API (``ytvoseval``, a video port of COCO's ``cocoeval``) computes them for YouTube-VIS and UVO
(paper Sec. IV-A, Table II: AR100 and AP on UVO 1.0). Our own code; same semantics.

- A *track* is one object through a video: ``segmentations`` holds one COCO RLE (or ``None``: absent) per frame.
- Spatio-temporal IoU of a predicted and a ground-truth track (:func:`track_iou`): intersections and unions summed
  over all frames of the video, then divided (not a mean of per-frame IoUs); 0 when the union is empty.
- Per video and category, predictions sorted by score (stable) are greedily matched to ground-truth tracks at each
  IoU threshold 0.50:0.05:0.95 (a match needs IoU >= the threshold; crowd / out-of-area-range ground truth is
  ignored); precision is made monotone and sampled at 101 recall points; AP is its mean over thresholds, recall
  thresholds and categories; AR@k the mean over thresholds and categories of the recall with at most ``k``
  predictions per video. Area ranges use a track's mean area over its non-empty frames: small < 128², medium
  128²..256², large > 256² (YouTube-VIS' ranges).

Entries are dicts: ground truth ``{"video_id", "category_id", "segmentations", "iscrowd" (optional)}``,
predictions ``{"video_id", "category_id", "segmentations", "score"}``. UVO is class-agnostic (one category).

This module imports no FiftyOne; ``pycocotools`` does the RLE arithmetic.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)
MAX_DETS = (1, 10, 100)
AREA_RANGES = {"all": (0.0, 1e10), "small": (0.0, 128.0 ** 2), "medium": (128.0 ** 2, 256.0 ** 2),
               "large": (256.0 ** 2, 1e10)}


def _areas(seq) -> np.ndarray:
    from pycocotools import mask as mask_utils

    out = np.zeros(len(seq))
    valid = [i for i, r in enumerate(seq) if r]
    if valid:
        out[valid] = mask_utils.area([seq[i] for i in valid])
    return out


def mean_area(seq) -> float:
    """Mean area of a track over its frames with a non-empty mask (0 if none): its size for the area ranges."""
    a = _areas(seq)
    a = a[a > 0]
    return float(a.mean()) if a.size else 0.0


def track_ious(dts: Sequence[Sequence[Optional[dict]]], gts: Sequence[Sequence[Optional[dict]]]) -> np.ndarray:
    """``(D, G)`` spatio-temporal IoUs: ``sum_t |d_t n g_t| / sum_t |d_t u g_t|`` for every pair of tracks
    (per-frame intersections from pycocotools, summed over frames; 0 for an empty union).

    Raises ``ValueError`` when two tracks have different numbers of frames."""
    from pycocotools import mask as mask_utils

    d_n, g_n = len(dts), len(gts)
    if d_n == 0 or g_n == 0:
        return np.zeros((d_n, g_n))
    lengths = {len(s) for s in list(dts) + list(gts)}
    if len(lengths) != 1:
        raise ValueError(f"tracks of one video must have one number of frames, got {sorted(lengths)}")
    inter = np.zeros((d_n, g_n))
    area_d = np.zeros(d_n)
    area_g = np.zeros(g_n)
    for t in range(lengths.pop()):
        di = [i for i in range(d_n) if dts[i][t]]
        gi = [j for j in range(g_n) if gts[j][t]]
        d_rle = [dts[i][t] for i in di]
        g_rle = [gts[j][t] for j in gi]
        ad = mask_utils.area(d_rle) if di else np.zeros(0)
        ag = mask_utils.area(g_rle) if gi else np.zeros(0)
        area_d[di] += ad
        area_g[gi] += ag
        if di and gi:
            # iou with the ground truth marked "crowd" is |d n g| / |d|
            crowd = np.asarray(mask_utils.iou(d_rle, g_rle, [1] * len(gi))).reshape(len(di), len(gi))
            inter[np.ix_(di, gi)] += crowd * ad[:, None]
    union = area_d[:, None] + area_g[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def track_iou(dt: Sequence[Optional[dict]], gt: Sequence[Optional[dict]]) -> float:
    """Spatio-temporal IoU of two tracks (:func:`track_ious`)."""
    return float(track_ious([dt], [gt])[0, 0])


def _match(ious: np.ndarray, gt_ignore: np.ndarray, iscrowd: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Greedy matching at every IoU threshold (``cocoeval.evaluateImg``): ``(dt_matched (T, D) gt index or -1,
    dt_on_ignored (T, D) bool)`` for predictions in score order and ground truth sorted non-ignored first."""
    t_n, (d_n, g_n) = len(IOU_THRESHOLDS), ious.shape
    dt_m = -np.ones((t_n, d_n), dtype=int)
    gt_m = np.zeros((t_n, g_n), dtype=bool)
    dt_ig = np.zeros((t_n, d_n), dtype=bool)
    for ti, thr in enumerate(IOU_THRESHOLDS):
        for d in range(d_n):
            best, m = min(thr, 1 - 1e-10), -1
            for g in range(g_n):
                if gt_m[ti, g] and not iscrowd[g]:
                    continue
                if m > -1 and not gt_ignore[m] and gt_ignore[g]:
                    break
                if ious[d, g] < best:
                    continue
                best, m = ious[d, g], g
            if m > -1:
                dt_m[ti, d] = m
                dt_ig[ti, d] = gt_ignore[m]
                gt_m[ti, m] = True
    return dt_m, dt_ig


def evaluate_vis(gt: List[dict], dt: List[dict], max_dets: Sequence[int] = MAX_DETS, use_categories: bool = True
                 ) -> Dict[str, float]:
    """Video-level mask AP / AR (module docstring).

    Args:
        gt: ground-truth tracks; dt: predicted tracks (each with a ``score``)
        max_dets: the per-video prediction budgets of the AR columns (the last one also bounds AP)
        use_categories: match within categories (UVO has one, so either way)

    Returns:
        ``{"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"}`` (AR columns
        follow ``max_dets``; size columns at the largest budget); NaN where no ground truth counts
    """
    max_dets = sorted(int(m) for m in max_dets)
    cat = (lambda e: e["category_id"]) if use_categories else (lambda e: -1)
    groups: Dict[tuple, Tuple[list, list]] = {}
    for g in gt:
        groups.setdefault((g["video_id"], cat(g)), ([], []))[0].append(g)
    for d in dt:
        groups.setdefault((d["video_id"], cat(d)), ([], []))[1].append(d)
    cats = sorted({k[1] for k in groups}, key=str)
    t_n, r_n, k_n, a_n, m_n = len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS), len(cats), len(AREA_RANGES), len(max_dets)
    precision = -np.ones((t_n, r_n, k_n, a_n, m_n))
    recall = -np.ones((t_n, k_n, a_n, m_n))
    per_cat: Dict = {c: {a: [] for a in AREA_RANGES} for c in cats}
    for (vid, c), (gs, ds) in groups.items():
        order = np.argsort([-d["score"] for d in ds], kind="mergesort")[: max_dets[-1]]
        ds = [ds[i] for i in order]
        ious = track_ious([d["segmentations"] for d in ds], [g["segmentations"] for g in gs])
        g_area = np.array([mean_area(g["segmentations"]) for g in gs])
        d_area = np.array([mean_area(d["segmentations"]) for d in ds])
        crowd = np.array([bool(g.get("iscrowd", 0)) for g in gs], dtype=bool)
        for a_name, (lo, hi) in AREA_RANGES.items():
            ignore = crowd | (g_area < lo) | (g_area > hi)
            gorder = np.argsort(ignore, kind="mergesort")
            dt_m, dt_ig = _match(ious[:, gorder] if ious.size else np.zeros((len(ds), len(gs))),
                                 ignore[gorder], crowd[gorder])
            out_of_range = (d_area < lo) | (d_area > hi)
            dt_ig = dt_ig | ((dt_m < 0) & out_of_range[None, :])
            per_cat[c][a_name].append(dict(scores=np.array([d["score"] for d in ds], dtype=float),
                                           matched=dt_m >= 0, ignored=dt_ig, n_gt=int((~ignore).sum())))
    for k, c in enumerate(cats):
        for a, a_name in enumerate(AREA_RANGES):
            entries = per_cat[c][a_name]
            n_gt = sum(e["n_gt"] for e in entries)
            if n_gt == 0:
                continue
            for m, md in enumerate(max_dets):
                scores = np.concatenate([e["scores"][:md] for e in entries]) if entries else np.zeros(0)
                order = np.argsort(-scores, kind="mergesort")
                matched = np.concatenate([e["matched"][:, :md] for e in entries], axis=1)[:, order]
                ignored = np.concatenate([e["ignored"][:, :md] for e in entries], axis=1)[:, order]
                tps = np.cumsum(matched & ~ignored, axis=1).astype(float)
                fps = np.cumsum(~matched & ~ignored, axis=1).astype(float)
                for t in range(t_n):
                    tp, fp = tps[t], fps[t]
                    if tp.size == 0:
                        recall[t, k, a, m] = 0.0
                        precision[t, :, k, a, m] = 0.0
                        continue
                    rc = tp / n_gt
                    pr = tp / (tp + fp + np.spacing(1))
                    recall[t, k, a, m] = rc[-1]
                    pr = np.maximum.accumulate(pr[::-1])[::-1]  # monotone envelope
                    idx = np.searchsorted(rc, RECALL_THRESHOLDS, side="left")
                    q = np.zeros(r_n)
                    ok = idx < pr.size
                    q[ok] = pr[idx[ok]]
                    precision[t, :, k, a, m] = q

    def mean(x):
        x = x[x > -1]
        return float(x.mean()) if x.size else float("nan")

    ai = {name: i for i, name in enumerate(AREA_RANGES)}
    top = m_n - 1
    out = {"AP": mean(precision[:, :, :, ai["all"], top]),
           "AP50": mean(precision[0, :, :, ai["all"], top]),
           "AP75": mean(precision[5, :, :, ai["all"], top]),
           "APs": mean(precision[:, :, :, ai["small"], top]),
           "APm": mean(precision[:, :, :, ai["medium"], top]),
           "APl": mean(precision[:, :, :, ai["large"], top])}
    for m, md in enumerate(max_dets):
        out[f"AR{md}"] = mean(recall[:, :, ai["all"], m])
    out.update(ARs=mean(recall[:, :, ai["small"], top]), ARm=mean(recall[:, :, ai["medium"], top]),
               ARl=mean(recall[:, :, ai["large"], top]))
    return out
