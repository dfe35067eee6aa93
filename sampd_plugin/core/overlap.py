"""Overlap-aware tracking (our extension, beyond the paper; ``SamPDConfig.overlap``, preset ``"overlap"``).

The paper tracks every object on its own (Sec. III-C: "we repeat the above operations for each object"), with the
other objects' points as negatives as its only tool against confusion between them (Sec. III-D). Where objects
touch, cross and occlude each other, one object's box then covers another and SAM segments the wrong one, or both:
masks merge and identities swap. Three steps use the objects together, as multi-object VOS trackers do:

- **joint many-to-one** (:func:`joint_selection`): the objects pick their candidates in turn, those whose best
  candidate continues their own previous mask first; a candidate is scored by its Eq. 2 similarity minus
  ``penalty`` times the fraction of it inside the masks already chosen by the other objects;
- **mutual exclusivity** (:func:`exclusive_masks`): a pixel claimed by several objects goes to the one with the
  highest SAM logit ("soft aggregation"), the object whose previous mask held the pixel winning ties;
- **occlusion** (:func:`is_occluded`): an object whose candidates all lie mostly inside the other objects' masks,
  or whose exclusive mask has shrunk to a fraction of its usual area while the others cover its box, is occluded:
  it keeps its template, and while it is hidden (occluded or lost) its box prompt is its last visible box moved on
  at its last velocity (:class:`Motion`, :func:`extrapolate_box`): it is re-acquired where it reappears.

All masks here are on SAM's low-resolution mask grid (torch, the backend's device), except the boxes (image
pixels). This module imports no FiftyOne.
"""

from __future__ import annotations

import dataclasses
from typing import Tuple

import numpy as np
import torch

def inside_fraction(masks: torch.Tensor, claimed: torch.Tensor) -> torch.Tensor:
    """The fraction of each mask's cells that lie in ``claimed``: ``(..., h, w)`` bool masks and an ``(h, w)`` bool
    mask -> ``(...)`` floats in ``[0, 1]`` (0 for an empty mask)."""
    area = masks.flatten(-2).sum(-1)
    inside = (masks & claimed).flatten(-2).sum(-1)
    return torch.where(area > 0, inside / area.clamp(min=1), torch.zeros_like(area, dtype=torch.float32)).float()


