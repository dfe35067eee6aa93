"""The J&F FiftyOne evaluation run on small hand-made video datasets with known J values."""
import os
import re
import uuid

os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

fo = pytest.importorskip("fiftyone")

from sampd_plugin.fo.evaluation import JFResults, evaluate_jf  # noqa: E402
from sampd_plugin.fo.labels import paste_mask  # noqa: E402

H, W, T = 48, 64, 10  # r = ceil(0.008 * 80) = 1 px


def rect(y0, y1, x0, x1, hw=(H, W)):
    m = np.zeros(hw, bool)
    m[y0:y1, x0:x1] = True
    return m


def det(mask, index, **kw):
    return fo.Detection.from_mask(mask, label=kw.pop("label", f"obj{index}"), index=index, **kw)


def lost(index):
    return fo.Detection(label=f"obj{index}", bounding_box=[0.0, 0.0, 0.0, 0.0], index=index, lost=True)


def write_video(path):
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (W, H))
    for _ in range(T):
        vw.write(np.zeros((H, W, 3), np.uint8))
    vw.release()
    return str(path)


def video_sample(path):
    return fo.Sample(filepath=path, metadata=fo.VideoMetadata(frame_width=W, frame_height=H, total_frame_count=T))


O1, O2, O3 = rect(5, 15, 5, 15), rect(25, 35, 30, 40), rect(30, 40, 5, 15)
O2_SHIFTED = rect(25, 35, 35, 45)  # 5 px right: J = 50 / 150


def build(tmp_path):
    """seqA: obj 1 exact; obj 2 shifted from frame 6; obj 3 lost on frames 4-6 and absent on frame 7.
    seqB (YouTube-VOS style): obj 1 exact, obj 5 starts at frame 3 (exact), obj 9 is not in the GT."""
    ds = fo.Dataset(f"test-jf-{uuid.uuid4().hex[:10]}")
    a = video_sample(write_video(tmp_path / "seqA.mp4"))
    b = video_sample(write_video(tmp_path / "seqB.mp4"))
    for f in range(1, T + 1):
        a.frames[f]["ground_truth"] = fo.Detections(detections=[det(O1, 1), det(O2, 2), det(O3, 3)])
        pred = [det(O1, 1, confidence=0.9, lost=False), det(O2 if f <= 5 else O2_SHIFTED, 2)]
        if f in (4, 5, 6):
            pred.append(lost(3))
        elif f != 7:
            pred.append(det(O3, 3))
        a.frames[f]["pred"] = fo.Detections(detections=pred)
        a.frames[f]["other"] = fo.Detections(detections=[det(O1, 1), det(O2, 2), det(O3, 3)])
        gt_b = [det(O1, 1)] + ([det(O3, 5, label="cat")] if f >= 3 else [])
        pred_b = [det(O1, 1)] + ([det(O3, 5)] if f >= 3 else []) + ([det(O2, 9)] if f == 5 else [])
        b.frames[f]["ground_truth"] = fo.Detections(detections=gt_b)
        b.frames[f]["pred"] = fo.Detections(detections=pred_b)
    ds.add_samples([a, b])
    return ds


@pytest.fixture
def ds(tmp_path):
    dataset = build(tmp_path)
    yield dataset
    dataset.delete()


def flat_schema(dataset):
    return (set(dataset.get_field_schema(flat=True)), set(dataset.get_frame_field_schema(flat=True)))


def test_paste_mask_roundtrip():
    rng = np.random.default_rng(0)
    for _ in range(50):
        m = np.zeros((37, 53), np.uint8)
        cv2.ellipse(m, tuple(int(v) for v in rng.integers(0, 50, 2)), tuple(int(v) for v in rng.integers(1, 20, 2)),
                    float(rng.uniform(0, 180)), 0, 360, 1, -1)
        if m.any():
            assert np.array_equal(paste_mask(fo.Detection.from_mask(m.astype(bool)), m.shape), m.astype(bool))
    assert not paste_mask(fo.Detection(bounding_box=[0.1, 0.1, 0.2, 0.2]), (10, 10)).any()


