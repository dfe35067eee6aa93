"""Many-to-one selection (Sec. III-C, Eq. 1-2) and the multimask pick of the refinement (Sec. III-D).

All functions work on torch tensors on the backend's device, vectorised over candidates, on the low-resolution
embedding / mask grids. This module imports no FiftyOne.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from sampd_plugin.backends.base import foreground
from sampd_plugin.core.metrics import pixel_counts


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

    Args:
        template: ``(C, th, tw)`` from :func:`masked_template`
        embedding: ``(C, h, w)`` current frame's embedding ``E_{I_t}`` (as :func:`similarity_features` gives it)
        masks: ``(B, h, w)`` candidate masks on the embedding grid (fractions in ``[0, 1]``)

    Returns:
        ``(B,)`` similarities; ``-inf`` for an empty candidate mask (or an all-zero template); computed by
        :func:`template_similarities`
    """
    return template_similarities([template], embedding, masks[None])[0]


def template_similarities(templates: Sequence[torch.Tensor], embedding: torch.Tensor, masks: torch.Tensor,
                          max_elements: int = 1 << 24) -> torch.Tensor:
    """Eq. 2 (:func:`template_similarity`) of ``N`` objects' candidates against their own templates, batched:
    :func:`window_similarities` of the masks on their union boxes.

    Args:
        templates: ``N`` templates ``(C, th_i, tw_i)`` (:func:`masked_template`)
        embedding: ``(C, h, w)`` current frame's embedding
        masks: ``(N, G, h, w)`` each object's candidate masks on the embedding grid (fractions in ``[0, 1]``)

    Returns:
        ``(N, G)`` similarities; ``-inf`` for an empty candidate mask (or an all-zero template)
    """
    windows = [None if box is None else (box[0], box[1], masks[i, :, box[0]:box[2], box[1]:box[3]])
               for i, box in enumerate(_union_boxes(masks))]
    return window_similarities(templates, embedding, windows, masks.shape[1], max_elements)


