"""Many-to-one selection (Sec. III-C, Eq. 1-2) and the multimask pick of the refinement (Sec. III-D).

All functions work on torch tensors on the backend's device, vectorised over candidates, on the low-resolution
embedding / mask grids. This module imports no FiftyOne.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F


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


def similarity_features(embedding: torch.Tensor, similarity: str = "dot") -> torch.Tensor:
    """The features Eq. 1-2 correlate: ``(C, h, w)`` embedding -> ``(C, h, w)``.

    ``"dot"``: SAM's embedding as is (raw dot products, the paper's formula read literally). ``"cosine"``: each
    cell's ``C``-vector scaled to unit L2 norm (zero cells stay zero), so that the correlation sums per-cell cosines
    weighted by the masks; the paper's supplementary Fig. 8 reports area-averaged similarities such as 0.86 / 0.34
    and wishes wrong masks scored "below zero", which reads as such normalised features. Apply it to the frame-0
    embedding (template) and to the current one alike.
    """
    if similarity == "dot":
        return embedding
    if similarity == "cosine":
        return F.normalize(embedding, dim=0)
    raise ValueError(f"unknown similarity {similarity!r}; choose 'dot' or 'cosine'")


def template_similarity(template: torch.Tensor, embedding: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Eq. 2: ``max_s ((e_0 ⊙ m_0) * (e_t^i ⊙ m_t^i))(s)`` for each candidate ``i``, independently of the others.

    ``*`` is the cross-correlation of the two masked crops; its spatial maximum is the candidate's semantic
    similarity. The maximum is taken over the shifts ``s`` at which the template's support (its non-zero cells)
    overlaps the candidate's (cells with ``m_t^i > 0``): a shift where they do not meet is zero padding, not a
    similarity, and letting it count would make every candidate whose overlapping correlations are all negative
    score 0 (and tie). So each candidate's score depends on its own mask only, whatever the other candidates are.

    Computed on the union box of the candidates' masks without a ``C``-deep convolution per shift: with
    ``D(p, q) = <T(p), E(q)>`` (one matrix product), ``h_i(s) = sum_q m_i(q) D(q - s, q)``, i.e. a second matrix
    product of the candidates' masks with ``D`` re-indexed by shift; the support overlap is a one-channel correlation
    of indicators.

    Args:
        template: ``(C, th, tw)`` from :func:`masked_template`
        embedding: ``(C, h, w)`` current frame's embedding ``E_{I_t}`` (as :func:`similarity_features` gives it)
        masks: ``(B, h, w)`` candidate masks on the embedding grid (fractions in ``[0, 1]``)

    Returns:
        ``(B,)`` similarities; ``-inf`` for an empty candidate mask (or an all-zero template)
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
    flat_t = template.reshape(c, -1).float()  # (C, P)
    d = flat_t.T @ emb  # (P, Q): D(p, q)
    support = (flat_t != 0).any(0).float()  # (P,) the template's support

    # shift index of each (p, q) pair: s = q - p, offset so that every shift is >= 0
    dev = masks.device
    py, px = torch.meshgrid(torch.arange(th, device=dev), torch.arange(tw, device=dev), indexing="ij")
    qy, qx = torch.meshgrid(torch.arange(uh, device=dev), torch.arange(uw, device=dev), indexing="ij")
    sy = qy.reshape(1, -1) - py.reshape(-1, 1) + th - 1  # (P, Q)
    sx = qx.reshape(1, -1) - px.reshape(-1, 1) + tw - 1
    n_sx = uw + tw - 1
    s_idx = sy * n_sx + sx
    q_idx = torch.arange(uh * uw, device=dev).expand_as(s_idx)
    n_s = (uh + th - 1) * n_sx
    g = torch.zeros((n_s, uh * uw), dtype=d.dtype, device=d.device)  # (S, Q)
    g[s_idx, q_idx] = d  # each (s, q) has exactly one p = q - s

    w = masks[:, y0:y1, x0:x1].reshape(b, -1).float()  # (B, Q)
    heat = w @ g.T  # (B, S)
    # cells where both supports meet, per shift: the same full correlation on indicators (same shift indexing)
    overlap = F.conv2d(
        (w > 0).float().view(b, 1, uh, uw), support.view(1, 1, th, tw), padding=(th - 1, tw - 1)
    ).view(b, -1)
    heat = torch.where(overlap > 0, heat, torch.full_like(heat, float("-inf")))
    return heat.max(dim=1).values.to(out.dtype)


def iou_with_previous(logits: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
    """IoU of each mask with its object's previous mask, on the same (low-resolution) grid.

    Used by the "IoU-based" many-to-one of Table III (``selection="iou_prev"``: "the effectiveness of spatial cues")
    and by the refinement's ``"max_iou_prev"`` multimask pick (Sec. III-D).

    Args:
        logits: ``(N, K, h, w)`` mask logits (foreground where ``> 0``)
        previous: ``(N, h, w)`` previous masks (bool, or fractions: foreground where ``> 0.5``)

    Returns:
        ``(N, K)`` IoUs in ``[0, 1]`` (0 where both masks are empty)
    """
    fg = logits > 0
    prev = (previous > 0.5)[:, None]
    inter = (fg & prev).flatten(2).sum(-1).float()
    union = (fg | prev).flatten(2).sum(-1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(union))


def select_candidates(scores: torch.Tensor) -> torch.Tensor:
    """Many-to-one (Sec. III-C): the index of the best of ``G`` candidates per object.

    Args:
        scores: ``(N, G)`` scores: Eq. 2 similarity, IoU with the previous mask, or SAM's predicted IoU

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
    if rule == "largest":
        return (logits > 0).flatten(2).sum(-1).argmax(dim=1)
    if rule == "max_iou_prev":
        if previous is None:
            raise ValueError("rule 'max_iou_prev' needs the previous masks")
        return iou_with_previous(logits, previous).argmax(dim=1)
    raise ValueError(f"unknown multimask rule {rule!r}")