def test_fields_values_and_run(ds):
    results = evaluate_jf(ds, "pred", "ground_truth", eval_key="jf")
    assert ds.list_evaluations() == ["jf"]
    info = ds.get_evaluation_info("jf")
    assert info.config.method == "sampd_jf" and info.config.pred_field == "pred"
    a, b = ds.first(), ds.last()

    # per detection (pred and GT): seqA frame 6, objects 1, 2 and the lost 3
    fr = a.frames[6]
    assert [d.jf_J for d in fr.pred.detections] == pytest.approx([1.0, 1 / 3, 0.0])
    assert [d.jf_J for d in fr.ground_truth.detections] == pytest.approx([1.0, 1 / 3, 0.0])
    # 11x11 boundary rings 5 px apart, r = 1: 7 px of each of the top and bottom rows + 2 corner px match
    assert fr.pred.detections[1].jf_F == pytest.approx(16 / 40)
    # per frame: means over objects, worst J, first failures (obj 3 at frame 4, obj 2 at frame 6)
    assert a.frames[6].jf_J == pytest.approx((1 + 1 / 3 + 0) / 3) and a.frames[6].jf_min_J == 0.0
    assert a.frames[1].jf_J == 1.0 and a.frames[1].jf_F == 1.0
    assert a.frames[4].jf_first_failures == [3] and a.frames[6].jf_first_failures == [2]
    assert a.frames[5].jf_first_failures is None

    # per object (scored frames 2..9): hand-computed DAVIS statistics
    rows = {(r["sequence"], r["index"]): r for r in results.per_object()}
    assert set(rows) == {("seqA", 1), ("seqA", 2), ("seqA", 3), ("seqB", 1), ("seqB", 5)}
    r2, r3 = rows["seqA", 2], rows["seqA", 3]
    assert (r2["J_mean"], r2["J_recall"], r2["J_decay"]) == pytest.approx((2 / 3, 0.5, 2 / 3))
    assert r2["F_mean"] == pytest.approx((4 + 4 * 0.4) / 8)
    assert (r3["J_mean"], r3["J_recall"], r3["J_decay"]) == pytest.approx((0.5, 0.5, 0.0))
    assert (r3["first_failure"], r3["lost_frames"], r2["first_failure"]) == (4, 4, 6)
    r5 = rows["seqB", 5]
    assert (r5["first_frame"], r5["num_frames"], r5["J_mean"]) == (3, 6, 1.0)  # frames 4..9

    # per sample
    j_a, f_a = (1 + 2 / 3 + 0.5) / 3, (1 + 0.7 + 0.5) / 3
    assert a.jf_J_mean == pytest.approx(j_a) and a.jf_F_mean == pytest.approx(f_a)
    assert a.jf_JF == pytest.approx((j_a + f_a) / 2)
    assert (a.jf_num_lost, a.jf_first_failure, b.jf_num_lost, b.jf_first_failure) == (1, 4, 0, None)
    assert b.jf_JF == 1.0 and len(a.jf_objects) == 3 and a.jf_objects[2].first_failure == 4
    # an object not in the GT is scored against an empty mask but not counted
    assert [d.jf_J for d in b.frames[5].pred.detections] == [1.0, 1.0, 0.0]

    # global: mean over the 5 objects
    s = results.summary
    assert s["J-Mean"] == pytest.approx((1 + 2 / 3 + 0.5 + 1 + 1) / 5)
    assert s["J&F-Mean"] == pytest.approx((s["J-Mean"] + s["F-Mean"]) / 2)
    assert (s["num_objects"], s["num_sequences"]) == (5, 2)

    # saved views: failure frames sorted by J, first failures, worst samples
    assert set(ds.list_saved_views()) == {"jf_failures", "jf_first_failures", "jf_worst"}
    fail = ds.load_saved_view("jf_failures")
    fns, min_j = fail.values("frame_number"), fail.values("jf_min_J")
    assert sorted(fns[:4]) == [4, 5, 6, 7] and sorted(fns[4:]) == [8, 9, 10]  # J = 0, then 1/3
    assert min_j == sorted(min_j) and min_j[0] == 0.0
    assert sorted(ds.load_saved_view("jf_first_failures").values("frame_number")) == [4, 6]
    assert ds.load_saved_view("jf_worst").values("filepath")[0].endswith("seqA.mp4")

    loaded = ds.load_evaluation_results("jf", cache=False)
    assert isinstance(loaded, JFResults) and loaded.summary == results.summary
    assert loaded.per_object() == results.per_object()


