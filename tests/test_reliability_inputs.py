"""Reliability, second round (issue 21): values that used to pass validation and fail mid-run, after fields were
declared and frames written. Every one is now refused by type and range before anything is declared, by the SDK,
the queued operations and the forms alike. Each test is cited by a row of docs/reliability.md."""

import math

import numpy as np
from bson import ObjectId
import pytest

fo = pytest.importorskip("fiftyone")

import fiftyone.operators as foo  # noqa: E402
from fiftyone.operators.delegated import DelegatedOperationService  # noqa: E402
from fiftyone.operators.executor import ExecutionContext, ExecutionRunState, ValidationContext  # noqa: E402

import sampd_plugin as sp  # noqa: E402
from sampd_plugin.errors import SampdInputError  # noqa: E402
from tests.test_reliability import schema  # noqa: E402

PLUGIN = "@sampd/sampd"


def form_problems(name, dataset, params, **request):
    """``{input path: message}`` of the inputs FiftyOne's validation refuses in an operator's form."""
    op = foo.get_operator(f"{PLUGIN}/{name}")
    ctx = ExecutionContext(request_params=dict(dataset_name=dataset.name, params=dict(params), **request))
    inputs = op.resolve_input(ctx)
    return {e.path.lstrip("."): e.reason for e in ValidationContext(ctx, inputs, op).errors}


@pytest.fixture(scope="module")
def video(fo, tmp_path_factory):
    """One generated video (3 frames, 1 object) shared by the refusal cases below (none of them may change it)."""
    from sampd_plugin.synthetic import make_dataset

    ds = make_dataset(num_videos=1, num_frames=3, num_objects=1, height=96, width=128, seed=0,
                      output_dir=str(tmp_path_factory.mktemp("video")))
    yield ds
    DelegatedOperationService().delete_for_dataset(ds._doc.id)
    fo.delete_dataset(ds.name)


MID_RUN_FAILURES = {  # case: (call on the dataset, argument named in the refusal)
    "scales=[nan]": (lambda ds: sp.track(ds, model="synthetic", config=dict(scales=[math.nan])), "scales"),
    "negative_points=1.5": (lambda ds: sp.track(ds, model="synthetic", config=dict(negative_points=1.5)),
                            "negative_points"),
    "grid_size=1000001": (lambda ds: sp.track(ds, model="synthetic", config=dict(grid_size=1000001)), "grid_size"),
    "lost_iou='0.5'": (lambda ds: sp.track(ds, model="synthetic", config=dict(lost_iou="0.5")), "lost_iou"),
    "batch_frames='x'": (lambda ds: sp.track(ds, model="synthetic", batch_frames="x"), "batch_frames"),
    "batch_frames=2.5": (lambda ds: sp.track(ds, model="synthetic", batch_frames=2.5), "batch_frames"),
    "max_objects='x'": (lambda ds: sp.auto_track(ds, model="synthetic", max_objects="x"), "max_objects"),
    "overwrite='yes'": (lambda ds: sp.track(ds, model="synthetic", overwrite="yes"), "overwrite"),
    "device='cuda:x'": (lambda ds: sp.track(ds, model="synthetic", device="cuda:x"), "device"),
    "queue device='gpu7'": (lambda ds: sp.queue_track(ds, model="synthetic", device="gpu7"), "device"),
    "queue samples_per_operation='2'": (lambda ds: sp.queue_track(ds, model="synthetic", samples_per_operation="2"),
                                        "samples_per_operation"),
}


@pytest.mark.parametrize("case", MID_RUN_FAILURES)
def test_settings_that_failed_mid_run_are_refused_before_any_field_is_declared(video, case):
    call, argument = MID_RUN_FAILURES[case]
    before = schema(video)
    with pytest.raises(SampdInputError, match=argument) as err:
        call(video)
    assert err.value.field in (argument, "config"), err.value
    assert schema(video) == before  # nothing declared, nothing written, nothing queued
    assert not DelegatedOperationService().list_operations(dataset_name=video.name)


def test_repropagate_arguments_are_refused_before_the_claim(make_synthetic):
    ds = make_synthetic(num_videos=1, num_frames=3, num_objects=1)
    sp.track(ds, model="synthetic", label_field="out", progress=False)
    marker = ds.first()["out_track"]
    with pytest.raises(SampdInputError, match="from_frame must be an integer, got '3x'"):
        sp.repropagate(ds.first(), "out", from_frame="3x", progress=False)
    with pytest.raises(SampdInputError, match="object_ids"):
        sp.repropagate(ds.first(), "out", from_frame=2, object_ids="1", progress=False)
    ds.reload()
    assert ds.first()["out_track"] == marker  # the labels stay as tracked, the marker untouched


