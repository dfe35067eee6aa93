"""The FiftyOne boundary: pixel <-> relative conversion, mask crop/paste round trips, prompts read from Detections
(with and without masks, index rules), bulk writes in chunks, merge on repropagation, resume markers."""

import uuid

import numpy as np
import pytest

fo = pytest.importorskip("fiftyone")

from sampd_plugin import labels, runs, store  # noqa: E402
from sampd_plugin.labels import paste_mask  # noqa: E402
from sampd_plugin.errors import SampdInputError  # noqa: E402
from sampd_plugin.tracker import FrameResult, ObjectResult  # noqa: E402

H, W, T = 40, 60, 7


def _mask(y0, y1, x0, x1):
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


@pytest.fixture
def dataset():
    """A video dataset of one metadata-only sample (no media needed by labels / store) with 7 frames of prompts."""
    ds = fo.Dataset(f"sampd-test-{uuid.uuid4().hex[:12]}")
    s = fo.Sample(filepath="/nonexistent/video.mp4",
                  metadata=fo.VideoMetadata(frame_width=W, frame_height=H, total_frame_count=T))
    for f in range(1, T + 1):
        s.frames[f]["gt"] = fo.Detections(detections=[])
    ds.add_sample(s)
    yield ds
    fo.delete_dataset(ds.name)


def test_relative_and_pixel_boxes_round_trip():
    hw = (H, W)
    for box in ([0, 0, W, H], [3, 5, 17, 29], [59, 39, 60, 40]):
        rel = labels.xyxy_to_relative(box, hw)
        assert np.array_equal(labels.relative_to_xyxy(rel, hw), np.array(box, np.float32))


def test_written_detection_is_cropped_and_pastes_back_exactly():
    rng = np.random.default_rng(0)
    for _ in range(20):
        m = rng.random((H, W)) > 0.7
        m[:, :5] = False  # not touching every edge
        r = ObjectResult(mask=m, box=None, score=0.8, iou=1.3, lost=False, label="car", is_prompt=True)
        det = labels.object_detection(4, r, (H, W))
        x0, y0, x1, y1 = labels.relative_to_xyxy(det.bounding_box, (H, W)).astype(int)
        assert det.mask.shape == (y1 - y0, x1 - x0)  # cropped to its box (FiftyOne convention)
        assert np.array_equal(paste_mask(det, (H, W)), m)
        assert det.index == 4 and det.label == "car" and det.confidence == 1.0  # iou clipped to [0, 1]
        assert det["score"] == pytest.approx(0.8) and det["iou"] == pytest.approx(1.3)
        assert det["lost"] is False and det["is_prompt"] is True


def test_lost_object_is_written_without_mask():
    r = ObjectResult(mask=np.zeros((H, W), bool), box=None, score=0.1, iou=0.2, lost=True, label="car")
    det = labels.object_detection(2, r, (H, W))
    assert det["lost"] is True and det.mask is None and det.bounding_box == [0, 0, 0, 0] and det.index == 2


def test_prompt_plan_first_appearance_and_index_rules():
    plan = store.prompt_plan("s", {1: [1, 2], 3: [2, 5], 4: [5]}, "gt")
    assert plan == {1: (1, None), 2: (1, None), 5: (3, None)}
    # no index anywhere: the first annotated frame's detections become objects 1..n
    assert store.prompt_plan("s", {2: [None, None], 5: [None]}, "gt") == {1: (2, 0), 2: (2, 1)}
    with pytest.raises(SampdInputError, match=r"sample s, frame 3: a detection of 'frames.gt' has no index"):
        store.prompt_plan("s", {1: [1], 3: [None, 2]}, "gt")
    with pytest.raises(SampdInputError, match=r"frame 2: index \[7\] repeated in 'frames.gt'"):
        store.prompt_plan("s", {2: [7, 7]}, "gt")
    with pytest.raises(SampdInputError, match=r"sample s: no prompts: 'frames.gt' has no detections"):
        store.prompt_plan("s", {}, "gt")


