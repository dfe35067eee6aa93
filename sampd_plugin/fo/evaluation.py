"""J&F evaluation of tracked video objects as a FiftyOne evaluation run.

Scores a frame-level ``fo.Detections`` (or ``fo.Segmentation`` label map) field against ground truth with the
DAVIS 2017 semi-supervised protocol (Pont-Tuset et al.; measures in ``sampd_plugin.core.metrics``), and stores
the run with FiftyOne's own machinery (``list_evaluations``, ``get_evaluation_info``,
``load_evaluation_results``, ``rename_evaluation``, ``delete_evaluation`` all work; deleting removes every
field and saved view the run wrote).

Objects: a ``fo.Detection``'s ``index`` is its object id (FiftyOne's tracking-id convention); in a
``fo.Segmentation`` the pixel value is the object id (0 background, ``void_value`` ignored, as DAVIS'
255). A predicted detection with ``lost=True``, without a mask, or absent from a frame is an empty
prediction. Several detections with one index on a frame are united.

Protocols (``protocol=``): annotated frames are the frames whose ground-truth field is set.

- ``"objects"`` (default): objects are scored independently (overlapping predictions are not resolved). An
  object's first frame is the first annotated frame where its id appears; per object, J and F statistics use the
  annotated frames after it, excluding the sequence's last annotated frame (``exclude_last=True``, DAVIS). J&F =
  mean of the objects' J-Mean and F-Mean over all objects of all sequences.
- ``"davis"``: what the official davis2017-evaluation toolkit computes (semi-supervised task) on the PNGs that
  :func:`sampd_plugin.datasets.fiftyone_io.export_davis` writes from the prediction field: each frame's predicted
  detections become one label map (overlaps resolved by THE rule,
  :func:`sampd_plugin.datasets.labelmaps.resolve_overlaps`, with each object's highest ``confidence``); the
  objects are those of the sequence's first annotated frame (indices ``0 .. max``, as ids ``1 .. max + 1`` of its
  first PNG; an object appearing only later is not scored), all scored from that frame on; every annotated frame
  but the first and the last is scored; ground-truth void is background (the toolkit passes no void mask).
- ``"youtube_vos"``: the YouTube-VOS server's scoring of the submission: label maps as for ``"davis"``, each object
  from its first appearance, the last frame included (``exclude_last=False``), and ``seen_categories`` (default:
  the dataset's ``info["seen_categories"]``, set by :func:`sampd_plugin.datasets.fiftyone_io.load_youtube_vos`)
  for ``G`` and the seen / unseen J and F.

Fields written for ``eval_key="jf"`` (``k`` below):

- every predicted (and ground-truth, if Detections) detection on an annotated frame: ``k_J``, ``k_F``
  (objects before their first frame, or not in the ground truth, are scored against an empty mask);
- every annotated frame: ``k_J``, ``k_F`` (mean over the objects started by then), ``k_min_J`` (worst
  object), ``k_first_failures`` (ids of the objects whose first failure is this frame, else None);
- every sample: ``k_JF``, ``k_J_mean``, ``k_J_recall``, ``k_J_decay``, ``k_F_mean``, ``k_F_recall``,
  ``k_F_decay`` (DAVIS aggregation over the sample's objects), ``k_num_lost`` (objects with an empty
  prediction on a scored frame where the ground truth is not empty), ``k_first_failure`` (earliest frame
  number where an object's J < ``failure_th`` after its first frame), ``k_objects`` (per-object rows, see
  ``JFResults.per_object``);
- saved views ``k_failures``, ``k_first_failures``, ``k_worst`` (``sampd_plugin.fo.views``), whose failure frames
  are sampled once as images into ``sampd_plugin.fo.views.frames_dir(dataset)`` (recorded in ``frames.filepath``);
  deleting the run deletes the images no other evaluation's views show.
"""
import logging
import os
from typing import NamedTuple, Optional, Tuple

import numpy as np

import fiftyone.core.evaluation as foe
import fiftyone.core.fields as fof
import fiftyone.core.labels as fol
import fiftyone.core.odm as foo
import fiftyone.core.utils as fou

from sampd_plugin.core import checks, metrics
from sampd_plugin.errors import SampdInputError
from sampd_plugin.fo import identity, views
from sampd_plugin.fo.labels import field_name, marker_field, paste_mask
from sampd_plugin.fo.sources import dataset_of, layout_of, root_dataset

logger = logging.getLogger(__name__)

SAMPLE_FIELDS = {"JF": fof.FloatField, "J_mean": fof.FloatField, "J_recall": fof.FloatField,
                 "J_decay": fof.FloatField, "F_mean": fof.FloatField, "F_recall": fof.FloatField,
                 "F_decay": fof.FloatField, "num_lost": fof.IntField, "first_failure": fof.IntField}
FRAME_FIELDS = {"J": fof.FloatField, "F": fof.FloatField, "min_J": fof.FloatField}
LABEL_ATTRS = ("J", "F")
#: scoring protocols of :func:`evaluate_jf` (module docstring)
PROTOCOLS = ("objects", "davis", "youtube_vos")
#: the ``method`` of our evaluation runs' configs (how :func:`jf_eval_keys` recognises them)
EVAL_METHOD = "sampd_jf"


