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
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=np.float32)


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
    boundary). The paper says this follows SAM's *training* click sampling; in fact SAM's training clicks are drawn
    at random (uniformly from the mask, then from the error region), and farthest-from-boundary is the deterministic
    click of SAM's (and RITM's) interactive *evaluation* protocol. Each further point is the pixel farthest from both
    the boundary and the points already chosen. Ties go to the first pixel in row-major order.

    Args:
        mask: ``(H, W)`` bool
        k: number of points

    The transform runs on the mask's bounding box with a one-pixel ring of background (the image border, or pixels
    outside the box): exact, because for a pixel inside the box any background pixel outside the ring is no closer
    than its projection onto the ring, and row-major order within the box is row-major order in the frame. Its cost
    is proportional to the object's box, not to the frame (many small objects on a large frame).

    Returns:
        ``(min(k, area), 2)`` int ``(x, y)`` pixel indices (empty for an empty mask)
    """
    box = mask_to_box(mask)
    if box is None:
        return np.zeros((0, 2), dtype=np.int64)
    x0, y0, x1, y1 = (int(v) for v in box)
    m = np.pad(mask[y0:y1, x0:x1].astype(np.uint8), 1)
    points = []
    for _ in range(k):
        # the exact transform's squared distances are integers; cv2's float32 distances carry noise (~1e-7) that
        # differs from call to call, which would break ties at random
        dist = np.rint(cv2.distanceTransform(m, cv2.DIST_L2, cv2.DIST_MASK_PRECISE).astype(np.float64) ** 2)
        idx = int(np.argmax(dist))
        y, x = divmod(idx, dist.shape[1])
        if dist[y, x] <= 0:
            break
        points.append((x0 + x - 1, y0 + y - 1))
        m[y, x] = 0
    return np.array(points, dtype=np.int64).reshape(-1, 2)


def refinement_point(mask: np.ndarray) -> Optional[np.ndarray]:
    """The positive refinement point (Sec. III-D): the ``(2,)`` ``(x, y)`` pixel of ``mask`` farthest from its
    boundary, or ``None`` for an empty mask."""
    pts = mask_points(mask, 1)
    return pts[0] if len(pts) else None


def negative_points(object_points: Sequence[np.ndarray]) -> np.ndarray:
    """Negative prompts of one object (Sec. III-D, Fig. 2, Table V): the points sampled from the *other* objects,
    appended unconditionally behind the object's own prompt.

    None is dropped for falling inside the object's own mask: a point of object B inside A's mask is where A's mask
    has spread onto B, exactly the confusion between objects the negatives exist to correct.

    Args:
        object_points: for each other object, a ``(k, 2)`` array of its points (from :func:`mask_points`)

    Returns:
        ``(M, 2)`` int ``(x, y)`` points
    """
    pts = [p for p in object_points if len(p)]
    if not pts:
        return np.zeros((0, 2), dtype=np.int64)
    return np.concatenate(pts, axis=0)


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
    rows = []
    for pos, neg in zip(positives, negatives):
        pts = ([(pos, 1)] if pos is not None else []) + [(p, 0) for p in neg]
        rows.append(pts)
    groups = []
    for p in sorted({len(r) for r in rows}):
        idx = [i for i, r in enumerate(rows) if len(r) == p]
        coords = labels = None
        if p:
            coords = torch.as_tensor(
                np.array([[pt for pt, _ in rows[i]] for i in idx], dtype=np.float32), device=device
            ).reshape(len(idx), p, 2)
            labels = torch.as_tensor([[lab for _, lab in rows[i]] for i in idx], dtype=torch.int64, device=device)
        groups.append((torch.as_tensor(idx, dtype=torch.long), coords, labels))
    return groups
