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
import torch

#: two masks sharing more than this fraction of the smaller one are merged
MERGE_FRACTION = 0.5


def overlap_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(N, M)`` int64 pixel counts ``|a[i] & b[j]|`` of ``(N, ...)`` and ``(M, ...)`` bool masks of one shape.

    Computed from the masks' foreground pixels only (a join of the ``(mask, pixel)`` pairs of ``a`` and ``b`` on
    the pixel), so the cost follows the masks' areas and their overlaps, not ``N x M`` full-frame intersections
    (the tracker checks 100 objects' masks against each other on every frame). When the masks overlap so much that
    the join's pairs exceed ``1 / JOIN_PAIRS_PER_PRODUCT`` of the ``N x M x pixels`` products (many large masks on
    one another: 99 half-frame masks are 378 M pairs, 21 s, against 0.05 s for the products), the counts come from
    one matrix product of the masks instead (:func:`_dense_overlaps`, the same integers)."""
    n, m, pixels = len(a), len(b), int(np.prod(np.shape(a)[1:]))
    products = n * m * pixels
    if np.count_nonzero(a) * np.count_nonzero(b) * JOIN_PAIRS_PER_PRODUCT > products * pixels:
        return _dense_overlaps(a, b)  # (the pairs of masks spread independently of one another: already too many)
    ia, pa = np.divmod(np.flatnonzero(a), max(pixels, 1))  # (flat indices: several times faster than a 2-D nonzero)
    ib, pb = np.divmod(np.flatnonzero(b), max(pixels, 1))
    total = int(np.bincount(pb, minlength=pixels)[pa].sum())  # the join's pairs: masks of b on each pixel of a
    if total * JOIN_PAIRS_PER_PRODUCT > products:
        return _dense_overlaps(a, b)
    order = np.argsort(pb, kind="stable")
    pb, ib = pb[order], ib[order]
    start = np.searchsorted(pb, pa, "left")
    hits = np.searchsorted(pb, pa, "right") - start  # masks of b on each foreground pixel of a
    first = np.cumsum(hits) - hits  # where each pixel's hits start among all hits
    at = np.repeat(start - first, hits) + np.arange(total)  # index into pb / ib of each hit
    pairs = np.repeat(ia, hits) * m + ib[at]
    return np.bincount(pairs, minlength=n * m).reshape(n, m)


#: :func:`overlap_matrix` joins the masks' pixels while the pairs stay under ``N x M x pixels`` divided by this (on
#: one CPU thread a joined pair costs ~55 ns, a product of the dense path ~0.05 ns: break-even near 1 / 1000)
JOIN_PAIRS_PER_PRODUCT = 1000


def _dense_overlaps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """:func:`overlap_matrix` as ``a @ b.T`` of the masks as 0 / 1 floats, a block of pixels at a time (torch, so that
    the process' thread count applies): exact, each block's sums being integers below ``2**24``."""
    n, m = len(a), len(b)
    a2 = torch.from_numpy(np.ascontiguousarray(a, dtype=bool).reshape(n, -1).view(np.uint8))
    b2 = torch.from_numpy(np.ascontiguousarray(b, dtype=bool).reshape(m, -1).view(np.uint8))
    out = torch.zeros((n, m), dtype=torch.int64)
    step = max(1, min(1 << 23, (1 << 24) // max(1, n + m)))  # <= 64 MiB of floats per block, sums < 2**24
    for s in range(0, a2.shape[1], step):
        out += (a2[:, s:s + step].float() @ b2[:, s:s + step].float().T).long()
    return out.numpy()


def overlap_counts(masks: Mapping[int, np.ndarray], reference: Mapping[int, np.ndarray]) -> Dict[int, Dict[int, int]]:
    """``{i: {j: |masks[i] & reference[j]|}}`` for every pair of ids (pixels; :func:`overlap_matrix`)."""
    counts = _matrix(masks, reference)
    return {i: dict(zip(reference, map(int, row))) for i, row in zip(masks, counts)}


def identity_switches(masks: Mapping[int, np.ndarray], reference: Mapping[int, np.ndarray]) -> List[int]:
    """The ids ``i`` of ``masks`` that overlap some ``reference[j]``, ``j != i``, by more pixels than
    ``reference[i]`` (an id missing from ``reference`` overlaps its own by 0), sorted.

    Args:
        masks: ``{object id: (H, W) bool}``, e.g. the predicted masks of a frame
        reference: ``{object id: (H, W) bool}``, e.g. the frame's ground-truth masks (visible objects)
    """
    return _switches(_matrix(masks, reference), list(masks), list(reference))


def _switches(counts: np.ndarray, ids: List[int], reference: List[int]) -> List[int]:
    """:func:`identity_switches` from the ``(N, M)`` overlap counts of the masks ``ids`` with the masks
    ``reference``."""
    column = {j: c for c, j in enumerate(reference)}
    rows = np.array([r for r, i in enumerate(ids) if i in column], dtype=np.int64)
    cols = np.array([column[i] for i in ids if i in column], dtype=np.int64)
    own = np.zeros(len(counts), dtype=np.int64)  # 0 for an id without a reference mask
    own[rows] = counts[rows, cols]
    others = counts.copy()
    others[rows, cols] = -1
    return sorted(i for i, hit in zip(ids, (others > own[:, None]).any(1).tolist()) if hit)


def merges(masks: Mapping[int, np.ndarray], fraction: float = MERGE_FRACTION) -> List[Tuple[int, int]]:
    """The pairs ``(i, j)``, ``i < j``, whose masks share more than ``fraction`` of the smaller one's pixels
    (empty masks never merge), sorted."""
    ids = sorted(masks)
    return _merges(_matrix({i: masks[i] for i in ids}, {i: masks[i] for i in ids}), ids, fraction)


def _merges(shared: np.ndarray, ids: List[int], fraction: float) -> List[Tuple[int, int]]:
    """:func:`merges` from the ``(N, N)`` overlap counts of the masks ``ids`` (sorted) with themselves (the
    diagonal: their areas)."""
    area = np.diag(shared)
    small = np.minimum(area[:, None], area[None])
    a, b = np.nonzero(np.triu((small > 0) & (shared > fraction * small), 1))
    return [(ids[x], ids[y]) for x, y in zip(a.tolist(), b.tolist())]


def _matrix(masks: Mapping[int, np.ndarray], reference: Mapping[int, np.ndarray]) -> np.ndarray:
    """:func:`overlap_matrix` of two ``{id: mask}`` mappings, rows and columns in their orders."""
    shape = next((np.shape(m) for m in (*masks.values(), *reference.values())), (0,))
    stack = lambda d: np.stack(list(d.values())) if d else np.zeros((0, *shape), bool)  # noqa: E731
    return overlap_matrix(stack(masks), stack(reference))


def confusions(masks: Mapping[int, np.ndarray], previous: Mapping[int, np.ndarray],
               fraction: float = MERGE_FRACTION) -> Dict[int, str]:
    """The tracker's own identity evidence on a frame, without ground truth: ``{object id: "switch" | "merge"}``
    for the objects whose new mask switched (:func:`identity_switches` against the objects' previous masks; only
    objects that had one) or merged with another object's new mask (:func:`merges`); a switch is reported over a
    merge. One :func:`overlap_matrix` of the new masks against the new and the previous ones serves both.

    Args:
        masks: ``{object id: (H, W) bool}`` the objects' new masks
        previous: ``{object id: (H, W) bool}`` the previous masks of the objects that were found on the previous
            frame
    """
    ids = sorted(masks)
    had = [i for i in ids if i in previous]  # (switches: only objects that had a previous mask)
    shape = next((np.shape(m) for m in (*masks.values(), *previous.values())), (0,))
    stack = lambda ms: np.stack(ms) if ms else np.zeros((0, *shape), bool)  # noqa: E731
    current = stack([masks[i] for i in ids])
    counts = overlap_matrix(current, np.concatenate([current, stack(list(previous.values()))]))
    out = {i: "merge" for pair in _merges(counts[:, :len(ids)], ids, fraction) for i in pair}
    row = {i: r for r, i in enumerate(ids)}
    rows = [row[i] for i in had]
    for i in _switches(counts[rows, len(ids):], had, list(previous)):
        out[i] = "switch"
    return out
