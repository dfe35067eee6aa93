"""Many-to-one selection (Sec. III-C, Eq. 1-2) and the multimask pick of the refinement (Sec. III-D).

All functions work on torch tensors on the backend's device, vectorised over candidates, on the low-resolution
embedding / mask grids. This module imports no FiftyOne.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch


def grid_bbox(weights: torch.Tensor) -> Optional[Tuple[int, int, int, int]]:
    """``(y0, x0, y1, x1)`` (exclusive ends) of the non-zero cells of a ``(h, w)`` grid; ``None`` if all zero."""
    nz = torch.nonzero(weights > 0)
    if nz.shape[0] == 0:
        return None
    (y0, x0), (y1, x1) = nz.min(0).values.tolist(), nz.max(0).values.tolist()
    return y0, x0, y1 + 1, x1 + 1


def masked_template(embedding: torch.Tensor, mask: torch.Tensor) -> Optional[torch.Tensor]:
    """The filtered template ``e_0 ⊙ m_0`` of Eq. 1: the frame-0 embedding cropped by the box of the frame-0
    mask and multiplied by the mask.

    Args:
        embedding: ``(C, h, w)`` frame-0 image embedding
        mask: ``(h, w)`` frame-0 mask on the embedding grid (foreground fraction per cell, in ``[0, 1]``)

    Returns:
        ``(C, th, tw)`` template, or ``None`` if the mask is empty on the grid
    """
    box = grid_bbox(mask)
    if box is None:
        return None
    y0, x0, y1, x1 = box
    return embedding[:, y0:y1, x0:x1] * mask[None, y0:y1, x0:x1]


def template_similarity(template: torch.Tensor, embedding: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Eq. 2: ``max_s ((e_0 ⊙ m_0) * (e_t^i ⊙ m_t^i))(s)`` for each candidate ``i``.

    ``*`` is the (full, zero-padded) cross-correlation over every shift ``s`` at which the template and the
    candidate's masked embedding crop overlap; the spatial maximum of each heatmap is the candidate's semantic
    similarity. Cropping a candidate by the box of its own mask changes nothing once it is multiplied by the mask,
    so the candidates are taken on the union box of their masks.

    Computed without a ``C``-deep convolution per shift: with ``D(p, q) = <T(p), E(q)>`` (one matrix product),
    ``h_i(s) = sum_q m_i(q) D(q - s, q)``, i.e. a second matrix product of the candidates' masks with ``D``
    re-indexed by shift.

    Args:
        template: ``(C, th, tw)`` from :func:`masked_template`
        embedding: ``(C, h, w)`` current frame's embedding ``E_{I_t}``
        masks: ``(B, h, w)`` candidate masks on the embedding grid (fractions in ``[0, 1]``)

    Returns:
        ``(B,)`` similarities; ``-inf`` for an empty candidate mask
    """
    b = masks.shape[0]
    out = torch.full((b,), float("-inf"), dtype=torch.float32, device=masks.device)
    union = grid_bbox(masks.amax(0)) if b else None
    if union is None:
        return out
    y0, x0, y1, x1 = union
    c, th, tw = template.shape
    uh, uw = y1 - y0, x1 - x0
    emb = embedding[:, y0:y1, x0:x1].reshape(c, -1).float()  # (C, Q)
    d = template.reshape(c, -1).float().T @ emb  # (P, Q): D(p, q)

    # shift index of each (p, q) pair: s = q - p, offset so that every shift is >= 0
    py, px = torch.meshgrid(torch.arange(th), torch.arange(tw), indexing="ij")
    qy, qx = torch.meshgrid(torch.arange(uh), torch.arange(uw), indexing="ij")
    sy = qy.reshape(1, -1) - py.reshape(-1, 1) + th - 1  # (P, Q)
    sx = qx.reshape(1, -1) - px.reshape(-1, 1) + tw - 1
    n_sx = uw + tw - 1
    s_idx = (sy * n_sx + sx).to(masks.device)
    q_idx = torch.arange(uh * uw, device=masks.device).expand_as(s_idx)
    g = torch.zeros(((uh + th - 1) * n_sx, uh * uw), dtype=d.dtype, device=d.device)  # (S, Q)
    g[s_idx, q_idx] = d  # each (s, q) has exactly one p = q - s

    w = masks[:, y0:y1, x0:x1].reshape(b, -1).float()  # (B, Q)
    heat = w @ g.T  # (B, S)
    sim = heat.max(dim=1).values
    nonempty = w.sum(1) > 0
    out[nonempty] = sim[nonempty]
    return out


def select_candidates(scores: torch.Tensor) -> torch.Tensor:
    """Many-to-one (Sec. III-C): the index of the best of ``G`` candidates per object.

    Args:
        scores: ``(N, G)`` similarity (Eq. 2) or predicted-IoU scores

    Returns:
        ``(N,)`` argmax indices (first of ties)
    """
    return scores.argmax(dim=1)


def pick_multimask(
    logits: torch.Tensor, rule: str = "largest", previous: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """Refinement's pick among SAM's multimask outputs (Sec. III-D).

    ``"largest"``: the mask with the largest area (DAVIS, whole objects). ``"max_iou_prev"``: the mask with the
    highest IoU with the object's previous mask (part-like objects, YouTube-VOS). Ties go to the first mask.

    Args:
        logits: ``(N, K, h, w)`` mask logits (foreground where ``> 0``)
        rule: ``"largest"`` or ``"max_iou_prev"``
        previous: ``(N, h, w)`` previous masks on the same grid (bool or fractions), for ``"max_iou_prev"``

    Returns:
        ``(N,)`` indices into ``K``
    """
    fg = logits > 0
    if rule == "largest":
        return fg.flatten(2).sum(-1).argmax(dim=1)
    if rule == "max_iou_prev":
        if previous is None:
            raise ValueError("rule 'max_iou_prev' needs the previous masks")
        prev = (previous > 0.5)[:, None]
        inter = (fg & prev).flatten(2).sum(-1).float()
        union = (fg | prev).flatten(2).sum(-1).float()
        iou = torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(union))
        return iou.argmax(dim=1)
    raise ValueError(f"unknown multimask rule {rule!r}")
