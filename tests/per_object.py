"""Per-object references for the tracker's batched host work (issue 22), and a check that tracking with them gives
the same results.

The tracker computes, for all objects at once, Eq. 2 of every candidate (``selection.window_similarities``), the
refinement and next-frame points (``prompts.masks_points``), the negative points (``prompts.negative_points``), the
masks' boxes and the identity evidence (``identity.confusions``). Here each is computed object by object, the way
the tracker did before: Eq. 2 as a dense correlation on each object's union box (the ``(S x Q)`` re-indexed
product) of its whole-grid masks, the points by a distance transform of each mask's box, the negatives by
concatenating the others' points, the box from the mask's rows and columns, the identity evidence pair by pair. :func:`assert_same_tracking` runs the tracker with these and with its own and compares every output.
"""
import cv2
import numpy as np
import torch
import torch.nn.functional as F

from sampd_plugin.core import tracker as tr
from sampd_plugin.core.selection import grid_bbox


def eq2_dense(template, embedding, masks):
    """Eq. 2 of ``(B, h, w)`` candidates of one object, by the dense re-indexed product."""
    b = masks.shape[0]
    out = torch.full((b,), float("-inf"))
    union = grid_bbox(masks.amax(0)) if b else None
    if union is None or template is None:
        return out
    y0, x0, y1, x1 = union
    c, th, tw = template.shape
    uh, uw = y1 - y0, x1 - x0
    d = template.reshape(c, -1).float().T @ embedding[:, y0:y1, x0:x1].reshape(c, -1).float()  # (P, Q)
    py, px = torch.meshgrid(torch.arange(th), torch.arange(tw), indexing="ij")
    qy, qx = torch.meshgrid(torch.arange(uh), torch.arange(uw), indexing="ij")
    sy = qy.reshape(1, -1) - py.reshape(-1, 1) + th - 1
    sx = qx.reshape(1, -1) - px.reshape(-1, 1) + tw - 1
    g = torch.zeros(((uh + th - 1) * (uw + tw - 1), uh * uw))
    g[sy * (uw + tw - 1) + sx, torch.arange(uh * uw).expand_as(sy)] = d
    w = masks[:, y0:y1, x0:x1].reshape(b, -1).float()
    heat = w @ g.T
    support = (template.reshape(c, -1) != 0).any(0).float()
    overlap = F.conv2d((w > 0).float().view(b, 1, uh, uw), support.view(1, 1, th, tw),
                       padding=(th - 1, tw - 1)).view(b, -1)
    return torch.where(overlap > 0, heat, torch.full_like(heat, float("-inf"))).max(1).values


def grid_torch(boxes, image_size, grid_size=3, shift_step=0.10, scales=(1.0, 1.05), min_size=1.0):
    """The one-to-many box grid computed the way the tracker did before, with torch float32 operations (the grid is
    now computed in numpy: the same IEEE operations, so the same bits)."""
    boxes = boxes.float()
    half = grid_size // 2
    steps = torch.arange(-half, half + 1, dtype=torch.float32) * shift_step
    sy, sx = torch.meshgrid(steps, steps, indexing="ij")
    sx, sy = sx.reshape(-1), sy.reshape(-1)
    sc = torch.tensor(list(scales), dtype=torch.float32)
    bw = (boxes[:, 2] - boxes[:, 0])[:, None, None]
    bh = (boxes[:, 3] - boxes[:, 1])[:, None, None]
    cx = ((boxes[:, 0] + boxes[:, 2]) / 2)[:, None, None] + sx[None, :, None] * bw
    cy = ((boxes[:, 1] + boxes[:, 3]) / 2)[:, None, None] + sy[None, :, None] * bh
    hw, hh = bw * sc[None, None, :] / 2, bh * sc[None, None, :] / 2
    return clip_torch(torch.stack([cx - hw, cy - hh, cx + hw, cy + hh], dim=-1).reshape(len(boxes), -1, 4),
                      image_size, min_size)


def clip_torch(boxes, image_size, min_size=1.0):
    """``prompts.clip_boxes`` as it was, in torch."""
    h, w = image_size
    out = boxes.clone()
    for lo, hi, size in ((0, 2, w), (1, 3, h)):
        a = out[..., lo].clamp(0, size - min_size)
        b = out[..., hi].clamp(min_size, size)
        b = torch.maximum(b, a + min_size)
        a = torch.minimum(a, b - min_size)
        out[..., lo], out[..., hi] = a, b
    return out


