"""Saved views for browsing J&F failures of an evaluation run (``sampd_plugin.fo.evaluation``).

Three views are saved on the dataset under names derived from the evaluation key:

- ``{eval_key}_failures``: frames where some object's J < ``failure_th``, sorted by that worst J ascending;
- ``{eval_key}_first_failures``: the frame of each object's first failure (one jump per object);
- ``{eval_key}_worst``: sequences sorted by J&F ascending.

Videos: the frame views show frame images (``to_frames(sample_frames=True, sparse=True)``): only the failure frames
are decoded, once, into a cache folder (:func:`frames_dir`), and the App's grid and modal show each frame's own
pixels under its masks. (``sample_frames="dynamic"`` is not used: FiftyOne 1.22's grid draws the video's first frame
under frame N's masks, and its modal fails with HTTP 500 on such frames.) The images are shared by the evaluations
of a dataset; deleting an evaluation deletes the images no remaining evaluation view uses (:func:`prune_frames`).

Image sequences: every frame is already an image sample, so the frame views are plain views of the images (they
show the right picture by construction) and ``_worst`` lists the images sorted by their sequence's J&F, then by
sequence and frame order.
"""
import logging
import os

import fiftyone as fo
from fiftyone import ViewField as F

from sampd_plugin.fo.sources import dataset_id, root_dataset

logger = logging.getLogger(__name__)

#: the saved views of an evaluation: name suffix -> what it shows
VIEWS = {
    "failures": "frames where an object's J is below the failure threshold, worst first",
    "first_failures": "the frame where each object first fails",
    "worst": "videos sorted by J&F, worst first",
}
VIEW_SUFFIXES = tuple(VIEWS)
#: an object fails on a frame where its J is below this (the default of every evaluation and its views)
FAILURE_TH = 0.5

#: environment variable naming the root folder of the sampled failure-frame images
FRAMES_DIR_ENV = "SAMPD_FRAMES_DIR"


def view_name(eval_key, suffix="failures"):
    """The name of one saved view of evaluation ``eval_key`` (``suffix`` in :data:`VIEWS`)."""
    if suffix not in VIEWS:
        raise ValueError(f"unknown view {suffix!r}; choose one of {list(VIEWS)}")
    return f"{eval_key}_{suffix}"


def view_names(eval_key):
    """Names of the saved views of evaluation ``eval_key``."""
    return [view_name(eval_key, s) for s in VIEW_SUFFIXES]


def frames_dir(dataset):
    """Folder of the sampled frame images of ``dataset``: ``$SAMPD_FRAMES_DIR/<dataset id>``, by default
    ``<fo.config.default_dataset_dir>/sampd-frames/<dataset id>``."""
    root = os.environ.get(FRAMES_DIR_ENV) or os.path.join(fo.config.default_dataset_dir, "sampd-frames")
    return os.path.join(os.path.abspath(os.path.expanduser(root)), str(dataset_id(dataset)))


def failure_frames(samples, condition):
    """The frames of the video collection ``samples`` where the frame-level expression ``condition`` holds, as a
    frames view (one image sample per frame, with the frame's fields).

    Only the matching frames are decoded, into :func:`frames_dir` (``<video path relative to the videos' common
    folder, without extension>/%06d.jpg``), and recorded in ``frames.filepath``; images that exist are not decoded
    again.
    """
    matching = samples.match_frames(condition)
    dataset = root_dataset(samples)
    paths = matching.values("filepath")
    rel_dir = os.path.commonpath([os.path.dirname(p) for p in paths]) if paths else None
    return matching.to_frames(sample_frames=True, sparse=True, output_dir=frames_dir(dataset), rel_dir=rel_dir)


def build_views(samples, eval_key, failure_th=FAILURE_TH, sequence_field=None, order_field=None):
    """``{name: view}`` of the failure-browsing views of ``eval_key`` on the collection ``samples`` (image
    sequences: ``sequence_field`` and ``order_field`` given)."""
    if sequence_field:
        return _image_views(samples, eval_key, failure_th, sequence_field, order_field)
    min_j, first = F(f"{eval_key}_min_J"), F(f"{eval_key}_first_failures")
    frames = failure_frames(samples, (min_j < failure_th) | (first != None))  # noqa: E711
    return {
        view_name(eval_key, "failures"): frames.match(min_j < failure_th).sort_by(f"{eval_key}_min_J"),
        view_name(eval_key, "first_failures"): frames.match(first != None),  # noqa: E711
        view_name(eval_key, "worst"): samples.exists(f"{eval_key}_JF").sort_by(f"{eval_key}_JF"),
    }


