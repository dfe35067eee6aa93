"""Every operator through FiftyOne's operator machinery (``foo.execute_operator``), immediately and as a delegated
operation run by a worker (FiftyOne's ``DelegatedOperationService``, the engine of ``fiftyone delegated launch``),
and the forms' refusals (``resolve_input`` + FiftyOne's validation)."""

import inspect

import numpy as np
import pytest

fo = pytest.importorskip("fiftyone")

import fiftyone.operators as foo  # noqa: E402
from fiftyone.operators.delegated import DelegatedOperationService  # noqa: E402
from fiftyone.operators.executor import ExecutionContext, ExecutionError, ExecutionRunState  # noqa: E402
from fiftyone.operators.executor import ValidationContext  # noqa: E402

import sampd_plugin as sp  # noqa: E402
from sampd_plugin.fo import ui  # noqa: E402
from sampd_plugin.fo.app import object_color  # noqa: E402
from sampd_plugin.fo.jobs import finish_job  # noqa: E402
from sampd_plugin.fo.labels import paste_mask  # noqa: E402
from tests.test_sdk import check_written_fields, gt_snapshot  # noqa: E402

PLUGIN = "@sampd/sampd"


def uri(name):
    return f"{PLUGIN}/{name}"


def run_queue(dataset):
    """Runs the dataset's queued delegated operations (and those they queue) like a worker; returns their docs."""
    sp.run_worker(dataset_name=dataset.name, idle_exit_seconds=0, poll_seconds=0.1, log=False)
    return DelegatedOperationService().list_operations(dataset_name=dataset.name)


def form_errors(name, dataset, params, **request):
    """Resolves an operator's form for ``params`` and returns FiftyOne's validation messages."""
    op = foo.get_operator(uri(name))
    ctx = ExecutionContext(request_params=dict(dataset_name=dataset.name, params=dict(params), **request))
    inputs = op.resolve_input(ctx)
    return [e.reason for e in ValidationContext(ctx, inputs, op).errors]


def test_plugin_is_discovered_with_every_operator(plugin):
    assert plugin == PLUGIN


def test_track_objects_immediate_with_evaluation(plugin, make_synthetic):
    ds = make_synthetic(num_videos=1, num_frames=5, num_objects=2)
    gt = gt_snapshot(ds)
    result = foo.execute_operator(uri("track_objects"), ctx=dict(dataset=ds, params=dict(model="synthetic")))
    r = result.result
    assert r["label_field"] == "sampd" and r["objects"] == 2 and r["frames"] == 5 and r["samples_tracked"] == 1
    assert r["eval_key"] == "sampd_jf" and r["jf"] > 0.8  # evaluated: the prompt field is full ground truth
    assert "objects" in r["message"] and "J&F" in r["message"] and "with method 'overlap'" in r["message"]
    requests = {q["operator_uri"]: q["params"] for q in result.executor.to_json()["requests"]}
    assert "reload_dataset" in requests  # the App shows the new fields, and the colours at once:
    assert requests["set_color_scheme"] == ui.session_color_scheme(ds) and requests["set_color_scheme"]["fields"]
    check_written_fields(ds, "sampd", min_mean_j=0.8)
    assert gt_snapshot(ds) == gt


def test_track_objects_delegated_is_split_per_sample_and_run_by_a_worker(plugin, make_synthetic):
    """Tiny real-architecture SAM: the parent operation splits the job, a worker runs every part, progress is
    reported to the operation document."""
    ds = make_synthetic(num_videos=2, num_frames=3, num_objects=2)
    queued = foo.execute_operator(uri("track_objects"),
                                  ctx=dict(dataset=ds, params=dict(model="tiny", preset="box", device="cpu",
                                                                   label_field="tiny")),
                                  request_delegation=True)
    assert queued.delegated and queued.result["run_state"] == ExecutionRunState.QUEUED
    assert not ds.has_frame_field("tiny")  # nothing runs until a worker takes it
    ops = {str(op.id): op for op in run_queue(ds)}
    assert len(ops) == 3 and all(op.run_state == ExecutionRunState.COMPLETED for op in ops.values()), [
        (op.run_state, op.result and op.result.error) for op in ops.values()]
    parent = ops[str(queued.result["id"])]
    children = [ops[i] for i in parent.result.result["operations"]]
    assert sorted(sum((c.result.result["tracked"] for c in children), [])) == sorted(ds.values("id"))
    for c in children:
        assert c.status.label.startswith("sequence 1/1 · frame") and c.status.progress == 1.0
        fields = c.metadata["outputs_schema"]["type"]["properties"]  # the result summary form resolved
        assert {"message", "objects", "frames", "seconds"} <= set(fields), sorted(fields)
    check_written_fields(ds, "tiny")
    assert {m["device"] for m in ds.values("tiny_track")} == {"cpu"}


