"""Reliability (docs/reliability.md): runs own their sequences (one writer, take-over of dead owners only), nothing
half-done is marked done, ground truth and user fields are untouchable under every ``overwrite``, and every bad input
is a clear error before anything is written. Each test name is cited by a row of the matrix in docs/reliability.md."""

import datetime
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
from bson import ObjectId
import pytest

fo = pytest.importorskip("fiftyone")

from fiftyone.operators.delegated import DelegatedOperationService  # noqa: E402
from fiftyone.operators.executor import ExecutionRunState  # noqa: E402

import sampd_plugin as sp  # noqa: E402
from sampd_plugin.errors import SampdInputError, SampdRunError  # noqa: E402
from sampd_plugin.fo import labels  # noqa: E402
from sampd_plugin.fo.sources import layout_of  # noqa: E402
from sampd_plugin.ops import ownership
from tests.test_delegated import start_worker, stop, wait_ready  # noqa: E402
from tests.test_sdk import gt_snapshot  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def masks(ds, field):
    """``{(sample id, frame, index): packed mask}`` of a video field (lost objects as empty masks)."""
    out = {}
    for sid, meta, frames in zip(ds.values("id"), ds.values("metadata"), ds.values(f"frames.{field}")):
        hw = (meta.frame_height, meta.frame_width)
        for fn, label in enumerate(frames, 1):
            for d in (label.detections if label is not None else []):
                m = np.zeros(hw, bool) if d["lost"] else labels.paste_mask(d, hw)
                out[(sid, fn, d.index)] = np.packbits(m).tobytes()
    return out


def schema(ds):
    return sorted(ds.get_field_schema(flat=True)), sorted(ds.get_frame_field_schema(flat=True) or {})


def foreign_marker(heartbeat_age=0.0, worker="otherhost:4242", done=False):
    return dict(run="someone-else", done=done, owner="other-owner", worker=worker, operation=None,
                heartbeat=ownership.utcnow() - datetime.timedelta(seconds=heartbeat_age), frames=3)


def put_marker(ds, field, marker):
    layout = layout_of(ds)
    from sampd_plugin.fo import store

    store.ensure_output_field(layout, field)
    seq = layout.sequences()[0]
    assert layout.update_head(seq, {}, {labels.marker_field(field): marker})
    return layout, seq


# --- ownership ------------------------------------------------------------------------------------------------------
def test_a_live_owner_is_never_displaced_a_stale_or_dead_one_is_taken_over(make_synthetic):
    ds = make_synthetic(num_videos=1, num_frames=5, num_objects=2)
    layout, seq = put_marker(ds, "out", foreign_marker(heartbeat_age=5))
    (row,) = sp.list_runs(ds, "out")
    assert row["state"] == "running" and "otherhost:4242" in row["message"]
    for overwrite in (False, True):
        summary = sp.track(ds, model="synthetic", label_field="out", overwrite=overwrite, progress=False)
        assert summary["tracked"] == [] and seq.key in summary["busy"], summary
        assert "running on otherhost:4242" in summary["busy"][seq.key]
        assert ds.count("frames.out") == 0 and ds.first()["out_track"]["owner"] == "other-owner"
    # stale: its heartbeat is older than the limit -> taken over, finished by the new owner
    put_marker(ds, "out", foreign_marker(heartbeat_age=3600))
    assert sp.list_runs(ds, "out")[0]["message"].startswith("stale, last heartbeat 60 min ago")
    summary = sp.track(ds, model="synthetic", label_field="out", progress=False)
    assert summary["tracked"] == [seq.key]
    marker = ds.first()["out_track"]
    assert marker["done"] is True and marker["owner"] != "other-owner" and marker["frames"] == 5
    # dead: a process of this host that no longer exists, whatever its heartbeat
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    put_marker(ds, "dead", foreign_marker(worker=f"{socket.gethostname()}:{dead.pid}"))
    assert sp.list_runs(ds, "dead")[0]["state"] == "dead"
    assert sp.track(ds, model="synthetic", label_field="dead", progress=False)["tracked"] == [seq.key]


