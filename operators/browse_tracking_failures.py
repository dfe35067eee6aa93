"""``browse_tracking_failures``: opens the failure views saved by a J&F evaluation (``sampd_plugin.fo.views``)."""

import fiftyone.operators as foo
import fiftyone.operators.types as types

from sampd_plugin.fo import ui

from . import forms



class BrowseTrackingFailures(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="browse_tracking_failures",
            label="SAM-PD: browse tracking failures",
            description="Open the failure frames or worst videos of a J&F evaluation",
            dynamic=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        if not forms.require_sequences(inputs, ctx):
            return types.Property(inputs)
        keys, key = forms.eval_key_input(inputs, ctx)
        choices = types.RadioGroup()
        for name, description in ui.VIEWS.items():
            choices.add_choice(name, label=name.replace("_", " "), description=description)
        inputs.enum("view", choices.values(), default="failures", label="Show", view=choices)
        if not keys:
            forms.refuse(key, "No J&F evaluation on this dataset: run 'evaluate_tracking' first")
        else:
            name = _view_name(ctx.params, keys[-1])
            if not ctx.dataset.has_saved_view(name):
                forms.refuse(key, f"The saved view '{name}' is missing (deleted?): re-run 'evaluate_tracking'")
        return types.Property(inputs, view=types.View(label="SAM-PD: browse tracking failures"))

    def execute(self, ctx):
        name = _view_name(ctx.params, (ui.jf_eval_keys(ctx.dataset) or [None])[-1])
        view = ctx.dataset.load_saved_view(name)
        ctx.ops.set_view(name=name)
        return dict(view=name, count=len(view), message=f"opened '{name}' ({len(view)} items)")

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("message", label="Result")
        return types.Property(outputs)


def _view_name(params, default_key):
    return ui.view_name(params.get("eval_key") or default_key, params.get("view") or "failures")
