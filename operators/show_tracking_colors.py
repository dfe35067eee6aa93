"""``show_tracking_colors``: when the App opens a dataset (a page load included), the dataset's saved colour scheme,
which holds the SAM-PD output fields' object colours and red doubtful flag, is handed to the App, and the output
fields get the Annotate tab's label schema (``forms.annotation_schemas``).

The App server keeps the scheme it read when it first opened the dataset, even across page reloads: the colours of an
output field written meanwhile by a delegated worker or from Python would otherwise only show after the user
switched to another dataset and back.
"""

import fiftyone.operators as foo

from . import forms


class ShowTrackingColors(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="show_tracking_colors",
            label="SAM-PD: show the object colours",
            description="Shows the saved colour scheme of the SAM-PD output fields in the App",
            on_dataset_open=True,
            unlisted=True,
        )

    def execute(self, ctx):
        if forms.sampd_fields(ctx.dataset):
            forms.annotation_schemas(ctx.dataset)
            forms.show_colors(ctx)
