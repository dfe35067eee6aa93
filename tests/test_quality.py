"""The ground-truth-free quality signal (``sampd_plugin.core.quality``): the doubtful rule, the ``doubtful`` label tags and
the frame-level ``<field>_confidence`` / ``<field>_doubtful`` fields, on videos and image sequences."""
import math

import numpy as np
import pytest

from sampd_plugin.core import quality

fo = pytest.importorskip("fiftyone")

import sampd_plugin as sp  # noqa: E402
from sampd_plugin.core.tracker import FrameResult, ObjectResult  # noqa: E402
from sampd_plugin.fo import labels, runs, store  # noqa: E402
from sampd_plugin.fo.sources import layout_of  # noqa: E402
from tests import test_labels_store  # noqa: E402
from tests.test_labels_store import H, T, W, _mask  # noqa: E402

dataset = test_labels_store.dataset  # the same fixture: one sequence, as a video and as image samples


def test_doubtful_rule_and_confidence_agree():
    assert not quality.is_doubtful(1.0, 0.9, False)
    assert quality.is_doubtful(1.0, 0.9, True)  # lost
    assert quality.is_doubtful(1.0, 0.49, False) and not quality.is_doubtful(1.0, 0.5, False)  # predicted IoU
    assert quality.is_doubtful(0.09, 0.9, False) and not quality.is_doubtful(0.1, 0.9, False)  # relative similarity
    assert quality.is_doubtful(float("-inf"), 0.9, False) and quality.is_doubtful(float("nan"), 0.9, False)
    assert quality.object_confidence(1.0, 0.9, True) == 0.0
    assert quality.object_confidence(3.0, 1.2, False) == 1.0  # clipped
    assert quality.object_confidence(0.05, 0.9, False) == pytest.approx(0.25)  # score rescaled: 0.1 -> 0.5
    # an identity switch or a merge (sampd_plugin.core.identity.confusions) is doubtful however good the mask looks
    assert quality.is_doubtful(1.0, 0.9, False, confusion="switch") and quality.is_doubtful(1.0, 1.0, False,
                                                                                              confusion="merge")
    assert quality.object_confidence(1.0, 0.9, False, confusion="merge") == quality.CONFUSED
    rng = np.random.default_rng(0)
    draws = zip(rng.uniform(-0.2, 1.5, 2000), rng.uniform(0, 1, 2000), rng.random(2000) < 0.1,
                rng.choice([None, "switch", "merge"], 2000, p=[0.8, 0.1, 0.1]))
    for score, iou, lost, confusion in draws:
        c = quality.object_confidence(score, iou, lost, confusion=confusion)
        assert 0 <= c <= 1 and (c < quality.IOU_BELOW) == quality.is_doubtful(score, iou, lost, confusion=confusion)
    assert quality.frame_quality({1: (1.0, 0.9, False), 4: (1.0, 0.3, False), 0: (0.0, 0.0, True)}) == (0.0, [0, 4])
    assert quality.frame_quality({1: (1.0, 0.9, False, None), 2: (1.0, 0.9, False, "switch")}) == (0.25, [2])
    assert quality.frame_quality({}) == (None, [])


def test_writer_tags_doubtful_objects_and_writes_frame_quality(dataset):
    layout = layout_of(dataset)
    seq = layout.sequences()[0]
    store.ensure_output_field(layout, "out")
    conf_f, doubt_f = labels.quality_fields("out")
    assert (conf_f, doubt_f) == ("out_confidence", "out_doubtful") and layout.has_field(conf_f)
    assert layout.get_field(doubt_f).document_type is fo.Classification

    def obj(i, iou=0.9, score=1.0, lost=False, confusion=None):
        m = np.zeros((H, W), bool) if lost else _mask(2 + i, 10 + i, 2, 12)
        return ObjectResult(m, None, score, iou, lost, f"o{i}", confusion=confusion)

    objects = {1: {}, 3: {2: dict(iou=0.3)}, 4: {2: dict(iou=0.3), 1: dict(score=0.05)}, 6: {2: dict(lost=True)},
               2: {1: dict(confusion="merge")}}
    w = store.FrameLabelWriter(layout, "out", batch_frames=4)
    for fn in range(1, T + 1):
        spec = objects.get(fn, {})
        w.add(seq, fn, labels.frame_labels(FrameResult(fn, {i: obj(i, **spec.get(i, {})) for i in (1, 2)}),
                                               (H, W)))
    w.flush()
    for fn in range(1, T + 1):
        dets = {d.index: d for d in layout.read_labels(seq, "out", [fn])[fn].detections}
        tagged = sorted(i for i, d in dets.items() if quality.DOUBTFUL_TAG in (d.tags or []))
        assert tagged == sorted(objects.get(fn, {})), fn
        conf = layout.read_labels(seq, conf_f, [fn])[fn]
        assert conf == pytest.approx({2: quality.CONFUSED, 3: 0.3, 4: 0.25, 6: 0.0}.get(fn, 0.9)), fn
        doubt = layout.read_labels(seq, doubt_f, [fn])[fn]
        if tagged:  # drawn on the frame by the App: label "doubtful", the frame's confidence, the doubtful objects
            assert (doubt.label, doubt.confidence, doubt.objects) == ("doubtful", pytest.approx(conf), tagged)
        else:
            assert doubt is None
    # repropagating object 2 on frames 5..7 with good masks: the frame fields follow the merged labels
    w = store.FrameLabelWriter(layout, "out", replace_ids=[2])
    for fn in range(5, T + 1):
        w.add(seq, fn, labels.frame_labels(FrameResult(fn, {2: obj(2, iou=0.8)}), (H, W)))
    w.flush()
    assert [layout.read_labels(seq, doubt_f, [fn])[fn] for fn in range(5, T + 1)] == [None, None, None]
    assert layout.read_labels(seq, conf_f, [6])[6] == pytest.approx(0.8)
    runs.clear_outputs(layout, [seq], "out")
    assert layout.labeled_counts(conf_f) == {seq.key: 0} and layout.labeled_counts(doubt_f) == {seq.key: 0}


def test_tracking_flags_doubtful_frames_where_the_masks_fail(make_synthetic):
    ds = make_synthetic(num_videos=2, num_frames=12, num_objects=3, height=96, width=128, seed=3)
    sp.track(ds, model="synthetic", config="point", progress=False)
    sp.evaluate_jf(ds, "sampd", eval_key="jf")
    doubtful, good = [], []
    for sample in ds.iter_samples():
        for fn, frame in sample.frames.items():
            dets = frame.sampd.detections
            for d in dets:
                flag = quality.DOUBTFUL_TAG in (d.tags or [])
                assert flag == quality.is_doubtful(d.score, d.iou, d.lost, confusion=d.confusion)
                if not d.is_prompt:
                    (doubtful if flag else good).append(d.jf_J)
            conf, doubt = labels.frame_quality(labels.detection_quality(frame.sampd.detections))
            assert frame.sampd_confidence == conf
            assert (frame.sampd_doubtful and frame.sampd_doubtful.objects) == (doubt and doubt.objects)
    assert doubtful and good
    # the doubtful detections are the failing ones (synthetic segmenter; the rates are in perf/doubtful.py)
    assert np.mean(doubtful) < 0.5 < np.mean(good)
    assert not any(math.isnan(v) for v in ds.values("frames.sampd_confidence", unwind=True))