def test_auto_track_objects_immediate_and_delegated(plugin, make_synthetic):
    ds = make_synthetic(num_videos=1, num_frames=3, num_objects=2)
    r = foo.execute_operator(uri("auto_track_objects"),
                             ctx=dict(dataset=ds, params=dict(model="synthetic", max_objects=2))).result
    assert r["label_field"] == "sampd_auto" and r["objects"] == 2 and r["frames"] == 3
    foo.execute_operator(uri("auto_track_objects"), request_delegation=True,
                         ctx=dict(dataset=ds, params=dict(model="synthetic", max_objects=1, label_field="auto1")))
    (op,) = run_queue(ds)
    assert op.run_state == ExecutionRunState.COMPLETED, op.result.error
    assert ds.count("frames.auto1.detections") == 3
    assert ds.distinct("frames.sampd_auto.detections.index") == [1, 2]


def test_repropagate_from_frame_immediate_and_delegated(plugin, make_synthetic):
    ds = make_synthetic(num_videos=1, num_frames=6, num_objects=2)
    sp.track(ds, model="synthetic", config="point", progress=False)
    sample = ds.first()
    hw = (sample.metadata.frame_height, sample.metadata.frame_width)
    sample.frames[3]["sampd"] = sample.frames[3].ground_truth.copy()  # the correction
    sample.save()
    before = [str(v) for v in ds.values("frames.sampd")[0]]
    params = dict(label_field="sampd", frame_number=3, direction="forward", object_ids="1")
    r = foo.execute_operator(uri("repropagate_from_frame"),
                             ctx=dict(dataset=ds, current_sample=sample.id, params=params)).result
    assert r["frames"] == {"forward": 3} and r["objects"] == [1]
    after = [str(v) for v in ds.values("frames.sampd")[0]]
    assert after[:2] == before[:2] and after[3:] != before[3:]
    sample.reload()
    for fn in (4, 5, 6):  # object 2 kept its detections, object 1 was replaced, each where it was in the list
        assert [d.index for d in sample.frames[fn].sampd.detections] == [1, 2]
    marked = {d.index: d.has_field("is_prompt") and d.is_prompt for d in sample.frames[3].sampd.detections}
    assert marked == {1: True, 2: False}  # the corrected frame: object 1 is now a prompt
    # the form: by default the run's method, whose point prompts barely use a correction (it says so); another one
    op = foo.get_operator(uri("repropagate_from_frame"))
    for preset, method in ((None, "point"), ("overlap", "overlap")):
        form = op.resolve_type(ExecutionContext(request_params=dict(
            dataset_name=ds.name, current_sample=sample.id, params=dict(params, **({"preset": preset} if preset
                                                                                  else {})))), "inputs").to_json()
        props = form["type"]["properties"]
        assert props["preset"]["default"] == "run" and f"method '{method}'" in props["plan"]["view"]["label"]
        assert ("point_method" in props) == (method == "point")
    foo.execute_operator(uri("repropagate_from_frame"), request_delegation=True,
                         ctx=dict(dataset=ds, selected=[sample.id], params=dict(
                             label_field="sampd", frame_number=3, direction="backward", preset="full")))
    (op,) = run_queue(ds)
    assert op.run_state == ExecutionRunState.COMPLETED, op.result.error
    assert op.result.result["frames"] == {"backward": 2}
    final = [str(v) for v in ds.values("frames.sampd")[0]]
    assert final[3:] == after[3:]  # the frames after frame 3 untouched by the backward pass
    gt3 = {d.index: paste_mask(d, hw) for d in sample.frames[3].ground_truth.detections}
    sample.reload()
    assert all(np.array_equal(paste_mask(d, hw), gt3[d.index]) for d in sample.frames[3].sampd.detections)