def test_two_concurrent_runs_on_one_sequence_one_owner_and_complete_labels(make_synthetic):
    ds = make_synthetic(num_videos=1, num_frames=40, num_objects=2, height=240, width=320, seed=4)
    reference = sp.track(ds, model="synthetic", label_field="ref", progress=False)
    assert reference["frames"] == 40
    code = ("import json, fiftyone as fo, sampd_plugin as sp\n"
            f"s = sp.track(fo.load_dataset({ds.name!r}), model='synthetic', label_field='race', batch_frames=4,"
            " progress=False)\n"
            "print('SUMMARY ' + json.dumps({k: s[k] for k in ('tracked', 'skipped', 'busy')}))\n")
    env = dict(os.environ, PYTHONPATH=ROOT)
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    summaries = [json.loads(o[0].split("SUMMARY ", 1)[1]) for o in outs]
    assert sorted(len(s["tracked"]) for s in summaries) == [0, 1], summaries  # exactly one writer
    other = next(s for s in summaries if not s["tracked"])
    assert other["busy"] or other["skipped"], summaries
    ds.reload()  # the fields were declared by the other processes
    marker = ds.values("race_track")[0]
    assert marker["done"] is True and marker["frames"] == 40
    assert masks(ds, "race") == masks(ds, "ref")  # complete, and identical to a single run


def test_a_run_that_loses_ownership_stops_writing(make_synthetic):
    ds = make_synthetic(num_videos=1, num_frames=8, num_objects=1)
    layout = layout_of(ds)
    seq = layout.sequences()[0]

    def thief(pb):
        if pb.label.endswith("frame 3/8"):
            assert layout.update_head(seq, {}, {"out_track.owner": "thief", "out_track.worker": "elsewhere:1"})

    with pytest.raises(SampdRunError, match="taken over by another run"):
        sp.track(ds, model="synthetic", label_field="out", batch_frames=2, progress=thief)
    written = layout.labeled_frames(seq, "out")
    assert written and max(written) <= 3  # nothing written after the take-over
    marker = ds.first()["out_track"]
    assert marker["owner"] == "thief" and marker["done"] is False  # never marked done by the run that lost it


def test_a_sequence_deleted_mid_run_is_a_clear_error(make_synthetic):
    ds = make_synthetic(num_videos=2, num_frames=6, num_objects=1)
    s1, s2 = ds.values("id")

    def delete(pb):
        if pb.label.startswith("sequence 1/2") and pb.label.endswith("frame 2/6"):
            ds.delete_samples([s1])

    with pytest.raises(SampdRunError, match=f"sample {s1} .* was deleted during the run") as err:
        sp.track(ds, model="synthetic", label_field="out", batch_frames=1, progress=delete)
    assert err.value.summary["tracked"] == [s2]  # the job went on with the other sequence
    assert ds[s2]["out_track"]["done"] is True


def test_a_dataset_deleted_mid_run_is_a_clear_error(make_synthetic):
    ds = make_synthetic(num_videos=1, num_frames=6, num_objects=1)
    name = ds.name

    def delete(pb):
        if pb.label.endswith("frame 2/6"):
            fo.delete_dataset(name)

    with pytest.raises(SampdRunError, match="dataset was deleted during the run"):
        sp.track(ds, model="synthetic", label_field="out", batch_frames=1, progress=delete)


# --- completeness -----------------------------------------------------------------------------------------------
def test_a_truncated_video_is_reported_and_never_marked_done(make_synthetic):
    ds = make_synthetic(num_videos=1, num_frames=40, num_objects=1)
    sample = ds.first()
    full = open(sample.filepath, "rb").read()
    with open(sample.filepath, "wb") as f:  # the metadata still says 40 frames
        f.write(full[: int(len(full) * 0.6)])
    with pytest.raises(SampdRunError, match=r"decoding stopped after frame \d+ but the container reports 40 frames"):
        sp.track(ds, model="synthetic", label_field="out", progress=False)
    marker = ds.first()["out_track"]
    assert marker["done"] is False and "TruncatedVideoError" in marker["error"] and marker["owner"] is None
    assert sp.list_runs(ds, "out")[0]["state"] == "failed"
    with pytest.raises(ValueError, match="has not finished on 1 sequence"):
        sp.evaluate_jf(ds, "out", eval_key="e")
    assert sp.evaluate_jf(ds, "out", eval_key=None, allow_incomplete=True).summary["num_objects"] == 1
    with open(sample.filepath, "wb") as f:  # repaired: the re-run redoes it (it was not skipped as finished)
        f.write(full)
    assert sp.track(ds, model="synthetic", label_field="out", progress=False)["frames"] == 40
    assert ds.first()["out_track"]["done"] is True