def test_rerun_rename_delete(ds):
    before = flat_schema(ds)
    with pytest.raises(ValueError, match="whole number"):
        evaluate_jf(ds, "pred", eval_key="jf", bound_th=2.5)
    assert ds.list_evaluations() == [] and flat_schema(ds) == before
    evaluate_jf(ds, "pred", eval_key="jf")
    with pytest.raises(ValueError, match="overwrite=True"):
        evaluate_jf(ds, "pred", eval_key="jf")
    evaluate_jf(ds, "other", eval_key="jf", overwrite=True)  # replaces the run (and its fields)
    assert ds.get_evaluation_info("jf").config.pred_field == "other"
    assert not ds.has_frame_field("pred.detections.jf_J")
    assert ds.first().frames[6].other.detections[1].jf_J == 1.0

    ds.rename_evaluation("jf", "jf2")
    assert ds.list_evaluations() == ["jf2"]
    assert ds.has_sample_field("jf2_JF") and not ds.has_sample_field("jf_JF")
    assert ds.has_frame_field("other.detections.jf2_J") and ds.has_frame_field("jf2_min_J")
    assert set(ds.list_saved_views()) == {"jf2_failures", "jf2_first_failures", "jf2_worst"}

    ds.delete_evaluation("jf2")
    assert ds.list_evaluations() == [] and ds.list_saved_views() == []
    assert flat_schema(ds) == before
    d = ds.first().frames[6].ground_truth.detections[0]
    assert not d.has_field("jf_J") and not d.has_field("jf2_J")


def test_two_trackers_and_any_fields(ds):
    evaluate_jf(ds, "pred", eval_key="mine")
    r = evaluate_jf(ds, "other", gt_field="pred", eval_key="vs_pred")  # any Detections vs any other
    assert ds.list_evaluations() == ["mine", "vs_pred"]
    assert ds.first().frames[6].other.detections[1].vs_pred_J == pytest.approx(1 / 3)
    assert ds.first().frames[6].pred.detections[1].mine_J == pytest.approx(1 / 3)
    assert r.summary["num_objects"] == 6  # seqA 1, 2, 3 and seqB 1, 5, 9 (no "other" there: all lost)
    ds.delete_evaluation("mine")
    assert ds.first().frames[6].pred.detections[1].vs_pred_J == pytest.approx(1 / 3)


def test_segmentation_ground_truth_with_void(tmp_path):
    ds = fo.Dataset(f"test-jf-seg-{uuid.uuid4().hex[:10]}")
    try:
        s = video_sample(write_video(tmp_path / "seg.mp4"))
        for f in range(1, 5):
            lm = np.zeros((H, W), np.uint8)
            lm[O1] = 1
            lm[O2] = 2
            lm[:, 50:] = 255  # void
            s.frames[f]["gt_seg"] = fo.Segmentation(mask=lm)
            big = O2 | rect(25, 35, 52, 60)  # object 2 plus a part inside the void: ignored
            s.frames[f]["pred"] = fo.Detections(detections=[det(rect(5, 15, 5, 10), 1), det(big, 2)])
        ds.add_sample(s)
        r = evaluate_jf(ds, "pred", gt_field="gt_seg", eval_key="seg")
        dets = ds.first().frames[2].pred.detections
        assert dets[0].seg_J == pytest.approx(0.5) and dets[1].seg_J == pytest.approx(1.0)
        assert dets[1].seg_F == 1.0
        assert {(o["index"], o["num_frames"]) for o in r.per_object()} == {(1, 2), (2, 2)}
        assert ds.first().seg_J_mean == pytest.approx(0.75)
        ds.delete_evaluation("seg")
        assert not ds.has_sample_field("seg_JF")

        # predictions as a full-frame label map too
        ds.clone_frame_field("gt_seg", "pred_seg")
        r = evaluate_jf(ds, "pred_seg", gt_field="gt_seg", eval_key="same")
        assert r.summary["J&F-Mean"] == 1.0
    finally:
        ds.delete()


