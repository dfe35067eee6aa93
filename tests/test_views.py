"""Failure views of a J&F evaluation (``sampd_plugin.fo.views``): frames shown as their own images, sampled once (only
the failure frames), shared by evaluations, deleted with the last evaluation that shows them."""
import os

import numpy as np
import pytest

fo = pytest.importorskip("fiftyone")

from sampd_plugin.core.frames import iter_frames  # noqa: E402
from sampd_plugin.fo import views  # noqa: E402
from sampd_plugin.fo.evaluation import evaluate_jf  # noqa: E402

FAIL = {0: {3, 6}, 1: {5}}  # video -> frames where object 1's prediction is dropped (J = 0)


def predictions_with_failures(ds):
    """``frames.pred`` = ground truth, without object 1 on the frames of :data:`FAIL`."""
    values = {}
    for i, (sid, fns, labels) in enumerate(zip(*ds.values(["id", "frames.frame_number", "frames.ground_truth"]))):
        values[sid] = {fn: fo.Detections(detections=[d for d in gt.detections
                                                     if not (fn in FAIL[i] and d.index == 1)])
                       for fn, gt in zip(fns, labels)}
    ds.set_values("frames.pred", values, key_field="id")


def decoded(path):
    return {fn: img.astype(np.int16) for fn, img in iter_frames(path)}


def image(path):
    import cv2

    return cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB).astype(np.int16)


def test_failure_views_show_their_own_frame_images_sampled_once(make_synthetic):
    ds = make_synthetic(num_videos=2, num_frames=8, num_objects=2, height=96, width=128)
    predictions_with_failures(ds)
    evaluate_jf(ds, "pred", eval_key="jf")
    root = views.frames_dir(ds)
    videos = {sid: decoded(p) for sid, p in zip(ds.values("id"), ds.values("filepath"))}
    order = ds.values("id")

    fail = ds.load_saved_view("jf_failures")
    assert fail.media_type == "image"
    got = sorted((order.index(s), fn) for s, fn in zip(fail.values("sample_id"), fail.values("frame_number")))
    assert got == sorted((i, fn) for i, fns in FAIL.items() for fn in fns)
    for sample in fail:
        assert sample.filepath.startswith(root + os.sep) and sample.filepath.endswith(".jpg")
        frames = videos[sample.sample_id]
        img = image(sample.filepath)
        own = np.abs(img - frames[sample.frame_number]).mean()
        first = np.abs(img - frames[1]).mean()
        assert own < 3 and own < first / 3, (sample.frame_number, own, first)  # its own frame, not frame 1
        assert [d.index for d in sample.pred.detections] == [2]  # the masks listed are that frame's
    first_fail = ds.load_saved_view("jf_first_failures")
    got = sorted(zip(first_fail.values("frame_number"), first_fail.values("jf_first_failures")))
    assert got == [(3, [1]), (5, [1])]

    # only the failure frames were decoded to images (3 of 16)
    files = [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs]
    assert sorted(files) == sorted(fail.values("filepath"))

    # a second evaluation shares the images; renaming keeps them; deleting one keeps what the other shows
    evaluate_jf(ds, "pred", eval_key="jf2", failure_th=0.9)
    ds.rename_evaluation("jf", "jf3")
    assert sorted(ds.load_saved_view("jf3_failures").values("filepath")) == sorted(files)
    ds.delete_evaluation("jf3")
    assert all(os.path.exists(f) for f in files)
    assert sorted(ds.load_saved_view("jf2_failures").values("filepath")) == sorted(files)
    ds.delete_evaluation("jf2")
    assert not os.path.exists(root) and not ds.has_frame_field("filepath")
    assert ds.list_saved_views() == []