def _streamed_mkv(sample, keep=1.0):
    """Re-muxes a sample's video as a streamed MKV (no duration, no index: eta reports ``total_frame_count`` =
    ``-fps``), keeping the first ``keep`` of its bytes, and points the sample at it with fresh metadata."""
    path = os.path.splitext(sample.filepath)[0] + f"-streamed-{int(keep * 100)}.mkv"
    data = subprocess.run(["ffmpeg", "-v", "error", "-i", sample.filepath, "-c", "copy", "-f", "matroska", "-"],
                          check=True, capture_output=True).stdout
    with open(path, "wb") as f:
        f.write(data[: int(len(data) * keep)])
    sample.filepath = path
    sample.compute_metadata(overwrite=True)
    sample.save()
    return sample.metadata.total_frame_count


def test_a_frame_count_the_container_does_not_know_is_measured_by_decoding(make_synthetic):
    ds = make_synthetic(num_videos=2, num_frames=20, num_objects=1)
    whole, truncated = ds.select(ds.values("id")[0]).first(), ds.select(ds.values("id")[1]).first()
    assert _streamed_mkv(whole) < 0 and _streamed_mkv(truncated, keep=0.45) < 0  # e.g. -24: "duration -1 x fps"
    with pytest.raises(SampdRunError, match=rf"sample {truncated.id} .*: decoding stopped after frame \d+ but the "
                                            r"sequence has labels up to frame 20 \(truncated"):
        sp.track(ds, model="synthetic", label_field="out", progress=False)
    ds.reload()
    assert ds[whole.id]["out_track"]["done"] is True and ds[whole.id]["out_track"]["frames"] == 20  # decoded: 20
    assert ds[truncated.id]["out_track"]["done"] is False  # never marked done with the frames that decoded
    with pytest.raises(ValueError, match="has not finished on 1 sequence"):
        sp.evaluate_jf(ds, "out", eval_key="e")  # so never scored as if it were complete
    assert ds.list_evaluations() == []


# --- protection -----------------------------------------------------------------------------------------------------
def test_ground_truth_and_user_fields_are_untouched_under_every_overwrite(plugin, make_synthetic):
    ds = make_synthetic(num_videos=1, num_frames=4, num_objects=2)
    ds.clone_frame_field("ground_truth", "gt_copy")
    ds.clone_frame_field("ground_truth", "mine")  # a user's Detections field (no run marker)
    sp.track(ds, model="synthetic", label_field="sampd", progress=False)
    sp.evaluate_jf(ds, "sampd", gt_field="ground_truth", eval_key="e")
    gt, copy, mine = gt_snapshot(ds), ds.values("frames.gt_copy"), ds.values("frames.mine")
    before = schema(ds)
    cases = [("ground_truth", "ground_truth", "is the prompt field"),
             ("ground_truth", "gt_copy", "is the ground truth of evaluation"),
             ("gt_copy", "ground_truth", "was not written by SAM-PD"),
             ("mine", "ground_truth", "was not written by SAM-PD")]
    for out, prompt, message in cases:
        for overwrite in (False, True):
            with pytest.raises(SampdInputError, match=message):
                sp.track(ds, prompt_field=prompt, model="synthetic", label_field=out, overwrite=overwrite)
            if out != prompt:
                with pytest.raises(SampdInputError, match=message):
                    sp.auto_track(ds, model="synthetic", label_field=out, overwrite=overwrite, max_objects=1)
                with pytest.raises(SampdInputError, match=message):
                    sp.queue_track(ds, prompt_field=prompt, model="synthetic", label_field=out, overwrite=overwrite)
    # the forms refuse the same, also in automatic mode
    from tests.test_operators import form_errors

    errs = form_errors("auto_track_objects", ds, dict(model="synthetic", label_field="ground_truth", overwrite=True))
    assert any("is the ground truth of evaluation" in e for e in errs), errs
    errs = form_errors("track_objects", ds, dict(model="synthetic", label_field="mine", overwrite=True))
    assert any("was not written by SAM-PD" in e for e in errs), errs
    assert gt_snapshot(ds) == gt and ds.values("frames.gt_copy") == copy and ds.values("frames.mine") == mine
    assert schema(ds) == before
    # the explicit escape hatch (never set by the forms) overwrites a user's field, not the prompt field
    sp.track(ds, model="synthetic", label_field="mine", overwrite=True, allow_overwrite_ground_truth=True,
             progress=False)
    assert ds.first()["mine_track"]["done"] is True and gt_snapshot(ds) == gt


