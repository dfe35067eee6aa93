"""``auto_track_objects``: SAM-PD without prompts (VIS mode, ``sampd_plugin.auto_track``)."""

import fiftyone.operators as foo
import fiftyone.operators.types as types

import sampd_plugin as sp

from . import forms


class AutoTrackObjects(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="auto_track_objects",
            label="SAM-PD: track everything (automatic masks)",
            description="Segment the first frame of each video automatically and track every mask with SAM-PD",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_execution_options(self, ctx):
        return forms.execution_options(ctx)

    def resolve_delegation(self, ctx):
        return ctx.params.get("delegate", None)

    def resolve_input(self, ctx):
        inputs = types.Object()
        if forms.require_sequences(inputs, ctx):
            target = forms.target_input(inputs, ctx, "Track everything in")
            layout = forms.sequence_inputs(inputs, ctx, target)
            label = inputs.str("label_field", default=forms.free_frame_field(ctx.dataset, "sampd_auto"),
                               label="Output field")
            inputs.bool("overwrite", default=False, label="Overwrite",
                        description="replace labels in the output field that an identical run did not write")
            inputs.int("max_objects", default=100, min=1, label="Max objects per sequence",
                       description="the best automatic masks of the first frame (paper Sec. IV-B, VIS)")
            forms.model_inputs(inputs, ctx)
            forms.delegation_inputs(inputs, ctx, len(layout.sequences()) if layout is not None else None)
            if layout is not None:
                _validate(inputs, ctx, target, label)
        return types.Property(inputs, view=types.View(label="SAM-PD: track everything"))

    def execute(self, ctx):
        kwargs = _kwargs(ctx)
        target = ctx.target_view()
        per_op = int(forms.param(ctx.params, "samples_per_operation", 1))
        if ctx.delegated and per_op and forms.count_sequences(target, kwargs) > per_op:
            queued = sp.queue_track(target, mode="auto", samples_per_operation=per_op,
                                    delegation_target=ctx.delegation_target, **kwargs)
            return forms.split_result(queued, per_op)
        summary = sp.auto_track(target, progress=forms.progress(ctx), operation=forms.operation_id(ctx), **kwargs)
        forms.finish(ctx)
        return forms.track_result(summary)

    def resolve_output(self, ctx):
        return forms.summary_outputs(ctx, "SAM-PD automatic tracking", evaluate=False)


def _kwargs(ctx):
    params = ctx.params
    kw = forms.common_kwargs(params)
    kw.update(label_field=params.get("label_field") or forms.free_frame_field(ctx.dataset, "sampd_auto"),
              overwrite=bool(params.get("overwrite", False)), max_objects=forms.param(params, "max_objects", 100))
    return kw


def _validate(inputs, ctx, target, label_prop):
    kw = _kwargs(ctx)
    try:
        plan = sp.plan_track(target, kw["label_field"], None, kw["config"], kw["model"], kw["checkpoint"],
                             kw["overwrite"], mode="auto", max_objects=kw["max_objects"],
                             **forms.sequence_kwargs(ctx.params))
    except ValueError as e:  # SampdInputError included
        forms.refuse_error(inputs, e, label_prop)
        return
    if plan.errors:
        forms.error(inputs, "\n".join(plan.errors[:5]), label="Invalid input: nothing will be written")
        return
    forms.plan_notices(inputs, plan)
    forms.notice(inputs, f"{len(plan.todo)} sequence(s) to track, {len(plan.done)} already finished", "plan")