def jf_eval_keys(samples):
    """Keys of the J&F evaluation runs of this module on the dataset of ``samples``, oldest first (runs whose
    config cannot be loaded here are skipped)."""
    keys = []
    for key in samples.list_evaluations() if samples is not None else []:
        try:
            if samples.get_evaluation_info(key).config.method == EVAL_METHOD:
                keys.append(key)
        except Exception:  # a run of a method that cannot be loaded here
            continue
    return keys


def evaluate_jf(samples, pred_field, gt_field="ground_truth", eval_key="jf", bound_th=0.008,
                exclude_last=True, failure_th=views.FAILURE_TH, void_value=255, seen_categories=None,
                overwrite=False, progress=None, sequence_field=None, order_field=None, allow_incomplete=False,
                protocol="objects"):
    """Evaluates tracked objects with DAVIS 2017 J&F and stores the run under ``eval_key``.

    Args:
        samples: a video collection, or an image collection of sequences (``sequence_field`` / ``order_field``,
            see :func:`sampd_plugin.fo.sources.layout_of`; also a dynamic grouped view).
        pred_field, gt_field: ``fo.Detections`` or ``fo.Segmentation`` frame label fields (``frames.x`` of
            videos, ``x`` of images; ``"x"`` or ``"frames.x"``); any field can be scored against any other.
        eval_key: run key (a valid identifier); None computes results without storing anything.
        bound_th: F boundary tolerance (fraction of the diagonal, or pixels if >= 1).
        exclude_last: exclude each sequence's last annotated frame (DAVIS); False for YouTube-VOS style.
        failure_th: J below which an object fails on a frame (failure views, first failure).
        void_value: ``fo.Segmentation`` ground-truth value of void pixels (None: no void).
        seen_categories: if given, also report YouTube-VOS seen / unseen / G (ground-truth labels are
            the categories).
        overwrite: replace an existing run with this key (its fields are deleted first); otherwise an
            existing key raises ``ValueError``.
        progress: FiftyOne progress-bar setting.
        sequence_field, order_field: image sequences (defaults: the grouped view's, else ``sequence_id`` and
            ``frame_number``).
        allow_incomplete: score a SAM-PD prediction field even where its run has not finished (otherwise refused).
        protocol: ``"objects"``, ``"davis"`` or ``"youtube_vos"`` (module docstring); ``"davis"`` implies
            ``exclude_last=True``, ``"youtube_vos"`` ``exclude_last=False``.
    Returns:
        ``JFResults``.
    Raises:
        ValueError: invalid fields or key, an unfinished SAM-PD prediction field, or an evaluation whose fields
            would overwrite fields it does not own (nothing is registered or written).
    """
    bound_th, failure_th, void_value = check_arguments(protocol, eval_key, bound_th, failure_th, void_value,
                                                       exclude_last, overwrite, allow_incomplete)
    if protocol != "objects":
        exclude_last = protocol == "davis"
    if protocol == "youtube_vos" and seen_categories is None:
        seen_categories = root_dataset(samples).info.get("seen_categories")
    layout = layout_of(samples, sequence_field, order_field)
    pred_field, pred_type = _label_field(layout, pred_field)
    gt_field, gt_type = _label_field(layout, gt_field)
    if pred_field == gt_field:
        raise ValueError(f"the predictions and the ground truth are the same field '{layout.path(pred_field)}'")
    if not allow_incomplete:
        _check_finished(layout, pred_field)
    config = JFEvaluationConfig(pred_field, gt_field, pred_type=pred_type, gt_type=gt_type,
                                bound_th=bound_th, exclude_last=exclude_last, failure_th=failure_th,
                                void_value=void_value, seen_categories=seen_categories,
                                sequence_field=layout.sequence_field, order_field=layout.order_field,
                                protocol=protocol)
    method = config.build()
    if eval_key is not None:
        _check_key(samples, method, eval_key, overwrite)
    results, writes = method.score(samples, eval_key, progress)  # every sequence scored before anything is written
    if eval_key is not None:
        _store_run(samples, method, eval_key, overwrite, results, writes, layout)
    return results


def check_eval_key(layout, pred_field, gt_field, eval_key, overwrite=False):
    """Refuses (:class:`SampdInputError` naming ``gt_field`` or ``eval_key``) what ``evaluate_jf`` of the layout's
    samples would refuse before scoring: a ground truth that is no label field (or is ``pred_field``), a key whose
    run exists (without ``overwrite``) or whose fields or saved views are not its own. Reads only: a tracking job
    that evaluates when it is done checks this while it is planned, when its output ``pred_field`` (a SAM-PD
    ``fo.Detections`` field) may not exist yet."""
    pred = field_name(pred_field)
    try:
        gt, gt_type = _label_field(layout, gt_field)
    except ValueError as e:
        raise SampdInputError(f"ground truth of the evaluation: {e}", field="gt_field") from None
    if gt == pred:
        raise SampdInputError(f"the predictions and the ground truth are the same field '{layout.path(pred)}'",
                              field="gt_field")
    method = JFEvaluationConfig(pred, gt, gt_type=gt_type, sequence_field=layout.sequence_field,
                                order_field=layout.order_field).build()
    _check_key(layout.samples, method, eval_key, overwrite)