def test_read_prompts_with_and_without_masks(dataset):
    s = dataset.first()
    m1 = _mask(5, 15, 10, 30)
    s.frames[1]["gt"] = fo.Detections(detections=[fo.Detection.from_mask(m1, label="a", index=1)])
    # object 2 enters on frame 3 as a box without a mask
    s.frames[3]["gt"] = fo.Detections(detections=[
        fo.Detection.from_mask(_mask(6, 16, 11, 31), label="a", index=1),
        fo.Detection(label="b", bounding_box=labels.xyxy_to_relative([30, 10, 50, 30], (H, W)), index=2),
    ])
    s.save()
    prompts = store.read_prompts(dataset, s.id, "gt", (H, W))
    assert [(p.object_id, p.frame_number, p.label) for p in prompts] == [(1, 1, "a"), (2, 3, "b")]
    assert np.array_equal(prompts[0].mask, m1) and prompts[0].box is None
    assert prompts[1].mask is None and prompts[1].box.tolist() == [30, 10, 50, 30]


def test_prompt_without_mask_and_empty_box_is_refused(dataset):
    s = dataset.first()
    s.frames[2]["gt"] = fo.Detections(detections=[fo.Detection(label="x", bounding_box=[0.5, 0.5, 0, 0], index=3)])
    s.save()
    with pytest.raises(SampdInputError, match=r"frame 2, object 3: the prompt has no mask and an empty box"):
        store.read_prompts(dataset, s.id, "gt", (H, W))


def test_writer_writes_in_chunks_and_merges_on_repropagation(dataset):
    s = dataset.first()
    store.ensure_output_field(dataset, "out")
    hw = (H, W)

    def result(fn, ids, shift=0):
        objs = {i: ObjectResult(_mask(2 + i, 10 + i, 2 + shift, 12 + shift), None, 1.0, 0.9, False, f"o{i}")
                for i in ids}
        return FrameResult(fn, objs)

    w = store.FrameLabelWriter(dataset, "out", batch_frames=3)
    for fn in range(1, T + 1):
        w.add(s.id, fn, labels.frame_detections(result(fn, [1, 2]), hw))
    w.flush()
    assert (w.calls, w.frames_written) == (3, T)  # 3 + 3 + 1 frames, never one save() per frame
    assert dataset.count("frames.out.detections") == 2 * T
    # repropagation of object 2 on frames 5..7 keeps object 1's detections there
    w = store.FrameLabelWriter(dataset, "out", batch_frames=2, replace_ids=[2])
    for fn in range(5, T + 1):
        w.add(s.id, fn, labels.frame_detections(result(fn, [2], shift=20), hw))
    w.flush()
    s.reload()
    for fn in range(1, T + 1):
        dets = {d.index: d for d in s.frames[fn]["out"].detections}
        assert sorted(dets) == [1, 2]
        x = labels.relative_to_xyxy(dets[2].bounding_box, hw)[0]
        assert x == (22 if fn >= 5 else 2)
        assert labels.relative_to_xyxy(dets[1].bounding_box, hw)[0] == 2


def test_markers_counts_and_clearing(dataset):
    s = dataset.first()
    assert runs.read_markers(dataset, "out") == {s.id: None}
    assert store.labeled_frame_counts(dataset, "out") == {s.id: 0}
    store.ensure_output_field(dataset, "out")
    dataset.set_values("frames.out", {s.id: {2: fo.Detections(), 4: fo.Detections()}}, key_field="id")
    runs.write_marker(dataset, "out", s.id, runs.new_marker("k", {"a": 1}, "cpu"))
    assert store.labeled_frame_counts(dataset, "out") == {s.id: 2}
    marker = runs.read_markers(dataset, "out")[s.id]
    assert marker["run"] == "k" and marker["done"] is False and marker["device"] == "cpu"
    runs.clear_outputs(dataset, [s.id], "out")
    assert store.labeled_frame_counts(dataset, "out") == {s.id: 0}
    assert runs.read_markers(dataset, "out") == {s.id: None}
    assert dataset.count("frames.gt") == T  # other fields untouched


def test_output_field_checks(dataset):
    with pytest.raises(SampdInputError, match="is the prompt field"):
        store.check_output_field(dataset, "frames.gt", "gt")
    with pytest.raises(SampdInputError, match="not a valid output field name"):
        store.check_output_field(dataset, "a.b")
    dataset.add_frame_field("num", fo.IntField)
    with pytest.raises(SampdInputError, match="not a Detections field"):
        store.check_output_field(dataset, "num")
    with pytest.raises(SampdInputError, match="'frames.nope' does not exist"):
        store.check_label_field(dataset, "nope")