def test_evaluate_and_browse_failures(plugin, make_synthetic):
    ds = make_synthetic(num_videos=1, num_frames=5, num_objects=2)
    sp.track(ds, model="synthetic", config="point", progress=False)
    r = foo.execute_operator(uri("evaluate_tracking"),
                             ctx=dict(dataset=ds, params=dict(pred_field="sampd", gt_field="ground_truth",
                                                              eval_key="jf"))).result
    assert r["eval_key"] == "jf" and 0 <= r["jf"] <= 1 and r["views"][0] == "jf_failures"
    assert ds.has_saved_view("jf_failures") and ds.has_saved_view("jf_worst")
    result = foo.execute_operator(uri("browse_tracking_failures"),
                                  ctx=dict(dataset=ds, params=dict(eval_key="jf", view="worst")))
    assert result.result["view"] == "jf_worst" and result.result["count"] == 1
    triggers = {q["operator_uri"]: q["params"] for q in result.executor.to_json()["requests"]}
    assert triggers["set_view"]["name"] == "jf_worst"  # with its labels ticked and coloured
    assert {"frames.sampd", "sampd", "frames.ground_truth"} <= set(triggers["set_active_fields"]["fields"])
    assert triggers["set_color_scheme"] == ui.session_color_scheme(ds)
    foo.execute_operator(uri("evaluate_tracking"), request_delegation=True,
                         ctx=dict(dataset=ds, params=dict(pred_field="sampd", gt_field="ground_truth",
                                                          eval_key="jf2")))
    (op,) = run_queue(ds)
    assert op.run_state == ExecutionRunState.COMPLETED, op.result.error
    assert op.result.result["jf"] == pytest.approx(r["jf"])
    assert "jf2" in ds.list_evaluations()


def test_forms_refuse_invalid_input_with_messages_and_write_nothing(plugin, make_synthetic):
    ds = make_synthetic(num_videos=2, num_frames=3, num_objects=1)
    s1, s2 = ds.values("id")
    ok = dict(model="synthetic", prompt_field="ground_truth", label_field="out")
    assert form_errors("track_objects", ds, ok) == []
    # output field == prompt field, even with overwrite
    errs = form_errors("track_objects", ds, dict(ok, label_field="ground_truth", overwrite=True))
    assert any("is the prompt field" in e for e in errs), errs
    # a missing checkpoint file
    errs = form_errors("track_objects", ds, dict(ok, model="vit_b", checkpoint="/nonexistent/sam.pth"))
    assert any("/nonexistent/sam.pth" in e and "does not exist" in e for e in errs), errs
    # no prompts on a sample (its ground truth removed)
    ds.select(s2).clear_frame_field("ground_truth")
    errs = form_errors("track_objects", ds, ok)
    assert any(f"sample {s2}" in e and "no prompts" in e for e in errs), errs
    with pytest.raises(ExecutionError, match="no prompts"):
        foo.execute_operator(uri("track_objects"), ctx=dict(dataset=ds, params=ok), request_delegation=True)
    assert not ds.has_frame_field("out")
    assert DelegatedOperationService().list_operations(dataset_name=ds.name) == []  # nothing was queued
    # the selected sample alone is fine
    assert form_errors("track_objects", ds, dict(ok, view_target="SELECTED_SAMPLES"), selected=[s1]) == []
    # existing labels from another run need overwrite
    sp.track(ds.select(s1), model="synthetic", label_field="out", progress=False)
    errs = form_errors("track_objects", ds, dict(ok, preset="box"), selected=[s1], view_target="SELECTED_SAMPLES")
    assert any("overwrite" in e for e in errs), errs
    # evaluation: same field twice, existing key
    assert any("same field" in e for e in form_errors("evaluate_tracking", ds, dict(pred_field="ground_truth",
                                                                                   gt_field="ground_truth")))
    sp.evaluate_jf(ds.select(s1), "out", eval_key="jf")
    errs = form_errors("evaluate_tracking", ds, dict(pred_field="out", gt_field="ground_truth", eval_key="jf"))
    assert any("Evaluation 'jf' exists" in e for e in errs), errs
    # repropagation needs one sample and a SAM-PD field
    errs = form_errors("repropagate_from_frame", ds, dict(label_field="out", frame_number=2))
    assert any("Open a video" in e for e in errs), errs
    errs = form_errors("repropagate_from_frame", ds, dict(label_field="out", frame_number=9), current_sample=s1)
    assert any("frame 9 is outside the sequence" in e for e in errs), errs
    # an image dataset without image sequences
    images = fo.Dataset()
    try:
        images.add_sample(fo.Sample(filepath="/nonexistent/image.png"))
        for name in ("track_objects", "auto_track_objects", "evaluate_tracking"):
            errs = form_errors(name, images, {})
            assert any("has no sequence field 'sequence_id'" in e for e in errs), (name, errs)
    finally:
        images.delete()


