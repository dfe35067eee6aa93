"""Prompt construction: the one-to-many box grid (Sec. III-C) and the refinement points (Sec. III-D).

Boxes are ``xyxy`` in image pixels (floats, ``x1``/``y1`` exclusive); points are ``(x, y)`` integer pixel indices
(segment-anything adds the half-pixel offset itself). This module imports no FiftyOne.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import cv2
import numpy as np
import torch


def mask_to_box(mask: np.ndarray) -> Optional[np.ndarray]:
    """Tight ``(4,)`` ``xyxy`` pixel box ``(x0, y0, x1 + 1, y1 + 1)`` of an ``(H, W)`` bool mask; ``None`` if empty.

    Sec. III-B: the box of the previous frame's mask is the (noisy) prompt for the next frame.
    """
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=np.float32)


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
    boxes = boxes.float()
    h, w = image_size
    half = grid_size // 2
    steps = torch.arange(-half, half + 1, dtype=torch.float32, device=boxes.device) * shift_step
    sy, sx = torch.meshgrid(steps, steps, indexing="ij")
    sx, sy = sx.reshape(-1), sy.reshape(-1)  # (g*g,)
    sc = torch.tensor(list(scales), dtype=torch.float32, device=boxes.device)

    bw = (boxes[:, 2] - boxes[:, 0])[:, None, None]  # (N, 1, 1)
    bh = (boxes[:, 3] - boxes[:, 1])[:, None, None]
    cx = ((boxes[:, 0] + boxes[:, 2]) / 2)[:, None, None] + sx[None, :, None] * bw  # (N, g*g, 1)
    cy = ((boxes[:, 1] + boxes[:, 3]) / 2)[:, None, None] + sy[None, :, None] * bh
    hw = bw * sc[None, None, :] / 2  # (N, 1, S)
    hh = bh * sc[None, None, :] / 2
    grid = torch.stack([cx - hw, cy - hh, cx + hw, cy + hh], dim=-1).reshape(boxes.shape[0], -1, 4)
    return clip_boxes(grid, image_size, min_size)


def clip_boxes(boxes: torch.Tensor, image_size: Tuple[int, int], min_size: float = 1.0) -> torch.Tensor:
    """Clips ``(..., 4)`` ``xyxy`` boxes to the image; widens any side shorter than ``min_size`` inside it."""
    h, w = image_size
    out = boxes.clone()
    for lo, hi, size in ((0, 2, w), (1, 3, h)):
        a = out[..., lo].clamp(0, size - min_size)
        b = out[..., hi].clamp(min_size, size)
        b = torch.maximum(b, a + min_size)
        a = torch.minimum(a, b - min_size)
        out[..., lo], out[..., hi] = a, b
    return out


def mask_points(mask: np.ndarray, k: int = 1) -> np.ndarray:
    """Points of a mask farthest from its boundary (Sec. III-D), by a distance transform.

    The first point is the pixel of ``mask`` farthest from the mask's boundary (the image border counts as
    boundary), as SAM samples its training clicks; each further point is the pixel farthest from both the
    boundary and the points already chosen. Ties go to the first pixel in row-major order.

    Args:
        mask: ``(H, W)`` bool
        k: number of points

    Returns:
        ``(min(k, area), 2)`` int ``(x, y)`` pixel indices (empty for an empty mask)
    """
    m = np.pad(mask.astype(np.uint8), 1)
    points = []
    for _ in range(k):
        dist = cv2.distanceTransform(m, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        idx = int(np.argmax(dist))
        y, x = divmod(idx, dist.shape[1])
        if dist[y, x] <= 0:
            break
        points.append((x - 1, y - 1))
        m[y, x] = 0
    return np.array(points, dtype=np.int64).reshape(-1, 2)


def refinement_point(mask: np.ndarray) -> Optional[np.ndarray]:
    """The positive refinement point (Sec. III-D): the ``(2,)`` ``(x, y)`` pixel of ``mask`` farthest from its
    boundary, or ``None`` for an empty mask."""
    pts = mask_points(mask, 1)
    return pts[0] if len(pts) else None


def negative_points(
    object_points: Sequence[np.ndarray], own_mask: Optional[np.ndarray] = None
) -> np.ndarray:
    """Negative prompts of one object (Sec. III-D, Table V): the points sampled from the *other* objects.

    Args:
        object_points: for each other object, a ``(k, 2)`` array of its points (from :func:`mask_points`)
        own_mask: optional ``(H, W)`` bool mask of the object itself; points falling inside it are dropped (masks
            of different objects may overlap, and a negative point on the object would erase it)

    Returns:
        ``(M, 2)`` int ``(x, y)`` points
    """
    pts = [p for p in object_points if len(p)]
    if not pts:
        return np.zeros((0, 2), dtype=np.int64)
    pts = np.concatenate(pts, axis=0)
    if own_mask is not None:
        pts = pts[~own_mask[pts[:, 1], pts[:, 0]]]
    return pts


def pack_points(
    positives: Sequence[Optional[np.ndarray]], negatives: Sequence[np.ndarray], device=None
) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
    """Batches per-prompt points for one decoder call, padding with SAM's "not a point" label ``-1``.

    Args:
        positives: per prompt, an optional ``(2,)`` positive point
        negatives: per prompt, an ``(M_i, 2)`` array of negative points

    Returns:
        ``(B, P, 2)`` float points and ``(B, P)`` int labels (1 positive, 0 negative, -1 padding), or
        ``(None, None)`` if no prompt has any point
    """
    rows = []
    for pos, neg in zip(positives, negatives):
        pts = ([(pos, 1)] if pos is not None else []) + [(p, 0) for p in neg]
        rows.append(pts)
    p = max((len(r) for r in rows), default=0)
    if p == 0:
        return None, None
    coords = torch.zeros((len(rows), p, 2), dtype=torch.float32)
    labels = torch.full((len(rows), p), -1, dtype=torch.int64)
    for i, r in enumerate(rows):
        for j, (pt, lab) in enumerate(r):
            coords[i, j] = torch.as_tensor(pt, dtype=torch.float32)
            labels[i, j] = lab
    return coords.to(device), labels.to(device)