def test_a_user_field_named_like_a_run_marker_is_never_overwritten(make_synthetic):
    ds = make_synthetic(num_videos=1, num_frames=3, num_objects=1)
    ds.add_sample_field("z_track", fo.DictField)
    ds.set_values("z_track", [{"my": "notes"}])
    before = schema(ds)
    with pytest.raises(SampdInputError, match="'z_track' exists and was not written by SAM-PD"):
        sp.track(ds, model="synthetic", label_field="z", overwrite=True)
    assert ds.values("z_track") == [{"my": "notes"}] and schema(ds) == before


def test_evaluation_fields_colliding_with_user_fields_are_refused_before_registering(make_synthetic):
    ds = make_synthetic(num_videos=1, num_frames=3, num_objects=1)
    sp.track(ds, model="synthetic", label_field="sampd", progress=False)
    ds.add_sample_field("k_JF", fo.FloatField)
    ds.set_values("k_JF", [0.123])
    with pytest.raises(ValueError, match="would write fields or views that exist and are not its own .*k_JF"):
        sp.evaluate_jf(ds, "sampd", eval_key="k")
    assert "k" not in ds.list_evaluations() and ds.values("k_JF") == [0.123]



# --- ownership: every field and view we write is provably ours (issue 21, cases 1-5 and 7) ---------------------------
def test_user_fields_named_like_our_quality_fields_or_marker_are_never_taken_for_ours(make_synthetic):
    ds = make_synthetic(num_videos=1, num_frames=3, num_objects=1)
    ds.add_frame_field("sampd_confidence", fo.FloatField)
    ds.set_values("frames.sampd_confidence", [[0.7, 0.7, 0.7]])
    ds.add_frame_field("q_doubtful", fo.EmbeddedDocumentField, embedded_doc_type=fo.Classification)
    ds.set_values("frames.q_doubtful", [[fo.Classification(label="mine")] * 3])
    ds.add_sample_field("m_track", fo.DictField)  # a user's dict that happens to hold our marker's keys
    ds.set_values("m_track", [{"run": "notes", "done": True}])
    before, values = schema(ds), (ds.values("frames.sampd_confidence"), ds.values("frames.q_doubtful.label"))
    cases = [("sampd", "'frames.sampd_confidence' .*was not written by SAM-PD"),
             ("q", "'frames.q_doubtful' .*was not written by SAM-PD"),
             ("m", "'m_track' exists and was not written by SAM-PD")]
    for field, message in cases:
        for overwrite in (False, True):
            with pytest.raises(SampdInputError, match=message) as e:
                sp.track(ds, model="synthetic", label_field=field, overwrite=overwrite, progress=False)
            assert e.value.field == "label_field"
    assert schema(ds) == before and ds.values("m_track") == [{"run": "notes", "done": True}]
    assert (ds.values("frames.sampd_confidence"), ds.values("frames.q_doubtful.label")) == values
    assert all(r["state"] != "done" for r in sp.list_runs(ds, "m"))  # the user's dict is no marker
    # the form's default output field steps around them
    from sampd_plugin.fo import ui

    assert ui.output_fields(ds) == [] and ui.output_identity(ds, "sampd").state == "foreign"


def test_a_deleted_output_field_leaves_no_owner_behind(make_synthetic):
    ds = make_synthetic(num_videos=1, num_frames=3, num_objects=1)
    sp.track(ds, model="synthetic", progress=False)
    ds.delete_frame_field("sampd")  # the marker "sampd_track" and the quality fields stay behind, stale
    ds.clone_frame_field("ground_truth", "sampd")  # a user's field under the old name
    mine = ds.values("frames.sampd")
    from sampd_plugin.fo import ui

    assert ui.output_fields(ds) == []
    for overwrite in (False, True):
        with pytest.raises(SampdInputError, match="'frames.sampd' exists and was not written by SAM-PD"):
            sp.track(ds, model="synthetic", overwrite=overwrite, progress=False)
    with pytest.raises(SampdInputError, match="'frames.sampd' exists and was not written by SAM-PD"):
        sp.repropagate(ds, "sampd", from_frame=2, model="synthetic", progress=False)
    with pytest.raises(SampdInputError, match="'frames.sampd' exists and was not written by SAM-PD"):
        sp.queue_track(ds, model="synthetic", overwrite=True)
    assert ds.values("frames.sampd") == mine and sp.list_runs(ds, "sampd")[0]["state"] != "done"
    # the name freed again: the stale marker and quality fields are replaced, the sequence is tracked anew
    ds.delete_frame_field("sampd")
    summary = sp.track(ds, model="synthetic", progress=False)
    assert summary["tracked"] == [ds.first().id] and ds.count("frames.sampd.detections") == 3
    assert ui.output_fields(ds) == ["sampd"] and ds.first()["sampd_track"]["done"] is True


