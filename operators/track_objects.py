"""``track_objects``: prompted SAM-PD tracking of the target videos (``sampd_plugin.track``)."""

import fiftyone.operators as foo
import fiftyone.operators.types as types

import sampd_plugin as sp

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
            prompt = inputs.enum("prompt_field", fields, default=forms.choice("ground_truth", fields),
                                 label="Prompt field", view=types.Dropdown(label="Prompt field"),
                                 description="Detections (with or without masks) on the frames; each object (index) "
                                             "is prompted on the frame where it first appears; never written")
            if not fields:
                forms.refuse(prompt, "The dataset has no Detections field on its frames to take prompts from")
            label = inputs.str("label_field", default=forms.free_frame_field(ctx.dataset, "sampd"),
                               label="Output field", description="Detections field to write on the frames; an "
                               "existing SAM-PD field resumes its run (same settings) or needs 'overwrite'")
            inputs.bool("overwrite", default=False, label="Overwrite",
                        description="replace labels in the output field that an identical run did not write")
            forms.model_inputs(inputs, ctx)
            pf = ctx.params.get("prompt_field") or forms.choice("ground_truth", fields)
            ev = inputs.bool("evaluate", default=forms.is_ground_truth(target, pf, forms.sequence_kwargs(ctx.params)),
                             label="Evaluate J&F against the prompt field",
                             description="when the prompt field is ground truth (annotated on every frame); a job "
                                         "split into delegated operations is evaluated by the one that finishes last")
            forms.delegation_inputs(inputs, ctx, len(layout.sequences()) if layout is not None else None,
                                    bool(forms.param(ctx.params, "evaluate", ev.default)))
            if fields and layout is not None:
                _validate(inputs, ctx, target, prompt, label, len(layout.sequences()))
        return types.Property(inputs, view=types.View(label="SAM-PD: track objects"))

    def execute(self, ctx):
        kwargs = _kwargs(ctx)
        target = ctx.target_view()
        per_op = int(forms.param(ctx.params, "samples_per_operation", 1))
        evaluate = forms.param(ctx.params, "evaluate", None)
        if evaluate is None:
            evaluate = forms.is_ground_truth(target, kwargs["prompt_field"], forms.sequence_kwargs(ctx.params))
        key = f"{kwargs['label_field']}_jf"
        if ctx.delegated and per_op and forms.count_sequences(target, kwargs) > per_op:
            queued = sp.queue_track(target, samples_per_operation=per_op, delegation_target=ctx.delegation_target,
                                    evaluate=dict(gt_field=kwargs["prompt_field"], eval_key=key) if evaluate else None,
                                    **kwargs)
            return forms.split_result(queued, per_op)
        summary = sp.track(target, progress=forms.progress(ctx), operation=forms.operation_id(ctx), **kwargs)
        jf = None
        if ctx.params.get("job_id"):  # one part of a split job: the part that finishes it evaluates it
            results = sp.finish_job(target, ctx.params["job_id"])
            jf = forms.jf_summary(results, results.key) if results is not None else None
        elif evaluate and summary["tracked"] + summary["skipped"]:
            results = sp.evaluate_jf(target, summary["label_field"], gt_field=kwargs["prompt_field"], eval_key=key,
                                     overwrite=True, **forms.sequence_kwargs(ctx.params))
            jf = forms.jf_summary(results, key)
        forms.finish(ctx)
        return forms.track_result(summary, jf)

    def resolve_output(self, ctx):
        return forms.summary_outputs(ctx, "SAM-PD tracking")


def _kwargs(ctx):
    params = ctx.params
    kw = forms.common_kwargs(params)
    default_prompt = forms.choice("ground_truth", forms.frame_label_fields(ctx.dataset))
    kw.update(prompt_field=params.get("prompt_field") or default_prompt,
              label_field=params.get("label_field") or forms.free_frame_field(ctx.dataset, "sampd"),
              overwrite=bool(params.get("overwrite", False)))
    return kw


def _validate(inputs, ctx, target, prompt_prop, label_prop, num_sequences):
    """Dry-runs the job (``sp.plan_track``) and shows its refusals and notes in the form (prompt geometry is read
    only for targets of at most ``forms.DEEP_CHECK_SEQUENCES`` sequences, to keep the form responsive)."""
    kw = _kwargs(ctx)
    try:
        plan = sp.plan_track(target, kw["label_field"], kw["prompt_field"], kw["config"], kw["model"],
                             kw["checkpoint"], kw["overwrite"], **forms.sequence_kwargs(ctx.params),
                             check_prompts=num_sequences <= forms.DEEP_CHECK_SEQUENCES)
    except ValueError as e:  # SampdInputError: names the argument, field / sequence / frame
        forms.refuse_error(inputs, e, prompt_prop)
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
