"""Identity evidence between objects' masks on one frame: identity switches and merges.

One definition serves the benchmark (predictions against ground truth) and the tracker's own doubt (each object's
new mask against the objects' previous masks, and against the other objects' new masks), so that what the
benchmark counts as an error is what the App flags as doubtful (:mod:`sampd_plugin.core.quality`):

- **identity switch** (:func:`identity_switches`): object ``i``'s mask overlaps the reference mask of another object
  ``j`` by more pixels than its own reference mask (zero when ``i`` has none, e.g. fully occluded): it follows, or
  has become, another object;
- **merge** (:func:`merges`): the masks of two objects share more than ``fraction`` (default half) of the smaller
  one: one mask covers both objects.

Masks are ``(H, W)`` bool arrays keyed by object id. This module imports no FiftyOne.
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Tuple

import numpy as np

#: two masks sharing more than this fraction of the smaller one are merged
MERGE_FRACTION = 0.5


def overlap_counts(masks: Mapping[int, np.ndarray], reference: Mapping[int, np.ndarray]) -> Dict[int, Dict[int, int]]:
    """``{i: {j: |masks[i] & reference[j]|}}`` for every pair of ids (pixels)."""
    return {i: {j: int(np.count_nonzero(m & r)) for j, r in reference.items()} for i, m in masks.items()}


def identity_switches(masks: Mapping[int, np.ndarray], reference: Mapping[int, np.ndarray]) -> List[int]:
    """The ids ``i`` of ``masks`` that overlap some ``reference[j]``, ``j != i``, by more pixels than
    ``reference[i]`` (an id missing from ``reference`` overlaps its own by 0), sorted.

    Args:
        masks: ``{object id: (H, W) bool}``, e.g. the predicted masks of a frame
        reference: ``{object id: (H, W) bool}``, e.g. the frame's ground-truth masks (visible objects)
    """
    counts = overlap_counts(masks, reference)
    return sorted(i for i, row in counts.items() if any(n > row.get(i, 0) for j, n in row.items() if j != i))


def merges(masks: Mapping[int, np.ndarray], fraction: float = MERGE_FRACTION) -> List[Tuple[int, int]]:
    """The pairs ``(i, j)``, ``i < j``, whose masks share more than ``fraction`` of the smaller one's pixels
    (empty masks never merge), sorted."""
    ids = sorted(masks)
    area = {i: int(np.count_nonzero(masks[i])) for i in ids}
    out = []
    for a, i in enumerate(ids):
        for j in ids[a + 1 :]:
            small = min(area[i], area[j])
            if small and np.count_nonzero(masks[i] & masks[j]) > fraction * small:
                out.append((i, j))
    return out


def confusions(masks: Mapping[int, np.ndarray], previous: Mapping[int, np.ndarray],
               fraction: float = MERGE_FRACTION) -> Dict[int, str]:
    """The tracker's own identity evidence on a frame, without ground truth: ``{object id: "switch" | "merge"}``
    for the objects whose new mask switched (:func:`identity_switches` against the objects' previous masks; only
    objects that had one) or merged with another object's new mask (:func:`merges`); a switch is reported over a
    merge.

    Args:
        masks: ``{object id: (H, W) bool}`` the objects' new masks
        previous: ``{object id: (H, W) bool}`` the previous masks of the objects that were found on the previous
            frame
    """
    out = {i: "merge" for pair in merges(masks, fraction) for i in pair}
    for i in identity_switches({i: m for i, m in masks.items() if i in previous}, previous):
        out[i] = "switch"
    return out
