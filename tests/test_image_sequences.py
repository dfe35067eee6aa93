"""Image sequences everywhere a video works: FiftyOne's DAVIS zoo layout (one image sample per frame, ``sequence_id``,
string ``frame_number``, ``index`` from 0) tracked, re-propagated and evaluated through the SDK; the same frames as a
lossless video give identical masks and J&F; the model sees exactly the files' pixels; grouped views; clear errors
for missing / ambiguous sequence and order fields."""

import cv2
import numpy as np
import pytest

fo = pytest.importorskip("fiftyone")
from fiftyone import ViewField as F  # noqa: E402

import sampd_plugin as sp  # noqa: E402
from sampd_plugin.backends.synthetic import SyntheticSegmenter  # noqa: E402
from sampd_plugin.core.frames import ImageFiles, read_image  # noqa: E402
from sampd_plugin.errors import SampdInputError  # noqa: E402
from sampd_plugin.fo import runs, ui  # noqa: E402
from sampd_plugin.fo.labels import paste_mask  # noqa: E402
from sampd_plugin.fo.sources import layout_of  # noqa: E402


def _masks(layout, field):
    """``{(sequence key, frame, object index): mask bytes}`` of a field (lost objects included as empty)."""
    out = {}
    for seq in layout.sequences():
        hw = layout.frame_size(seq)
        for fn, label in layout.read_labels(seq, field).items():
            for d in (label.detections if label is not None else []):
                m = np.zeros(hw, bool) if d["lost"] else paste_mask(d, hw)
                out[(seq.key, fn, d.index)] = np.packbits(m).tobytes()
    return out


def _gt(ds):
    """Ground-truth labels (id, index, label, box, mask) of every image; evaluation attributes excluded."""
    return [[(d.id, d.index, d.label, tuple(d.bounding_box), None if d.mask is None else d.mask.tobytes())
             for d in label.detections] for label in ds.values("ground_truth")]


def test_generated_dataset_has_the_zoo_schema(make_synthetic_images):
    ds = make_synthetic_images(num_sequences=2, num_frames=3, num_objects=2)
    assert ds.media_type == "image" and len(ds) == 6
    s = ds.match(F("frame_number") == "00000").first()
    assert isinstance(s.frame_number, str) and s.sequence_id in s.tags
    assert s.filepath.endswith(f"{s.sequence_id}/00000.jpg")
    assert [d.index for d in s.ground_truth.detections] == [0, 1]
    assert [d.label for d in s.ground_truth.detections] == [s.sequence_id + "0", s.sequence_id + "1"]
    layout = layout_of(ds)  # auto-detected sequence_id + frame_number
    assert (layout.sequence_field, layout.order_field) == ("sequence_id", "frame_number")
    assert [len(q.sample_ids) for q in layout.sequences()] == [3, 3]