def test_report_and_plots(ds, tmp_path, capsys):
    results = evaluate_jf(ds, "pred", eval_key="jf", seen_categories=["obj1"])
    results.print_report()
    out = capsys.readouterr().out
    for text in ("J&F-Mean", "J-Decay", "F-Recall", "seqA_2", "seqB_5", "YouTube-VOS"):
        assert text in out
    assert results.summary["youtube_vos"]["J_seen"] == 1.0  # objects labelled obj1: exact

    page = results.write_html(tmp_path / "jf.html")  # both figures, one self-contained page
    html = page.read_text()
    assert '"type":"scatter"' in html and '"type":"bar"' in html
    for name in ("seqA_1", "seqA_2", "seqA_3", "seqB_1", "seqB_5"):
        assert f'"name":"{name}"' in html
    assert any(f'"name":"{n}"' in html for n in ("J&F", "J\\u0026F"))
    assert '"name":"J"' in html and '"name":"F"' in html
    # offline: plotly.js is inlined (no script is loaded from a CDN or anywhere else)
    assert not re.findall(r"<script[^>]*\bsrc=", html) and "plotly.js v" in html
    assert len(html) > 1_000_000
    # the worst objects only: seqA_3 (J&F 0.5) and seqA_2
    worst = results.plot_j_over_time(worst=2)
    assert sorted(t.name for t in worst.data) == ["seqA_2", "seqA_3"] and "2 worst" in worst.layout.title.text


def test_synthetic_dataset_integration():
    try:
        from sampd_plugin.synthetic import make_dataset
    except ImportError as e:  # pragma: no cover
        pytest.skip(f"sampd_plugin.synthetic.make_dataset not importable: {e}")
    ds = make_dataset(num_videos=1, num_frames=12, num_objects=2, height=96, width=128, seed=3)
    try:
        ds.clone_frame_field("ground_truth", "pred")
        r = evaluate_jf(ds, "pred", eval_key="exact")
        assert r.summary["J&F-Mean"] == 1.0
        # perturb: object 1 lost from frame 7 on
        ids = [d.id for fl in ds.values("frames.pred.detections")[0] for d in (fl or []) if d.index == 1]
        view = ds.filter_labels("frames.pred", fo.ViewField("index") == 1).match_frames(
            fo.ViewField("frame_number") >= 7)
        lost_ids = view.values("frames.pred.detections.id", unwind=True)
        assert lost_ids and set(lost_ids) <= set(ids)
        ds.set_label_values("frames.pred.detections.lost", {i: True for i in lost_ids}, dynamic=True)
        r = evaluate_jf(ds, "pred", eval_key="perturbed")
        obj1 = next(o for o in r.per_object() if o["index"] == 1)
        visible = [f for f, fr in enumerate(ds.values("frames.ground_truth.detections")[0], 1)
                   if f >= 7 and any(d.index == 1 for d in fr)]
        assert obj1["lost_frames"] == len([f for f in visible if f < 12]) > 0
        assert obj1["J_mean"] < 1.0 and ds.first().perturbed_num_lost == 1
        assert ds.list_evaluations() == ["exact", "perturbed"]
    finally:
        ds.delete()
