"""SAM-PD for FiftyOne: track and segment objects in videos with Segment Anything by prompt denoising.

Public SDK (what the plugin's operators call; details in :mod:`sampd_plugin.fo.sdk`)::

    import sampd_plugin as sp

    # prompts: each object's first detection (with its `index`) in frames.ground_truth
    sp.track(dataset, prompt_field="ground_truth", label_field="sampd", model="vit_h")   # or "tiny", "synthetic"
    sp.auto_track(dataset, label_field="sampd_auto", max_objects=100)                   # VIS mode, no prompts
    sp.repropagate(sample, "sampd", from_frame=45, direction="forward")                 # after a correction
    results = sp.evaluate_jf(dataset, "sampd", gt_field="ground_truth", eval_key="jf")  # DAVIS J&F run
    results.print_report()

    # scale-out: one delegated operation per sample, run by `fiftyone delegated launch` workers
    sp.queue_track(dataset, model="vit_h", samples_per_operation=1)

=================  ===================================================================================
``track``          prompted tracking (VOS) of every video of a collection -> ``frames.<label_field>``; then
                   J&F (``evaluate=True``)
``auto_track``     automatic-mask tracking (VIS): no prompts
``repropagate``    re-run from a corrected frame, replacing only the frames after / before it
``evaluate_jf``    J&F evaluation run (:mod:`sampd_plugin.fo.evaluation`), failure views
``TrackRequest``   a tracking job's settings, validated once (what ``track`` builds from its arguments)
``plan_track``     validation / dry run: which samples a job tracks, skips, or refuses
``queue_track``    the same job as delegated operations on FiftyOne's queue (GPU workers)
``run_request``    a job as the operators run it: queued (split into operations) or tracked here
``run_worker``     a ``fiftyone delegated launch`` worker loop that can exit when idle
``list_runs``      the state of every run on every sequence (done, running, stale: worker dead, failed)
``recover_stale``  fail and re-queue the delegated operations of dead workers
=================  ===================================================================================

What the operators' forms need beyond this is in :mod:`sampd_plugin.fo.ui`.

Importing this package imports neither FiftyOne nor torch: the names above are resolved on first use, so
``import sampd_plugin.core.tracker`` works on a GPU machine without FiftyOne.
"""

from sampd_plugin.lazy import lazy_attributes

__version__ = "0.1.0"

_LAZY = {
    # tracking, correction, evaluation (sdk)
    "track": "sampd_plugin.fo.sdk",
    "auto_track": "sampd_plugin.fo.sdk",
    "repropagate": "sampd_plugin.fo.sdk",
    "evaluate_jf": "sampd_plugin.fo.sdk",
    # the request, planning / validation
    "TrackRequest": "sampd_plugin.fo.request",
    "plan_track": "sampd_plugin.fo.runs",
    "plan_repropagate": "sampd_plugin.fo.runs",
    # scale-out (delegated)
    "queue_track": "sampd_plugin.ops.delegated",
    "run_request": "sampd_plugin.ops.delegated",
    "run_worker": "sampd_plugin.ops.delegated",
    "list_runs": "sampd_plugin.ops.delegated",
    "recover_stale": "sampd_plugin.ops.delegated",
    # settings, models, errors
    "SamPDConfig": "sampd_plugin.core.config",
    "PRESETS": "sampd_plugin.core.config",
    "MODELS": "sampd_plugin.backends.registry",
    "SampdInputError": "sampd_plugin.errors",
    "SampdRunError": "sampd_plugin.errors",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
