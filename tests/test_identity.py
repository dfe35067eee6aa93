"""Identity evidence (sampd_plugin.core.identity): switches against a reference and merges, on constructed masks."""

import numpy as np

from sampd_plugin.core.identity import identity_switches, merges, overlap_counts


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