def _check_key(samples, method, eval_key, overwrite):
    """Refuses (``SampdInputError`` naming ``eval_key``) a key whose run exists (without ``overwrite``) or whose
    fields or saved views exist and are not provably the replaced run's own (a field or view of a person's, or of
    another run: :mod:`sampd_plugin.fo.identity`); then records the fields and views the run will own in its config,
    with a new run id. Nothing is registered or written yet."""
    dataset = root_dataset(samples)
    exists = eval_key in samples.list_evaluations()
    if exists and not overwrite:
        raise SampdInputError(f"Evaluation '{eval_key}' already exists on dataset '{dataset.name}'; pass "
                              "overwrite=True to replace it (its fields are deleted first) or use another eval_key",
                              field="eval_key")
    old = getattr(samples.get_evaluation_info(eval_key).config, "run_id", None) if exists else None
    c = method.config
    fields, names = method.field_names(eval_key), views.view_names(eval_key)
    taken = [f for f in fields if dataset.get_field(f) is not None and not identity.is_run_field(dataset, f, old)]
    taken += [f"saved view '{v}'" for v in names if dataset.has_saved_view(v) and not identity.is_run_view(
        dataset, v, old)]
    if taken:
        raise SampdInputError(f"evaluation key '{eval_key}' would write fields or views that exist and are not "
                              f"its own ({', '.join(taken[:5])}): they are never overwritten; choose another "
                              "eval_key", field="eval_key")
    c.run_id, c.fields, c.views = identity.new_id(), fields, names


def _store_run(samples, method, eval_key, overwrite, results, writes, layout):
    """Registers the run and writes its fields, results and views, all or nothing: if any step fails, the run is
    deleted with what it wrote (``delete_evaluation``) before the error is raised, so no half-written run stays
    registered."""
    method.register_run(samples, eval_key, overwrite=overwrite)
    try:
        writes.save(method.config, eval_key)
        method.save_run_results(samples, eval_key, results)
        views.save_views(layout.samples, eval_key, method.config.failure_th, layout.sequence_field,
                         layout.order_field, describe=method.describe)
    except BaseException:
        root_dataset(samples).delete_evaluation(eval_key)
        raise


def check_arguments(protocol, eval_key, bound_th, failure_th, void_value, exclude_last, overwrite,
                    allow_incomplete):
    """``(bound_th, failure_th, void_value)`` of :func:`evaluate_jf` after checking every argument by type and range
    (:mod:`sampd_plugin.core.checks`): a threshold that is NaN, negative or a string would score nonsense."""
    checks.choice("protocol", protocol, PROTOCOLS)
    if eval_key is not None and (not isinstance(eval_key, str) or not eval_key.isidentifier()):
        raise SampdInputError(f"eval_key must be a name made of letters, digits and '_', got {eval_key!r}")
    bound_th = checks.number("bound_th", bound_th, 0, low_open=True)
    try:
        metrics.bound_pixels(bound_th, (1, 1))  # a tolerance in pixels (>= 1) is a whole number
    except ValueError as e:
        raise SampdInputError(str(e), field="bound_th") from None
    failure_th = checks.number("failure_th", failure_th, 0, 1)
    void_value = checks.integer("void_value", void_value, 0, 255, allow_none=True)
    for name, value in (("exclude_last", exclude_last), ("overwrite", overwrite),
                        ("allow_incomplete", allow_incomplete)):
        checks.flag(name, value)
    return bound_th, failure_th, void_value


def _label_field(layout, field):
    """``(name, "Detections" | "Segmentation")`` of a frame label field of the layout."""
    name = field_name(field)
    f = layout.get_field(name)
    doc_type = getattr(f, "document_type", None)
    for cls in (fol.Detections, fol.Segmentation):
        if doc_type is not None and issubclass(doc_type, cls):
            return name, cls.__name__
    raise ValueError(f"'{layout.path(name)}' must be a Detections or Segmentation field of {layout.where}, "
                     f"found {type(f).__name__ if f is not None else 'nothing'}")


def _check_finished(layout, field):
    """Refuses a SAM-PD output field (:func:`sampd_plugin.fo.identity.is_output`) whose run has not finished on some
    sequence."""
    if not identity.is_output(layout.dataset, field):
        return
    markers = layout.head_values(marker_field(field))
    unfinished = [s.name for s in layout.sequences() if markers.get(s.key) and not markers[s.key].get("done")]
    if unfinished:
        raise ValueError(f"'{layout.path(field)}' is a SAM-PD output whose run has not finished on "
                         f"{len(unfinished)} sequence(s) ({', '.join(unfinished[:3])}): finish (resume) the run, or "
                         "pass allow_incomplete=True to score the partial labels")


