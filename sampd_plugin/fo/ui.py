"""What the plugin's operators need from the package besides the SDK, in one small place: a form's targets, the
field discovery, the run states, the choices (models, presets) and an evaluation's views and figures.

The operators import the public SDK (``import sampd_plugin as sp``: track, plan, queue, evaluate) and this facade,
nothing else of the package. Its names are resolved on first use, like the SDK's: importing it (FiftyOne does when it
registers the plugin) imports neither torch nor the tracking code.

=========================  ==========================================================================================
``layout_of``              the sequences of a target (videos, or image sequences): :mod:`sampd_plugin.fo.sources`
``group_fields``           ``(group field, order field)`` of a dynamic grouped view (the App's "group by")
``output_fields``          the SAM-PD output fields of a dataset (provably ours: stamped with their marker's id);
                           ``output_identity``: whose a field name is (free, ours, or someone else's)
``run_states``             the state of every run on every sequence (done, running, stale, failed, ...)
``MODELS`` ...             model choices and checks: ``MODEL_LABELS``, ``check_model``, ``checkpoint_status``,
                           ``model_warning``, ``resolve_device``, ``device_choices``
``PRESETS`` ...            the config presets (paper table rows, then extensions), ``PRESET_LABELS`` and
                           ``DEFAULT_PRESETS`` (a job's config when it names none, per mode)
``SAMPLES_PER_OPERATION``  sequences per delegated operation of a split job, by default
``jf_eval_keys``           the J&F evaluations of a dataset, newest first; ``outdated_sequences`` those of its
                           sequences written again after it
``edited_frames``          the frames of a sequence edited since SAM-PD last wrote them (the Annotate tab's
                           corrections), latest first
``worker_seen``            whether a delegated worker ran recently (the forms' Execute / Schedule default)
``shown_paths``            the sidebar paths that show output fields in every view; ``session_color_scheme`` the
                           dataset's colour scheme as the App's ``set_color_scheme`` operator takes it, needed
                           unless ``app_shows_color_scheme``;
                           ``annotation_schema`` gives an output field the Annotate tab's label schema
``VIEWS`` ...              the saved failure views: ``view_name``, ``view_names``, ``failure_frame``; ``FAILURE_TH``
                           (the default failure threshold)
``figure_json``            a plotly figure as the App's plot view takes it; ``object_name`` names an object's row
=========================  ==========================================================================================
"""

from sampd_plugin.lazy import lazy_attributes

#: the facade's names by the module that defines them
_MODULES = {
    "sampd_plugin.fo.sources": ("layout_of", "group_fields"),  # targets
    "sampd_plugin.fo.identity": ("output_fields", "output_identity"),  # field discovery, ownership
    "sampd_plugin.fo.runs": ("run_states", "edited_frames"),
    "sampd_plugin.ops.delegated": ("worker_seen",),
    "sampd_plugin.fo.app": ("session_color_scheme", "app_shows_color_scheme", "shown_paths", "annotation_schema"),
    "sampd_plugin.backends.registry": ("MODELS", "MODEL_LABELS", "check_model", "checkpoint_status", "model_warning",
                                       "resolve_device", "device_choices"),
    "sampd_plugin.core.config": ("PRESETS", "PRESET_LABELS", "DEFAULT_PRESETS"),
    "sampd_plugin.fo.request": ("SAMPLES_PER_OPERATION",),
    "sampd_plugin.fo.evaluation": ("jf_eval_keys", "outdated_sequences"),
    "sampd_plugin.fo.views": ("VIEWS", "view_name", "view_names", "failure_frame", "FAILURE_TH"),
    "sampd_plugin.fo.plots": ("figure_json",),
    "sampd_plugin.core.metrics": ("object_name",),
}
_LAZY = {name: module for module, names in _MODULES.items() for name in names}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
