"""``plot_tracking``: the plots and the worst objects of a J&F evaluation in the App, and the first failure frame of
one object opened in the sample modal."""

import fiftyone.operators as foo
import fiftyone.operators.types as types

from sampd_plugin.fo import ui

from . import forms

#: objects offered in the "open the first failure of" choice (the worst ones)
OPEN_CHOICES = 20


class PlotTracking(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="plot_tracking",
            label="SAM-PD: plot tracking results (J&F)",
            description="J&F per object and J over time of an evaluation, the worst objects, and their failure frames",
            dynamic=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        if not forms.require_sequences(inputs, ctx):
            return types.Property(inputs)
        keys, key = forms.eval_key_input(inputs, ctx)
        if not keys:
            forms.refuse(key, "No J&F evaluation on this dataset: run 'evaluate_tracking' first")
            return types.Property(inputs)
        results = ctx.dataset.load_evaluation_results(ctx.params.get("eval_key") or keys[-1])
        failing = [r for r in forms.jf_report(results)["per_object"] if r["first_failure"] is not None]
        choices = types.Dropdown(label="Open the first failure frame of (optional)")
        for r in failing[:OPEN_CHOICES]:
            choices.add_choice(r["object"], label=f"{r['object']} ({r['label']}): J&F {r['JF']:.3f}, first failure "
                                                  f"on frame {r['first_failure']}")
        inputs.enum("open", choices.values(), required=False, view=choices,
                    description="the worst objects; the frame opens in the sample modal")
        return types.Property(inputs, view=types.View(label="SAM-PD: plot tracking results"))

    def execute(self, ctx):
        key = ctx.params.get("eval_key") or ui.jf_eval_keys(ctx.dataset)[-1]
        results = ctx.dataset.load_evaluation_results(key)
        res = dict(results.scores(), **forms.jf_report(results))
        name = ctx.params.get("open")
        row = next((r for r in results.per_object() if ui.object_name(r) == name), None) if name else None
        found = ui.failure_frame(ctx.dataset, key, row["sample_id"], row["first_failure"]) if row else None
        if found:
            view, sample_id = found
            ctx.ops.set_view(view)
            ctx.ops.open_sample(id=sample_id)
            res["opened"] = f"{name}: frame {row['first_failure']}"
        res["message"] = (f"J&F {res['jf']:.3f} over {res['num_objects']} objects ({key})"
                          if res["jf"] is not None else f"no scored objects ({key})")
        if name and not found:
            res["message"] += f"; the first failure of {name} is not in the '{ui.view_name(key)}' view"
        return res

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("message", label="Result")
        if (ctx.results or {}).get("opened"):
            outputs.str("opened", label="Opened")
        forms.jf_report_outputs(outputs, ctx.results or {})
        return types.Property(outputs, view=types.View(label="SAM-PD: J&F plots"))