def box_of(mask):
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return None if rows.size == 0 else np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], np.float32)


def points_whole_frame(mask, k):
    """The definition of :func:`mask_points` on the whole (zero-padded) frame (squared distances as integers:
    OpenCV's float distances vary by one ulp from call to call)."""
    m = np.pad(mask.astype(np.uint8), 1)
    points = []
    for _ in range(k):
        dist = np.rint(cv2.distanceTransform(m, cv2.DIST_L2, cv2.DIST_MASK_PRECISE).astype(np.float64) ** 2)
        y, x = divmod(int(np.argmax(dist)), dist.shape[1])
        if dist[y, x] <= 0:
            break
        points.append((x - 1, y - 1))
        m[y, x] = 0
    return np.array(points, dtype=np.int64).reshape(-1, 2)


def points_of(mask, k):
    """Farthest-from-boundary points of one mask, by :func:`points_whole_frame` of its box (the per-object way)."""
    box = box_of(mask)
    if box is None:
        return np.zeros((0, 2), np.int64)
    x0, y0, x1, y1 = (int(v) for v in box)
    return points_whole_frame(mask[y0:y1, x0:x1], k) + np.array([x0, y0])


def negatives_of(object_points, objects=None):
    """Each object's negative points built on their own: the others' points concatenated."""
    objects = range(len(object_points)) if objects is None else objects
    out = []
    for i in objects:
        pts = [p for j, p in enumerate(object_points) if j != i and len(p)]
        out.append(np.concatenate(pts).astype(np.int64) if pts else np.zeros((0, 2), np.int64))
    return out


def eq2_windows_dense(templates, embedding, windows, candidates):
    """:func:`eq2_dense` of each object's candidates, pasted back from their windows onto the whole grid."""
    out = []
    for t, win in zip(templates, windows):
        masks = torch.zeros((candidates, *embedding.shape[1:]))
        if win is not None:
            y0, x0, cells = win
            masks[:, y0:y0 + cells.shape[1], x0:x0 + cells.shape[2]] = cells
        out.append(eq2_dense(t, embedding, masks))
    return torch.stack(out)


def confusions_pairwise(masks, previous, fraction=0.5):
    """The identity evidence of :func:`sampd_plugin.core.identity.confusions`, pair by pair: each mask against
    every previous mask and every other mask."""
    out = {}
    ids = sorted(masks)
    for a, i in enumerate(ids):
        for j in ids[a + 1:]:
            small = min(int(masks[i].sum()), int(masks[j].sum()))
            if small and int((masks[i] & masks[j]).sum()) > fraction * small:
                out[i] = out[j] = "merge"
    for i, m in masks.items():
        if i in previous:
            own = int((m & previous[i]).sum())
            if any(int((m & r).sum()) > own for j, r in previous.items() if j != i):
                out[i] = "switch"
    return out


def use_per_object_references(monkeypatch):
    """Makes the tracker module compute its host work object by object with the references above."""
    monkeypatch.setattr(tr, "window_similarities", eq2_windows_dense)
    monkeypatch.setattr(tr, "confusions", confusions_pairwise)
    monkeypatch.setattr(tr, "masks_points", lambda masks, k=1, boxes=None: [points_of(m, k) for m in masks])
    monkeypatch.setattr(tr, "mask_to_box", box_of)
    monkeypatch.setattr(tr, "negative_points", negatives_of)


def assert_same_tracking(run, monkeypatch, rtol=1e-5):
    """``run()`` -> list of FrameResult, with the tracker's batched host work and with the per-object references:
    the same masks, boxes and lost flags on every frame, scores and IoUs to ``rtol``. Returns the batched results."""
    ours = run()
    with monkeypatch.context() as m:
        use_per_object_references(m)
        ref = run()
    assert len(ours) == len(ref)
    for a, b in zip(ours, ref):
        assert a.frame_number == b.frame_number and sorted(a.objects) == sorted(b.objects)
        for oid, o in a.objects.items():
            r = b.objects[oid]
            assert np.array_equal(o.mask, r.mask), (a.frame_number, oid)
            assert (o.box is None) == (r.box is None) and (o.box is None or np.array_equal(o.box, r.box))
            assert o.lost == r.lost and o.confusion == r.confusion
            assert np.isclose(o.score, r.score, rtol=rtol, atol=rtol) and np.isclose(o.iou, r.iou, rtol=rtol)
    return ours
