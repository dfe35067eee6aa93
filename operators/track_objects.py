"""``track_objects``: prompted SAM-PD tracking of the target videos (``sampd_plugin.track``)."""

import fiftyone.operators as foo
import fiftyone.operators.types as types

import sampd_plugin as sp
from sampd_plugin.fo import ui

from . import forms


class TrackObjects(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="track_objects",
            label="SAM-PD: track objects",
            description="Track and segment the prompted objects of videos with SAM-PD (prompt denoising)",
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
            target = forms.target_input(inputs, ctx, "Track objects in")
            layout = forms.sequence_inputs(inputs, ctx, target)
            fields = forms.frame_label_fields(ctx.dataset)
            prompt = inputs.enum("prompt_field", fields, default=forms.default_prompt_field(ctx.dataset),
                                 label="Prompt field", view=types.Dropdown(label="Prompt field"),
                                 description="Detections (with or without masks) on the frames; each object (index) "
                                             "is prompted on the frame where it first appears; never written")
            if not fields:
                forms.refuse(prompt, "The dataset has no Detections field on its frames to take prompts from")
            inputs.str("label_field", default=forms.default_label_field(ctx, "track"), label="Output field",
                       description="Detections field to write on the frames; an existing SAM-PD field resumes its "
                                   "run (same settings) or needs 'overwrite'")
            inputs.bool("overwrite", default=False, label="Overwrite",
                        description="replace labels in the output field that an identical run did not write")
            forms.model_inputs(inputs, ctx)
            pf = ctx.params.get("prompt_field") or prompt.default
            ev = inputs.bool("evaluate", default=forms.is_ground_truth(target, pf, forms.sequence_kwargs(ctx.params)),
                             label="Evaluate J&F against the prompt field",
                             description="when the prompt field is ground truth (annotated on every frame); a job "
                                         "split into delegated operations is evaluated by the one that finishes last")
            forms.delegation_inputs(inputs, ctx, len(layout.sequences()) if layout is not None else None,
                                    bool(forms.param(ctx.params, "evaluate", ev.default)))
            if fields and layout is not None:
                _validate(inputs, ctx, target, prompt, len(layout.sequences()))
        return types.Property(inputs, view=types.View(label="SAM-PD: track objects"))

    def execute(self, ctx):
        forms.refuse_empty(ui.layout_of(ctx.target_view(), **forms.sequence_kwargs(ctx.params)))
        result = sp.run_request(ctx.target_view(), forms.track_request(ctx, "track"), **forms.run_options(ctx))
        forms.finish(ctx)
        return forms.job_result(result)

    def resolve_output(self, ctx):
        return forms.summary_outputs(ctx, "SAM-PD tracking")


def _validate(inputs, ctx, target, prompt_prop, num_sequences):
    """Dry-runs the job (``sp.plan_track``) and shows its refusals and notes in the form (prompt geometry is read
    only for targets of at most ``forms.DEEP_CHECK_SEQUENCES`` sequences, to keep the form responsive)."""
    try:
        forms.refuse_empty(ui.layout_of(target, **forms.sequence_kwargs(ctx.params)))
        plan = sp.plan_track(target, forms.track_request(ctx, "track"),
                             check_prompts=num_sequences <= forms.DEEP_CHECK_SEQUENCES)
    except ValueError as e:  # SampdInputError: names the field / sequence / frame; its .field: the input at fault
        forms.refuse_input(inputs, e, fallback=prompt_prop)
        return
    if plan.errors:
        forms.error(inputs, "\n".join(plan.errors[:5]), label="Invalid input: nothing will be written")
        return
    if plan.layout.has_field(plan.label_field):
        forms.warning(inputs, f"'{plan.layout.path(plan.label_field)}' exists: {len(plan.done)} sequence(s) "
                              f"finished by an identical run are skipped; {len(plan.clear)} sequence(s) are cleared "
                              "and re-tracked", "label_field_exists", label="Output field exists")
    forms.plan_notices(inputs, plan)
    forms.notice(inputs, f"{len(plan.todo)} sequence(s) to track, {len(plan.done)} already finished", "plan")