def test_a_renamed_output_field_is_tracked_anew_never_reported_done(make_synthetic):
    ds = make_synthetic(num_videos=2, num_frames=3, num_objects=1)
    sp.track(ds, model="synthetic", progress=False)
    ds.rename_frame_field("sampd", "kept")  # its marker "sampd_track" now names no field
    from sampd_plugin.fo import ui

    assert ui.output_fields(ds) == [] and all(r["state"] != "done" for r in sp.list_runs(ds, "sampd"))
    summary = sp.track(ds, model="synthetic", progress=False)
    assert sorted(summary["tracked"]) == sorted(ds.values("id")) and summary["skipped"] == []
    assert ds.count("frames.sampd.detections") == 6 and ds.count("frames.kept.detections") == 6
    assert sp.evaluate_jf(ds, "sampd", eval_key="e").summary["J&F-Mean"] > 0.8  # the new labels, complete


def test_evaluation_views_and_fields_of_a_user_are_never_replaced_renamed_or_deleted(plugin, make_synthetic):
    import fiftyone.operators as foo
    from fiftyone.operators.executor import ExecutionContext
    from tests.test_operators import form_errors, uri

    ds = make_synthetic(num_videos=1, num_frames=3, num_objects=1)
    sp.track(ds, model="synthetic", progress=False)
    mine = ds.limit(1)
    ds.save_view("jf_failures", mine, description="my view")
    with pytest.raises(SampdInputError, match="saved view 'jf_failures'") as e:
        sp.evaluate_jf(ds, "sampd", eval_key="jf")
    assert e.value.field == "eval_key" and ds.list_evaluations() == []
    # the form refuses that key, and its default key steps around it
    errs = form_errors("evaluate_tracking", ds, dict(pred_field="sampd", gt_field="ground_truth", eval_key="jf"))
    assert any("saved view 'jf_failures' exists" in e for e in errs), errs
    ctx = ExecutionContext(request_params=dict(dataset_name=ds.name, params={}))
    assert foo.get_operator(uri("evaluate_tracking")).resolve_input(ctx).type.properties["eval_key"].default == "jf_2"
    assert ds.get_saved_view_info("jf_failures")["description"] == "my view"
    # a run's view that the user replaced with their own is not the run's any more: delete_evaluation keeps it
    sp.evaluate_jf(ds, "sampd", eval_key="k")
    ds.delete_saved_view("k_worst")
    ds.save_view("k_worst", mine, description="mine now")
    with pytest.raises(SampdInputError, match="saved view 'k_worst'"):
        sp.evaluate_jf(ds, "sampd", eval_key="k", overwrite=True)
    ds.delete_evaluation("k")
    assert ds.list_saved_views() == ["jf_failures", "k_worst"] and not ds.has_sample_field("k_JF")
    # rename onto a key whose fields exist (a user's frames.new_J): nothing of the run moves and nothing of the
    # user's is touched, then or when the (renamed) run is deleted
    sp.evaluate_jf(ds, "sampd", eval_key="r")
    ds.add_frame_field("new_J", fo.FloatField)
    ds.set_values("frames.new_J", [[0.25] * 3])
    ds.rename_evaluation("r", "new")
    assert ds.has_sample_field("r_JF") and ds.has_saved_view("r_failures")
    ds.delete_evaluation("new")
    assert ds.values("frames.new_J") == [[0.25] * 3] and not ds.has_sample_field("r_JF")
    assert not ds.has_frame_field("r_J") and not ds.has_saved_view("r_failures")
    # a plain rename moves exactly the run's fields and views; deleting it removes them
    sp.evaluate_jf(ds, "sampd", eval_key="a")
    ds.rename_evaluation("a", "b")
    assert ds.has_sample_field("b_JF") and ds.has_frame_field("b_J") and ds.has_saved_view("b_worst")
    assert not ds.has_sample_field("a_JF") and not ds.has_saved_view("a_worst")
    ds.delete_evaluation("b")
    assert ds.list_saved_views() == ["jf_failures", "k_worst"] and ds.values("frames.new_J") == [[0.25] * 3]
    left = [*ds.get_field_schema(flat=True), *ds.get_frame_field_schema(flat=True)]
    assert not [f for f in left if f.rpartition(".")[2].startswith(("a_", "b_", "k_", "r_"))], left
    # a tracking job that evaluates when done is refused while it is planned: nothing is declared, queued or tracked
    ds.save_view("out_jf_worst", mine)
    before = schema(ds)
    for run in (sp.track, sp.queue_track):
        with pytest.raises(SampdInputError, match="saved view 'out_jf_worst'") as e:
            run(ds, model="synthetic", label_field="out", evaluate=True)
        assert e.value.field == "eval_key" and schema(ds) == before

