"""Hand-computed cases for sampd_plugin.core.metrics (DAVIS 2017 J, F and statistics)."""
import math

import numpy as np
import pytest

from sampd_plugin.core.metrics import (aggregate, boundary_f_measure, boundary_map, bound_pixels, disk,
                                  protocol_frames, region_similarity, statistics, youtube_vos_summary)


def rect(hw, y0, y1, x0, x1):
    m = np.zeros(hw, bool)
    m[y0:y1, x0:x1] = True
    return m


# ---------------------------------------------------------------- J

def test_j_hand_cases():
    z = np.zeros((6, 6), bool)
    assert region_similarity(z, z) == 1.0  # both empty
    assert region_similarity(rect((6, 6), 0, 2, 0, 2), z) == 0.0  # one empty
    assert region_similarity(z, rect((6, 6), 0, 2, 0, 2)) == 0.0
    # 2x2 inside 2x3: 4 / 6
    assert region_similarity(rect((6, 6), 0, 2, 0, 2), rect((6, 6), 0, 2, 0, 3)) == pytest.approx(2 / 3)
    # shifted 10x10 squares overlapping 10x5: 50 / 150
    assert region_similarity(rect((30, 30), 0, 10, 5, 15), rect((30, 30), 0, 10, 0, 10)) == pytest.approx(1 / 3)


def test_j_void_and_stacks():
    gt, pred = rect((8, 8), 0, 4, 0, 4), rect((8, 8), 0, 4, 0, 6)  # 16 / 24
    void = rect((8, 8), 0, 8, 4, 8)  # hides the 8 extra predicted pixels
    assert region_similarity(pred, gt) == pytest.approx(16 / 24)
    assert region_similarity(pred, gt, void) == 1.0
    assert region_similarity(pred, np.zeros_like(gt), void=np.ones_like(gt)) == 1.0  # all void: empty union
    j = region_similarity(np.stack([pred, gt, pred]), np.stack([gt, gt, np.zeros_like(gt)]), void)
    assert j.shape == (3,) and np.allclose(j, [1.0, 1.0, 0.0])
    assert np.allclose(region_similarity(np.stack([pred] * 2), np.stack([gt] * 2)), [16 / 24] * 2)


def test_j_different_resolution():
    gt = rect((50, 60), 10, 20, 12, 30)
    up = np.kron(gt, np.ones((2, 2), bool))  # exact 2x prediction
    assert region_similarity(up, gt) == 1.0
    assert region_similarity(np.stack([up, up]), np.stack([gt, gt])).tolist() == [1.0, 1.0]


# ---------------------------------------------------------------- boundaries

def test_boundary_map_hand_computed():
    seg = rect((4, 4), 1, 3, 1, 3)
    expected = np.array([[1, 1, 1, 0],
                         [1, 0, 1, 0],
                         [1, 1, 1, 0],
                         [0, 0, 0, 0]])  # offset half a pixel towards the origin
    assert np.array_equal(boundary_map(seg), expected)
    assert not boundary_map(np.ones((5, 7), bool)).any()  # the image border is not a boundary
    # last row / column rules: only the east (last row) / south (last column) neighbour counts
    edge = rect((3, 3), 0, 3, 0, 2)  # columns 0-1 set
    assert np.array_equal(boundary_map(edge), [[0, 1, 0], [0, 1, 0], [0, 1, 0]])
    assert np.array_equal(boundary_map(np.stack([seg, seg])), [expected, expected])