def invalid_inputs(name, dataset, params):
    """The names of the inputs an operator's form marks invalid for ``params``."""
    ctx = ExecutionContext(request_params=dict(dataset_name=dataset.name, params=dict(params)))
    return sorted(k for k, p in foo.get_operator(uri(name)).resolve_input(ctx).type.properties.items() if p.invalid)


def test_forms_flag_the_input_the_error_names(plugin, make_synthetic):
    ds = make_synthetic(num_videos=1, num_frames=2, num_objects=1)
    ok = dict(model="synthetic", prompt_field="ground_truth", label_field="out")
    assert invalid_inputs("track_objects", ds, ok) == []
    assert invalid_inputs("track_objects", ds, dict(ok, model="tiny", checkpoint="/x.pth")) == ["checkpoint"]
    assert invalid_inputs("track_objects", ds, dict(ok, model="vit_x")) == ["model"]
    assert invalid_inputs("track_objects", ds, dict(ok, preset="nope")) == ["preset"]
    assert invalid_inputs("track_objects", ds, dict(ok, label_field="ground_truth", overwrite=True)) == ["label_field"]
    assert invalid_inputs("track_objects", ds, dict(ok, prompt_field="nope")) == ["prompt_field"]
    assert invalid_inputs("auto_track_objects", ds, dict(model="synthetic", device="banana")) == ["device"]


def test_browse_without_evaluation_is_refused(plugin, make_synthetic):
    ds = make_synthetic(num_videos=1, num_frames=2, num_objects=1)
    errs = form_errors("browse_tracking_failures", ds, {})
    assert any("run 'evaluate_tracking' first" in e for e in errs), errs


def test_forms_serialize_with_defaults_drawn_from_the_dataset(plugin, make_synthetic):
    from sampd_plugin.core.config import PRESETS

    ds = make_synthetic(num_videos=2, num_frames=3, num_objects=1)
    sp.track(ds, model="synthetic", progress=False)
    sample_id = ds.first().id
    defaults = {}
    for name in ("track_objects", "auto_track_objects", "repropagate_from_frame", "evaluate_tracking",
                 "browse_tracking_failures"):
        ctx = ExecutionContext(request_params=dict(dataset_name=ds.name, params={}, current_sample=sample_id,
                                                   selected=[sample_id], view=ds.limit(1)._serialize()))
        form = foo.get_operator(uri(name)).resolve_type(ctx, "inputs").to_json()  # what the App receives
        defaults[name] = {k: v["default"] for k, v in form["type"]["properties"].items()}
        if name == "track_objects":
            presets = form["type"]["properties"]["preset"]["type"]["values"]
            assert presets == list(PRESETS)
            assert form["type"]["properties"]["view_target"]["type"]["values"]  # dataset / view / selection
    track = defaults["track_objects"]
    assert track["prompt_field"] == "ground_truth" and track["label_field"] == "sampd_2"  # 'sampd' exists
    assert (track["model"], track["preset"], track["device"], track["evaluate"]) == ("vit_h", "overlap", "auto", True)
    assert defaults["auto_track_objects"]["preset"] == "adaptive"  # automatic mode's default method (issue 22)
    # a form left at its defaults asks for the job the SDK runs without settings: one set of defaults
    assert sp.TrackRequest.from_params(track) == sp.TrackRequest(label_field="sampd_2", evaluate=True)
    assert (sp.TrackRequest.from_params(defaults["auto_track_objects"], mode="auto")
            == sp.TrackRequest(mode="auto"))
    queue_default = inspect.signature(sp.queue_track).parameters["samples_per_operation"].default
    assert track["samples_per_operation"] == queue_default
    assert defaults["repropagate_from_frame"]["label_field"] == "sampd"
    assert defaults["evaluate_tracking"]["pred_field"] == "sampd"
    assert defaults["evaluate_tracking"]["gt_field"] == "ground_truth"


