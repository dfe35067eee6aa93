"""Saved views for browsing J&F failures of an evaluation run (``sampd_plugin.evaluation``).

Three views are saved on the dataset under names derived from the evaluation key:

- ``{eval_key}_failures``: frames where some object's J < ``failure_th``, sorted by that worst J ascending;
- ``{eval_key}_first_failures``: the frame of each object's first failure (one jump per object);
- ``{eval_key}_worst``: sequences sorted by J&F ascending.

Videos: the frame views are ``to_frames(sample_frames="dynamic")`` views (read from the videos on the fly, no
images written). Image sequences: every frame is already an image sample, so the frame views are plain views of the
images (they show the right picture by construction) and ``_worst`` lists the images sorted by their sequence's J&F,
then by sequence and frame order.
"""
from fiftyone import ViewField as F

#: the saved views of an evaluation: name suffix -> what it shows
VIEWS = {
    "failures": "frames where an object's J is below the failure threshold, worst first",
    "first_failures": "the frame where each object first fails",
    "worst": "videos sorted by J&F, worst first",
}
VIEW_SUFFIXES = tuple(VIEWS)


def view_name(eval_key, suffix="failures"):
    """The name of one saved view of evaluation ``eval_key`` (``suffix`` in :data:`VIEWS`)."""
    if suffix not in VIEWS:
        raise ValueError(f"unknown view {suffix!r}; choose one of {list(VIEWS)}")
    return f"{eval_key}_{suffix}"


def view_names(eval_key):
    """Names of the saved views of evaluation ``eval_key``."""
    return [view_name(eval_key, s) for s in VIEW_SUFFIXES]


def build_views(samples, eval_key, failure_th=0.5, sequence_field=None, order_field=None):
    """``{name: view}`` of the failure-browsing views of ``eval_key`` on the collection ``samples`` (image
    sequences: ``sequence_field`` and ``order_field`` given)."""
    if sequence_field:
        return _image_views(samples, eval_key, failure_th, sequence_field, order_field)
    frames = samples.to_frames(sample_frames="dynamic")
    min_j = f"{eval_key}_min_J"
    return {
        view_name(eval_key, "failures"): frames.match(F(min_j) < failure_th).sort_by(min_j),
        view_name(eval_key, "first_failures"): frames.exists(f"{eval_key}_first_failures"),
        view_name(eval_key, "worst"): samples.exists(f"{eval_key}_JF").sort_by(f"{eval_key}_JF"),
    }


def _image_views(samples, eval_key, failure_th, sequence_field, order_field):
    min_j, jf = f"{eval_key}_min_J", f"{eval_key}_JF"
    return {
        view_name(eval_key, "failures"): samples.match(F(min_j) < failure_th).sort_by(min_j),
        view_name(eval_key, "first_failures"): samples.exists(f"{eval_key}_first_failures"),
        view_name(eval_key, "worst"): samples.exists(jf).sort_by([(jf, 1), (sequence_field, 1), (order_field, 1)]),
    }


def save_views(samples, eval_key, failure_th=0.5, sequence_field=None, order_field=None):
    """Builds and saves (overwriting) the views of ``eval_key`` on ``samples``' dataset."""
    dataset = samples._root_dataset
    for name, view in build_views(samples, eval_key, failure_th, sequence_field, order_field).items():
        dataset.save_view(name, view, overwrite=True)


def delete_views(dataset, eval_key):
    """Deletes the saved views of ``eval_key`` that exist on ``dataset``."""
    for name in view_names(eval_key):
        if dataset.has_saved_view(name):
            dataset.delete_saved_view(name)