def _is_empty_prediction(det):
    return bool(getattr(det, "lost", False)) or not det.has_mask


def _frame_objects(label, label_type, hw, void_value=None, where=""):
    """Objects of one frame's label -> ``(masks {id: bool mask}, detections {id: [Detection]},
    categories {id: label}, void bool mask or None, mask shape)``; Detections are pasted at ``hw``,
    a Segmentation keeps its own resolution (its shape is returned; ``hw`` if no mask)."""
    masks, dets, cats = {}, {}, {}
    if label is None:
        return masks, dets, cats, None, hw
    if label_type == "Segmentation":
        seg = label.get_mask()
        if seg is None:
            return masks, dets, cats, None, hw
        seg = seg[..., 0] if seg.ndim == 3 else seg
        void = None if void_value is None else seg == void_value
        for v in np.unique(seg):
            if v != 0 and v != void_value:
                masks[int(v)] = seg == v
        return masks, dets, cats, void if void is not None and void.any() else None, seg.shape
    for det in label.detections:
        idx = det.index
        if idx is None:
            continue
        dets.setdefault(idx, []).append(det)
        if det.label is not None:
            cats.setdefault(idx, det.label)
        if _is_empty_prediction(det):
            m = np.zeros(hw, bool)
        else:
            box = list(det.bounding_box or [])
            if len(box) != 4 or not all(np.isfinite(v) for v in box):
                raise ValueError(f"{where}: the detection of object {idx} has a mask but its bounding box {box} is "
                                 "not four finite numbers (relative [x, y, w, h]): fix or delete it")
            try:
                m = paste_mask(det, hw)
            except ValueError as e:
                raise ValueError(f"{where}: the detection of object {idx}: {e}") from None
        masks[idx] = masks[idx] | m if idx in masks else m
    return masks, dets, cats, None, hw


def _py(v):
    """JSON/BSON-friendly scalar: None for None/NaN, Python int for integers, else Python float."""
    if v is None:
        return None
    if isinstance(v, (int, np.integer)):
        return int(v)
    return None if np.isnan(v) else float(v)


def _stats(rows, name):
    """``metrics.Stats`` of measure ``name`` ("J" or "F") of per-object rows (None -> NaN)."""
    return [metrics.Stats(*(np.nan if r[f"{name}_{s}"] is None else r[f"{name}_{s}"]
                            for s in metrics.Stats._fields)) for r in rows]


