"""Shared form pieces of the SAM-PD operators: field choices drawn from the dataset, the model / preset / device
inputs, in-form error and warning messages, execution options, progress and result summaries.

Nothing here tracks or writes labels: the operators call the public SDK (``import sampd_plugin as sp``; its names are
resolved on first use, so registering the plugin imports neither torch nor the tracking code).
A refused input is shown in the form (the property is marked ``invalid`` with a message), which also makes
FiftyOne's operator machinery refuse to execute or queue the operation.
"""

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types

import sampd_plugin as sp

DEVICES = ("auto", "cuda", "cpu")


# --- dataset-derived choices -------------------------------------------------------------------------------------
def frame_label_fields(dataset, types_=(fo.Detections,)):
    """Frame-level label fields of the given types, sorted."""
    if dataset is None or dataset.media_type != "video":
        return []
    schema = dataset.get_frame_field_schema(embedded_doc_type=tuple(types_)) or {}
    return sorted(schema)


def sampd_fields(dataset):
    """Frame-level Detections fields written by SAM-PD (they have a ``<field>_track`` marker)."""
    sample_fields = dataset.get_field_schema() if dataset is not None else {}
    return [f for f in frame_label_fields(dataset) if sp.marker_field(f) in sample_fields]


def is_ground_truth(samples, field):
    """Whether ``frames.<field>`` is annotated beyond the prompt frames (more labeled frames than videos)."""
    try:
        return bool(field) and samples.count(f"frames.{field}") > len(samples)
    except Exception:
        return False


def free_name(taken, base):
    """``base``, or ``base_2``, ``base_3``, ... : the first name not in ``taken``."""
    name, i = base, 1
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    return name


def free_frame_field(dataset, base):
    """A default output field name that does not exist yet (its marker neither)."""
    suffix = sp.MARKER_SUFFIX
    taken = set(dataset.get_frame_field_schema() or {}) | {
        f[: -len(suffix)] for f in dataset.get_field_schema() if f.endswith(suffix)}
    return free_name(taken, base)


def choice(default, values):
    return default if default in values else (values[0] if values else None)


# --- messages -----------------------------------------------------------------------------------------------------
def refuse(prop, message):
    """Marks an input property invalid with ``message`` (the App shows it; execution is refused)."""
    prop.invalid = True
    prop.error_message = str(message)
    return prop


def error(inputs, message, name="sampd_error", label="Cannot run"):
    """An error box in the form that also invalidates it."""
    prop = inputs.view(name, types.Error(label=label, description=str(message)))
    return refuse(prop, message)


def warning(inputs, message, name, label="Note"):
    inputs.view(name, types.Warning(label=label, description=str(message)))


def notice(inputs, message, name):
    inputs.view(name, types.Notice(label=str(message)))


def require_video(inputs, ctx):
    """Adds an error and returns False when the dataset is not a video dataset."""
    if ctx.dataset is None:
        error(inputs, "Open a dataset first")
        return False
    if ctx.dataset.media_type != "video":
        error(inputs, f"Dataset '{ctx.dataset.name}' holds {ctx.dataset.media_type} samples: SAM-PD tracks videos")
        return False
    return True


# --- common inputs --------------------------------------------------------------------------------------------------
def target_input(inputs, ctx, action="Track objects in"):
    """The target choice (dataset / current view / selected samples); returns the resolved target collection."""
    inputs.view_target(ctx, action_description=action)
    return ctx.target_view()


def model_inputs(inputs, ctx, with_preset=True):
    """``model``, ``checkpoint``, ``preset``, ``device`` and ``batch_frames`` inputs, validated in the form."""
    models = types.Dropdown(label="Model")
    for m in sp.MODELS:
        models.add_choice(m, label=sp.MODEL_LABELS[m])
    model = ctx.params.get("model") or "vit_h"
    inputs.enum("model", models.values(), default="vit_h", view=models,
                description="SAM image encoder; 'tiny' and 'synthetic' are for tests and demos")
    ckpt = inputs.str("checkpoint", label="Checkpoint (optional)", required=False,
                      description="path to a SAM .pth; default: $SAMPD_CHECKPOINT_DIR, the FiftyOne zoo cache, "
                                  "or a download on first use")
    try:
        status = sp.checkpoint_status(model, ctx.params.get("checkpoint") or None)
        if status:
            notice(inputs, status, "checkpoint_status")
        sp.check_model(model, ctx.params.get("checkpoint") or None)
    except (FileNotFoundError, ValueError) as e:
        refuse(ckpt, e)
    if with_preset:
        presets = types.Dropdown(label="Method (paper ablation row)")
        for name in sp.PRESETS:
            presets.add_choice(name, label=sp.PRESET_LABELS.get(name, name))
        inputs.enum("preset", presets.values(), default="full", view=presets)
    devices = types.RadioGroup(orientation="horizontal")
    for d in DEVICES:
        devices.add_choice(d, label=d)
    inputs.enum("device", devices.values(), default="auto", label="Device", view=devices,
                description="auto = cuda when the machine running the operation has a GPU")
    inputs.int("batch_frames", default=128, min=1, label="Frames per bulk write")
    return model