def _image_views(samples, eval_key, failure_th, sequence_field, order_field):
    min_j, jf = f"{eval_key}_min_J", f"{eval_key}_JF"
    return {
        view_name(eval_key, "failures"): samples.match(F(min_j) < failure_th).sort_by(min_j),
        view_name(eval_key, "first_failures"): samples.exists(f"{eval_key}_first_failures"),
        view_name(eval_key, "worst"): samples.exists(jf).sort_by([(jf, 1), (sequence_field, 1), (order_field, 1)]),
    }


def failure_frame(dataset, eval_key, sample_id, frame_number):
    """The saved ``{eval_key}_failures`` view narrowed to one frame (``frame_number`` of the video / image sequence
    whose head sample is ``sample_id``, as in the evaluation's per-object rows), and the id of that frame's sample
    to open; ``None`` when that frame is not in the view."""
    from bson import ObjectId

    name = view_name(eval_key, "failures")
    if frame_number is None or not dataset.has_saved_view(name):
        return None
    view = dataset.load_saved_view(name)
    if dataset.media_type == fo.core.media.VIDEO:
        view = view.match((F("_sample_id") == ObjectId(sample_id)) & (F("frame_number") == int(frame_number)))
    else:
        from sampd_plugin.fo.sources import layout_of

        config = dataset.get_evaluation_info(eval_key).config
        seqs = [s for s in layout_of(dataset, config.sequence_field, config.order_field).sequences()
                if s.head_id == sample_id]
        if not seqs or not 1 <= int(frame_number) <= len(seqs[0].sample_ids):
            return None
        view = view.select(seqs[0].sample_ids[int(frame_number) - 1])
    ids = view.values("id")
    return (view, ids[0]) if ids else None


def save_views(samples, eval_key, failure_th=FAILURE_TH, sequence_field=None, order_field=None,
               describe=lambda what: what):
    """Builds and saves the views of ``eval_key`` on ``samples``' dataset (the caller checked that their names are
    free or its own), each described by ``describe(what it shows)``."""
    dataset = root_dataset(samples)
    built = build_views(samples, eval_key, failure_th, sequence_field, order_field)
    for suffix, what in VIEWS.items():
        name = view_name(eval_key, suffix)
        dataset.save_view(name, built[name], description=describe(what), overwrite=True)


def prune_frames(dataset, keep_eval_keys=()):
    """Deletes the sampled frame images of ``dataset`` that no saved view of ``keep_eval_keys`` shows, clears their
    ``frames.filepath`` values, and removes the ``frames.filepath`` field and the folder once nothing uses them.

    Returns the number of image files deleted.
    """
    root = frames_dir(dataset)
    if not os.path.isdir(root) or dataset.media_type != fo.core.media.VIDEO:
        return 0
    keep = set()
    for key in keep_eval_keys:
        for name in view_names(key):
            view = dataset.load_saved_view(name) if dataset.has_saved_view(name) else None
            if view is not None and view.media_type == fo.core.media.IMAGE:
                keep.update(os.path.abspath(p) for p in view.values("filepath"))
    deleted = set()
    for folder, _, files in os.walk(root):
        for f in files:
            path = os.path.join(folder, f)
            if path not in keep:
                os.remove(path)
                deleted.add(path)
    for folder, _, _ in sorted(os.walk(root), key=lambda w: -len(w[0])):
        if not os.listdir(folder):
            os.rmdir(folder)
    if dataset.has_frame_field("filepath"):
        if deleted:
            stale = dataset.match_frames(F("filepath").is_in(sorted(deleted))).values("frames.id", unwind=True)
            if stale:
                dataset.set_values("frames.filepath", {fid: None for fid in stale}, key_field="frames.id")
        if not dataset.count("frames.filepath"):
            dataset.delete_frame_field("filepath")
    return len(deleted)
