"""``repropagate_from_frame``: after correcting objects on frame k of a SAM-PD output field, re-run SAM-PD from k
and replace only the frames after (or before) it (``sampd_plugin.repropagate``)."""

import fiftyone.operators as foo
import fiftyone.operators.types as types

import sampd_plugin as sp
from sampd_plugin.fo import ui

from . import forms


#: the ``preset`` choice that keeps the method the field was tracked with (its ``_track`` marker's settings)
RUN_PRESET = "run"


class RepropagateFromFrame(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="repropagate_from_frame",
            label="SAM-PD: re-propagate from a corrected frame",
            description="Re-track the objects of a corrected frame and replace the frames after / before it",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_execution_options(self, ctx):
        return foo.ExecutionOptions(allow_immediate_execution=True, allow_delegated_execution=True,
                                    default_choice_to_delegated=False)

    def resolve_input(self, ctx):
        inputs = types.Object()
        if not forms.require_sequences(inputs, ctx):
            return types.Property(inputs)
        sample_id = _sample_id(ctx)
        images = ctx.dataset.media_type == "image"
        fields = forms.sampd_fields(ctx.dataset)
        selected = (ctx.selected_labels or [{}])[0]
        default_field = forms.choice(selected.get("field"), fields)
        field = inputs.enum("label_field", fields, default=default_field, label="SAM-PD output field",
                            view=types.Dropdown(label="SAM-PD output field"))
        if images:  # the opened image is the corrected frame; its sequence is re-propagated
            if sample_id is not None:
                forms.sequence_inputs(inputs, ctx, ctx.dataset.select(sample_id), count=False)
        else:
            inputs.int("frame_number", default=_default_frame(ctx, sample_id, ctx.params.get("label_field")
                                                              or default_field), min=1, required=True,
                       label="Corrected frame",
                       description="the frame you corrected (its detections are the prompts; frames count from "
                                   "1); by default the frame you edited last, e.g. in the Annotate tab")
        directions = types.RadioGroup(orientation="horizontal")
        directions.add_choice("forward", label="forward (replace later frames)")
        directions.add_choice("backward", label="backward (replace earlier frames)")
        directions.add_choice("both", label="both")
        inputs.enum("direction", directions.values(), default="forward", label="Direction",
                    view=directions)
        inputs.str("object_ids", required=False, label="Object ids (optional)",
                   description="comma-separated indexes to re-propagate; empty = every object on the frame")
        presets = types.Dropdown(label="Method")
        presets.add_choice(RUN_PRESET, label="the run's own method and settings")
        for name in ui.PRESETS:
            presets.add_choice(name, label=ui.PRESET_LABELS.get(name, name))
        inputs.enum("preset", presets.values(), default=RUN_PRESET, view=presets,
                    description="by default the method the field was tracked with; another one applies to the "
                                "re-propagated frames only")
        forms.device_input(inputs, ctx)
        if sample_id is None:
            forms.error(inputs, "Open a video (or the corrected image of an image sequence) in the sample modal, or "
                                "select exactly one sample, to re-propagate it")
        elif not fields:
            forms.refuse(field, "No SAM-PD output field on this dataset: run 'track_objects' first")
        else:
            try:
                kw = _kwargs(ctx.params, default_field, images)
                plan = sp.plan_repropagate(ctx.dataset.select(sample_id), **kw)
                method = plan.config.preset_name or "custom settings"
                forms.notice(inputs, f"objects {plan.object_ids} of frame {plan.sequence.frame_name(plan.from_frame)} "
                                     f"of {plan.sequence.name} are re-propagated {plan.direction} with {plan.model}, "
                                     f"method '{method}'", "plan")
                if plan.config.prompt_type == "point":
                    forms.warning(inputs, f"'{method}' prompts each frame with one point of the previous mask: the "
                                          "mask you corrected only moves that point, and the later frames keep the "
                                          "method's own failures. Choose a box method (e.g. 'overlap') to propagate "
                                          "the corrected mask itself.", "point_method",
                                  label="A point-prompt method barely uses your correction")
            except ValueError as e:  # SampdInputError included
                forms.refuse_input(inputs, e)
        return types.Property(inputs, view=types.View(label="SAM-PD: re-propagate from a corrected frame"))

    def execute(self, ctx):
        sample_id = _sample_id(ctx)
        default_field = forms.choice(None, forms.sampd_fields(ctx.dataset))
        kwargs = _kwargs(ctx.params, default_field, ctx.dataset.media_type == "image")
        if ctx.dataset.media_type == "video" and ctx.params.get("frame_number") is None:
            kwargs["from_frame"] = _default_frame(ctx, sample_id, kwargs["label_field"])
        summary = sp.repropagate(ctx.dataset.select(sample_id), device=_device(ctx.params),
                                 progress=forms.progress(ctx), **kwargs)
        forms.finish(ctx)
        if ctx.current_sample and not ctx.delegated:  # the sample modal reopens on the new labels (it keeps the
            ctx.ops.close_sample()  # ones it loaded, and an Annotate tab would save edits made on them)
            ctx.trigger("open_sample", dict(id=ctx.current_sample, mode="annotate"))
        frames = sum(summary["frames"].values())
        message = (f"objects {summary['objects']} re-propagated {summary['direction']} from frame "
                   f"{summary['frame_name']}: {frames} frames replaced in {summary['seconds']:.1f} s")
        if summary["misfits"]:
            where = ", ".join(f"frame {fn}: objects {ids}" for fn, ids in list(summary["misfits"].items())[:5])
            message += (f"; {len(summary['misfits'])} frame(s) have a box that no longer fits its mask (moved in the "
                        f"App without its mask): {where}: re-propagate those objects or fix the boxes")
        field = summary["label_field"].split("frames.")[-1]
        outdated = [k for k in ui.jf_eval_keys(ctx.dataset) if forms.eval_fields(ctx.dataset, k)[0].split("frames.")[-1]
                    == field]
        if outdated:
            message += (f"; evaluation(s) {', '.join(outdated)} are out of date for this sequence: run "
                        "'evaluate_tracking' again to refresh their scores and failure views")
        summary["message"] = message
        return summary

    def resolve_output(self, ctx):
        if forms.is_scheduled(ctx.results):
            return forms.summary_outputs(ctx, "SAM-PD re-propagation", evaluate=False, splits=False)
        outputs = types.Object()
        outputs.str("message", label="Result")
        return types.Property(outputs, view=types.View(label="SAM-PD re-propagation"))


def _default_frame(ctx, sample_id, label_field):
    """The corrected frame to propose: the frame of a selected label, else the frame edited last since SAM-PD wrote
    the field (``ui.edited_frames``: the App's Annotate tab saves each edit), else 1."""
    selected = (ctx.selected_labels or [{}])[0]
    if selected.get("frame_number"):
        return int(selected["frame_number"])
    if sample_id is None or not label_field:
        return 1
    try:
        edited = ui.edited_frames(ctx.dataset.select(sample_id), label_field)
    except ValueError:  # not a SAM-PD field, several samples: the form says why elsewhere
        return 1
    return edited[0] if edited else 1


def _sample_id(ctx):
    if ctx.current_sample:
        return ctx.current_sample
    if len(ctx.selected) == 1:
        return ctx.selected[0]
    return None


def _device(params):
    d = params.get("device")
    return None if d in (None, "auto") else d


def _kwargs(params, default_field=None, images=False):
    """SDK arguments; for image sequences the opened image is the corrected frame (``from_frame=None``)."""
    ids = params.get("object_ids")
    if isinstance(ids, str):
        try:
            ids = [int(v) for v in ids.replace(" ", "").split(",") if v] or None
        except ValueError:
            raise ValueError(f"object ids must be comma-separated integers, got {params.get('object_ids')!r}")
    from_frame = None if images else forms.param(params, "frame_number", 1)
    preset = params.get("preset")
    return dict(label_field=params.get("label_field") or default_field, from_frame=from_frame,
                direction=params.get("direction") or "forward", object_ids=ids or None,
                config=None if preset in (None, "", RUN_PRESET) else preset, **forms.sequence_kwargs(params))
