"""``evaluate_tracking``: DAVIS J&F of a tracked field against ground truth (``sampd_plugin.evaluate_jf``)."""

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types

import sampd_plugin as sp
from sampd_plugin.fo import ui

from . import forms


class EvaluateTracking(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="evaluate_tracking",
            label="SAM-PD: evaluate tracking (J&F)",
            description="Score tracked masks against ground truth with DAVIS J&F; saves failure-browsing views",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        if not forms.require_sequences(inputs, ctx):
            return types.Property(inputs)
        target = forms.target_input(inputs, ctx, "Evaluate")
        forms.sequence_inputs(inputs, ctx, target)
        fields = forms.frame_label_fields(ctx.dataset, (fo.Detections, fo.Segmentation))
        pred_default, gt_default = _defaults(ctx.dataset)
        pred = inputs.enum("pred_field", fields, default=pred_default, label="Predictions",
                           view=types.Dropdown(label="Predictions"))
        gt = inputs.enum("gt_field", fields, default=gt_default, label="Ground truth",
                         view=types.Dropdown(label="Ground truth"))
        key = inputs.str("eval_key", default=_default_key(ctx.dataset), label="Evaluation key")
        inputs.bool("overwrite", default=False, label="Overwrite an existing evaluation with this key")
        inputs.float("failure_th", default=ui.FAILURE_TH, min=0.0, max=1.0, label="Failure threshold (J)",
                     description="frames where an object's J is below it are failures")
        p = ctx.params
        if len(fields) < 2:
            forms.refuse(gt, "Evaluation needs two Detections/Segmentation fields on the frames")
        elif (p.get("pred_field") or pred.default) == (p.get("gt_field") or gt.default):
            forms.refuse(gt, "Predictions and ground truth are the same field")
        k = p.get("eval_key") or key.default
        if not k.isidentifier():
            forms.refuse(key, f"'{k}' is not a valid evaluation key (letters, digits, '_')")
        elif k in ctx.dataset.list_evaluations() and not p.get("overwrite"):
            forms.refuse(key, f"Evaluation '{k}' exists: tick 'overwrite' or choose another key")
        elif k not in ctx.dataset.list_evaluations() and _views_taken(ctx.dataset, k):
            forms.refuse(key, f"saved view '{_views_taken(ctx.dataset, k)[0]}' exists and is not an evaluation's: "
                              "it is never overwritten; choose another key")
        if len(target) == 0:
            forms.error(inputs, "The target has no samples")
        return types.Property(inputs, view=types.View(label="SAM-PD: evaluate tracking"))

    def execute(self, ctx):
        p = ctx.params
        key = p.get("eval_key") or _default_key(ctx.dataset)
        pred_default, gt_default = _defaults(ctx.dataset)
        results = sp.evaluate_jf(ctx.target_view(), p.get("pred_field") or pred_default,
                                 gt_field=p.get("gt_field") or gt_default, eval_key=key,
                                 overwrite=bool(p.get("overwrite")),
                                 failure_th=float(forms.param(p, "failure_th", ui.FAILURE_TH)),
                                 **forms.sequence_kwargs(p))
        forms.finish(ctx)
        res = results.scores()
        res.update(forms.jf_report(results))
        res["views"] = ui.view_names(key)
        res["message"] = (f"J&F {res['jf']:.3f} (J {res['j']:.3f}, F {res['f']:.3f}) over {res['num_objects']} "
                          f"objects of {res['num_sequences']} sequences; browse the failures with "
                          "'browse_tracking_failures'"
                          if res["jf"] is not None else "no scored objects")
        return res

    def resolve_output(self, ctx):
        return forms.summary_outputs(ctx, "J&F evaluation", evaluate=False, splits=False)


def _views_taken(dataset, eval_key):
    """The saved views that exist under the names of ``eval_key``'s views."""
    return [v for v in ui.view_names(eval_key) if dataset.has_saved_view(v)]


def _default_key(dataset):
    """``jf``, ``jf_2``, ...: the first key that names no evaluation and none of whose views' names is taken."""
    evaluations = set(dataset.list_evaluations())
    return forms.free_name(lambda k: k in evaluations or _views_taken(dataset, k), "jf")


def _defaults(dataset):
    """Default predictions (the first SAM-PD output field) and ground truth (``ground_truth``) fields."""
    fields = forms.frame_label_fields(dataset, (fo.Detections, fo.Segmentation))
    tracked = forms.sampd_fields(dataset)
    return forms.choice(tracked[0] if tracked else "sampd", fields), forms.choice("ground_truth", fields)