def test_evaluation_thresholds_are_checked_by_type_and_range(make_synthetic):
    ds = make_synthetic(num_videos=1, num_frames=3, num_objects=1)
    sp.track(ds, model="synthetic", label_field="out", progress=False)
    before = schema(ds)
    for kwargs, message in ((dict(failure_th=math.nan), "failure_th must be a finite number"),
                            (dict(failure_th=1.5), "failure_th must be <= 1"),
                            (dict(bound_th=-1), "bound_th must be > 0"),
                            (dict(bound_th="0.008"), "bound_th must be a number"),
                            (dict(void_value=300), "void_value must be <= 255"),
                            (dict(exclude_last="no"), "exclude_last must be True or False")):
        with pytest.raises(SampdInputError, match=message):
            sp.evaluate_jf(ds, "out", eval_key="e", **kwargs)
        assert ds.list_evaluations() == [] and schema(ds) == before and not ds.list_saved_views()


def _spoil_mask(ds, mask):
    sample = ds.first()
    sample.frames[1].ground_truth.detections[0].mask = mask
    sample.save()


def test_empty_and_nan_masks_are_refused_naming_the_frame_and_object(plugin, make_synthetic):
    ds = make_synthetic(num_videos=1, num_frames=3, num_objects=2)
    before = schema(ds)
    for mask, message in ((np.zeros((0, 0), bool), r"its mask has shape \(0, 0\)"),
                          (np.full((4, 4), np.nan), r"its mask holds 16 NaN / inf value\(s\)")):
        _spoil_mask(ds, mask)
        with pytest.raises(SampdInputError, match=rf"frame 1, object \d+: {message}"):
            sp.track(ds, model="synthetic", progress=False)
        assert schema(ds) == before
        # the form shows the refusal (it used to crash on the 0x0 mask inside cv2.resize)
        problems = form_problems("track_objects", ds, dict(model="synthetic"))
        assert any("frame 1, object" in m and "its mask" in m for m in problems.values()), problems


def test_unknown_model_or_preset_marks_that_input_in_the_form(plugin, make_synthetic):
    ds = make_synthetic(num_videos=1, num_frames=3, num_objects=1)
    problems = form_problems("track_objects", ds, dict(model="foo"))
    assert "unknown model 'foo'" in problems.get("model", ""), problems
    assert "prompt_field" not in problems and "checkpoint" not in problems, problems
    problems = form_problems("track_objects", ds, dict(model="synthetic", preset="nope"))
    assert "unknown preset 'nope'" in problems.get("preset", ""), problems
    assert "prompt_field" not in problems, problems
    problems = form_problems("auto_track_objects", ds, dict(model="synthetic", preset="nope"))
    assert "unknown preset 'nope'" in problems.get("preset", ""), problems
    problems = form_problems("track_objects", ds, dict(model="synthetic", batch_frames=0))
    assert "batch_frames" in problems and "prompt_field" not in problems, problems


def test_cuda_n_devices_are_accepted_everywhere_and_checked_where_the_model_runs(plugin, make_synthetic):
    import torch

    if torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    ds = make_synthetic(num_videos=1, num_frames=3, num_objects=1)
    assert "device" not in form_problems("track_objects", ds, dict(model="synthetic", device="cuda:7"))
    problems = form_problems("track_objects", ds, dict(model="synthetic", device="cuda:x"))
    assert "unknown device 'cuda:x'" in problems.get("device", ""), problems
    # queued for a worker that has the GPU: validated here by syntax only; the operation's form accepts it
    (op_id,) = sp.queue_track(ds, model="synthetic", device="cuda:7")["operations"]
    service = DelegatedOperationService()
    assert service.get(ObjectId(op_id)).run_state == ExecutionRunState.QUEUED
    # a worker without it refuses the operation before writing anything, naming the device
    sp.run_worker(dataset_name=ds.name, idle_exit_seconds=0, poll_seconds=0.1, log=False)
    op = service.get(ObjectId(op_id))
    assert op.run_state == ExecutionRunState.FAILED and "'cuda:7'" in str(op.result.error), op.result
    assert not ds.count("frames.sampd") and not any(ds.values("sampd_track"))  # declared for the workers only
    # and the SDK on this machine says which devices exist
    with pytest.raises(SampdInputError, match="'cuda:7'"):
        sp.track(ds, model="synthetic", device="cuda:7")


def test_an_empty_view_declares_nothing(video):
    before = schema(video)
    summary = sp.track(video.limit(0), model="synthetic", progress=False)
    assert summary["samples"] == 0 and summary["tracked"] == [] and schema(video) == before
    assert sp.auto_track(video.limit(0), model="synthetic", progress=False)["samples"] == 0
    assert sp.queue_track(video.limit(0), model="synthetic")["operations"] == []
    assert schema(video) == before  # no output field, no quality fields, no marker


def test_an_evaluation_that_fails_part_way_leaves_no_run(make_synthetic):
    ds = make_synthetic(num_videos=2, num_frames=3, num_objects=1)
    sp.track(ds, model="synthetic", label_field="out", progress=False)
    second = ds.select(ds.values("id")[1]).first()  # the first sequence scores fine, the second cannot
    second.frames[2].out.detections[0].bounding_box = [math.nan, 0.1, 0.2, 0.2]
    second.save()
    before = schema(ds)
    with pytest.raises(ValueError, match=rf"sample {second.id} .*, frame 2, 'out': the detection of object"):
        sp.evaluate_jf(ds, "out", eval_key="e")
    assert ds.list_evaluations() == [] and not ds.list_saved_views() and schema(ds) == before
