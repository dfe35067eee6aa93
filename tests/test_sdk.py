"""The SDK on generated videos: fields written vs ground truth (synthetic segmenter), the tiny real-architecture SAM
code path, resume / overwrite rules, refusals that write nothing, VIS mode, correct-and-repropagate."""

import time

import numpy as np
import pytest

fo = pytest.importorskip("fiftyone")

import sampd_plugin as sp  # noqa: E402
from sampd_plugin.backends import registry  # noqa: E402
from sampd_plugin.core.metrics import region_similarity  # noqa: E402
from sampd_plugin.errors import SampdInputError  # noqa: E402
from sampd_plugin.fo import labels, runs  # noqa: E402
from sampd_plugin.fo.labels import paste_mask  # noqa: E402
from sampd_plugin.fo.sources import layout_of  # noqa: E402
from sampd_plugin.synthetic import dataset_scene  # noqa: E402


def _is_lost(det):
    return bool(det.has_field("lost") and det["lost"])


def frame_j(sample, field, hw):
    """``{frame: {object: J}}`` of ``field`` against the scene's exact visible masks."""
    scene = dataset_scene(sample)
    sample.reload()
    out = {}
    for fn in range(1, scene.num_frames + 1):
        gt = scene.visible_masks(fn)
        label = sample.frames[fn][field]
        dets = {d.index: d for d in (label.detections if label is not None else [])}
        out[fn] = {}
        for oid in scene.object_ids:
            pred = paste_mask(dets[oid], hw) if oid in dets and not _is_lost(dets[oid]) else np.zeros(hw, bool)
            out[fn][oid] = float(region_similarity(pred, gt.get(oid, np.zeros(hw, bool))))
    return out


def gt_snapshot(ds):
    """The ground-truth labels (id, index, label, box, mask) of every frame; evaluation attributes excluded."""
    out = []
    for frames in ds.values("frames.ground_truth"):
        for label in frames:
            out.append([(d.id, d.index, d.label, tuple(d.bounding_box), None if d.mask is None else d.mask.tobytes())
                        for d in (label.detections if label is not None else [])])
    return out


def check_written_fields(ds, field, min_mean_j=None):
    """Every started object on every frame, fields and attributes as documented, prompt frame == ground truth."""
    for sample in ds:
        hw = (sample.metadata.frame_height, sample.metadata.frame_width)
        gt1 = {d.index: d for d in sample.frames[1].ground_truth.detections}
        for fn, frame in sample.frames.items():
            label = frame[field]
            assert isinstance(label, fo.Detections), (sample.id, fn)
            dets = {d.index: d for d in label.detections}
            assert sorted(dets) == sorted(gt1), (fn, sorted(dets))
            for oid, d in dets.items():
                assert d.label == gt1[oid].label
                assert 0.0 <= d.confidence <= 1.0
                for attr in ("score", "iou", "lost", "is_prompt"):
                    assert d.has_field(attr), attr
                assert d["is_prompt"] == (fn == 1)
                if d["lost"]:
                    assert d.mask is None
                    continue
                x0, y0, x1, y1 = labels.relative_to_xyxy(d.bounding_box, hw).astype(int)
                assert 0 <= x0 < x1 <= hw[1] and 0 <= y0 < y1 <= hw[0]
                assert d.mask.shape == (y1 - y0, x1 - x0)  # cropped to its box
                m = d.mask
                assert m.any(axis=0)[[0, -1]].all() and m.any(axis=1)[[0, -1]].all()  # tight box
            for oid, g in gt1.items():  # the prompt frame is the given ground-truth mask
                if fn == 1:
                    assert np.array_equal(paste_mask(dets[oid], hw), paste_mask(g, hw))
        marker = sample[labels.marker_field(field)]
        assert marker["done"] is True and marker["frames"] == len(sample.frames)
        if min_mean_j is not None:
            js = [j for f in frame_j(sample, field, hw).values() for j in f.values()]
            assert np.mean(js) >= min_mean_j, np.mean(js)


def test_track_synthetic_writes_labels_matching_ground_truth(make_synthetic):
    ds = make_synthetic(num_videos=2, num_frames=6, num_objects=2)
    before = gt_snapshot(ds)
    summary = sp.track(ds, prompt_field="ground_truth", label_field="sampd", model="synthetic", progress=False)
    assert summary["frames"] == 12 and summary["objects"] == 4 and len(summary["tracked"]) == 2
    assert summary["device"] == "cpu"
    check_written_fields(ds, "sampd", min_mean_j=0.8)
    assert gt_snapshot(ds) == before  # the prompt / ground-truth field is never written
    schema = ds.get_frame_field_schema(flat=True)
    for attr in ("score", "iou", "lost", "is_prompt"):
        assert f"sampd.detections.{attr}" in schema
    results = sp.evaluate_jf(ds, "sampd", gt_field="ground_truth", eval_key="jf")
    assert results.summary["J&F-Mean"] > 0.8