def outputs_json(name, dataset, params, results):
    """The output form FiftyOne resolves for a result (what the App shows after executing / scheduling)."""
    ctx = ExecutionContext(request_params=dict(dataset_name=dataset.name, params=dict(params), results=results))
    return foo.get_operator(uri(name)).resolve_type(ctx, "outputs").to_json()["type"]["properties"]


def test_split_job_is_evaluated_by_its_last_operation(plugin, make_synthetic):
    """The ticked "Evaluate J&F" box survives the split into per-sequence operations: whichever order the worker
    runs them in, the one that finishes the job evaluates it, once, with the same scores as an immediate run."""
    ds = make_synthetic(num_videos=3, num_frames=4, num_objects=2)
    params = dict(model="synthetic", preset="point", label_field="sampd", evaluate=True, samples_per_operation=1)
    scheduled = foo.execute_operator(uri("track_objects"), ctx=dict(dataset=ds, params=params),
                                     request_delegation=True)
    # what the App shows instead of a bare "scheduled": how many operations, what runs them, refresh
    note = outputs_json("track_objects", ds, params, scheduled.result)["scheduled"]["view"]["label"]
    assert "queues 3 operations" in note and "fiftyone delegated launch" in note and "Reload the App's page" in note
    assert "evaluated by the operation that finishes last" in note
    ops = {str(op.id): op for op in run_queue(ds)}
    assert len(ops) == 4 and all(op.run_state == ExecutionRunState.COMPLETED for op in ops.values()), [
        (op.run_state, op.result and op.result.error) for op in ops.values()]
    parent = ops[str(scheduled.result["id"])].result.result
    assert "evaluated by the operation that finishes last" in parent["message"]
    children = [ops[i].result.result for i in parent["operations"]]
    evaluated = [c for c in children if c.get("eval_key")]
    assert len(evaluated) == 1 and evaluated[0]["eval_key"] == "sampd_jf", children
    assert ds.list_evaluations() == ["sampd_jf"] and ds.has_saved_view("sampd_jf_failures")
    direct = sp.evaluate_jf(ds, "sampd", eval_key=None)
    assert evaluated[0]["jf"] == pytest.approx(direct.summary["J&F-Mean"], abs=5e-4)
    assert finish_job(ds, parent["job_id"]) is None  # claimed once: a re-run operation does not evaluate again


def test_evaluation_output_is_a_compact_table_and_plots(plugin, make_synthetic):
    ds = make_synthetic(num_videos=2, num_frames=6, num_objects=2)
    sp.track(ds, model="synthetic", config="point", progress=False)
    r = foo.execute_operator(uri("evaluate_tracking"),
                             ctx=dict(dataset=ds, params=dict(pred_field="sampd", gt_field="ground_truth",
                                                              eval_key="jf"))).result
    rows = r["per_object"]
    assert len(rows) == 4 and [x["JF"] for x in rows] == sorted(x["JF"] for x in rows)  # worst first
    assert all(v == round(v, 3) for x in rows for v in (x["JF"], x["J"], x["F"])) and r["jf"] == round(r["jf"], 3)
    assert rows[0]["object"].startswith("synthetic-") and rows[0]["label"]
    out = outputs_json("evaluate_tracking", ds, {}, r)
    assert out["per_object"]["view"]["name"] == "TableView"
    assert [c["key"] for c in out["per_object"]["view"]["columns"]][:5] == ["object", "label", "JF", "J", "F"]
    assert out["jf_plot"]["view"]["name"] == out["j_plot"]["view"]["name"] == "PlotlyView"
    assert out["j_plot"]["view"]["layout"]["xaxis"]["title"]["text"] == "frame number"
    assert [t["type"] for t in r["jf_plot"]] == ["bar"] * 3  # the traces the App draws
    assert sorted(t["name"] for t in r["j_plot"]) == sorted(x["object"] for x in rows)


