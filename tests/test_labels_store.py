"""The FiftyOne boundary: pixel <-> relative conversion, mask crop/paste round trips, prompts read from Detections
(with and without masks, index rules), bulk writes in chunks, merge on repropagation, resume markers; on a video
sample and on an image sequence in FiftyOne's DAVIS zoo layout (the same calls through the layout)."""

import uuid

import numpy as np
import pytest

fo = pytest.importorskip("fiftyone")

from sampd_plugin.core import quality  # noqa: E402
from sampd_plugin.core.prompts import mask_to_box  # noqa: E402
from sampd_plugin.core.tracker import FrameResult, ObjectResult  # noqa: E402
from sampd_plugin.errors import SampdInputError  # noqa: E402
from sampd_plugin.fo import labels, runs, store  # noqa: E402
from sampd_plugin.fo.labels import paste_mask  # noqa: E402
from sampd_plugin.fo.sources import layout_of  # noqa: E402

H, W, T = 40, 60, 7


def _mask(y0, y1, x0, x1):
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


@pytest.fixture(params=["video", "images"])
def dataset(request):
    """One metadata-only sequence of 7 frames (no media needed by labels / store) with empty prompts: a video sample,
    or 7 image samples in the DAVIS zoo layout (``sequence_id``, string ``frame_number`` from "00000"), added in
    shuffled order so that the order field, not insertion, orders them."""
    ds = fo.Dataset(f"sampd-test-{uuid.uuid4().hex[:12]}")
    if request.param == "video":
        s = fo.Sample(filepath="/nonexistent/video.mp4",
                      metadata=fo.VideoMetadata(frame_width=W, frame_height=H, total_frame_count=T))
        for f in range(1, T + 1):
            s.frames[f]["gt"] = fo.Detections(detections=[])
        ds.add_sample(s)
    else:
        order = [3, 0, 6, 1, 5, 2, 4]
        ds.add_samples([fo.Sample(filepath=f"/nonexistent/seq/{i:05d}.jpg", sequence_id="seq", frame_number=f"{i:05d}",
                                  metadata=fo.ImageMetadata(width=W, height=H), gt=fo.Detections(detections=[]))
                        for i in order])
    yield ds
    fo.delete_dataset(ds.name)


def _set_gt(layout, fn, detections):
    """Sets the prompt field of frame ``fn`` of the one sequence."""
    seq = layout.sequences()[0]
    if layout.is_video:
        layout.dataset.set_values("frames.gt", {seq.head_id: {fn: fo.Detections(detections=detections)}},
                                  key_field="id")
    else:
        layout.dataset.set_values("gt", {seq.sample_ids[fn - 1]: fo.Detections(detections=detections)}, key_field="id")


def _out(layout, fn):
    return layout.read_labels(layout.sequences()[0], "out", [fn])[fn]


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
        # the same box and crop as fo.Detection.from_mask, which it replaces for speed
        ref = fo.Detection.from_mask(m)
        assert det.bounding_box == ref.bounding_box and np.array_equal(det.mask, ref.mask)
        assert det.mask.dtype == bool and not np.shares_memory(det.mask, m)


def test_writer_documents_are_what_fiftyone_writes():
    """The label writer stores detections_document(frame_labels(r)) instead of building fo.Detection s (issue 22):
    the same document as fo.Detections.to_dict() of frame_detections(r), ids aside (masks, tags of doubtful objects,
    lost objects without a mask, a missing label)."""
    rng = np.random.default_rng(1)
    m = np.zeros((H, W), bool)
    m[5:20, 7:30] = rng.random((15, 23)) > 0.3
    r = FrameResult(3, {1: ObjectResult(m, None, 0.8, 0.9, False, "car", True),
                        2: ObjectResult(np.zeros((H, W), bool), None, 0.1, 0.2, True, None),
                        5: ObjectResult(m, mask_to_box(m), 0.05, 0.9, False, "x")})

    def without_ids(doc):
        return {**{k: v for k, v in doc.items() if k != "_id"},
                "detections": [{k: v for k, v in d.items() if k != "_id"} for d in doc["detections"]]}

    ours = labels.detections_document(labels.frame_labels(r, (H, W)))
    assert without_ids(ours) == without_ids(labels.frame_detections(r, (H, W)).to_dict())
    assert len({d["_id"] for d in ours["detections"]}) == 3
    assert fo.Detections.from_dict(ours).detections[2].tags == [quality.DOUBTFUL_TAG]


