"""``repropagate_from_frame``: after correcting objects on frame k of a SAM-PD output field, re-run SAM-PD from k
and replace only the frames after (or before) it (``sampd_plugin.repropagate``)."""

import fiftyone.operators as foo
import fiftyone.operators.types as types

import sampd_plugin as sp

from . import forms


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
                forms.sequence_inputs(inputs, ctx, ctx.dataset.select(sample_id))
        else:
            inputs.int("frame_number", default=int(selected.get("frame_number") or 1), min=1, required=True,
                       label="Corrected frame",
                       description="the frame you corrected (its detections are the prompts)")
        directions = types.RadioGroup(orientation="horizontal")
        directions.add_choice("forward", label="forward (replace later frames)")
        directions.add_choice("backward", label="backward (replace earlier frames)")
        directions.add_choice("both", label="both")
        inputs.enum("direction", directions.values(), default="forward", label="Direction",
                    view=directions)
        inputs.str("object_ids", required=False, label="Object ids (optional)",
                   description="comma-separated indexes to re-propagate; empty = every object on the frame")
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
                forms.notice(inputs, f"objects {plan.object_ids} of frame {plan.from_frame} are re-propagated "
                                     f"{plan.direction} with {plan.model}", "plan")
            except ValueError as e:  # SampdInputError included
                forms.refuse_input(inputs, e)
        return types.Property(inputs, view=types.View(label="SAM-PD: re-propagate from a corrected frame"))

    def execute(self, ctx):
        sample_id = _sample_id(ctx)
        default_field = forms.choice(None, forms.sampd_fields(ctx.dataset))
        summary = sp.repropagate(ctx.dataset.select(sample_id), device=_device(ctx.params),
                                 progress=forms.progress(ctx),
                                 **_kwargs(ctx.params, default_field, ctx.dataset.media_type == "image"))
        forms.finish(ctx)
        frames = sum(summary["frames"].values())
        summary["message"] = (f"objects {summary['objects']} re-propagated {summary['direction']} from frame "
                              f"{summary['from_frame']}: {frames} frames replaced in {summary['seconds']:.1f} s")
        return summary

    def resolve_output(self, ctx):
        if forms.is_scheduled(ctx.results):
            return forms.summary_outputs(ctx, "SAM-PD re-propagation", evaluate=False, splits=False)
        outputs = types.Object()
        outputs.str("message", label="Result")
        return types.Property(outputs, view=types.View(label="SAM-PD re-propagation"))


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
    return dict(label_field=params.get("label_field") or default_field, from_frame=from_frame,
                direction=params.get("direction") or "forward", object_ids=ids or None,
                **forms.sequence_kwargs(params))