def delegation_inputs(inputs, ctx):
    inputs.int("samples_per_operation", default=1, min=0, label="Samples per delegated operation", required=False,
               description="when delegated, the job is split into one queued operation per this many samples so that "
                           "several `fiftyone delegated launch` workers share it (0 = one operation)")


def param(params, name, default):
    """``params[name]``, or ``default`` when it is absent or None (the form's default for SDK callers)."""
    value = params.get(name)
    return default if value is None else value


def config_from_params(params):
    """The SamPDConfig-like value of the form: a hidden ``config`` dict (queued operations) or the preset."""
    return params.get("config") or params.get("preset") or "full"


def common_kwargs(params):
    return dict(model=params.get("model") or "vit_h", checkpoint=params.get("checkpoint") or None,
                device=None if params.get("device") in (None, "auto") else params.get("device"),
                batch_frames=int(params.get("batch_frames") or 128), config=config_from_params(params),
                job_id=params.get("job_id") or None)


# --- execution ------------------------------------------------------------------------------------------------------
def execution_options(ctx, allow_immediate=True):
    """Immediate or delegated; delegated by default for more than one sample or on a CPU-only host."""
    try:
        n = len(ctx.target_view())
    except Exception:
        n = 1
    try:
        cpu_only = sp.resolve_device(None) == "cpu"
    except Exception:
        cpu_only = True
    return foo.ExecutionOptions(allow_immediate_execution=allow_immediate, allow_delegated_execution=True,
                                default_choice_to_delegated=n > 1 or cpu_only)


def progress(ctx, dt=1.0):
    """A FiftyOne progress callback reporting ``"sample 3/10 · frame 45/90"`` through ``ctx.set_progress``."""

    def report(pb):
        ctx.set_progress(progress=pb.progress, label=getattr(pb, "label", None))

    return fo.report_progress(report, dt=dt)


def finish(ctx):
    if not ctx.delegated:
        ctx.ops.reload_dataset()


def summary_outputs(ctx, title):
    """The result summary of a tracking run (``ctx.results``)."""
    outputs = types.Object()
    outputs.str("message", label="Result")
    r = ctx.results or {}
    for key, label, kind in (("objects", "Objects tracked", "int"), ("frames", "Frames written", "int"),
                             ("samples_tracked", "Samples tracked", "int"), ("samples_skipped",
                             "Samples skipped (already finished)", "int"), ("seconds", "Time (s)", "float"),
                             ("frames_per_second", "Frames per second", "float"), ("jf", "J&F", "float"),
                             ("j", "J-Mean", "float"), ("f", "F-Mean", "float"),
                             ("operations", "Queued operations", "list")):
        if r.get(key) is None:
            continue
        if kind == "int":
            outputs.int(key, label=label)
        elif kind == "float":
            outputs.float(key, label=label)
        else:
            outputs.list(key, types.String(), label=label)
    return types.Property(outputs, view=types.View(label=title))


def track_result(summary, jf=None):
    """The JSON result of a tracking operation from an SDK summary (+ optional J&F summary)."""
    res = dict(summary)
    res["samples_tracked"] = len(summary.get("tracked", []))
    res["samples_skipped"] = len(summary.get("skipped", []))
    msg = (f"{res['samples_tracked']} sample(s) tracked into frames.{summary['label_field']}: {summary['objects']} "
           f"objects, {summary['frames']} frames in {summary['seconds']:.1f} s on {summary['device']}")
    if res["samples_skipped"]:
        msg += f"; {res['samples_skipped']} already finished sample(s) skipped"
    if jf:
        res.update(jf)
        msg += f"; J&F {jf['jf']:.3f} (eval key '{jf['eval_key']}')"
    res["message"] = msg
    return res


def jf_summary(results, eval_key):
    s = results.summary
    return dict(eval_key=eval_key, jf=s.get("J&F-Mean"), j=s.get("J-Mean"), f=s.get("F-Mean"),
                num_objects=s.get("num_objects"), num_sequences=s.get("num_sequences"))