def test_lost_object_is_written_without_mask():
    r = ObjectResult(mask=np.zeros((H, W), bool), box=None, score=0.1, iou=0.2, lost=True, label="car")
    det = labels.object_detection(2, r, (H, W))
    assert det["lost"] is True and det.mask is None and det.bounding_box == [0, 0, 0, 0] and det.index == 2
    # an empty mask not flagged lost is written as lost too
    empty = ObjectResult(mask=np.zeros((H, W), bool), box=None, score=0.1, iou=0.2, lost=False, label="car")
    assert labels.object_detection(2, empty, (H, W))["lost"] is True


def test_prompt_plan_first_appearance_and_index_rules():
    plan = store.prompt_plan({1: [1, 2], 3: [2, 5], 4: [5]}, "frames.gt", "sample s")
    assert plan == {1: (1, None), 2: (1, None), 5: (3, None)}
    # index 0 is a valid object id (FiftyOne's DAVIS zoo numbers objects from 0)
    assert store.prompt_plan({1: [0, 1], 2: [1, 0]}, "gt", "sequence 'x'") == {0: (1, None), 1: (1, None)}
    # no index anywhere: the first annotated frame's detections become objects 1..n
    assert store.prompt_plan({2: [None, None], 5: [None]}, "gt", "s") == {1: (2, 0), 2: (2, 1)}
    with pytest.raises(SampdInputError, match=r"sample s, frame 3: a detection of 'frames.gt' has no index"):
        store.prompt_plan({1: [1], 3: [None, 2]}, "frames.gt", "sample s")
    with pytest.raises(SampdInputError, match=r"frame 2: index \[7\] repeated in 'frames.gt'"):
        store.prompt_plan({2: [7, 7]}, "frames.gt", "sample s")
    with pytest.raises(SampdInputError, match=r"sample s: no prompts: 'frames.gt' has no detections"):
        store.prompt_plan({}, "frames.gt", "sample s")


def test_layout_orders_image_frames_numerically_and_names_fields(dataset):
    layout = layout_of(dataset)
    (seq,) = layout.sequences()
    assert seq.num_frames == T and layout.frame_size(seq) == (H, W)
    if layout.is_video:
        assert layout.path("gt") == "frames.gt" and seq.name.startswith("sample ")
    else:
        assert layout.path("gt") == "gt" and seq.name == "sequence 'seq' (7 images)"
        assert [dataset[i].frame_number for i in seq.sample_ids] == [f"{i:05d}" for i in range(T)]
        assert seq.head_id == dataset.match(fo.ViewField("frame_number") == "00000").first().id


def test_read_prompts_with_and_without_masks(dataset):
    layout = layout_of(dataset)
    m1 = _mask(5, 15, 10, 30)
    _set_gt(layout, 1, [fo.Detection.from_mask(m1, label="a", index=0)])
    # object 2 enters on frame 3 as a box without a mask
    _set_gt(layout, 3, [fo.Detection.from_mask(_mask(6, 16, 11, 31), label="a", index=0),
                        fo.Detection(label="b", bounding_box=labels.xyxy_to_relative([30, 10, 50, 30], (H, W)),
                                     index=2)])
    prompts = store.read_prompts(layout, layout.sequences()[0], "gt", (H, W))
    assert [(p.object_id, p.frame_number, p.label) for p in prompts] == [(0, 1, "a"), (2, 3, "b")]
    assert np.array_equal(prompts[0].mask, m1) and prompts[0].box is None
    assert prompts[1].mask is None and prompts[1].box.tolist() == [30, 10, 50, 30]


@pytest.mark.parametrize("box, mask, message", [
    ([0.5, 0.5, 0, 0], None, r"frame 2, object 3: the prompt has no mask and its box .* is empty or outside"),
    ([1.2, 0.1, 0.3, 0.3], None, r"frame 2, object 3: the prompt has no mask and its box .* is empty or outside"),
    ([float("nan"), 0.1, 0.3, 0.3], np.ones((4, 4), bool), r"frame 2, object 3: .* is not four finite numbers"),
    ([0.1, 0.1, 0.3, 0.3], np.zeros((4, 4), bool), r"the prompt has an empty mask and its box"),
])
def test_bad_prompt_geometry_is_refused_naming_frame_and_object(dataset, box, mask, message):
    layout = layout_of(dataset)
    det = fo.Detection(label="x", bounding_box=box, index=3)
    if mask is not None:
        det.mask = mask
    if message.startswith("the prompt has an empty"):
        det.bounding_box = [0.5, 0.5, 0.0, 0.0]
    _set_gt(layout, 2, [det])
    with pytest.raises(SampdInputError, match=message):
        store.read_prompts(layout, layout.sequences()[0], "gt", (H, W))