def test_model_sees_exactly_the_files_pixels(make_synthetic_images, monkeypatch):
    ds = make_synthetic_images(num_sequences=1, num_frames=3, num_objects=1)
    images, numbers = [], []
    prepare, encode = SyntheticSegmenter.prepare, SyntheticSegmenter.encode

    def recording_prepare(self, image):  # the pixels enter the model here (on the tracker's prefetch thread)
        images.append(np.array(image))
        return prepare(self, image)

    def recording_encode(self, image, frame_number=None):
        numbers.append(frame_number)
        return encode(self, image, frame_number)

    monkeypatch.setattr(SyntheticSegmenter, "prepare", recording_prepare)
    monkeypatch.setattr(SyntheticSegmenter, "encode", recording_encode)
    sp.track(ds, model="synthetic", progress=False)
    paths = ds.sort_by("frame_number").values("filepath")
    assert numbers == [1, 2, 3] and len(images) == 3
    seen = list(zip(numbers, images))
    for (fn, image), path in zip(seen, paths):
        direct = cv2.cvtColor(cv2.imread(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        assert image.dtype == np.uint8 and np.array_equal(image, direct), path
    # PNG: also equal to PIL's decode (lossless files hold the rendered pixels)
    from PIL import Image

    png = ds.first().filepath.replace(".jpg", ".png")
    cv2.imwrite(png, np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3))
    assert np.array_equal(read_image(png), np.asarray(Image.open(png).convert("RGB")))
    assert [fn for fn, _ in ImageFiles([png, png]).iter_frames_backward(2)] == [2, 1]


def test_track_repropagate_evaluate_on_the_zoo_layout(make_synthetic_images):
    ds = make_synthetic_images(num_sequences=2, num_frames=6, num_objects=2, seed=1)
    gt_before = _gt(ds)
    summary = sp.track(ds, model="synthetic", label_field="sampd", progress=False)
    assert summary["frames"] == 12 and summary["objects"] == 4
    assert sorted(summary["tracked"]) == sorted(ds.distinct("sequence_id"))
    layout = layout_of(ds)
    assert ds.count("sampd") == 12
    first = ds.match(F("frame_number") == "00000").first()
    assert [d.index for d in first.sampd.detections] == [0, 1]  # index 0 is an object like any other
    assert all(d["is_prompt"] for d in first.sampd.detections)
    markers = runs.read_markers(layout, "sampd")
    assert all(m["done"] and m["frames"] == 6 for m in markers.values())
    assert ds.count("sampd_track") == 2  # one marker per sequence, on its first image
    # resume: nothing left to do
    again = sp.track(ds, model="synthetic", label_field="sampd", progress=False)
    assert again["tracked"] == [] and len(again["skipped"]) == 2
    # evaluation: per-frame fields on the images, per-sequence summary on every image of the sequence
    results = sp.evaluate_jf(ds, "sampd", eval_key="jf")
    assert results.summary["num_objects"] == 4 and results.summary["num_sequences"] == 2
    assert results.summary["J&F-Mean"] > 0.8
    assert ds.count("jf_J") == 12 and ds.count("jf_JF") == 12 and len(ds.exists("jf_objects")) == 2
    assert {r["sequence"] for r in results.per_object()} == set(ds.distinct("sequence_id"))
    assert {r["index"] for r in results.per_object()} == {0, 1}
    for name in ui.view_names("jf"):
        view = ds.load_saved_view(name)
        assert view.media_type == "image"
    failures = ds.load_saved_view("jf_failures")
    assert all(v < 0.5 for v in failures.values("jf_min_J"))
    # repropagate from an image: its sequence, from its position
    seq = layout.sequences()[0]
    k_sample = ds[seq.sample_ids[2]]
    rep = sp.repropagate(k_sample, "sampd", direction="forward", progress=False)
    assert rep["from_frame"] == 3 and rep["frames"] == {"forward": 3} and rep["sequence"] == seq.key
    with pytest.raises(SampdInputError, match="frame 9 is outside the sequence"):
        sp.repropagate(ds.select(seq.sample_ids), "sampd", from_frame=9)
    assert _gt(ds) == gt_before  # ground truth untouched


def test_same_frames_as_lossless_video_give_identical_masks_and_jf(make_synthetic, make_synthetic_images):
    kw = dict(num_frames=4, num_objects=2, height=64, width=96, seed=5)
    video = make_synthetic(num_videos=1, lossless=True, **kw)
    images = make_synthetic_images(num_sequences=1, image_format="png", **kw)
    for model, config in (("synthetic", "full"), ("tiny", "box")):
        field = f"out_{model}"
        sp.track(video, model=model, config=config, label_field=field, device="cpu", progress=False)
        sp.track(images, model=model, config=config, label_field=field, device="cpu", progress=False)
        v = _masks(layout_of(video), field)
        i = _masks(layout_of(images), field)
        # the video numbers objects 1..n, the zoo layout 0..n-1
        assert {(fn, idx - 1): m for (_, fn, idx), m in v.items()} == {(fn, idx): m for (_, fn, idx), m in i.items()}
    jv = sp.evaluate_jf(video, "out_synthetic", eval_key=None).summary
    ji = sp.evaluate_jf(images, "out_synthetic", eval_key=None).summary
    assert jv == ji


def test_grouped_view_numeric_order_and_field_errors(make_synthetic_images):
    ds = make_synthetic_images(num_sequences=2, num_frames=11, num_objects=1, height=48, width=64)
    # unpadded integer-like strings order numerically ("10" after "9")
    for s in ds.iter_samples(autosave=True):
        s["frame_number"] = str(int(s.frame_number))
        s["seq"] = s.sequence_id
        s["pos"] = int(s.frame_number)
    layout = layout_of(ds)
    assert [ds[i].frame_number for i in layout.sequences()[0].sample_ids] == [str(i) for i in range(11)]
    grouped = ds.group_by("seq", order_by="pos")
    summary = sp.track(grouped, model="synthetic", label_field="g", progress=False)
    assert summary["frames"] == 22 and ds.count("g") == 22
    assert layout_of(grouped).sequence_field == "seq" and layout_of(grouped).order_field == "pos"
    with pytest.raises(SampdInputError, match="has no sequence field 'clip': .*needs the field whose value names"):
        sp.track(ds, model="synthetic", sequence_field="clip", label_field="x")
    with pytest.raises(SampdInputError, match="has no order field 'frame_number'"):
        ds.delete_sample_field("frame_number")
        sp.track(ds, model="synthetic", label_field="x")
    ds.set_values("pos", [0] * len(ds))
    with pytest.raises(SampdInputError, match=r"sequence '.*': several images have 'pos' = \[0\]: the order .* "
                                              "is ambiguous"):
        sp.track(ds, model="synthetic", sequence_field="seq", order_field="pos", label_field="x")
    assert not ds.has_sample_field("x") and not ds.has_sample_field("x_track")


def test_queue_track_one_operation_per_sequence(make_synthetic_images):
    ds = make_synthetic_images(num_sequences=3, num_frames=3, num_objects=1, height=48, width=64)
    queued = sp.queue_track(ds, model="synthetic", label_field="q", samples_per_operation=1)
    assert len(queued["operations"]) == 3 and queued["samples"] == 3
    ran = sp.run_worker(dataset_name=ds.name, idle_exit_seconds=0, poll_seconds=0.1, log=False)
    assert ran == 3 and ds.count("q") == 9
    assert all(m["done"] for m in runs.read_markers(layout_of(ds), "q").values())


# --- the five operators on image sequences (FiftyOne's operator machinery, immediate and delegated) ---------------
def test_operators_on_image_sequences_immediate_and_delegated(plugin, make_synthetic_images):
    import fiftyone.operators as foo
    from fiftyone.operators.executor import ExecutionRunState

    from tests.test_operators import form_errors, run_queue, uri

    ds = make_synthetic_images(num_sequences=2, num_frames=4, num_objects=2, height=64, width=96, seed=2)
    gt = _gt(ds)
    # the form detects the zoo layout and counts the sequences
    op = foo.get_operator(uri("track_objects"))
    from fiftyone.operators.executor import ExecutionContext

    ctx = ExecutionContext(request_params=dict(dataset_name=ds.name, params=dict(model="synthetic")))
    props = op.resolve_input(ctx).type.properties
    assert props["sequence_field"].default == "sequence_id" and props["order_field"].default == "frame_number"
    assert "2 image sequence(s) (8 images)" in props["sequences"].view.label
    assert form_errors("track_objects", ds, dict(model="synthetic", order_field="ground_truth")) != []
    # immediate, with evaluation against the (full) ground truth
    r = foo.execute_operator(uri("track_objects"), ctx=dict(dataset=ds, params=dict(model="synthetic"))).result
    assert r["frames"] == 8 and r["samples_tracked"] == 2 and r["eval_key"] == "sampd_jf" and r["jf"] > 0.8
    # delegated: one operation per sequence, run by a worker
    foo.execute_operator(uri("track_objects"), request_delegation=True,
                         ctx=dict(dataset=ds, params=dict(model="synthetic", preset="box", label_field="d")))
    ops = run_queue(ds)
    assert len(ops) == 3 and all(o.run_state == ExecutionRunState.COMPLETED for o in ops), [
        (o.run_state, o.result and o.result.error) for o in ops]
    assert ds.count("d") == 8
    # automatic mode, immediate and delegated
    r = foo.execute_operator(uri("auto_track_objects"),
                             ctx=dict(dataset=ds, params=dict(model="synthetic", max_objects=1))).result
    assert r["frames"] == 8 and r["objects"] == 2 and ds.count("sampd_auto.detections") == 8
    foo.execute_operator(uri("auto_track_objects"), request_delegation=True,
                         ctx=dict(dataset=ds, params=dict(model="synthetic", max_objects=1, label_field="a2")))
    assert all(o.run_state == ExecutionRunState.COMPLETED for o in run_queue(ds)) and ds.count("a2") == 8
    # re-propagate from the opened image (its sequence, from its position), immediate and delegated
    seq = layout_of(ds).sequences()[1]
    r = foo.execute_operator(uri("repropagate_from_frame"),
                             ctx=dict(dataset=ds, current_sample=seq.sample_ids[1],
                                      params=dict(label_field="d", direction="both"))).result
    assert r["from_frame"] == 2 and r["frames"] == {"forward": 2, "backward": 1}
    foo.execute_operator(uri("repropagate_from_frame"), request_delegation=True,
                         ctx=dict(dataset=ds, selected=[seq.sample_ids[2]],
                                  params=dict(label_field="d", direction="backward")))
    (o,) = [o for o in run_queue(ds) if o.operator.endswith("repropagate_from_frame")]
    assert o.run_state == ExecutionRunState.COMPLETED, o.result.error
    assert o.result.result["from_frame"] == 3 and o.result.result["frames"] == {"backward": 2}
    # evaluation (delegated) and browsing
    foo.execute_operator(uri("evaluate_tracking"), request_delegation=True,
                         ctx=dict(dataset=ds, params=dict(pred_field="d", gt_field="ground_truth", eval_key="e")))
    (o,) = [o for o in run_queue(ds) if o.operator.endswith("evaluate_tracking")]
    assert o.run_state == ExecutionRunState.COMPLETED, o.result.error
    assert o.result.result["num_sequences"] == 2
    res = foo.execute_operator(uri("browse_tracking_failures"),
                               ctx=dict(dataset=ds, params=dict(eval_key="e", view="worst")))
    assert res.result["view"] == "e_worst" and res.result["count"] == 8
    assert _gt(ds) == gt