def window_similarities(templates: Sequence[torch.Tensor], embedding: torch.Tensor,
                        windows: Sequence[Optional[Tuple[int, int, torch.Tensor]]], candidates: int,
                        max_elements: int = 1 << 24) -> torch.Tensor:
    """Eq. 2 (:func:`template_similarity`) of ``N`` objects' candidates against their own templates, batched, from
    each object's candidate masks on the union box of their foreground cells (what
    :meth:`~sampd_plugin.backends.base.ImageState.logits_to_embedding_windows` gives).

    Each object's correlation runs on its union box without a ``C``-deep convolution per
    shift: with ``D(p, q) = <T(p), E(q)>`` (a matrix product), ``h_i(s) = sum_p m_i(s + p) D(p, s + p)``: the
    products ``m_i(q) D(p, q)`` summed over the template cells ``p`` into the shift ``s = q - p`` (``F.fold``, whose
    kernel offsets are the flipped template cells), at a cost of ``G x P x Q`` per object (candidates x template
    cells x union cells); the support overlap is a one-channel correlation of indicators, needed only for a
    candidate whose maximum is not positive (elsewhere the correlation is exactly 0). Objects of similar sizes are
    computed together, their templates and union boxes zero-padded to the group's largest (zero cells add nothing
    and are no support, so each value is the object's own): one batched product and one fold per group (and one
    grouped convolution for its candidates without a positive maximum), a group holding objects while the padded
    work stays within twice their own and ``max_elements`` products.

    Args:
        templates: ``N`` templates ``(C, th_i, tw_i)`` (:func:`masked_template`)
        embedding: ``(C, h, w)`` current frame's embedding
        windows: per object, ``(y0, x0, (G, uh_i, uw_i))``: the top-left cell of its union box and its candidate
            masks there (fractions in ``[0, 1]``), or ``None`` when all its candidates are empty
        candidates: ``G``

    Returns:
        ``(N, G)`` similarities; ``-inf`` for an empty candidate mask (or an all-zero template)
    """
    n, g = len(windows), candidates
    out = torch.full((n, g), float("-inf"), dtype=torch.float32, device=embedding.device)
    c, h, w = embedding.shape
    sizes = {}  # object -> (th, tw, uh, uw), and the top-left of its union box
    corner = {}
    for i, win in enumerate(windows):
        if win is not None and templates[i] is not None:
            sizes[i] = (*templates[i].shape[1:], *win[2].shape[1:])
            corner[i] = win[:2]
    work = {i: g * th * tw * uh * uw for i, (th, tw, uh, uw) in sizes.items()}
    todo = sorted(sizes, key=work.get, reverse=True)
    while todo:
        group, own = [todo[0]], work[todo[0]]
        th, tw, uh, uw = sizes[todo[0]]
        for i in todo[1:]:  # the next largest objects join while the padded work stays within bounds
            grown = [max(a, b) for a, b in zip((th, tw, uh, uw), sizes[i])]
            padded = (len(group) + 1) * g * grown[0] * grown[1] * grown[2] * grown[3]
            if padded > 2 * (own + work[i]) or padded > max_elements:
                break
            group.append(i)
            own += work[i]
            th, tw, uh, uw = grown
        todo = todo[len(group):]
        b = len(group)
        t = embedding.new_zeros((b, c, th, tw), dtype=torch.float32)
        e = embedding.new_zeros((b, c, uh, uw), dtype=torch.float32)
        m = embedding.new_zeros((b, g, uh, uw), dtype=torch.float32)
        for k, i in enumerate(group):
            y0, x0 = min(corner[i][0], h - uh), min(corner[i][1], w - uw)
            t[k, :, :sizes[i][0], :sizes[i][1]] = templates[i]
            e[k] = embedding[:, y0:y0 + uh, x0:x0 + uw]
            dy, dx = corner[i][0] - y0, corner[i][1] - x0
            m[k, :, dy:dy + sizes[i][2], dx:dx + sizes[i][3]] = windows[i][2]
        flat_t = t.flatten(2)  # (b, C, P)
        d = flat_t.transpose(1, 2) @ e.flatten(2)  # (b, P, Q): D(p, q)
        support = (flat_t != 0).any(1).float()  # (b, P) the templates' support
        wq = m.flatten(2)  # (b, G, Q)
        shifts = (uh + th - 1, uw + tw - 1)  # s + (th - 1, tw - 1) >= 0
        heat = F.fold((d.flip(1)[:, None] * wq[:, :, None]).flatten(0, 1), shifts, (th, tw)).view(b, g, -1)
        best = heat.max(dim=2).values  # (b, G)
        # A shift where the supports do not meet sums products with a zero factor: exactly 0. So a positive maximum
        # is the maximum over the shifts where they meet; only the others need the support overlap per shift.
        redo = torch.nonzero(~(best > 0)).tolist()
        if redo:
            rows, cands = (torch.as_tensor(ix, device=heat.device) for ix in zip(*redo))
            # cells where both supports meet, per shift: the same full correlation on indicators (same indexing)
            overlap = F.conv2d((wq[rows, cands] > 0).float().view(1, len(redo), uh, uw),
                               support[rows].view(len(redo), 1, th, tw), padding=(th - 1, tw - 1),
                               groups=len(redo)).view(len(redo), -1)
            met = heat[rows, cands]
            best[rows, cands] = torch.where(overlap > 0, met, torch.full_like(met, float("-inf"))).max(dim=1).values
        out[torch.as_tensor(group, device=out.device)] = best.to(out.dtype)
    return out


def _union_boxes(masks: torch.Tensor):
    """Per object of ``(N, G, h, w)`` candidate masks: ``(y0, x0, y1, x1)`` of its candidates' union (exclusive
    ends, as :func:`grid_bbox`), or ``None`` when all are empty (one host copy for all objects)."""
    fg = masks.amax(1) > 0
    rows, cols = fg.any(-1), fg.any(-2)  # (N, h), (N, w)
    first = lambda a: a.int().argmax(-1)  # noqa: E731
    last = lambda a: a.shape[-1] - first(a.flip(-1))  # noqa: E731
    boxes = torch.stack([first(rows), first(cols), last(rows), last(cols), rows.any(-1).int()], 1).tolist()
    return [tuple(b[:4]) if b[4] else None for b in boxes]


def foreground_counts(logits: torch.Tensor) -> torch.Tensor:
    """``(..., h, w)`` mask logits -> ``(...)`` int64 counts of their foreground cells (``logits > 0``), on the
    device of ``logits`` (on the CPU counted mask by mask by OpenCV: several times faster than torch's sum of
    bools for many objects' candidates)."""
    if logits.device.type != "cpu":
        return (logits > 0).flatten(-2).sum(-1)
    return torch.from_numpy(pixel_counts(foreground(logits).numpy()).astype(np.int64, copy=False))


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
        return foreground_counts(logits).argmax(dim=1)
    if rule == "max_iou_prev":
        if previous is None:
            raise ValueError("rule 'max_iou_prev' needs the previous masks")
        return iou_with_previous(logits, previous).argmax(dim=1)
    raise ValueError(f"unknown multimask rule {rule!r}")