def continuity(candidates: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
    """IoU of each object's candidates with its previous mask: ``(N, G, h, w)`` and ``(N, h, w)`` bool ->
    ``(N, G)`` (0 where both are empty)."""
    prev = previous[:, None]
    inter = (candidates & prev).flatten(2).sum(-1).float()
    union = (candidates | prev).flatten(2).sum(-1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(union))


def joint_selection(
    scores: torch.Tensor, candidates: torch.Tensor, previous: torch.Tensor, penalty: float = 1.0
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Joint many-to-one over objects x candidates (our extension of Sec. III-C).

    Objects choose one after the other, in decreasing order of the continuity (:func:`continuity`) of their
    independently best candidate, so that an object that continues its own previous mask claims its pixels before
    an object whose box has slid onto it. Each object takes the candidate with the highest ``score - penalty *
    f``, ``f`` the fraction of the candidate inside the union of the masks chosen before it (first of ties). With
    no other object around, this is the paper's argmax.

    Args:
        scores: ``(N, G)`` candidate scores (Eq. 2 similarity relative to the template's own)
        candidates: ``(N, G, h, w)`` bool candidate masks
        previous: ``(N, h, w)`` bool previous masks of the objects
        penalty: weight of the overlap with the others' chosen masks

    Returns:
        ``(N,)`` chosen indices and ``(N,)`` the fraction of each chosen candidate inside the masks chosen before it
    """
    n = scores.shape[0]
    rows = torch.arange(n, device=scores.device)
    best = scores.argmax(1)
    order = torch.argsort(-continuity(candidates, previous)[rows, best], stable=True).tolist()
    claimed = torch.zeros(candidates.shape[-2:], dtype=torch.bool, device=candidates.device)
    idx = best.clone()
    covered = torch.zeros(n, dtype=torch.float32, device=scores.device)
    for i in order:
        f = inside_fraction(candidates[i], claimed)
        k = int(torch.argmax(scores[i].float() - penalty * f))
        idx[i], covered[i] = k, f[k]
        claimed |= candidates[i, k]
    return idx, covered


def exclusive_masks(logits: torch.Tensor, previous: torch.Tensor, hold: float = 1.0) -> torch.Tensor:
    """Mutual exclusivity (soft aggregation): ``(N, h, w)`` logits -> ``(N, h, w)`` bool masks that do not overlap.

    A cell claimed by one object (logit > 0) stays its; a cell claimed by several goes to the claimant with the
    highest ``logit + hold * previous`` (the object that held it on the previous frame wins ties and near-ties),
    then the smallest mask (a mask that also covers a neighbour is the likelier mistake), then the lowest index.

    Args:
        logits: ``(N, h, w)`` the objects' mask logits on one grid
        previous: ``(N, h, w)`` bool previous masks on the same grid
        hold: logit bonus of a cell in the object's previous mask
    """
    fg = logits > 0
    if logits.shape[0] < 2:
        return fg
    area = fg.flatten(1).sum(1).float()
    rank = area / area.max().clamp(min=1)  # in [0, 1]: larger masks lose exact ties
    key = logits.float() + hold * previous.float() - 1e-3 * rank[:, None, None]
    key = torch.where(fg, key, torch.full_like(key, float("-inf")))
    winner = key.argmax(0)
    contested = fg.sum(0) > 1
    own = winner[None] == torch.arange(logits.shape[0], device=logits.device)[:, None, None]
    return fg & (~contested[None] | own)


def is_occluded(covered: float, area: float, usual_area: float, box_covered: float, min_area: float = 0.3,
                max_covered: float = 0.5) -> bool:
    """Whether an object is occluded on this frame: its chosen candidate lay mostly (``> max_covered``) inside the
    masks the other objects chose before it, or its exclusive mask has shrunk below ``min_area`` of its usual area
    while the other objects' masks cover more than ``max_covered`` of its (extrapolated) box.

    Args:
        covered: fraction of the chosen candidate inside the others' masks (:func:`joint_selection`)
        area: the object's exclusive mask area; ``usual_area``: its running area while visible (same units)
        box_covered: fraction of the object's prompt box covered by the other objects' masks
    """
    return covered > max_covered or (area < min_area * usual_area and box_covered > max_covered)


def extrapolate_box(box: np.ndarray, velocity: np.ndarray, frames: int, image_size: Tuple[int, int]) -> np.ndarray:
    """The ``(4,)`` xyxy box moved by ``frames`` times its ``(2,)`` per-frame ``velocity`` (pixels), kept inside the
    image (shifted back, not shrunk)."""
    h, w = image_size
    out = np.asarray(box, dtype=np.float32) + np.tile(np.asarray(velocity, np.float32) * frames, 2)
    dx = max(0.0, -out[0]) - max(0.0, out[2] - w)
    dy = max(0.0, -out[1]) - max(0.0, out[3] - h)
    return out + np.array([dx, dy, dx, dy], dtype=np.float32)


@dataclasses.dataclass
class Motion:
    """An object's motion, and where it is expected while hidden: its last visible box moved on at constant velocity.

    Updated once per propagated frame: :meth:`seen` (visible, not occluded) or :meth:`hide` (occluded or lost).

    Attributes:
        box: ``(4,)`` xyxy box (pixels) on the last visible frame; ``hidden``: frames since then (occluded or lost)
        area: the usual mask area (running mean over the visible frames, pixels)
        velocity: ``(2,)`` per-frame step of the box centre (pixels; running mean from zero)
    """

    box: np.ndarray
    area: float
    hidden: int = 0
    velocity: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(2, dtype=np.float32))

    def __post_init__(self):
        self.box = np.asarray(self.box, dtype=np.float32)

    def seen(self, box: np.ndarray, area: float, momentum: float = 0.5, area_momentum: float = 0.5):
        """A frame on which the object is visible with ``(4,)`` box ``box`` and mask area ``area``."""
        box = np.asarray(box, dtype=np.float32)
        step = ((box[:2] + box[2:]) - (self.box[:2] + self.box[2:])) / 2 / (self.hidden + 1)
        self.velocity = (1 - momentum) * self.velocity + momentum * step
        self.area = (1 - area_momentum) * self.area + area_momentum * float(area)
        self.box, self.hidden = box, 0

    def hide(self):
        """A frame on which the object is occluded or lost."""
        self.hidden += 1

    def expected_box(self, image_size: Tuple[int, int]) -> np.ndarray:
        """``(4,)`` the box where the object is expected now (:func:`extrapolate_box` of the last visible box)."""
        return extrapolate_box(self.box, self.velocity, self.hidden, image_size)
