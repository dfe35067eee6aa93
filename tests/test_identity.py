"""Identity evidence (sampd_plugin.core.identity): switches against a reference and merges, on constructed masks."""

import numpy as np

from sampd_plugin.core.identity import confusions, identity_switches, merges, overlap_counts
from tests.per_object import confusions_pairwise


def _box(y0, y1, x0, x1, shape=(20, 30)):
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = True
    return m


def test_a_mask_on_another_object_is_a_switch():
    gt = {1: _box(0, 10, 0, 10), 2: _box(0, 10, 12, 22)}
    assert identity_switches({1: _box(0, 10, 0, 10), 2: _box(0, 10, 12, 22)}, gt) == []
    swapped = {1: _box(0, 10, 12, 22), 2: _box(0, 10, 0, 10)}
    assert identity_switches(swapped, gt) == [1, 2]
    # object 1 leaks onto object 2 but keeps more of itself: no switch
    assert identity_switches({1: _box(0, 10, 0, 16)}, gt) == []
    # ... more of object 2 than of itself: a switch
    assert identity_switches({1: _box(0, 10, 6, 22)}, gt) == [1]
    assert overlap_counts({1: _box(0, 10, 6, 22)}, gt) == {1: {1: 40, 2: 100}}


def test_an_occluded_object_that_follows_its_occluder_switches_and_an_empty_mask_does_not():
    gt = {2: _box(0, 10, 0, 10)}  # object 1 is hidden behind object 2
    assert identity_switches({1: _box(2, 8, 2, 8), 2: _box(0, 10, 0, 10)}, gt) == [1]
    assert identity_switches({1: np.zeros((20, 30), bool)}, gt) == []


def test_merges_are_pairs_sharing_most_of_the_smaller_mask():
    masks = {1: _box(0, 10, 0, 20), 2: _box(0, 10, 5, 12), 3: _box(12, 20, 0, 30), 4: np.zeros((20, 30), bool)}
    assert merges(masks) == [(1, 2)]
    assert merges({1: _box(0, 10, 0, 10), 2: _box(0, 10, 6, 16)}) == []  # 40 % of the smaller: touching, not merged
    assert merges({1: _box(0, 10, 0, 10), 2: _box(0, 10, 6, 16)}, fraction=0.3) == [(1, 2)]


def test_the_overlap_matrix_is_every_pairs_intersection():
    """Issue 22: the counts from the masks' pixels (one join for all pairs) are the pairwise intersections, and the
    switches and merges built on them are those of the definitions pair by pair, on random overlapping masks."""
    rng, seen = np.random.default_rng(0), 0
    for _ in range(40):
        h, w = rng.integers(1, 25, 2)
        masks, reference = ({int(i): (rng.random((h, w)) < 0.9) & _box(*sorted(rng.integers(0, h + 1, 2)),
                                                                       *sorted(rng.integers(0, w + 1, 2)), (h, w))
                             for i in rng.integers(0, 6, rng.integers(0, 6))} for _ in range(2))
        pairwise = {i: {j: int((m & r).sum()) for j, r in reference.items()} for i, m in masks.items()}
        assert overlap_counts(masks, reference) == pairwise
        switched = [i for i, row in pairwise.items() if any(n > row.get(i, 0) for j, n in row.items() if j != i)]
        assert identity_switches(masks, reference) == sorted(switched)
        ids = sorted(masks)
        merged = [(i, j) for a, i in enumerate(ids) for j in ids[a + 1:]
                  if min(masks[i].sum(), masks[j].sum()) and (masks[i] & masks[j]).sum() > 0.5 * min(
                      masks[i].sum(), masks[j].sum())]
        assert merges(masks) == merged
        # the tracker's evidence (one join of the new masks with the new and the previous ones), by its definition
        assert confusions(masks, reference) == confusions_pairwise(masks, reference)
        seen += bool(switched) + bool(merged)
    assert seen > 10, seen  # switches and merges do occur


def test_a_single_object_is_never_confused():
    """The tracker skips the identity evidence when it follows one object (``SamPDTracker._confusions``): by the
    definition there is no other object to merge with or switch to, whatever its masks are."""
    rng = np.random.default_rng(3)
    for _ in range(20):
        mask, previous = rng.random((2, 12, 16)) < rng.random()
        assert confusions({7: mask}, {7: previous}) == {} == confusions({7: mask}, {})


def test_heavily_overlapping_masks_are_counted_by_a_product_with_the_same_integers(monkeypatch):
    """Issue 22: the join's pairs grow with the overlaps (99 half-frame masks: 378 M pairs, 21 s a frame), so
    ``overlap_matrix`` counts heavily overlapping masks by a matrix product instead; both give the pairwise
    intersections, on masks of every density and on more pixels than one block of the product holds."""
    from sampd_plugin.core import identity

    rng, dense = np.random.default_rng(5), []
    product = identity._dense_overlaps
    monkeypatch.setattr(identity, "_dense_overlaps", lambda a, b: dense.append(len(a)) or product(a, b))
    for n, coverage in ((7, 0.9), (8, 0.005), (9, 0.3), (10, 0.0)):
        side = (np.sqrt(coverage) * np.array([40, 50])).astype(int)
        a = np.zeros((n, 40, 50), bool)
        for i, (y, x) in enumerate(zip(rng.integers(0, 41 - side[0], n), rng.integers(0, 51 - side[1], n))):
            a[i, y:y + side[0], x:x + side[1]] = rng.random(side) < 0.95
        b = np.concatenate([a, np.roll(a, 2, axis=1)])
        pairwise = np.array([[(x & y).sum() for y in b] for x in a], dtype=np.int64).reshape(n, 2 * n)
        assert np.array_equal(identity.overlap_matrix(a, b), pairwise)
    assert dense == [7, 9]  # the dense masks by the product, the sparse (and empty) ones by the join
    # a product over several blocks of pixels (60 + 120 masks: 93,206 pixels a block) against float64 sums
    a, b = rng.random((60, 320, 300)) < 0.3, rng.random((120, 320, 300)) < 0.6
    reference = a.reshape(60, -1).astype(np.float64) @ b.reshape(120, -1).astype(np.float64).T
    assert np.array_equal(product(a, b), reference.astype(np.int64))
