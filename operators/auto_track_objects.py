"""``auto_track_objects``: SAM-PD without prompts (VIS mode, ``sampd_plugin.auto_track``)."""

import fiftyone.operators as foo
import fiftyone.operators.types as types

import sampd_plugin as sp
from sampd_plugin.fo import ui

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
            label = inputs.str("label_field", default=forms.default_label_field(ctx, "auto"),
                               label="Output field")
            inputs.bool("overwrite", default=False, label="Overwrite",
                        description="replace labels in the output field that an identical run did not write")
            inputs.int("max_objects", default=sp.TrackRequest(mode="auto").max_objects, min=1,
                       label="Max objects per sequence",
                       description="the best automatic masks of the first frame (paper Sec. IV-B, VIS)")
            forms.model_inputs(inputs, ctx, mode="auto")
            forms.delegation_inputs(inputs, ctx, len(layout.sequences()) if layout is not None else None)
            if layout is not None:
                _validate(inputs, ctx, target, label)
        return types.Property(inputs, view=types.View(label="SAM-PD: track everything"))

    def execute(self, ctx):
        forms.refuse_empty(ui.layout_of(ctx.target_view(), **forms.sequence_kwargs(ctx.params)))
        result = sp.run_request(ctx.target_view(), forms.track_request(ctx, "auto"), **forms.run_options(ctx))
        forms.finish(ctx)
        return forms.job_result(result)

    def resolve_output(self, ctx):
        return forms.summary_outputs(ctx, "SAM-PD automatic tracking", evaluate=False)


def _validate(inputs, ctx, target, label_prop):
    try:
        forms.refuse_empty(ui.layout_of(target, **forms.sequence_kwargs(ctx.params)))
        plan = sp.plan_track(target, forms.track_request(ctx, "auto"))
    except ValueError as e:  # SampdInputError: its .field is the input at fault
        forms.refuse_input(inputs, e, fallback=label_prop)
        return
    if plan.errors:
        forms.error(inputs, "\n".join(plan.errors[:5]), label="Invalid input: nothing will be written")
        return
    forms.plan_notices(inputs, plan)
    forms.notice(inputs, f"{len(plan.todo)} sequence(s) to track, {len(plan.done)} already finished", "plan")