class JFEvaluationConfig(foe.EvaluationMethodConfig):
    """Configuration of a J&F evaluation run (arguments of ``evaluate_jf``); ``sequence_field`` /
    ``order_field`` are set for image sequences (``None`` for videos). ``run_id`` identifies the run (its fields'
    stamps, its views' descriptions: :mod:`sampd_plugin.fo.identity`), ``fields`` and ``views`` record what it
    owns (set by ``evaluate_jf``, moved by ``rename_evaluation``)."""

    def __init__(self, pred_field, gt_field, pred_type="Detections", gt_type="Detections", bound_th=0.008,
                 exclude_last=True, failure_th=views.FAILURE_TH, void_value=255, seen_categories=None,
                 sequence_field=None, order_field=None, protocol="objects", run_id=None, fields=None, views=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.pred_field, self.gt_field = pred_field, gt_field
        self.pred_type, self.gt_type = pred_type, gt_type
        self.bound_th, self.exclude_last, self.failure_th = bound_th, exclude_last, failure_th
        self.void_value = void_value
        self.seen_categories = None if seen_categories is None else sorted(seen_categories)
        self.sequence_field, self.order_field = sequence_field, order_field
        self.protocol = protocol
        self.run_id, self.fields, self.views = run_id, fields, views

    @property
    def method(self):
        return EVAL_METHOD

    @property
    def frame_prefix(self):
        """``"frames."`` for videos, ``""`` for image sequences (whose frames are the samples)."""
        return "" if self.sequence_field else "frames."


class _Frame(NamedTuple):
    """One annotated frame of a sequence: its number, the id of the document holding its labels (a video frame or
    an image sample), the ground-truth and predicted labels and the frame size ``(H, W)``."""

    number: int
    id: str
    gt: object
    pred: object
    hw: Optional[Tuple[int, int]]


class JFEvaluation(foe.EvaluationMethod):
    """The J&F evaluation run: computes the scores and owns the fields and views it writes."""

    def field_names(self, eval_key):
        """The paths of the fields a run of this config writes under ``eval_key``."""
        c, fp = self.config, self.config.frame_prefix
        fields = [f"{eval_key}_{s}" for s in (*SAMPLE_FIELDS, "objects")]
        fields += [f"{fp}{eval_key}_{s}" for s in (*FRAME_FIELDS, "first_failures")]
        for field, typ in ((c.pred_field, c.pred_type), (c.gt_field, c.gt_type)):
            if typ == "Detections":
                fields += [f"{fp}{field}.detections.{eval_key}_{a}" for a in LABEL_ATTRS]
        return list(dict.fromkeys(fields))

    def get_fields(self, samples, eval_key):
        """The fields the run records as its own (:meth:`field_names` of the key it was stored under)."""
        return list(self.config.fields) if self.config.fields is not None else self.field_names(eval_key)

    def describe(self, what):
        """The description of one of the run's saved views (:func:`sampd_plugin.fo.identity.view_description`)."""
        return identity.view_description(what, self.config.run_id)

    def _owned(self, samples, eval_key):
        """``(fields, views)`` the run records and that are provably its own (stamped with its run id)."""
        dataset, run_id = root_dataset(samples), self.config.run_id
        names = self.config.views if self.config.views is not None else views.view_names(eval_key)
        return ([f for f in self.get_fields(dataset, eval_key) if identity.is_run_field(dataset, f, run_id)],
                [v for v in names if identity.is_run_view(dataset, v, run_id)])

    def rename(self, samples, eval_key, new_eval_key):
        """Moves exactly the run's own fields and views to the names of ``new_eval_key`` and records them; if any
        of those names is taken, moves nothing and raises (FiftyOne then logs the error and renames the key only:
        the run keeps its fields and views under their names, and deleting it deletes them, never the others)."""
        dataset, root, c = dataset_of(samples), root_dataset(samples), self.config
        old_fields = self.get_fields(dataset, eval_key)
        new_fields, new_views = self.field_names(new_eval_key), views.view_names(new_eval_key)
        taken = [f for f in new_fields if dataset.get_field(f) is not None]
        taken += [f"saved view '{v}'" for v in new_views if root.has_saved_view(v)]
        if taken:
            raise ValueError(f"cannot move the fields and views of evaluation '{eval_key}' to '{new_eval_key}': "
                             f"{', '.join(taken[:5])} exist; they stay under their names")
        own_fields, own_views = self._owned(samples, eval_key)
        moves = {a: b for a, b in zip(old_fields, new_fields) if a in own_fields}
        old_s, old_f = fou.split_frame_fields(list(moves))
        new_s, new_f = fou.split_frame_fields(list(moves.values()))
        run_view = self.load_run_view(samples, eval_key)
        dataset.rename_sample_fields(dict(zip(old_s, new_s)))
        dataset.rename_frame_fields(dict(zip(old_f, new_f)))
        for name in own_views:
            root.delete_saved_view(name)
        if own_views:
            views.save_views(run_view, new_eval_key, c.failure_th, c.sequence_field, c.order_field,
                             describe=self.describe)
        c.fields, c.views = new_fields, new_views
        self.update_run_config(samples, eval_key, c)

    def cleanup(self, samples, eval_key):
        """Deletes exactly the run's own fields and views (:meth:`_owned`), and the frame images no other
        evaluation's views show."""
        dataset, root = dataset_of(samples), root_dataset(samples)
        own_fields, own_views = self._owned(samples, eval_key)
        sample_fields, frame_fields = fou.split_frame_fields(own_fields)
        dataset.delete_frame_fields(frame_fields, error_level=1)
        dataset.delete_sample_fields(sample_fields, error_level=1)
        for name in own_views:
            root.delete_saved_view(name)
        views.prune_frames(root, [k for k in jf_eval_keys(root) if k != eval_key])

    def score(self, samples, eval_key=None, progress=None):
        """Scores every sequence, writing nothing: ``(JFResults, _Writes)``, the fields' values to write in bulk
        (:meth:`_Writes.save`)."""
        c = self.config
        layout = layout_of(samples, c.sequence_field, c.order_field)
        if c.gt_type == "Detections" or c.pred_type == "Detections":
            if len(layout.samples.exists("metadata", False)):
                layout.samples.compute_metadata()
        writes = _Writes(layout)
        objects, curves = [], []
        with fou.ProgressBar(total=len(layout.sequences()), progress=progress) as pb:
            for seq, frames in pb(self._sequence_frames(layout)):
                rows, obj_curves = self._evaluate_sequence(seq, frames, writes)
                objects += rows
                curves += obj_curves
        summary = {k: _py(v) for k, v in metrics.aggregate(_stats(objects, "J"), _stats(objects, "F")).items()}
        summary.update(num_objects=len(objects), num_sequences=len({r["sample_id"] for r in objects}))
        results = JFResults(samples, c, eval_key, summary=summary, objects=objects, curves=curves,
                            backend=self)
        if c.seen_categories is not None:
            summary["youtube_vos"] = results.youtube_vos(c.seen_categories)
        return results, writes

    def _sequence_frames(self, layout):
        """Yields ``(Sequence, [_Frame])`` per sequence: its frames whose ground truth is set, in frame order."""
        c = self.config
        if layout.is_video:
            seqs = layout.by_key()
            view = layout.samples.select_fields(["metadata", f"frames.{c.pred_field}", f"frames.{c.gt_field}"])
            for sample in view.iter_samples():
                meta = sample.metadata
                hw = (meta.frame_height, meta.frame_width) if meta is not None and meta.frame_height else None
                yield seqs[sample.id], [_Frame(fn, fr.id, fr[c.gt_field], fr[c.pred_field], hw)
                                        for fn, fr in sample.frames.items() if fr[c.gt_field] is not None]
            return
        for seq in layout.sequences():
            view = layout.dataset.select(seq.sample_ids, ordered=True)
            values = zip(view.values("id"), view.values(c.gt_field), view.values(c.pred_field),
                         view.values("metadata.height"), view.values("metadata.width"))
            yield seq, [_Frame(fn, sid, gt, pred, (h, w) if h else None)
                        for fn, (sid, gt, pred, h, w) in enumerate(values, 1) if gt is not None]

    def _evaluate_sequence(self, seq, frames, writes):
        """Scores one sequence; returns its per-object rows and curves (fields go to ``writes``)."""
        if "Detections" in (self.config.gt_type, self.config.pred_type):
            for fr in frames:
                if fr.hw is None:
                    raise ValueError(f"{seq.name}, frame {fr.number}: no frame size: compute the metadata or make "
                                     "the media readable")
        first = self._first_frames(frames)
        series, cats = self._score_frames(seq, frames, first, writes)
        return self._object_rows(seq, series, first, cats, {fr.number: fr.id for fr in frames}, writes)

    def _first_frames(self, frames):
        """``{object id: first annotated frame number where it appears in the ground truth}``."""
        c, first = self.config, {}
        if getattr(c, "protocol", "objects") == "davis":  # the objects of the first annotation, from its frame on
            if not frames:
                return first
            fr = frames[0]
            if c.gt_type == "Detections":
                ids = range(max((d.index for d in fr.gt.detections if d.index is not None), default=-1) + 1)
            else:
                seg = fr.gt.get_mask()
                vals = [] if seg is None else [int(v) for v in np.unique(seg) if v not in (0, c.void_value)]
                ids = range(1, max(vals, default=0) + 1)
            return {int(i): fr.number for i in ids}
        for fr in frames:
            if c.gt_type == "Detections":  # an object appears where its ground truth has a mask
                ids = {d.index for d in fr.gt.detections if d.index is not None and d.has_mask}
            else:
                seg = fr.gt.get_mask()
                ids = set() if seg is None else {int(v) for v in np.unique(seg) if v not in (0, c.void_value)}
            for idx in sorted(ids):
                first.setdefault(idx, fr.number)
        return first

    def _score_frames(self, seq, frames, first, writes):
        """J and F of every object on every annotated frame (one stacked call per frame). Returns
        ``series {id: [(frame number, J, F, lost)]}`` of the started objects and ``{id: category}``."""
        c = self.config
        series, cats = {}, {}
        for fr in frames:
            fn, hw = fr.number, fr.hw
            where = f"{seq.name}, frame {fn}"
            gt_masks, gt_dets, gt_cats, void, gt_hw = _frame_objects(fr.gt, c.gt_type, hw, c.void_value,
                                                                     f"{where}, '{c.gt_field}'")
            pred_masks, pred_dets, _, _, p_hw = _frame_objects(fr.pred, c.pred_type, hw or gt_hw,
                                                               where=f"{where}, '{c.pred_field}'")
            protocol = getattr(c, "protocol", "objects")
            if protocol != "objects" and c.pred_type == "Detections":  # one label map per frame, as exported
                from sampd_plugin.datasets.fiftyone_io import object_scores
                from sampd_plugin.datasets.labelmaps import resolve_overlaps

                pred_masks = resolve_overlaps(pred_masks, object_scores(fr.pred))
            if protocol == "davis":
                void = None  # the toolkit's semi-supervised task: void is background
            for idx, cat in gt_cats.items():
                cats.setdefault(idx, cat)
            started = [i for i in first if first[i] <= fn]
            ids = list(dict.fromkeys(started + list(pred_dets) + list(gt_dets)))
            if not ids:
                continue
            empty_p, empty_g = np.zeros(p_hw or gt_hw, bool), np.zeros(gt_hw, bool)
            p = np.stack([pred_masks.get(i, empty_p) for i in ids])
            g = np.stack([gt_masks.get(i, empty_g) for i in ids])
            jv = np.atleast_1d(metrics.region_similarity(p, g, void))
            fv = np.atleast_1d(metrics.boundary_f_measure(p, g, void, c.bound_th))
            score = {i: (float(a), float(b)) for i, a, b in zip(ids, jv, fv)}
            for is_pred, dets in ((True, pred_dets), (False, gt_dets)):
                writes.labels.extend((fr.id, d.id, score[i], is_pred) for i, ds in dets.items() for d in ds)
            for i in started:
                lost = not pred_masks.get(i, empty_p).any() and gt_masks.get(i, empty_g).any()
                series.setdefault(i, []).append((fn, *score[i], lost))
            if started:
                js = [score[i][0] for i in started]
                writes.frames[fr.id] = (float(np.mean(js)), float(np.mean([score[i][1] for i in started])),
                                        float(min(js)))
        return series, cats

    def _object_rows(self, seq, series, first, cats, frame_ids, writes):
        """DAVIS statistics per object (protocol frames) and per sequence; first failures."""
        c = self.config
        rows, curves = [], []
        sequence = os.path.splitext(os.path.basename(seq.filepaths[0]))[0] if seq.is_video else seq.key
        for idx in sorted(series):
            # the series runs over the annotated frames from the object's first frame to the last one
            fns, jv, fv, lost = (np.array(a) for a in zip(*series[idx]))
            scored = np.zeros(fns.size, bool)
            scored[metrics.protocol_frames(fns.size, 0, c.exclude_last)] = True
            js, fs = metrics.statistics(jv[scored]), metrics.statistics(fv[scored])
            fail = fns[(fns > first[idx]) & (jv < c.failure_th)]
            first_failure = int(fail[0]) if fail.size else None
            if first_failure is not None:
                writes.first_failures.setdefault(frame_ids[first_failure], []).append(int(idx))
            rows.append(dict(sample_id=seq.head_id, sequence=sequence, index=int(idx), label=cats.get(idx),
                             first_frame=int(first[idx]), first_failure=first_failure,
                             num_frames=int(scored.sum()), lost_frames=int((lost & scored).sum()),
                             JF=_py((js.mean + fs.mean) / 2),
                             **{f"{n}_{s}": _py(getattr(st, s)) for n, st in (("J", js), ("F", fs))
                                for s in metrics.Stats._fields}))
            curves.append(dict(sample_id=seq.head_id, sequence=sequence, index=int(idx),
                               frames=fns.tolist(), J=jv.tolist(), F=fv.tolist()))
        if rows:
            st = metrics.aggregate(_stats(rows, "J"), _stats(rows, "F"))
            failures = [r["first_failure"] for r in rows if r["first_failure"] is not None]
            writes.sequences[seq.key] = (seq, dict(
                JF=st["J&F-Mean"], J_mean=st["J-Mean"], J_recall=st["J-Recall"], J_decay=st["J-Decay"],
                F_mean=st["F-Mean"], F_recall=st["F-Recall"], F_decay=st["F-Decay"],
                num_lost=sum(r["lost_frames"] > 0 for r in rows),
                first_failure=min(failures) if failures else None, objects=rows))
        return rows, curves


class _Writes:
    """Values collected during evaluation, written in bulk (``set_values`` / ``set_label_values``).

    Frame values are keyed by the id of the document that holds the frame's labels (a video frame, or an image
    sample); a sequence's summary goes to its video sample, or to every image of the sequence (its per-object rows
    ``<k>_objects`` to the head image only).
    """

    def __init__(self, layout):
        self.layout = layout
        self.labels = []  # (frame id, label_id, (J, F), is_pred)
        self.frames = {}  # frame id -> (mean J, mean F, min J)
        self.first_failures = {}  # frame id -> [object ids]
        self.sequences = {}  # sequence key -> (Sequence, {suffix: value})

    def save(self, config, k):
        """Declares the run's fields, stamped with its run id (:mod:`sampd_plugin.fo.identity`), then writes them."""
        layout, dataset = self.layout, self.layout.dataset
        frame_key = "frames.id" if layout.is_video else "id"
        info = identity.stamped_info(None, config.run_id, identity.EVALUATION)
        for s, ftype in SAMPLE_FIELDS.items():
            dataset.add_sample_field(f"{k}_{s}", ftype, info=info)
        dataset.add_sample_field(f"{k}_objects", fof.ListField, subfield=fof.EmbeddedDocumentField,
                                 embedded_doc_type=foo.DynamicEmbeddedDocument, info=info)
        for s, ftype in FRAME_FIELDS.items():
            layout.add_field(f"{k}_{s}", ftype, info=info)
        layout.add_field(f"{k}_first_failures", fof.ListField, subfield=fof.IntField, info=info)
        for field, typ in ((config.pred_field, config.pred_type), (config.gt_field, config.gt_type)):
            if typ == "Detections":
                for a in LABEL_ATTRS:
                    layout.add_field(f"{field}.detections.{k}_{a}", fof.FloatField, info=info)
        for s in SAMPLE_FIELDS:
            vals = {sid: _py(v[s]) for seq, v in self.sequences.values() for sid in seq.sample_ids}
            if vals:
                dataset.set_values(f"{k}_{s}", vals, key_field="id")
        if self.sequences:
            dataset.set_values(f"{k}_objects", {seq.head_id: [foo.DynamicEmbeddedDocument(**r) for r in v["objects"]]
                                                 for seq, v in self.sequences.values()},
                               key_field="id", dynamic=True)
        for n, s in enumerate(FRAME_FIELDS):
            if self.frames:
                dataset.set_values(layout.path(f"{k}_{s}"), {fid: v[n] for fid, v in self.frames.items()},
                                   key_field=frame_key)
        if self.first_failures:
            dataset.set_values(layout.path(f"{k}_first_failures"), self.first_failures, key_field=frame_key)
        id_key = "frame_id" if layout.is_video else "sample_id"
        for is_pred, field in ((True, config.pred_field), (False, config.gt_field)):
            for n, a in enumerate(LABEL_ATTRS):
                vals = [{id_key: fid, "label_id": lid, "value": v[n]}
                        for fid, lid, v, p in self.labels if p is is_pred]
                if vals:
                    dataset.set_label_values(layout.path(f"{field}.detections.{k}_{a}"), vals, dynamic=True)


class JFResults(foe.EvaluationResults):
    """Results of a J&F evaluation run.

    Attributes:
        summary: DAVIS global scores (``J&F-Mean, J-Mean, J-Recall, J-Decay, F-Mean, F-Recall, F-Decay``),
            ``num_objects``, ``num_sequences`` and, if requested, ``youtube_vos``.
        objects: per-object rows (see ``per_object``).
        curves: per-object ``{sample_id, sequence, index, frames, J, F}`` over its annotated frames.
    """

    def __init__(self, samples, config, eval_key, summary=None, objects=None, curves=None, backend=None):
        super().__init__(samples, config, eval_key, backend=backend)
        self.summary = summary or {}
        self.objects = objects or []
        self.curves = curves or []

    @classmethod
    def _from_dict(cls, d, samples, config, eval_key):
        return cls(samples, config, eval_key, d.get("summary"), d.get("objects"), d.get("curves"))

    def get_meta(self):
        return {k: v for k, v in self.summary.items() if not isinstance(v, dict)}

    def scores(self) -> dict:
        """The headline of the run, JSON: ``eval_key``, ``jf``, ``j``, ``f`` (3 decimals; ``None`` without scored
        objects), ``num_objects``, ``num_sequences``."""
        s = self.summary
        r3 = lambda v: None if v is None else round(float(v), 3)  # noqa: E731
        return dict(eval_key=self.key, jf=r3(s.get("J&F-Mean")), j=r3(s.get("J-Mean")), f=r3(s.get("F-Mean")),
                    num_objects=s.get("num_objects"), num_sequences=s.get("num_sequences"))

    def per_object(self):
        """Per-object rows: ``sample_id, sequence, index, label, first_frame, first_failure, num_frames``
        (scored), ``lost_frames, JF, J_mean, J_recall, J_decay, F_mean, F_recall, F_decay``."""
        return [dict(r) for r in self.objects]

    def youtube_vos(self, seen_categories):
        """YouTube-VOS ``G, J_seen, F_seen, J_unseen, F_unseen`` (categories = ground-truth labels)."""
        nan = lambda v: np.nan if v is None else v  # noqa: E731
        return {k: _py(v) for k, v in metrics.youtube_vos_summary(
            [nan(r["J_mean"]) for r in self.objects], [nan(r["F_mean"]) for r in self.objects],
            [r["label"] for r in self.objects], seen_categories).items()}

    def print_report(self, file=None):
        """Prints the DAVIS-style tables: global scores, then J-Mean / F-Mean per object."""
        fmt = lambda v: "   nan" if v is None else f"{v:6.3f}"  # noqa: E731
        cols = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")
        lines = [f"{'-' * 20} Global results ({self.key}) {'-' * 20}",
                 " ".join(f"{c:>8}" for c in cols),
                 " ".join(f"{fmt(self.summary.get(c)):>8}" for c in cols)]
        yt = self.summary.get("youtube_vos")
        if yt:
            lines.append("YouTube-VOS: " + "  ".join(f"{k} {fmt(v)}" for k, v in yt.items()))
        width = max([len(metrics.object_name(r)) for r in self.objects] + [8])
        lines += ["", f"{'-' * 10} Per sequence results ({self.key}) {'-' * 10}",
                  f"{'Sequence':<{width}} {'J&F':>6} {'J-Mean':>6} {'F-Mean':>6}"]
        lines += [f"{metrics.object_name(r):<{width}} {fmt(r['JF'])} {fmt(r['J_mean'])} {fmt(r['F_mean'])}"
                  for r in self.objects]
        print("\n".join(lines), file=file)

    def plot_j_over_time(self, sample_ids=None, worst=None):
        """Plotly figure of J per frame, one trace per object (optionally only ``sample_ids``, or only the
        ``worst`` objects by J&F)."""
        from sampd_plugin.fo import plots

        keep = None if sample_ids is None else set(sample_ids)
        names = None if worst is None else {(r["sample_id"], r["index"]) for r in plots.worst_objects(self.objects,
                                                                                                      worst)}
        curves = [c for c in self.curves if (keep is None or c["sample_id"] in keep)
                  and (names is None or (c["sample_id"], c["index"]) in names)]
        return plots.plot_j_over_time(curves, title=f"J over time ({self.key})" + (
            f", {worst} worst objects" if worst is not None and len(self.objects) > worst else ""))

    def plot_jf_bars(self):
        """Plotly bar chart of J&F (with J and F) per object, worst first."""
        from sampd_plugin.fo import plots

        return plots.plot_jf_bars(self.objects, title=f"J&F per object ({self.key})")

    def write_html(self, path):
        """Writes both figures into one self-contained HTML page (renders offline). Returns ``path``."""
        from sampd_plugin.fo import plots

        return plots.write_html([self.plot_jf_bars(), self.plot_j_over_time()], path, title=f"SAM-PD J&F ({self.key})")
