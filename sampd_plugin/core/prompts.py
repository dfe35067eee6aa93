"""Prompt construction: the one-to-many box grid (Sec. III-C) and the refinement points (Sec. III-D).

Boxes are ``xyxy`` in image pixels (floats) with **exclusive** right/bottom ends: the box ``[x0, x1) x [y0, y1)`` of
continuous image coordinates (pixel ``i`` covers ``[i, i + 1)``), so a mask's box is ``(x0, y0, x_last + 1,
y_last + 1)`` (:func:`mask_to_box`), its width is its number of columns, and it is also the box FiftyOne's relative
``[x, y, w, h]`` boxes describe. SAM itself takes boxes as the pixel *indices* of their first and last pixels
(inclusive ends, segment-anything's ``batched_mask_to_box``; its prompt encoder adds the half-pixel offset): a SAM
backend converts at its boundary with :func:`sam_box`. Points are ``(x, y)`` integer pixel indices (segment-anything
adds the half-pixel offset itself). This module imports no FiftyOne.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch


def mask_to_box(mask: np.ndarray) -> Optional[np.ndarray]:
    """Tight ``(4,)`` ``xyxy`` pixel box ``(x0, y0, x1 + 1, y1 + 1)`` of an ``(H, W)`` bool mask (``x1``, ``y1``: its
    last column and row, so the right/bottom ends are exclusive); ``None`` if empty.

    Sec. III-B: the box of the previous frame's mask is the (noisy) prompt for the next frame. This is the library's
    box convention (tracker state, FiftyOne boxes); SAM receives it through :func:`sam_box`.
    """
    x, y, w, h = cv2.boundingRect(np.ascontiguousarray(mask, dtype=bool).view(np.uint8))
    if w == 0:
        return None
    return np.array([x, y, x + w, y + h], dtype=np.float32)


def masks_boxes(masks: np.ndarray) -> Tuple[List[Optional[np.ndarray]], List[int]]:
    """:func:`mask_to_box` of each of ``(N, H, W)`` bool masks, and their pixel counts.

    The rows holding foreground are found for all masks at once; each mask's columns and pixels are then looked
    for only in its own rows (many small objects on a large frame: a small part of each mask is read twice, instead
    of the whole mask by ``cv2.boundingRect`` and again by a count).

    Returns:
        ``N`` boxes (``None`` for an empty mask) and ``N`` pixel counts
    """
    masks = np.ascontiguousarray(masks, dtype=bool)
    if not masks.size:
        return [None] * len(masks), [0] * len(masks)
    n, h, w = masks.shape  # rows holding foreground, one OpenCV reduction for all masks (2x numpy's any)
    found = cv2.reduce(masks.view(np.uint8).reshape(n * h, w), 1, cv2.REDUCE_MAX).reshape(n, h)
    boxes, areas = [], []
    for mask, rows in zip(masks, found):
        ys = np.flatnonzero(rows)
        if not len(ys):
            boxes.append(None)
            areas.append(0)
            continue
        y0, y1 = int(ys[0]), int(ys[-1]) + 1
        band = mask[y0:y1].view(np.uint8)
        x, _, w, _ = cv2.boundingRect(band)
        boxes.append(np.array([x, y0, x + w, y1], dtype=np.float32))
        areas.append(cv2.countNonZero(band))
    return boxes, areas


def sam_box(boxes: torch.Tensor) -> torch.Tensor:
    """``(..., 4)`` library boxes (exclusive right/bottom, :func:`mask_to_box`) -> SAM's box convention.

    SAM was trained on boxes whose corners are the indices of the mask's first and last pixels (segment-anything's
    ``batched_mask_to_box``: right/bottom *on* the last mask pixel; the prompt encoder then adds ``0.5`` to reach
    pixel centres). A continuous box ``[x0, x1)`` therefore reaches SAM as ``(x0, x1 - 1)``: for a mask's box,
    exactly ``batched_mask_to_box`` of the mask; for the jittered and scaled boxes of the one-to-many grid, the same
    half-pixel inset of the continuous extent.
    """
    return boxes - boxes.new_tensor([0.0, 0.0, 1.0, 1.0])


def box_prompt_grid(
    boxes: torch.Tensor,
    image_size: Tuple[int, int],
    grid_size: int = 3,
    shift_step: float = 0.10,
    scales: Sequence[float] = (1.0, 1.05),
    min_size: float = 1.0,
) -> torch.Tensor:
    """One-to-many (Sec. III-C): ``grid_size**2 * len(scales)`` jittered and scaled copies of each box.

    The centres lie on a ``grid_size x grid_size`` grid centred on the box with a step of ``shift_step`` times
    the box's width (x) and height (y); at each centre one box per scale factor (width and height multiplied by
    it). Paper default: 3 x 3 x {1.0, 1.05} = 18 boxes. Boxes are clipped to the image and never degenerate: a
    box narrower than ``min_size`` after clipping is widened to ``min_size`` inside the image.

    Args:
        boxes: ``(N, 4)`` ``xyxy`` pixel boxes
        image_size: ``(H, W)``

    Returns:
        ``(N, G, 4)`` boxes, ``G = grid_size**2 * len(scales)``, ordered row-major over the grid (y, then x),
        then by scale; the unshifted, unscaled box is at index ``(G // len(scales) // 2) * len(scales)`` when
        ``scales[0] == 1``.
    """
    # (numpy float32 on the host: the same IEEE operations as torch's, without its per-operation dispatch, which
    # was most of this function's cost for a few boxes)
    b = boxes.detach().to("cpu", torch.float32).numpy()
    half = grid_size // 2
    steps = np.arange(-half, half + 1, dtype=np.float32) * np.float32(shift_step)
    sx, sy = np.tile(steps, len(steps)), np.repeat(steps, len(steps))  # (g*g,) row-major: y, then x
    sc = np.asarray(scales, dtype=np.float32)

    bw = (b[:, 2] - b[:, 0])[:, None, None]  # (N, 1, 1)
    bh = (b[:, 3] - b[:, 1])[:, None, None]
    cx = ((b[:, 0] + b[:, 2]) / np.float32(2))[:, None, None] + sx[None, :, None] * bw  # (N, g*g, 1)
    cy = ((b[:, 1] + b[:, 3]) / np.float32(2))[:, None, None] + sy[None, :, None] * bh
    hw = bw * sc[None, None, :] / np.float32(2)  # (N, 1, S)
    hh = bh * sc[None, None, :] / np.float32(2)
    grid = np.stack(np.broadcast_arrays(cx - hw, cy - hh, cx + hw, cy + hh), axis=-1).reshape(b.shape[0], -1, 4)
    return torch.from_numpy(_clip_boxes(grid, image_size, min_size)).to(boxes.device)


def clip_boxes(boxes: torch.Tensor, image_size: Tuple[int, int], min_size: float = 1.0) -> torch.Tensor:
    """Clips ``(..., 4)`` ``xyxy`` boxes to the image; widens any side shorter than ``min_size`` inside it."""
    return torch.from_numpy(_clip_boxes(boxes.detach().cpu().numpy(), image_size, min_size)).to(boxes.device)


def _clip_boxes(boxes: np.ndarray, image_size: Tuple[int, int], min_size: float = 1.0) -> np.ndarray:
    """:func:`clip_boxes` of a float array (a new array of its dtype)."""
    h, w = image_size
    out = boxes.copy()
    f = out.dtype.type
    m = f(min_size)
    for lo, hi, size in ((0, 2, w), (1, 3, h)):
        a = np.minimum(np.maximum(out[..., lo], f(0)), f(size - min_size))  # (torch's clamp; np.clip is slower)
        b = np.minimum(np.maximum(out[..., hi], m), f(size))
        b = np.maximum(b, a + m)
        a = np.minimum(a, b - m)
        out[..., lo], out[..., hi] = a, b
    return out


def mask_points(mask: np.ndarray, k: int = 1) -> np.ndarray:
    """Points of a mask farthest from its boundary (Sec. III-D), by a distance transform.

    The first point is the pixel of ``mask`` farthest from the mask's boundary (the image border counts as
    boundary). The paper says this follows SAM's *training* click sampling; in fact SAM's training clicks are drawn
    at random (uniformly from the mask, then from the error region), and farthest-from-boundary is the deterministic
    click of SAM's (and RITM's) interactive *evaluation* protocol. Each further point is the pixel farthest from both
    the boundary and the points already chosen. Ties go to the first pixel in row-major order.

    Args:
        mask: ``(H, W)`` bool
        k: number of points

    Returns:
        ``(min(k, area), 2)`` int ``(x, y)`` pixel indices (empty for an empty mask); :func:`masks_points` computes it
    """
    return masks_points([mask], k)[0]


def masks_points(masks: Sequence[np.ndarray], k: int = 1,
                 boxes: Optional[Sequence[Optional[np.ndarray]]] = None) -> List[np.ndarray]:
    """:func:`mask_points` of several masks, from one distance transform per point for all of them.

    Each mask's bounding box, with a one-pixel ring of background around it, is placed on one canvas (shelves of
    boxes, a row / column of background between neighbours): the transform of a box with its ring is exact, because
    for a pixel inside the box any background pixel outside the ring is no closer than its projection onto the ring,
    and row-major order within the box is row-major order in the frame; so the canvas' transform holds every mask's,
    and the cost follows the boxes' area, not the frame's (many small objects on a large frame). Distances are
    compared as squared integers (OpenCV's exact transform returns their float square roots, which it rounds
    differently from call to call, by one ulp: compared as floats, ties between equally distant pixels would break
    at random).

    Args:
        masks: ``N`` ``(H, W)`` bool masks (or an ``(N, H, W)`` array)
        k: points per mask
        boxes: the masks' :func:`mask_to_box` when the caller has them (else they are computed)

    Returns:
        ``N`` arrays ``(min(k, area), 2)`` of int ``(x, y)`` pixel indices (empty for an empty mask)
    """
    out = [np.zeros((0, 2), dtype=np.int64) for _ in range(len(masks))]
    if boxes is None:
        boxes = masks_boxes(masks)[0]
    boxes = [(0, 0, 0, 0) if b is None else (int(b[0]), int(b[1]), int(b[2] - b[0]), int(b[3] - b[1]))
             for b in boxes]  # (x, y, w, h) as cv2.boundingRect gives them
    todo = sorted((i for i, b in enumerate(boxes) if b[2] > 0), key=lambda i: -boxes[i][3])
    if not todo or k < 1:
        return out
    at, (height, width) = _shelves([boxes[i][2:] for i in todo])
    at = dict(zip(todo, at))
    canvas = np.zeros((height, width), np.uint8)
    for i, (cy, cx) in at.items():
        bx, by, w, h = boxes[i]
        canvas[cy:cy + h, cx:cx + w] = masks[i][by:by + h, bx:bx + w]
    points = {i: [] for i in at}
    for j in range(k):
        squares = _squared_distances(cv2.distanceTransform(canvas, cv2.DIST_L2, cv2.DIST_MASK_PRECISE))
        for i, (cy, cx) in at.items():
            bx, by, w, h = boxes[i]
            if len(points[i]) == j:  # (a mask with no pixel left stops)
                top, _, (x, y) = cv2.minMaxLoc(squares[cy:cy + h, cx:cx + w])[1:]  # the first largest, row-major
                if top > 0:
                    points[i].append((bx + x, by + y))
                    canvas[cy + y, cx + x] = 0
    for i, pts in points.items():
        out[i] = np.array(pts, dtype=np.int64).reshape(-1, 2)
    return out


def _shelves(sizes: Sequence[Tuple[int, int]]) -> Tuple[List[Tuple[int, int]], Tuple[int, int]]:
    """Boxes ``(w, h)`` (tallest first) placed on shelves, each with a one-pixel ring of background that it may
    share with its neighbours -> their top-left corners ``(y, x)`` and the canvas ``(height, width)``; of a few
    canvas widths from the widest box to twice the square root of their area, the smallest canvas (the transform's
    cost follows the canvas' area)."""
    widest = max(w for w, _ in sizes) + 2
    side = int(np.sqrt(sum((w + 1) * (h + 1) for w, h in sizes)))
    best = None
    for width in sorted({max(widest, int(side * f) + 2) for f in (1.0, 1.25, 1.5, 2.0)}):
        at, x, y, shelf = [], 1, 1, 0
        for w, h in sizes:
            if x + w + 1 > width:
                x, y, shelf = 1, y + shelf + 1, 0
            at.append((y, x))
            x, shelf = x + w + 1, max(shelf, h)
        if best is None or (y + shelf + 1) * width < best[1][0] * best[1][1]:
            best = at, (y + shelf + 1, width)
    return best


def _squared_distances(dist: np.ndarray) -> np.ndarray:
    """An exact Euclidean distance transform ``dist`` (float32 square roots of integers, each within an ulp, as
    OpenCV gives them) -> the squared distances as exact integers (float32 below ``2**20``, where the rounding
    error of squaring in float32 stays under 0.3; else float64): equal distances compare equal."""
    if dist.size and float(dist.max()) < 1000:  # squares < 1e6 < 2**20
        return np.rint(np.square(dist))
    return np.rint(np.square(dist, dtype=np.float64))


def refinement_point(mask: np.ndarray) -> Optional[np.ndarray]:
    """The positive refinement point (Sec. III-D): the ``(2,)`` ``(x, y)`` pixel of ``mask`` farthest from its
    boundary, or ``None`` for an empty mask."""
    pts = mask_points(mask, 1)
    return pts[0] if len(pts) else None


def negative_points(object_points: Sequence[np.ndarray], objects: Optional[Sequence[int]] = None) -> List[np.ndarray]:
    """Negative prompts (Sec. III-D, Fig. 2, Table V) of several objects at once: each object's are the points
    sampled from the *other* objects, appended unconditionally behind its own prompt.

    None is dropped for falling inside the object's own mask: a point of object B inside A's mask is where A's mask
    has spread onto B, exactly the confusion between objects the negatives exist to correct.

    Args:
        object_points: per object ``j``, a ``(k_j, 2)`` array of its points (from :func:`mask_points`)
        objects: the indices into ``object_points`` of the objects whose negatives are wanted (default: all; the
            others only give negatives)

    Returns:
        per object of ``objects``, ``(M, 2)`` int ``(x, y)`` points: the other objects' in their order
    """
    objects = range(len(object_points)) if objects is None else objects
    pts = [np.asarray(p, dtype=np.int64).reshape(-1, 2) for p in object_points]
    every = np.concatenate(pts) if pts else np.zeros((0, 2), dtype=np.int64)  # (P, 2) all points, once
    owner = np.repeat(np.arange(len(pts)), [len(p) for p in pts])
    return [every[owner != i] for i in objects]


def group_by_point_count(
    positives: Sequence[Optional[np.ndarray]], negatives: Sequence[np.ndarray], device=None
) -> List[Tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]]:
    """Splits per-prompt points into groups of prompts with the same number of points, for exact batching.

    SAM has no no-op padding token: its "not a point" label ``-1`` is a learned embedding that joins the decoder's
    attention and changes the masks, so padding point lists to a common length would make an object's mask depend
    on its batch mates. Prompts are therefore only ever batched with prompts of the same point count, unpadded
    (one decoder call per stage per distinct count when the batch size is unlimited).

    Args:
        positives: per prompt, an optional ``(2,)`` positive point (first in its list)
        negatives: per prompt, an ``(M_i, 2)`` array of negative points

    Returns:
        one ``(indices, points, labels)`` per distinct count ``P``, by increasing ``P``: ``indices`` ``(b,)`` long,
        the prompts of the group in input order; ``points`` ``(b, P, 2)`` float and ``labels`` ``(b, P)`` long
        (1 positive, 0 negative), both ``None`` for ``P = 0``
    """
    has_pos = np.array([pos is not None for pos in positives], dtype=bool)
    counts = has_pos + np.array([len(neg) for neg in negatives], dtype=np.int64)
    groups = []
    for p in np.unique(counts).tolist():
        idx = np.flatnonzero(counts == p)
        coords = labels = None
        if p:  # each prompt's points: its positive (if any) first, then its negatives (one copy per kind of prompt)
            coords = np.empty((len(idx), p, 2), dtype=np.float32)
            pos = has_pos[idx]
            for rows, first in ((pos, 1), (~pos, 0)):
                if not rows.any():
                    continue
                which = idx[rows].tolist()
                if first:
                    coords[rows, 0] = np.stack([np.reshape(positives[i], 2) for i in which])
                if p > first:
                    coords[rows, first:] = _stacked([negatives[i] for i in which], p - first)
            labels = np.zeros((len(idx), p), dtype=np.int64)
            labels[pos, 0] = 1
            coords = torch.as_tensor(coords, device=device)
            labels = torch.as_tensor(labels, device=device)
        groups.append((torch.as_tensor(idx, dtype=torch.long), coords, labels))
    return groups


def _stacked(points: Sequence[np.ndarray], m: int) -> np.ndarray:
    """``b`` prompts' ``(m, 2)`` points -> ``(b, m, 2)`` (one copy; arrays of another layout are reshaped first)."""
    try:
        out = np.stack(points)
    except ValueError:
        out = None
    if out is None or out.shape[1:] != (m, 2):
        out = np.stack([np.reshape(p, (m, 2)) for p in points])
    return out