def test_plot_tracking_shows_plots_and_opens_a_failure_frame(plugin, make_synthetic):
    ds = make_synthetic(num_videos=2, num_frames=8, num_objects=2)
    sp.track(ds, model="synthetic", config="point", progress=False)
    results = sp.evaluate_jf(ds, "sampd", eval_key="jf")
    worst = min((x for x in results.per_object() if x["first_failure"]), key=lambda x: x["JF"])
    name = ui.object_name(worst)
    form = foo.get_operator(uri("plot_tracking")).resolve_type(
        ExecutionContext(request_params=dict(dataset_name=ds.name, params={})), "inputs").to_json()
    assert name in form["type"]["properties"]["open"]["type"]["values"]
    # the saved failures view is set by name (a frames view handed over as stages gets new sample ids in the App)
    # with its labels ticked, and the frame is selected there (the App's modal, opened by an operator after a view
    # switch, shows the sample without its labels)
    executed = foo.execute_operator(uri("plot_tracking"), ctx=dict(dataset=ds, params=dict(eval_key="jf", open=name)))
    r = executed.result
    assert r["opened"].startswith(f"{name}: frame {worst['first_failure']}, selected") and r["j_plot"]
    requests = {q["operator_uri"]: q["params"] for q in executed.executor.to_json()["requests"]}
    assert requests["set_view"] == {"name": "jf_failures"} and "open_sample" not in requests
    frame = ds.load_saved_view("jf_failures")[requests["set_selected_samples"]["samples"][0]["id"]]
    assert (frame.sample_id, frame.frame_number) == (worst["sample_id"], worst["first_failure"])
    assert {"sampd", "frames.sampd", "ground_truth", "sampd_doubtful"} <= set(requests["set_active_fields"]["fields"])
    # from the failures view itself: no view switch
    executed = foo.execute_operator(uri("plot_tracking"), ctx=dict(dataset=ds, view_name="jf_failures",
                                                                   params=dict(eval_key="jf", open=name)))
    requests = {q["operator_uri"]: q["params"] for q in executed.executor.to_json()["requests"]}
    assert "set_view" not in requests and requests["set_selected_samples"]["samples"][0]["id"] == frame.id


def test_forms_warn_about_sam_without_checkpoint_or_gpu(plugin, make_synthetic):
    ds = make_synthetic(num_videos=1, num_frames=2, num_objects=1)
    ctx = ExecutionContext(request_params=dict(dataset_name=ds.name, params={}))
    props = foo.get_operator(uri("track_objects")).resolve_type(ctx, "inputs").to_json()["type"]["properties"]
    if ui.resolve_device(None) == "cpu" and "is not on this machine" in str(props.get("checkpoint_status")):
        warning = props["model_warning"]["view"]
        assert "no GPU" in warning["description"] and "fiftyone delegated launch" in warning["description"]
    else:  # a machine with a GPU or the checkpoint: nothing to warn about
        assert "model_warning" not in props
    ctx = ExecutionContext(request_params=dict(dataset_name=ds.name, params=dict(model="synthetic")))
    props = foo.get_operator(uri("track_objects")).resolve_type(ctx, "inputs").to_json()["type"]["properties"]
    assert "model_warning" not in props


def test_evaluation_choice_newest_first_unknown_refused_outdated_warned(plugin, make_synthetic):
    ds = make_synthetic(num_videos=1, num_frames=4, num_objects=2)
    sp.track(ds, model="synthetic", progress=False)
    sp.evaluate_jf(ds, "sampd", eval_key="zz_old")
    sp.evaluate_jf(ds, "sampd", eval_key="aa_new")
    assert ui.jf_eval_keys(ds) == ["aa_new", "zz_old"]  # by time, not by name
    for name in ("plot_tracking", "browse_tracking_failures"):
        props = foo.get_operator(uri(name)).resolve_type(
            ExecutionContext(request_params=dict(dataset_name=ds.name, params={})), "inputs").to_json()
        assert props["type"]["properties"]["eval_key"]["default"] == "aa_new"
        assert "outdated" not in props["type"]["properties"]
        errors = form_errors(name, ds, dict(eval_key="nope"))
        assert any("No J&F evaluation 'nope'" in e for e in errors), errors
    with pytest.raises(ExecutionError, match="No J&F evaluation 'nope'"):
        foo.execute_operator(uri("plot_tracking"), ctx=dict(dataset=ds, params=dict(eval_key="nope")))
    # a re-propagation makes both evaluations out of date, which the forms say
    sp.repropagate(ds.first(), "sampd", from_frame=2, progress=False)
    outdated = ui.outdated_sequences(ds, "aa_new")
    assert len(outdated) == 1 and outdated == ui.outdated_sequences(ds, "zz_old")
    props = foo.get_operator(uri("plot_tracking")).resolve_type(
        ExecutionContext(request_params=dict(dataset_name=ds.name, params={})), "inputs").to_json()
    assert "out of date" in props["type"]["properties"]["outdated"]["view"]["description"]
    sp.evaluate_jf(ds, "sampd", eval_key="aa_new", overwrite=True)
    assert ui.outdated_sequences(ds, "aa_new") == [] and len(ui.outdated_sequences(ds, "zz_old")) == 1


