"""Video-level mask AP / AR with spatio-temporal IoU (YouTube-VIS / UVO protocol) on hand-built tracks whose
answers are worked out in the comments."""

import numpy as np
import pytest

from sampd_plugin.core.vis_metrics import evaluate_vis, track_iou, track_ious
from sampd_plugin.datasets.uvo import encode_rle

H, W = 10, 10


def box(x0, y0, x1, y1):
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return encode_rle(m)


def gt(video, segs, crowd=0):
    return {"video_id": video, "category_id": 1, "segmentations": segs, "iscrowd": crowd}


def dt(video, segs, score):
    return {"video_id": video, "category_id": 1, "segmentations": segs, "score": score}


def test_spatio_temporal_iou_sums_over_frames():
    # frame 1: |d n g| = 4, |d u g| = 8 (d 2x4 at cols 0-3, g 2x2 ... see areas); frame 2: d absent, g 4 px
    d = [box(0, 0, 4, 2), None]  # 8 px
    g = [box(0, 0, 2, 2), box(5, 5, 7, 7)]  # 4 px, 4 px
    # intersections 4 + 0, unions 8 + 4: 4 / 12 (not the per-frame mean (0.5 + 0) / 2)
    assert track_iou(d, g) == pytest.approx(4 / 12)
    assert track_iou([None, None], g) == 0.0
    assert track_iou([None], [None]) == 0.0  # empty union
    ious = track_ious([d, g], [g])
    assert ious[:, 0] == pytest.approx([4 / 12, 1.0])
    with pytest.raises(ValueError, match="number of frames"):
        track_ious([[None]], [g])


def test_perfect_prediction():
    g = [box(0, 0, 5, 5), box(1, 1, 6, 6)]
    r = evaluate_vis([gt(1, g)], [dt(1, g, 0.9)])
    assert r["AP"] == pytest.approx(1.0) and r["AR100"] == pytest.approx(1.0) and r["AR1"] == pytest.approx(1.0)


def test_partial_overlap_counts_at_thresholds_up_to_its_iou():
    # gt 10x10 per frame on 1 frame; prediction covers 62 of 100 pixels: IoU 0.62 >= 0.50, 0.55, 0.60 only
    g = [box(0, 0, 10, 10)]
    m = np.zeros((H, W), bool)
    m.flat[:62] = True
    r = evaluate_vis([gt(1, g)], [dt(1, [encode_rle(m)], 0.8)])
    assert r["AR100"] == pytest.approx(0.3)  # recall 1 at 3 of 10 thresholds
    assert r["AP"] == pytest.approx(0.3)
    assert r["AP50"] == pytest.approx(1.0) and r["AP75"] == pytest.approx(0.0)


def test_a_higher_scored_false_positive_halves_precision():
    g = [box(0, 0, 4, 4)]
    good = dt(1, g, 0.5)
    bad = dt(1, [box(6, 6, 9, 9)], 0.9)  # no overlap, ranked first
    r = evaluate_vis([gt(1, g)], [bad, good])
    # precision at the single recall level is 1/2, interpolated to every recall threshold
    assert r["AP"] == pytest.approx(0.5)
    assert r["AR100"] == pytest.approx(1.0) and r["AR10"] == pytest.approx(1.0)
    assert r["AR1"] == pytest.approx(0.0)  # with one prediction per video, only the false positive counts


def test_two_videos_pool_predictions_by_score():
    g1, g2 = [box(0, 0, 4, 4)], [box(2, 2, 6, 6)]
    dts = [dt(1, g1, 0.9), dt(2, [box(7, 7, 9, 9)], 0.8), dt(2, g2, 0.3)]
    r = evaluate_vis([gt(1, g1), gt(2, g2)], dts)
    # ranked: TP (recall .5, precision 1), FP, TP (recall 1, precision 2/3): interpolated precision is 1 for
    # recall thresholds 0..0.5 (51 of them) and 2/3 for 0.51..1 (50)
    assert r["AP"] == pytest.approx((51 * 1 + 50 * 2 / 3) / 101)
    assert r["AR100"] == pytest.approx(1.0)


def test_crowd_ground_truth_is_ignored():
    g = [box(0, 0, 4, 4)]
    crowd = [box(5, 5, 9, 9)]
    r = evaluate_vis([gt(1, g), gt(1, crowd, crowd=1)], [dt(1, g, 0.9), dt(1, crowd, 0.8)])
    # the prediction on the crowd region is neither a true nor a false positive; recall counts 1 ground truth
    assert r["AP"] == pytest.approx(1.0) and r["AR100"] == pytest.approx(1.0)


def test_area_ranges_use_the_mean_area_over_visible_frames():
    # a 4x4 object is "small" (< 128^2): ARs equals AR100 and the medium / large columns have no ground truth
    g = [box(0, 0, 4, 4), None]
    r = evaluate_vis([gt(1, g)], [dt(1, g, 0.7)])
    assert r["ARs"] == pytest.approx(1.0)
    assert np.isnan(r["ARm"]) and np.isnan(r["ARl"])


def test_no_predictions():
    r = evaluate_vis([gt(1, [box(0, 0, 3, 3)])], [])
    assert r["AP"] == 0.0 and r["AR100"] == 0.0