# --- validate first, then write -----------------------------------------------------------------------------------
def _nan_box(ds):
    sample = ds.first()
    sample.frames[1].ground_truth.detections[0].bounding_box = [float("nan"), 0.1, 0.2, 0.2]
    sample.save()


def _empty_box(ds):
    sample = ds.first()
    det = sample.frames[1].ground_truth.detections[0]
    det.mask, det.bounding_box = None, [0.3, 0.3, 0.0, 0.1]
    sample.save()


def _corrupt_video(ds):
    sample = ds.first()
    with open(sample.filepath, "wb") as f:
        f.write(os.urandom(4096))
    sample.metadata = None
    sample.save()


@pytest.mark.parametrize("spoil, kwargs, message", [
    (_nan_box, {}, r"frame 1, object \d+: the detection's bounding box .* is not four finite numbers"),
    (_empty_box, {}, r"frame 1, object \d+: the prompt has no mask and its box .* is empty"),
    (_corrupt_video, {}, r"cannot read the video"),
    (None, dict(model="vit_b", checkpoint="BAD"), r"model 'vit_b': .*cannot load SAM checkpoint"),
    (None, dict(model="tiny", device="banana"), r"unknown device 'banana'"),
    (None, dict(model="tiny", device="cuda"), r"'cuda' was requested but this machine has no usable CUDA GPU"),
])
def test_refused_inputs_leave_no_stray_field(make_synthetic, tmp_path, spoil, kwargs, message):
    import torch

    if kwargs.get("device") == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    ds = make_synthetic(num_videos=1, num_frames=3, num_objects=2)
    if spoil is not None:
        spoil(ds)
    if kwargs.get("checkpoint") == "BAD":
        bad = tmp_path / "sam_vit_b_01ec64.pth"
        bad.write_bytes(os.urandom(2048))
        kwargs = dict(kwargs, checkpoint=str(bad))
    before = schema(ds)
    with pytest.raises(SampdInputError, match=message):
        sp.track(ds, **dict(dict(model="synthetic"), **kwargs), label_field="out", progress=False)
    assert schema(ds) == before  # no output field, no marker


# --- dead workers ---------------------------------------------------------------------------------------------------
def test_sigkill_of_a_delegated_worker_then_recovery_gives_identical_masks(plugin, make_synthetic, tmp_path):
    ds = make_synthetic(num_videos=1, num_frames=60, num_objects=2, height=192, width=256, seed=7)
    sp.track(ds, model="synthetic", label_field="ref", progress=False)
    layout = layout_of(ds)
    seq = layout.sequences()[0]
    service = DelegatedOperationService()
    worker = start_worker(tmp_path / "worker.log")
    try:
        wait_ready([worker])
        (op_id,) = sp.queue_track(ds, model="synthetic", label_field="k", batch_frames=2)["operations"]
        t0 = time.time()
        while not layout.labeled_frames(seq, "k"):
            assert worker.poll() is None and time.time() - t0 < 300, open(worker.log_path).read()[-3000:]
            time.sleep(0.05)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    finally:
        stop([worker])
    assert service.get(ObjectId(op_id)).run_state == ExecutionRunState.RUNNING  # FiftyOne cannot tell it died
    (row,) = sp.list_runs(ds, "k")
    assert row["state"] == "dead" and row["operation"] == op_id and not ds.values("k_track")[0]["done"]
    recovered = sp.recover_stale(ds)
    assert recovered["failed"] == [op_id] and len(recovered["requeued"]) == 1
    assert service.get(ObjectId(op_id)).run_state == ExecutionRunState.FAILED
    assert sp.run_worker(dataset_name=ds.name, idle_exit_seconds=0, poll_seconds=0.1, log=False) == 1
    assert service.get(ObjectId(recovered["requeued"][0])).run_state == ExecutionRunState.COMPLETED
    marker = ds.values("k_track")[0]  # written by other processes: read from the database
    assert marker["done"] is True and marker["frames"] == 60
    assert masks(ds, "k") == masks(ds, "ref")