def test_writer_writes_in_chunks_and_merges_on_repropagation(dataset):
    layout = layout_of(dataset)
    seq = layout.sequences()[0]
    store.ensure_output_field(layout, "out")
    hw = (H, W)

    def result(fn, ids, shift=0):
        objs = {i: ObjectResult(_mask(2 + i, 10 + i, 2 + shift, 12 + shift), None, 1.0, 0.9, False, f"o{i}")
                for i in ids}
        return FrameResult(fn, objs)

    w = store.FrameLabelWriter(layout, "out", batch_frames=3)
    for fn in range(1, T + 1):
        w.add(seq, fn, labels.frame_labels(result(fn, [1, 2]), hw))
    w.flush()
    assert (w.calls, w.frames_written) == (3, T)  # 3 + 3 + 1 frames, never one save() per frame
    assert dataset.count(layout.path("out") + ".detections") == 2 * T
    # repropagation of object 2 on frames 5..7 keeps object 1's detections there
    w = store.FrameLabelWriter(layout, "out", batch_frames=2, replace_ids=[2])
    for fn in range(5, T + 1):
        w.add(seq, fn, labels.frame_labels(result(fn, [2], shift=20), hw))
    w.flush()
    for fn in range(1, T + 1):
        dets = {d.index: d for d in _out(layout, fn).detections}
        assert sorted(dets) == [1, 2]
        x = labels.relative_to_xyxy(dets[2].bounding_box, hw)[0]
        assert x == (22 if fn >= 5 else 2)
        assert labels.relative_to_xyxy(dets[1].bounding_box, hw)[0] == 2


def test_markers_counts_and_clearing(dataset):
    layout = layout_of(dataset)
    seq = layout.sequences()[0]
    assert runs.read_markers(layout, "out") == {seq.key: None}
    assert layout.labeled_counts("out") == {seq.key: 0}
    store.ensure_output_field(layout, "out")
    layout.write_labels("out", {seq.key: (seq, {2: fo.Detections(), 4: fo.Detections()})})
    runs.write_marker(layout, "out", seq, runs.new_marker("k", {"a": 1}, "cpu"))
    assert layout.labeled_counts("out") == {seq.key: 2}
    marker = runs.read_markers(layout, "out")[seq.key]
    assert marker["run"] == "k" and marker["done"] is False and marker["device"] == "cpu"
    assert dataset[seq.head_id][labels.marker_field("out")]["run"] == "k"  # on the head sample only
    assert dataset.count(labels.marker_field("out")) == 1
    runs.clear_outputs(layout, [seq], "out")
    assert layout.labeled_counts("out") == {seq.key: 0}
    assert runs.read_markers(layout, "out") == {seq.key: None}
    assert dataset.count(layout.path("gt")) == T  # other fields untouched


def test_output_field_checks(dataset):
    layout = layout_of(dataset)
    with pytest.raises(SampdInputError, match="is the prompt field"):
        store.check_output_field(layout, "frames.gt", "gt")
    with pytest.raises(SampdInputError, match="not a valid output field name"):
        store.check_output_field(layout, "a.b")
    layout.add_field("num", fo.IntField)
    with pytest.raises(SampdInputError, match="not a Detections field"):
        store.check_output_field(layout, "num")
    with pytest.raises(SampdInputError, match=f"'{layout.path('nope')}' does not exist"):
        store.check_label_field(layout, "nope")
    if not layout.is_video:
        with pytest.raises(SampdInputError, match="is the sequence / order field"):
            store.check_output_field(layout, "sequence_id")


def test_background_writer_writes_the_same_off_the_calling_thread(dataset):
    layout = layout_of(dataset)
    seq = layout.sequences()[0]
    store.ensure_output_field(layout, "out")
    inner = store.FrameLabelWriter(layout, "out", batch_frames=3)
    w = store.BackgroundWriter(inner)
    threads = []
    add = inner.add
    inner.add = lambda *a: threads.append(__import__("threading").get_ident()) or add(*a)
    for fn in range(1, T + 1):
        m = _mask(2, 10, fn, fn + 8)
        w.add(seq, fn, labels.frame_labels(FrameResult(fn, {1: ObjectResult(m, None, 1.0, 0.9, False, "o")}),
                                                (H, W)))
    w.flush()
    assert (w.calls, w.frames_written) == (3, T) and w._thread is None  # no thread left after flush
    assert len(threads) == T and __import__("threading").get_ident() not in threads
    for fn in range(1, T + 1):
        (det,) = _out(layout, fn).detections
        assert labels.relative_to_xyxy(det.bounding_box, (H, W))[0] == fn