def test_execute_is_the_default_until_a_worker_is_seen_and_colours_show_on_dataset_open(plugin, make_synthetic):
    ds = make_synthetic(num_videos=1, num_frames=3, num_objects=1)
    ctx = ExecutionContext(request_params=dict(dataset_name=ds.name, params=dict(model="synthetic")))
    op = foo.get_operator(uri("track_objects"))
    seen = ui.worker_seen()
    assert op.resolve_execution_options(ctx).default_choice_to_delegated is seen
    props = op.resolve_input(ctx).type.properties
    assert ("Schedule is the default" if seen else "Execute is the default") in props["where"].view.label
    # a delegated operation run by a worker: from then on Schedule is the default
    foo.execute_operator(uri("track_objects"), request_delegation=True, ctx=dict(dataset=ds, params=dict(
        model="synthetic", evaluate=False)))
    run_queue(ds)
    assert ui.worker_seen() and not ui.worker_seen(hours=0)
    assert op.resolve_execution_options(ctx).default_choice_to_delegated is True
    # the App opening the dataset (a page load included) gets its saved colour scheme
    opened = foo.execute_operator(uri("show_tracking_colors"), ctx=dict(dataset=ds))
    (request,) = opened.executor.to_json()["requests"]
    assert request["operator_uri"] == "set_color_scheme" and request["params"] == ui.session_color_scheme(ds)
    assert {"path": "frames.sampd", "colorByAttribute": "index", "valueColors": [
        {"value": "1", "color": object_color(1)}]} in request["params"]["fields"]
    ds.reload()  # and its output fields the Annotate tab's label schema: corrected in the App at once
    attrs = {a["name"]: a for a in ds.label_schemas["frames.sampd"]["attributes"]}
    assert "frames.sampd" in ds.active_label_schemas and "range" not in attrs["index"]
    assert all(attrs[a].get("read_only") for a in ("confidence", "score", "iou", "lost", "is_prompt"))
    assert not attrs["index"].get("read_only")
    bare = make_synthetic(num_videos=1, num_frames=2, num_objects=1)
    assert foo.execute_operator(uri("show_tracking_colors"), ctx=dict(dataset=bare)).executor.to_json()[
        "requests"] == [] and bare.label_schemas == {}


def test_an_empty_target_is_refused_before_anything_is_written(plugin, make_synthetic):
    ds = make_synthetic(num_videos=1, num_frames=2, num_objects=1)
    empty = ds.limit(0)
    assert sp.track(empty, model="synthetic", progress=False)["samples"] == 0  # the SDK: nothing tracked, written
    for name in ("track_objects", "auto_track_objects"):  # the App: refused, in the form and at execution
        with pytest.raises(ExecutionError, match="nothing to track"):
            foo.execute_operator(uri(name), ctx=dict(view=empty, params=dict(model="synthetic")))
        op = foo.get_operator(uri(name))
        ctx = ExecutionContext(request_params=dict(dataset_name=ds.name, view=empty._serialize(), params=dict(
            model="synthetic")))
        assert any("nothing to track" in e.reason for e in ValidationContext(ctx, op.resolve_input(ctx), op).errors)
    assert not ds.has_frame_field("sampd") and ds.app_config.color_scheme is None
