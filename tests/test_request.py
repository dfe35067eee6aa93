"""TrackRequest: one set of defaults, validated once (errors name the setting), the same request through operator
parameters (queued operations) and from a form's values; the SDK builds the same request from its arguments."""

import json

import pytest

fo = pytest.importorskip("fiftyone")

import sampd_plugin as sp  # noqa: E402
from sampd_plugin.core.config import SamPDConfig  # noqa: E402
from sampd_plugin.errors import SampdInputError  # noqa: E402
from sampd_plugin.fo.request import TrackRequest  # noqa: E402
from sampd_plugin.fo.store import DEFAULT_BATCH_FRAMES  # noqa: E402


def test_defaults_are_the_requests_own():
    r = TrackRequest()
    assert (r.mode, r.prompt_field, r.label_field, r.model) == ("track", "ground_truth", "sampd", "vit_h")
    assert r.device is None
    assert r.batch_frames == DEFAULT_BATCH_FRAMES and not r.evaluate
    auto = TrackRequest(mode="auto")
    assert (auto.prompt_field, auto.label_field, auto.max_objects) == (None, "sampd_auto", 100)
    # the method: overlap-aware tracking when prompted (issue 18); adaptive denoising in automatic mode (issue 22)
    assert (r.config.preset_name, auto.config.preset_name) == ("overlap", "adaptive") and r.config.overlap
    assert TrackRequest(mode="auto", config="full").config == SamPDConfig()
    assert TrackRequest(mode="auto", config={"grid_size": 5}).config.preset_name is None
    back = TrackRequest.from_params(auto.to_params())
    assert back.config == SamPDConfig.preset("adaptive")


def test_config_is_parsed_when_the_request_is_built():
    assert TrackRequest(config="box").config == SamPDConfig.preset("box")
    assert TrackRequest(config={"grid_size": 5}).config == SamPDConfig(grid_size=5)
    cfg = SamPDConfig.preset("full-iou")
    assert TrackRequest(config=cfg).config is cfg


@pytest.mark.parametrize("request_", [
    TrackRequest(),
    TrackRequest(model="tiny", config="box", device="cpu", batch_frames=7, overwrite=True, label_field="out",
                 sequence_field="seq", order_field="n", job_id="j1", stale_seconds=30.0),
    TrackRequest(mode="auto", model="synthetic", max_objects=3, config={"refine": False}),
    TrackRequest(prompt_field="gt", evaluate={"eval_key": "k"}, allow_overwrite_ground_truth=True),
])
def test_operator_parameters_give_the_same_request_back(request_):
    params = request_.to_params()
    assert json.loads(json.dumps(params)) == params  # what a delegated operation stores
    assert TrackRequest.from_params(params) == request_


def test_form_values_and_dataset_defaults():
    form = {"preset": "box", "device": "auto", "checkpoint": "", "batch_frames": 64, "model": "tiny",
            "samples_per_operation": 2, "delegate": True}
    r = TrackRequest.from_params(form, label_field="sampd_2", prompt_field="gt")
    assert (r.config, r.device, r.checkpoint, r.batch_frames) == (SamPDConfig.preset("box"), None, None, 64)
    assert (r.label_field, r.prompt_field) == ("sampd_2", "gt")
    assert TrackRequest.from_params({"label_field": "mine"}, label_field="sampd_2").label_field == "mine"
    queued = TrackRequest(config="box").to_params()
    assert TrackRequest.from_params(dict(queued, preset="full")).config == SamPDConfig.preset("box")  # config wins


@pytest.mark.parametrize("settings, field, message", [
    (dict(mode="vis"), "mode", "mode must be one of"),
    (dict(prompt_field=""), "prompt_field", "a prompt field is required"),
    (dict(model="vit_x"), "model", "unknown model 'vit_x'"),
    (dict(model="tiny", checkpoint="/x.pth"), "checkpoint", "takes no checkpoint"),
    (dict(config="nope"), "config", "unknown preset 'nope'"),
    (dict(config={"grid_size": 2}), "config", "grid_size must be an odd integer"),
    (dict(batch_frames=0), "batch_frames", "batch_frames must be >= 1"),
    (dict(mode="auto", max_objects=0), "max_objects", "max_objects must be >= 1"),
    (dict(device="banana"), "device", "unknown device 'banana'"),
    (dict(mode="auto", evaluate=True), "evaluate", "automatic run"),
])
def test_invalid_settings_are_refused_naming_the_setting(settings, field, message):
    with pytest.raises(SampdInputError, match=message) as err:
        TrackRequest(**settings)
    assert err.value.field == field


def test_evaluation_defaults():
    r = TrackRequest(prompt_field="gt", label_field="out", evaluate={})
    assert (r.evaluate, r.gt_field, r.eval_key) == (True, "gt", "out_jf")
    assert not TrackRequest(gt_field="x").evaluate


def test_a_segmenter_instance_cannot_become_operator_parameters():
    from sampd_plugin.backends.tiny import tiny_backend

    r = TrackRequest(model=tiny_backend(seed=0))
    with pytest.raises(SampdInputError, match="cannot be delegated") as err:
        r.to_params()
    assert err.value.field == "model"


def test_settings_given_positionally_are_refused_with_a_hint():
    with pytest.raises(TypeError, match="settings are keyword arguments"):
        TrackRequest.of("ground_truth", label_field="out")


def test_the_sdk_builds_the_same_request_from_its_arguments(make_synthetic):
    ds = make_synthetic(num_videos=1, num_frames=3, num_objects=1)
    request = TrackRequest(model="synthetic", config="box", label_field="out")
    by_request, by_settings = sp.plan_track(ds, request), sp.plan_track(ds, model="synthetic", config="box",
                                                                         label_field="out")
    assert by_request.request == by_settings.request and by_request.key == by_settings.key
    assert sp.plan_track(ds, request, config="full").request.config == SamPDConfig()  # settings replace
    with pytest.raises(SampdInputError) as err:
        sp.plan_track(ds, request, label_field="ground_truth")
    assert err.value.field == "label_field"
    summary = sp.track(ds, request, progress=False)
    assert summary["run"] == by_request.key and summary["evaluation"] is None