def test_bound_pixels_and_disk():
    assert bound_pixels(0.008, (480, 854)) == 8  # ceil(7.84)
    assert bound_pixels(0.008, (1080, 1920)) == 18  # ceil(17.62)
    assert bound_pixels(0.008, (100, 100)) == 2  # ceil(1.13)
    assert bound_pixels(3, (480, 854)) == 3
    assert disk(1).tolist() == [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    d2 = disk(2)
    assert d2.sum() == 13 and d2[0, 2] == 1 and d2[0, 1] == 0 and d2[1, 1] == 1  # 1+1 <= 4, 1+4 > 4
    skm = pytest.importorskip("skimage.morphology")
    for r in (1, 1.5, 2, 2.5, 3, 7, 8, 18):
        assert np.array_equal(disk(r), skm.disk(r).astype(np.uint8)), r


# ---------------------------------------------------------------- F

def test_f_empty_cases():
    z, full = np.zeros((20, 20), bool), np.ones((20, 20), bool)
    sq = rect((20, 20), 5, 10, 5, 10)
    assert boundary_f_measure(z, z) == 1.0  # both boundaries empty
    assert boundary_f_measure(full, full) == 1.0
    assert boundary_f_measure(z, full) == 1.0  # (toolkit: a full-frame mask has no boundary)
    assert boundary_f_measure(sq, z) == 0.0  # exactly one empty
    assert boundary_f_measure(z, sq) == 0.0
    assert boundary_f_measure(sq, sq) == 1.0


@pytest.mark.parametrize("bound_th, r", [(0.008, 8), (3, 3)])
def test_f_tolerance_edge_at_bound_pix(bound_th, r):
    hw = (480, 854)
    gt = rect(hw, 0, 480, 0, 300)  # boundary: the whole column 299
    for d, f in ((r, 1.0), (r + 1, 0.0)):
        pred = rect(hw, 0, 480, 0, 300 + d)  # boundary column 299 + d
        assert boundary_f_measure(pred, gt, bound_th=bound_th) == f, d
        assert boundary_f_measure(gt, pred, bound_th=bound_th) == f, d


def test_f_euclidean_disk_diagonal():
    # single pixels: boundaries are the 2x2 blocks (9..10, 9..10) and (12..13, 13..14); the farthest
    # nearest pairs are (3, 4) apart, i.e. exactly 5 px; at r = 4 one pixel of each side matches
    pred, gt = rect((30, 30), 10, 11, 10, 11), rect((30, 30), 13, 14, 14, 15)
    assert boundary_f_measure(pred, gt, bound_th=5) == 1.0
    assert boundary_f_measure(pred, gt, bound_th=4) == pytest.approx(0.25)  # P = R = 1/4


def test_f_thin_objects():
    hw = (32, 32)  # r = ceil(0.008 * 45.25) = 1
    line = rect(hw, 10, 11, 5, 20)  # 1-px line: boundary rows 9 and 10, columns 4..19 (32 px)
    assert boundary_map(line).sum() == 32
    down1, down2 = rect(hw, 11, 12, 5, 20), rect(hw, 12, 13, 5, 20)
    assert region_similarity(down1, line) == 0.0
    assert boundary_f_measure(down1, line) == 1.0  # boundaries 1 px apart
    assert boundary_f_measure(down2, line) == pytest.approx(0.5)  # half of each boundary matches


def test_f_void():
    gt = rect((40, 40), 5, 15, 5, 15)
    pred = gt | rect((40, 40), 25, 35, 25, 35)  # spurious blob ...
    void = rect((40, 40), 22, 40, 22, 40)  # ... inside void
    assert boundary_f_measure(pred, gt) < 1.0
    assert boundary_f_measure(pred, gt, void) == 1.0
    # void cutting the object: both masks are cut the same way
    assert boundary_f_measure(gt, rect((40, 40), 5, 15, 5, 20), rect((40, 40), 0, 40, 14, 40)) == 1.0


def test_f_different_resolution():
    gt = rect((100, 100), 20, 40, 30, 60)
    up = np.kron(gt, np.ones((2, 2), bool))  # pred at 2x: boundary rows 39/79 map to 19/39 exactly
    assert boundary_f_measure(up, gt) == 1.0
    # shifted 3 px right, r = ceil(0.008 * 141.4) = 2 (the gt diagonal): of each 100-px ring (21 x 31), the top and
    # bottom rows match but one end pixel (2 x 30), the far side column only near the corners (4): 64 / 100
    shifted = rect((100, 100), 20, 40, 33, 63)
    assert boundary_f_measure(shifted, gt) == pytest.approx(64 / 100)
    assert boundary_f_measure(np.kron(shifted, np.ones((2, 2), bool)), gt) == pytest.approx(64 / 100)


def test_f_stack_and_bruteforce_definition():
    """Random masks against a brute-force reading of the definition (pixel-to-pixel distances)."""
    rng = np.random.default_rng(0)
    preds, gts = [], []
    for _ in range(25):
        p = rng.random((24, 30)) < rng.uniform(0.05, 0.6)
        g = np.zeros((24, 30), bool)
        y, x = rng.integers(0, 20, 2)
        g[y:y + rng.integers(1, 10), x:x + rng.integers(1, 12)] = True
        preds.append(p)
        gts.append(g)
    f = boundary_f_measure(np.stack(preds), np.stack(gts), bound_th=2)
    assert f.shape == (25,)
    for p, g, fv in zip(preds, gts, f):
        bp, bg = np.argwhere(boundary_map(p)), np.argwhere(boundary_map(g))
        if len(bp) == 0 or len(bg) == 0:
            assert fv == float(len(bp) == len(bg))
            continue
        d2 = ((bp[:, None, :] - bg[None, :, :]) ** 2).sum(-1)
        prec, rec = (d2.min(1) <= 4).mean(), (d2.min(0) <= 4).mean()
        assert fv == pytest.approx(0 if prec + rec == 0 else 2 * prec * rec / (prec + rec), abs=1e-12)
        assert fv == boundary_f_measure(p, g, bound_th=2)


# ---------------------------------------------------------------- statistics and protocol

def test_statistics_decay_binning():
    # T = 10: edges round(linspace(1, 10, 5)) - 1 = 0, 2, 5, 7, 9 -> first bin frames 0-2, last 7-9
    s = statistics(np.arange(10) / 10)
    assert s.mean == pytest.approx(0.45)
    assert s.recall == pytest.approx(0.4)  # 0.6 .. 0.9 (strictly > 0.5)
    assert s.decay == pytest.approx(0.1 - 0.8)  # (np.array_split bins would give 0.1 - 0.85)
    # T = 7: linspace = 1, 2.5, 4, 5.5, 7 -> round half up -> edges 0, 2, 3, 5, 6
    assert statistics(np.arange(7.0)).decay == pytest.approx(1.0 - 5.5)
    # T = 4: edges 0, 1, 2, 2, 3 -> bins [0:2] and [2:4]
    assert statistics([1.0, 0.8, 0.6, 0.2]).decay == pytest.approx(0.9 - 0.4)
    assert statistics([0.7]) == (0.7, 1.0, 0.0)
    assert statistics([0.5, 0.6]).recall == 0.5


def test_statistics_nan_safe():
    s = statistics([np.nan, 1.0, 0.0])
    assert s.mean == 0.5 and s.recall == 0.5
    assert all(math.isnan(v) for v in statistics([]))
    assert all(math.isnan(v) for v in statistics([np.nan, np.nan]))


def test_protocol_frames():
    assert protocol_frames(10).tolist() == list(range(1, 9))  # not the first (given) nor the last
    assert protocol_frames(10, first=3).tolist() == list(range(4, 9))
    assert protocol_frames(10, exclude_last=False).tolist() == list(range(1, 10))
    assert protocol_frames(2).size == 0


def test_aggregate_and_youtube_vos():
    j = [statistics([1.0, 1.0]), statistics([0.0, 0.5]), statistics([])]  # last: no scored frame
    f = [statistics([0.8, 0.8]), statistics([0.2, 0.4]), statistics([])]
    g = aggregate(j, f)
    assert g["J-Mean"] == pytest.approx(0.625) and g["F-Mean"] == pytest.approx(0.55)
    assert g["J&F-Mean"] == pytest.approx((0.625 + 0.55) / 2)
    assert g["J-Recall"] == pytest.approx(0.5) and g["F-Recall"] == pytest.approx(0.5)
    y = youtube_vos_summary([1.0, 0.5, 0.0], [0.8, 0.4, 0.2], ["cat", "dog", "cat"], seen=["cat"])
    assert y["J_seen"] == 0.5 and y["F_seen"] == pytest.approx(0.5)
    assert y["J_unseen"] == 0.5 and y["F_unseen"] == 0.4
    assert y["G"] == pytest.approx((0.5 + 0.5 + 0.5 + 0.4) / 4)


# ---------------------------------------------------------------- against the official toolkit

def _davis_like_pairs(rng, t, h, w):
    """``t`` (gt, pred) bool stacks: unions of ellipses, the prediction shifted with a spurious blob; some frames
    empty on one or both sides."""
    import cv2

    gt, pred = np.zeros((t, h, w), np.uint8), np.zeros((t, h, w), np.uint8)
    for k in range(t):
        for _ in range(int(rng.integers(1, 4))):
            c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            ax = (int(rng.integers(3, w // 4)), int(rng.integers(3, h // 4)))
            cv2.ellipse(gt[k], c, ax, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        pred[k] = np.roll(gt[k], tuple(int(v) for v in rng.integers(-9, 10, 2)), axis=(0, 1))
        cv2.circle(pred[k], (int(rng.integers(0, w)), int(rng.integers(0, h))), int(rng.integers(1, 25)), 1, -1)
    gt[0] = 0
    pred[1] = 0
    gt[2] = pred[2] = 0
    return gt.astype(bool), pred.astype(bool)


def test_boundary_map_equals_the_toolkit_at_word_edges():
    """Boundary maps are computed 64 pixels per word: widths around word sizes, 1-row and 1-column masks."""
    from tests.davis_toolkit import _seg2bmap

    rng = np.random.default_rng(1)
    for h, w in [(1, 1), (1, 70), (17, 1), (5, 63), (9, 64), (9, 65), (12, 127), (7, 128), (6, 200)]:
        for density in (0.1, 0.5, 0.95):
            m = rng.random((h, w)) < density
            assert np.array_equal(boundary_map(m), _seg2bmap(m).astype(np.uint8)), (h, w, density)


def test_packed_disk_dilation_equals_cv2_dilate():
    """The word-wise dilation equals cv2.dilate with disk(r) on every pixel of each row, for radii past a word."""
    import cv2

    from sampd_plugin.core.metrics import _dilate_disk, _pack_rows

    rng = np.random.default_rng(2)
    for r in [0, 1, 2, 3, 5, 8, 13, 18, 31, 63, 64, 70]:
        for h, w in [(40, 61), (23, 130)]:
            m = rng.random((2, h, w)) < 0.01
            bits = _dilate_disk(_pack_rows(m, max(r, 1)), r)
            got = np.unpackbits(bits.view(np.uint8), axis=-1, count=w, bitorder="little")
            ref = np.stack([cv2.dilate(f.astype(np.uint8), disk(r)) for f in m])
            assert np.array_equal(got, ref), (r, h, w)


def test_f_rows_do_not_leak_into_each_other():
    """Packed rows are one bit string: gt's boundary at the start of a 64-pixel word (x = 64) and pred's at its end
    (x = 127) are 63 px apart in a row but 1 bit apart from one row to the next; they must not match."""
    gt, pred = np.zeros((2, 30, 129), bool)
    gt[:, 65:] = True  # boundary: column 64
    pred[:, :128] = True  # boundary: column 127
    assert boundary_f_measure(pred, gt) == 0.0
    assert boundary_f_measure(pred, gt, bound_th=62) == 0.0
    assert boundary_f_measure(pred, gt, bound_th=63) == 1.0


def test_bound_th_in_pixels_is_whole():
    with pytest.raises(ValueError, match="whole number"):
        boundary_f_measure(np.ones((9, 9), bool), np.ones((9, 9), bool), bound_th=2.5)


@pytest.mark.parametrize("threads", [1, 2])
def test_f_equals_the_toolkit_on_noisy_thin_boundaries(threads):
    """Thin limbs across the frame, jagged boundaries, specks and holes (tests/mask_pairs.py, the benchmark's
    hard kind), with frames where one or both masks are empty, with and without void."""
    from tests.davis_toolkit import db_eval_boundary
    from tests.mask_pairs import make_pairs

    gt, pred = make_pairs(np.random.default_rng(5), 18, 480, 854, "hard")
    gt[0] = pred[1] = False
    gt[2] = pred[2] = False
    void = np.zeros_like(gt)
    void[:, :, 100:180] = True
    for v in (None, void):
        f = boundary_f_measure(pred, gt, v, threads=threads)
        assert np.abs(f - db_eval_boundary(gt, pred, v)).max() <= 1e-9
    assert 0.3 < f[3:].mean() < 0.95  # non-trivial pairs


@pytest.mark.parametrize("threads", [1, 2])
def test_j_and_f_equal_the_official_toolkit(threads):
    """J and F equal a line-by-line re-implementation of the DAVIS toolkit's db_eval_iou / db_eval_boundary to
    1e-9 on 480p stacks, with and without void, single- and multi-threaded."""
    from tests.davis_toolkit import db_eval_boundary, db_eval_iou

    rng = np.random.default_rng(4)
    gt, pred = _davis_like_pairs(rng, 24, 480, 854)
    void = np.zeros_like(gt)
    void[:, 200:260, :] = True
    for v in (None, void):
        f = boundary_f_measure(pred, gt, v, threads=threads)
        assert np.abs(f - db_eval_boundary(gt, pred, v)).max() <= 1e-9
        assert np.abs(region_similarity(pred, gt, v) - db_eval_iou(gt, pred, v)).max() <= 1e-9
    assert 0 < f.mean() < 1  # non-trivial pairs
    assert boundary_f_measure(pred[3], gt[3]) == pytest.approx(db_eval_boundary(gt[3], pred[3]), abs=1e-9)