def test_tiny_sam_code_path(make_synthetic):
    ds = make_synthetic(num_videos=1, num_frames=3, num_objects=2)
    summary = sp.track(ds, model="tiny", config="box", device="cpu", label_field="tiny", progress=False)
    assert summary["frames"] == 3 and summary["model"] == "tiny"
    check_written_fields(ds, "tiny")  # random weights: shapes and fields only


def test_rerun_skips_finished_samples_and_resumes_an_interrupted_job(make_synthetic):
    ds = make_synthetic(num_videos=2, num_frames=4, num_objects=1)
    s1, s2 = ds.values("id")

    def interrupt(pb):
        if pb.label.startswith("sequence 2/2"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sp.track(ds, model="synthetic", progress=interrupt)
    markers = runs.read_markers(layout_of(ds), "sampd")
    assert markers[s1]["done"] is True and markers[s2]["done"] is False
    stamp = ds.select(s1).values("frames.last_modified_at")
    summary = sp.track(ds, model="synthetic", progress=False)
    assert summary["tracked"] == [s2] and summary["skipped"] == [s1]
    assert ds.select(s1).values("frames.last_modified_at") == stamp  # the finished sample was not rewritten
    check_written_fields(ds, "sampd")
    again = sp.track(ds, model="synthetic", progress=False)
    assert again["tracked"] == [] and sorted(again["skipped"]) == sorted([s1, s2])


def test_existing_output_needs_overwrite_and_gt_is_never_written(make_synthetic):
    ds = make_synthetic(num_videos=1, num_frames=3, num_objects=1)
    sp.track(ds, model="synthetic", progress=False)
    labels = [str(v) for v in ds.values("frames.sampd")]
    with pytest.raises(SampdInputError, match=r"already holds labels on 1 sequence\(s\) .*overwrite=True"):
        sp.track(ds, model="synthetic", config="box", progress=False)  # another run's labels
    assert [str(v) for v in ds.values("frames.sampd")] == labels
    with pytest.raises(SampdInputError, match="is the prompt field"):
        sp.track(ds, model="synthetic", label_field="ground_truth", overwrite=True)
    summary = sp.track(ds, model="synthetic", config="box", overwrite=True, job_id="job-1", progress=False)
    assert len(summary["tracked"]) == 1
    assert ds.first()["sampd_track"]["settings"]["config"]["refine"] is False
    # a re-queued part of the same overwriting job skips what the job finished; a new overwriting job re-tracks
    again = sp.track(ds, model="synthetic", config="box", overwrite=True, job_id="job-1", progress=False)
    assert again["tracked"] == [] and again["skipped"] == summary["tracked"]
    fresh = sp.track(ds, model="synthetic", config="box", overwrite=True, progress=False)
    assert fresh["tracked"] == summary["tracked"]


def test_invalid_input_is_refused_naming_sample_frame_field_and_writes_nothing(make_synthetic):
    ds = make_synthetic(num_videos=2, num_frames=3, num_objects=2)
    s1, s2 = ds.values("id")
    with pytest.raises(SampdInputError, match="'frames.nope' does not exist"):
        sp.track(ds, prompt_field="nope", model="synthetic")
    # sample 2 without prompts, sample 1 with a detection missing its index on frame 2
    ds.select(s2).clear_frame_field("ground_truth")
    sample = ds[s1]
    index = sample.frames[2].ground_truth.detections[0].index
    sample.frames[2].ground_truth.detections[0].index = None
    sample.save()
    with pytest.raises(SampdInputError) as err:
        sp.track(ds, model="synthetic", label_field="out")
    msg = str(err.value)
    assert f"sample {s2}" in msg and "no prompts: 'frames.ground_truth' has no detections" in msg
    assert f"sample {s1}" in msg and "frame 2" in msg and "has no index" in msg
    assert not ds.has_frame_field("out") and not ds.has_sample_field("out_track")
    with pytest.raises(SampdInputError, match="unknown model|choose one of"):
        sp.track(ds.select(s1), model="vit_x", label_field="out")
    sample = ds[s1]
    sample.frames[2].ground_truth.detections[0].index = index  # valid prompts again (they are checked first) ...
    sample["synthetic"] = None  # ... but not a generated video: the synthetic segmenter cannot segment it
    sample.save()
    with pytest.raises(SampdInputError, match=f"sample {s1} .*model 'synthetic' only segments sequences made by"):
        sp.track(ds.select(s1), model="synthetic", label_field="out")
    assert not ds.has_frame_field("out")
    images = fo.Dataset()
    try:
        images.add_sample(fo.Sample(filepath="/nonexistent/image.png"))
        with pytest.raises(SampdInputError, match="has no sequence field 'sequence_id' .*pass sequence_field="):
            sp.track(images, model="synthetic")
        assert not images.has_sample_field("sampd")
    finally:
        images.delete()


def test_auto_track_vis_mode(make_synthetic):
    ds = make_synthetic(num_videos=1, num_frames=3, num_objects=2)
    summary = sp.auto_track(ds, label_field="auto", max_objects=2, model="synthetic", progress=False)
    assert summary["objects"] == 2 and summary["frames"] == 3 and summary["mode"] == "auto"
    assert summary["method"] == "adaptive"  # automatic mode's default (issue 22)
    sample = ds.first()
    for fn, frame in sample.frames.items():
        assert [d.index for d in frame.auto.detections] == [1, 2]
        assert {d.label for d in frame.auto.detections} == {"object"}
    assert sample.auto_track["settings"]["max_objects"] == 2


def test_repropagate_changes_only_the_chosen_side_and_improves_j(make_synthetic):
    """A weak run (the paper's point-prompt row) drifts; a planted correction on frame k (the ground truth there)
    re-propagated with the full method replaces only the frames on the chosen side and raises J there."""
    ds = make_synthetic(num_videos=1, num_frames=12, num_objects=2, height=120, width=160, seed=3)
    sp.track(ds, model="synthetic", config="point", label_field="pt", progress=False)
    ds.clone_frame_field("pt", "pt_back")
    ds.clone_sample_field("pt_track", "pt_back_track")
    sample = ds.first()
    hw = (sample.metadata.frame_height, sample.metadata.frame_width)
    k = 6
    gt_k = sample.frames[k].ground_truth
    for field in ("pt", "pt_back"):  # the person's correction on frame k (over detections the tracker flagged)
        corrected = [d.copy() for d in gt_k.detections]
        for d in corrected:
            d.confusion, d.occluded = "switch", True
        sample.frames[k][field] = fo.Detections(detections=corrected)
    sample.save()
    before = {f: frame_j(sample, f, hw) for f in ("pt", "pt_back")}
    labels = {f: [str(v) for v in ds.values(f"frames.{f}")[0]] for f in ("pt", "pt_back")}

    fwd = sp.repropagate(sample, "pt", from_frame=k, direction="forward", config="full", progress=False)
    bwd = sp.repropagate(sample, "pt_back", from_frame=k, direction="backward", config="full", progress=False)
    assert fwd["frames"] == {"forward": 12 - k} and bwd["frames"] == {"backward": k - 1}
    after = {f: frame_j(sample, f, hw) for f in ("pt", "pt_back")}
    new = {f: [str(v) for v in ds.values(f"frames.{f}")[0]] for f in ("pt", "pt_back")}

    assert new["pt"][:k - 1] == labels["pt"][:k - 1]  # frames 1..k-1 untouched
    assert all(a != b for a, b in zip(new["pt"][k:], labels["pt"][k:]))
    assert new["pt_back"][k:] == labels["pt_back"][k:]  # frames k+1..end untouched
    sample.reload()
    for field in ("pt", "pt_back"):  # frame k keeps the correction, marked as the prompts it now is
        dets = sample.frames[k][field].detections
        assert [d.index for d in dets] == [d.index for d in gt_k.detections]
        for det, corrected in zip(dets, gt_k.detections):
            assert det.bounding_box == corrected.bounding_box and np.array_equal(det.mask, corrected.mask)
            assert det.is_prompt and not det.lost and det.confidence is None and det.score is None and det.iou is None
            assert det.confusion is None and det.occluded is False
        # one FiftyOne instance per object on every frame (one track each in the App's timeline)
        instances = {}
        for frame in sample.frames.values():
            for d in frame[field].detections:
                instances.setdefault(d.index, set()).add(d.instance_id)
        assert all(len(ids) == 1 and None not in ids for ids in instances.values()), instances
    assert fwd["misfits"] == {} and bwd["misfits"] == {}
    mean = lambda js, frames: np.mean([j for fn in frames for j in js[fn].values()])  # noqa: E731
    after_k, before_k = range(k + 1, 13), range(1, k)
    assert mean(after["pt"], after_k) > mean(before["pt"], after_k) + 0.1
    assert mean(after["pt_back"], before_k) > mean(before["pt_back"], before_k) + 0.1
    assert sample["pt_track"]["edits"][-1]["from_frame"] == k
    gt_labels = gt_snapshot(ds)
    with pytest.raises(SampdInputError, match="not written by SAM-PD"):
        sp.repropagate(sample, "ground_truth", from_frame=k)
    with pytest.raises(SampdInputError, match="frame 13 is outside the sequence"):
        sp.repropagate(sample, "pt", from_frame=13)
    assert gt_snapshot(ds) == gt_labels


def test_device_auto_picks_cuda_when_available(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert registry.resolve_device(None) == "cuda" and registry.resolve_device("auto") == "cuda"
    assert registry.BackendCache("tiny").device == "cuda"  # what a worker on a GPU machine builds on
    assert registry.resolve_device("cuda:1") == "cuda:1"
    with pytest.raises(ValueError, match=r"'cuda:2' does not exist: this machine has 2 CUDA GPU"):
        registry.resolve_device("cuda:2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert registry.resolve_device(None) == "cpu"


def test_device_that_does_not_exist_is_a_clear_error(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="'cuda' was requested but this machine has no usable CUDA GPU"):
        registry.resolve_device("cuda")
    with pytest.raises(ValueError, match="unknown device 'banana'"):
        registry.resolve_device("banana")
    assert registry.resolve_device("cpu") == "cpu"


BULK_GAP = 2.5  # seconds between two edits, more than sampd_plugin.fo.runs.BULK_WRITE_SECONDS


def test_correction_loop_numbers_new_objects_keeps_instances_flags_misfit_boxes(make_synthetic):
    """What an annotator does in the App's Annotate tab, done from Python: an object drawn without ``index`` is
    numbered and tracked as one track, a box moved without its mask is reported."""
    ds = make_synthetic(num_videos=1, num_frames=6, num_objects=2, height=96, width=128, seed=1)
    sp.track(ds, model="synthetic", progress=False)
    assert "frames.sampd" not in ds.label_schemas  # the App's operators give it (FiftyOne 1.22 cannot delete a frame
    sample = ds.first()  # field with a label schema: a field written from Python stays deletable)
    k = 3
    drawn = sample.frames[k].ground_truth.detections[1].copy()  # object 2, drawn again as a new object
    drawn.index = None
    sample.frames[k].sampd.detections = [sample.frames[k].sampd.detections[0], drawn]
    late = sample.frames[6].sampd.detections[0]
    late.bounding_box = [late.bounding_box[0], late.bounding_box[1], late.bounding_box[2] * 1.5, late.bounding_box[3]]
    sample.save()
    r = sp.repropagate(sample, "sampd", from_frame=k, object_ids=None, progress=False)
    sample.reload()
    assert r["objects"] == [1, 3] and [d.index for d in sample.frames[k].sampd.detections] == [1, 3]
    assert all(3 in [d.index for d in sample.frames[fn].sampd.detections] for fn in range(k, 7))
    tracks = {}
    for fn, frame in sample.frames.items():
        for d in frame.sampd.detections:
            tracks.setdefault(d.index, set()).add(d.instance_id)
    assert all(len(ids) == 1 for ids in tracks.values()) and len({i for ids in tracks.values() for i in ids}) == 3
    assert r["misfits"] == {}  # object 1 was re-propagated: its moved box on frame 6 was replaced
    late = sample.frames[6].sampd.detections[0]
    late.bounding_box = [late.bounding_box[0], late.bounding_box[1], late.bounding_box[2] * 1.5, late.bounding_box[3]]
    sample.save()
    r = sp.repropagate(sample, "sampd", from_frame=k, object_ids=[3], progress=False)
    assert r["misfits"] == {6: [1]}
    # the frames a person corrected since SAM-PD's last write, latest first (the operator's default frame)
    assert runs.edited_frames(sample, "sampd") == []
    sp.evaluate_jf(ds, "sampd", eval_key="jf")  # writes every frame at once: not an edit
    assert runs.edited_frames(sample, "sampd") == []
    time.sleep(BULK_GAP)
    for fn in (2, 5):
        sample.frames[fn].sampd.detections[0].tags = ["checked"]
        sample.save()
    assert runs.edited_frames(sample, "sampd") == [5, 2]
