"""FiftyOne storage of a tracking run: field checks, prompt reading, and the bulk label writer, for any
:class:`~sampd_plugin.fo.sources.Layout` (video samples or image sequences).

Bulk writes: labels go through one ``set_values`` call per ``batch_frames`` frames (:class:`FrameLabelWriter`, of the
documents :func:`sampd_plugin.fo.labels.detections_document` builds):
``frames.<field>`` keyed by video sample id and frame number, or ``<field>`` keyed by image sample id; nothing calls
``save()`` per frame.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
from typing import Callable, Dict, Iterable, List, Optional, Tuple, Union

import numpy as np

import fiftyone as fo
import fiftyone.core.fields as fof

from sampd_plugin.core.tracker import ObjectPrompt
from sampd_plugin.errors import SampdInputError
from sampd_plugin.fo import app, identity
from sampd_plugin.fo.labels import (LABEL_ATTRIBUTES, ObjectLabel, detection_quality, detections_document,
                                    field_name, frame_quality, is_absent, marker_field, object_instance, paste_mask,
                                    quality_fields, relative_to_xyxy)
from sampd_plugin.fo.sources import Layout, SampleSequence

logger = logging.getLogger(__name__)

#: frames per bulk write
DEFAULT_BATCH_FRAMES = 128

#: reserved names an output field may not take
_RESERVED = {"id", "frame_number", "created_at", "last_modified_at", "filepath", "metadata", "tags", "frames"}

__all__ = ["DEFAULT_BATCH_FRAMES", "check_label_field", "check_output_field", "prompt_plan",
           "detection_to_prompt", "read_prompts", "read_frame_prompts", "number_new_objects", "object_instances",
           "ensure_output_field", "replace_objects", "FrameLabelWriter", "BackgroundWriter"]


def check_label_field(layout: Layout, field: str, role: str = "prompt field", types=(fo.Detections,),
                      argument: str = "prompt_field") -> str:
    """Returns the name of a label field (``"x"`` or ``"frames.x"``) after checking that it is a frame label field
    of one of ``types`` on the layout's collection (``frames.x`` of a video collection, ``x`` of an image
    collection); raises :class:`SampdInputError` naming it (``error.field``: ``role`` as a setting name)."""
    name = field_name(field)
    path = layout.path(name)
    param = role.replace(" ", "_")
    f = layout.samples.get_field(path)
    if f is None:
        raise SampdInputError(f"the {role} '{path}' does not exist on {layout.where}", field=param)
    doc_type = getattr(f, "document_type", None)
    if doc_type is None or not issubclass(doc_type, tuple(types)):
        want = " or ".join(t.__name__ for t in types)
        raise SampdInputError(f"the {role} '{path}' is a {type(f).__name__}, not a {want} field", field=param)
    return name


def check_output_field(layout: Layout, label_field: str, prompt_field: Optional[str] = None,
                       allow_overwrite_ground_truth: bool = False) -> str:
    """Validates an output field before anything is written; returns its name.

    Never an output, whatever ``overwrite`` says: the prompt field, the sequence / order fields, a non-Detections
    field, and one whose run marker (``<label_field>_track``) or quality fields exist and are not provably SAM-PD's
    (:func:`sampd_plugin.fo.identity.output_identity`: stamped with the output field's id). Unless
    ``allow_overwrite_ground_truth`` (never set by the operators' forms), neither a field an evaluation of the
    dataset uses as ground truth nor an existing field that is not provably a SAM-PD output (that option makes it
    one). Each refusal is a :class:`SampdInputError` naming the field.
    """
    name = field_name(label_field)
    path = layout.path(name)
    if not name or not name.isidentifier() or name.startswith("_") or name in _RESERVED:
        raise _output_error(f"'{label_field}' is not a valid output field name (use letters, digits and '_')")
    if prompt_field is not None and name == field_name(prompt_field):
        raise _output_error(f"the output field '{path}' is the prompt field: prompts / ground truth are never "
                            "overwritten; choose another output field")
    if name in (layout.sequence_field, layout.order_field):
        raise _output_error(f"the output field '{path}' is the sequence / order field of the image sequences")
    f = layout.samples.get_field(path)
    if f is not None and not issubclass(getattr(f, "document_type", None) or type, fo.Detections):
        raise _output_error(f"'{path}' exists and is a {type(f).__name__}, not a Detections field")
    gt = {} if allow_overwrite_ground_truth else ground_truth_fields(layout.dataset)
    if name in gt:
        raise _output_error(f"'{path}' is the ground truth of evaluation(s) {gt[name]}: ground truth is never "
                            "overwritten; choose another output field")
    ident = identity.output_identity(layout.dataset, name)
    adoptable = allow_overwrite_ground_truth and set(ident.problems) == {path}
    if ident.state == "foreign" and not adoptable:
        raise _output_error(f"{ident.message}: it is never overwritten; choose another output field")
    return name


def _output_error(message: str) -> SampdInputError:
    return SampdInputError(message, field="label_field")


def ground_truth_fields(dataset) -> Dict[str, List[str]]:
    """``{field name: [evaluation keys]}`` of the fields the dataset's evaluations (ours and FiftyOne's) use as
    ground truth."""
    out: Dict[str, List[str]] = {}
    for key in dataset.list_evaluations():
        try:
            gt = getattr(dataset.get_evaluation_info(key).config, "gt_field", None)
        except Exception:  # an evaluation method that cannot be loaded here
            continue
        if gt:
            out.setdefault(field_name(gt), []).append(key)
    return out


def prompt_plan(frames: Dict[int, List[Optional[int]]], prompt_field: str, where: str
                ) -> Dict[int, Tuple[int, Optional[int]]]:
    """Which detection prompts which object: ``{object_id: (frame_number, position in that frame's detections or
    None)}``, the frame where each ``index`` first appears (``index`` 0 is a valid object id).

    If no detection of the sequence has an ``index``, the detections of its first annotated frame become objects
    ``1..n`` in list order (then ``position`` is the list position). Raises :class:`SampdInputError` naming the
    sequence (``where``), frame and field for: no detections at all, a mix of detections with and without
    ``index``, an index repeated on one frame.
    """
    if not frames:
        raise SampdInputError(f"{where}: no prompts: '{prompt_field}' has no detections on any frame")
    anyindex = any(i is not None for v in frames.values() for i in v)
    if not anyindex:
        first = min(frames)
        return {k + 1: (first, k) for k in range(len(frames[first]))}
    plan = {}
    for fn in sorted(frames):
        v = frames[fn]
        if any(i is None for i in v):
            raise SampdInputError(
                f"{where}, frame {fn}: a detection of '{prompt_field}' has no index (object id) while others have "
                "one: set Detection.index on every prompt"
            )
        if len(set(v)) != len(v):
            dup = sorted({i for i in v if v.count(i) > 1})
            raise SampdInputError(f"{where}, frame {fn}: index {dup} repeated in '{prompt_field}'")
        for i in v:
            plan.setdefault(int(i), (fn, None))
    return plan


def detection_to_prompt(det, hw: Tuple[int, int], frame_number: int, object_id: int, where: str) -> ObjectPrompt:
    """One ``fo.Detection`` -> :class:`ObjectPrompt` in pixels: its pasted full-frame mask when it has a non-empty
    mask, else its box (the tracker then asks the backend for the mask).

    Raises :class:`SampdInputError` naming the frame and object for a box that is missing, not finite (NaN), empty
    or outside the frame when the mask does not give the object.
    """
    at = f"{where}, frame {frame_number}, object {object_id}"
    bbox = list(det.bounding_box or [])
    if len(bbox) != 4 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in bbox):
        raise SampdInputError(f"{at}: the detection's bounding box {bbox} is not four finite numbers "
                              "(relative [x, y, w, h])")
    if det.has_mask:
        try:
            mask = paste_mask(det, hw)
        except ValueError as e:
            raise SampdInputError(f"{at}: {e}") from None
        if mask.any():
            return ObjectPrompt(object_id=int(object_id), frame_number=int(frame_number), mask=mask,
                                label=det.label)
    h, w = hw
    box = np.clip(relative_to_xyxy(bbox, hw), 0, [w, h, w, h]).astype(np.float32)
    if not (box[2] > box[0] and box[3] > box[1]):
        what = "an empty mask" if det.has_mask else "no mask"
        raise SampdInputError(f"{at}: the prompt has {what} and its box {bbox} (relative [x, y, w, h]) is empty or "
                              "outside the frame")
    return ObjectPrompt(object_id=int(object_id), frame_number=int(frame_number), box=box, label=det.label)


def read_prompts(layout: Layout, seq: SampleSequence, prompt_field: str, hw: Tuple[int, int],
                 frames: Optional[Dict[int, List[Optional[int]]]] = None) -> List[ObjectPrompt]:
    """The prompts of one sequence: each object's detection on the frame where its ``index`` first appears
    (:func:`prompt_plan`), as :class:`ObjectPrompt` in pixels. Only those frames' labels are loaded; ``frames`` is
    the sequence's row of :meth:`Layout.index_table` when already known."""
    if frames is None:
        frames = layout.index_table(prompt_field)[seq.key]
    plan = prompt_plan(frames, layout.path(prompt_field), seq.name)
    labels = layout.read_labels(seq, prompt_field, sorted({fn for fn, _ in plan.values()}))
    prompts = []
    for oid, (fn, pos) in sorted(plan.items()):
        dets = [d for d in labels[fn].detections if not is_absent(d)]
        det = dets[pos] if pos is not None else next(d for d in dets if d.index == oid)
        prompts.append(detection_to_prompt(det, hw, fn, oid, seq.name))
    return prompts


def read_frame_prompts(layout: Layout, seq: SampleSequence, label_field: str, frame_number: int, hw: Tuple[int, int],
                       object_ids: Optional[Iterable[int]] = None) -> Tuple[List[ObjectPrompt], "fo.Detections"]:
    """Prompts from one frame of a (corrected) output field, for :func:`sampd_plugin.repropagate`: every detection
    that is not ``lost`` (optionally only ``object_ids``). A detection without ``index`` (an object drawn in the App)
    is numbered first: the next free index of the sequence (:func:`number_new_objects`).

    Returns the prompts and the frame's label (with those new indexes)."""
    label = layout.read_labels(seq, label_field, [frame_number]).get(int(frame_number)) or fo.Detections()
    path = layout.path(label_field)
    taken = {i for row in layout.index_table(label_field)[seq.key].values() for i in row if i is not None}
    number_new_objects(label, taken)
    wanted = None if object_ids is None else {int(i) for i in object_ids}
    prompts, seen = [], set()
    for det in label.detections:
        if bool(det.get_field("lost") if det.has_field("lost") else False) or is_absent(det):
            continue
        if wanted is not None and det.index not in wanted:
            continue
        if det.index in seen:
            raise SampdInputError(f"{seq.name}, frame {frame_number}: index {det.index} repeated in '{path}'")
        seen.add(det.index)
        prompts.append(detection_to_prompt(det, hw, frame_number, det.index, seq.name))
    if not prompts:
        which = "" if wanted is None else f" with index in {sorted(wanted)}"
        raise SampdInputError(f"{seq.name}, frame {frame_number}: '{path}' has no detection{which} (not lost) to "
                              "propagate from")
    return prompts, label


def object_instances(layout: Layout, seq: SampleSequence, label_field: str) -> Dict[int, object]:
    """``{index: fo.Instance}`` of the objects of one sequence in ``label_field`` that have one (the first found):
    a re-propagation keeps them, whatever gave them (an earlier run, a copied field, the App)."""
    view = layout.dataset.select(seq.head_id if seq.is_video else seq.sample_ids)
    path = ("frames." if seq.is_video else "") + field_name(label_field) + ".detections"
    found = {}
    for index, instance in zip(view.values(f"{path}.index", unwind=True),
                               view.values(f"{path}.instance", unwind=True)):
        if index is not None and instance is not None:  # a dynamic attribute: read back as its dict
            found.setdefault(index, fo.Instance(id=str(instance["_id"])) if isinstance(instance, dict) else instance)
    return found


def number_new_objects(label, taken: Iterable[int]) -> List[int]:
    """Gives each detection of ``label`` without an ``index`` (e.g. drawn with the App's box tool) the next index
    after ``taken`` and those of ``label`` (in place); returns the new indexes."""
    used = set(taken) | {d.index for d in label.detections if d.index is not None}
    new = []
    for det in label.detections:
        if det.index is None and not is_absent(det):
            det.index = max(used | {0}) + 1
            used.add(det.index)
            new.append(det.index)
    return new


def ensure_output_field(layout: Layout, label_field: str, adopt: bool = False) -> str:
    """Declares the output field as ``fo.Detections`` with the label attributes (``frames.<f>`` for videos, ``<f>``
    for images), its sample-level run marker and its frame quality fields, all stamped with one output id
    (:mod:`sampd_plugin.fo.identity`), and colours its objects by ``index`` in the App
    (:func:`sampd_plugin.fo.app.color_by_object`); idempotent, done before anything is written. Returns the id.
    (The App's annotation schema is given by the App's operators: :func:`sampd_plugin.fo.app.annotation_schema`.)

    A new output field (none, or only a stale marker of a deleted / renamed one) gets a new id; the stale marker
    and its quality fields are deleted first. ``adopt`` (``allow_overwrite_ground_truth``) stamps an existing field
    that SAM-PD did not write. Runs that start at once declare under one lock (:func:`identity.declaring`): the
    marker first, so that another process never sees our output field without its marker.

    Raises:
        SampdInputError: a field of the output is not provably ours (made since the job was planned)
    """
    dataset, name = layout.dataset, field_name(label_field)
    with identity.declaring(dataset, name):
        dataset.reload()  # what runs that started at once declared
        ident = identity.output_identity(dataset, name)
        adopting = adopt and set(ident.problems) == {layout.path(name)}
        if ident.state == "foreign" and not adopting:
            raise _output_error(f"{ident.message}: it is never overwritten; choose another output field")
        for path in ident.stale:  # quality fields of a deleted output field, then its marker
            _delete_field(dataset, path)
        id_ = ident.id or identity.new_id()
        if ident.state != "ours":
            dataset.add_sample_field(marker_field(name), fof.DictField,
                                     info=identity.stamped_info(None, id_, identity.MARKER))
            if adopting:
                identity.stamp_field(dataset, layout.path(name), id_, identity.LABELS)
        layout.add_field(name, fof.EmbeddedDocumentField, embedded_doc_type=fo.Detections,
                         info=identity.stamped_info(None, id_, identity.LABELS))
        for attr, ftype in LABEL_ATTRIBUTES.items():
            layout.add_field(f"{name}.detections.{attr}", ftype)
        for qname, (ftype, kwargs) in quality_fields(name).items():
            layout.add_field(qname, ftype, info=identity.stamped_info(None, id_, identity.role_of(qname, name)),
                             **kwargs)
    app.color_by_object(dataset, name)
    return id_


def _delete_field(dataset, path: str):
    if path.startswith("frames."):
        dataset.delete_frame_field(path[len("frames."):])
    else:
        dataset.delete_sample_field(path)


def replace_objects(old: Iterable["fo.Detection"], new: List[dict], replace_ids) -> List[dict]:
    """The stored detections of a frame: ``old`` (its ``fo.Detection`` s) with those of objects ``replace_ids``
    replaced by ``new`` (stored detections), each where the old one was in the list (a client that addresses labels
    by list position still finds every other object where it was); objects of ``replace_ids`` that ``new`` lacks are
    dropped, new objects are appended."""
    fresh = {d["index"]: d for d in new}
    out = [fresh.pop(d.index) if d.index in replace_ids and d.index in fresh else d.to_dict() for d in old
           if d.index not in replace_ids or d.index in fresh]
    return out + list(fresh.values())


class FrameLabelWriter:
    """Buffers frame labels of one output field and writes them, with the frame quality fields computed from the
    final labels (:func:`sampd_plugin.fo.labels.frame_quality`), with one ``set_values`` call per field every
    ``batch_frames`` frames (memory stays flat in the sequence's length); each object index it writes for the first
    time gets its colour in the App (:func:`sampd_plugin.fo.app.color_by_object`).

    A frame's label is the list of its objects' :class:`~sampd_plugin.fo.labels.ObjectLabel` s
    (:func:`sampd_plugin.fo.labels.frame_labels`); the documents are built when they are written
    (:func:`~sampd_plugin.fo.labels.detections_document`), on the writer's thread under :class:`BackgroundWriter`.

    Args:
        layout: the collection's :class:`~sampd_plugin.fo.sources.Layout`
        label_field: the output field
        batch_frames: frames per ``set_values`` call
        replace_ids: if given, the object ids whose *new* detections replace their old ones: the old detections
            of every other object on the written frames are kept (repropagation); ``None`` replaces whole frames
        before_write: called before every bulk write (the run's ownership check and heartbeat: if it raises,
            nothing is written)
        instances: ``{index: fo.Instance}`` of objects that already have one (re-propagation of an object drawn in
            the App); every other object gets :func:`sampd_plugin.fo.labels.object_instance`
    """

    def __init__(self, layout: Layout, label_field: str, batch_frames: int = DEFAULT_BATCH_FRAMES,
                 replace_ids: Optional[Iterable[int]] = None, before_write: Optional[Callable[[], None]] = None,
                 instances: Optional[Dict[int, object]] = None):
        if batch_frames < 1:
            raise ValueError(f"batch_frames must be >= 1, got {batch_frames}")
        self.layout = layout
        self.label_field = label_field
        self.batch_frames = int(batch_frames)
        self.replace_ids = None if replace_ids is None else {int(i) for i in replace_ids}
        self.before_write = before_write
        self.instances = dict(instances or {})
        self._buf: Dict[str, Tuple[SampleSequence, Dict[int, list]]] = {}
        self._n = 0
        self._colored = set()  # object indexes given their App colour (sampd_plugin.fo.app.color_by_object)
        self.frames_written = 0
        self.calls = 0
        for qname, (ftype, kwargs) in quality_fields(label_field).items():  # e.g. an output field copied by hand
            layout.add_field(qname, ftype, **kwargs)

    @property
    def pending(self) -> int:
        """Frames buffered and not yet written."""
        return self._n

    def add(self, seq: SampleSequence, frame_number: int, objects: Iterable[Union[ObjectLabel, "fo.Detection"]]):
        """Buffers one frame's objects: :class:`~sampd_plugin.fo.labels.ObjectLabel` s (tracked) or stored
        ``fo.Detection`` s (a corrected frame, written as it is)."""
        self._buf.setdefault(seq.key, (seq, {}))[1][int(frame_number)] = list(objects)
        self._n += 1
        if self._n >= self.batch_frames:
            self.flush()

    def flush(self):
        if not self._n:
            return
        if self.before_write is not None:
            self.before_write()
        old: Dict[str, Dict[int, list]] = {k: {} for k in self._buf}  # repropagation: the frames' stored detections
        if self.replace_ids is not None:
            for key, (seq, frames) in self._buf.items():
                for fn, label in self.layout.read_labels(seq, self.label_field, sorted(frames)).items():
                    if label is not None and fn in frames:
                        old[key][fn] = label.detections
        docs, quality = {}, {}
        for key, (seq, frames) in self._buf.items():
            docs[key], quality[key] = (seq, {}), (seq, {})
            for fn, objects in frames.items():
                before = old[key].get(fn, [])
                docs[key][1][fn] = dict(_cls="Detections", detections=replace_objects(
                    before, self._documents(seq, objects), self.replace_ids or set()))
                kept = [d for d in before if d.index not in self.replace_ids]
                stored = [o for o in objects if isinstance(o, fo.Detection)]
                quality[key][1][fn] = frame_quality({
                    **detection_quality(kept + stored),
                    **{o.index: (o.score, o.iou, o.lost, o.confusion) for o in objects
                       if not isinstance(o, fo.Detection)}})
        self.layout.write_labels(self.label_field, docs)
        for n, qname in enumerate(quality_fields(self.label_field)):  # (confidence, doubtful) of each frame
            self.layout.write_labels(qname, {k: (seq, {fn: q[n] for fn, q in qs.items()})
                                             for k, (seq, qs) in quality.items()})
        indexes = {o.index for _, frames in self._buf.values() for objects in frames.values()
                   for o in objects} - self._colored
        if indexes:  # each new object gets its colour in the App
            app.color_by_object(self.layout.dataset, self.label_field, indexes)
            self._colored |= indexes
        self.frames_written += self._n
        self.calls += 1
        self._buf, self._n = {}, 0

    def _documents(self, seq: SampleSequence, objects) -> List[dict]:
        """The stored detections of one frame's objects (:func:`~sampd_plugin.fo.labels.detections_document`), each
        with its object's ``Instance`` (the one it has, else :func:`~sampd_plugin.fo.labels.object_instance`)."""
        docs = []
        for o in objects:
            d = o.to_dict() if isinstance(o, fo.Detection) else detections_document([o])["detections"][0]
            if d.get("instance") is None and d.get("index") is not None:
                d["instance"] = (self.instances.get(d["index"])
                                 or object_instance(seq.head_id, self.label_field, d["index"])).to_dict()
            docs.append(d)
        return docs


_FLUSH = object()


class BackgroundWriter:
    """Runs a writer's ``add`` / ``flush`` (e.g. :class:`FrameLabelWriter`) on a background thread, so that the
    database writes (mask serialisation, ``set_values``) of one chunk overlap the tracking of the next frames.

    Same interface as the wrapped writer: ``add(seq, frame_number, label)`` queues the label and returns at once
    (it blocks while ``max_pending`` labels wait: memory stays bounded); ``flush()`` returns when everything added
    before it is written, so call it before writing the run's marker. An exception raised on the thread is re-raised
    in the caller by the next ``add`` or ``flush`` (and by every later call: nothing more is written after an
    error). The thread starts with the first ``add`` after a ``flush`` and ends with the ``flush``, so no thread is
    left behind without a ``close``. One producer thread (``add`` and ``flush`` from the same thread).

    When the queue runs empty (the model is slower than the database) and the wrapped writer holds at least
    ``idle_flush_frames`` frames (its ``pending``), they are written at once rather than at the writer's next
    ``batch_frames`` boundary, so the final ``flush`` finds little left to write.

    Args:
        writer: the writer to run in the background (its own batching applies: :class:`FrameLabelWriter` still
            writes every ``batch_frames`` frames)
        max_pending: labels that may wait in the queue (default: the writer's ``batch_frames``, else 128): with
            :class:`FrameLabelWriter`, one chunk being written and at most one more chunk queued
        idle_flush_frames: write early when idle with at least this many frames buffered (0: never)
    """

    def __init__(self, writer, max_pending: Optional[int] = None, idle_flush_frames: int = 8):
        self.writer = writer
        self.idle_flush_frames = int(idle_flush_frames)
        size = max_pending or getattr(writer, "batch_frames", None) or DEFAULT_BATCH_FRAMES
        if size < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        self._queue: "queue.Queue" = queue.Queue(maxsize=int(size))
        self._thread: Optional[threading.Thread] = None
        self._error: Optional[BaseException] = None

    @property
    def frames_written(self) -> int:
        return self.writer.frames_written

    @property
    def calls(self) -> int:
        return self.writer.calls

    def _run(self):
        while True:
            item = self._queue.get()
            try:
                if self._error is None:  # after an error the queue is drained without writing
                    if item is _FLUSH:
                        self.writer.flush()
                    else:
                        self.writer.add(*item)
                        if (self._queue.qsize() == 0 and self.idle_flush_frames > 0
                                and getattr(self.writer, "pending", 0) >= self.idle_flush_frames):
                            self.writer.flush()
            except BaseException as e:  # noqa: B902 - re-raised in the producer
                self._error = e
            finally:
                self._queue.task_done()
            if item is _FLUSH:
                return

    def _raise(self):
        if self._error is not None:
            raise self._error

    def add(self, seq: SampleSequence, frame_number: int, label):
        self._raise()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sampd-label-writer", daemon=True)
            self._thread.start()
        self._queue.put((seq, frame_number, label))

    def flush(self):
        """Writes everything added so far (waits for the background thread); raises the thread's error if any."""
        if self._thread is not None:
            self._queue.put(_FLUSH)
            self._thread.join()
            self._thread = None
        elif self._error is None:
            self.writer.flush()
        self._raise()
