"""FiftyOne storage of a tracking run: field checks, prompt reading, and the bulk label writer.

Bulk writes: labels go through ``set_values("frames.<field>", {sample_id: {frame_number: label}}, key_field="id")``
in chunks of ``batch_frames`` frames (:class:`FrameLabelWriter`); nothing calls ``save()`` per frame.
"""

from __future__ import annotations

import logging
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

import fiftyone as fo
import fiftyone.core.fields as fof
from fiftyone import ViewField as F

from sampd_plugin import app
from sampd_plugin.errors import SampdInputError
from sampd_plugin.labels import LABEL_ATTRIBUTES, field_name, marker_field, paste_mask, relative_to_xyxy
from sampd_plugin.tracker import ObjectPrompt

logger = logging.getLogger(__name__)

#: frames per bulk write
DEFAULT_BATCH_FRAMES = 128

#: reserved names an output field may not take
_RESERVED = {"id", "frame_number", "created_at", "last_modified_at", "filepath", "metadata", "tags"}


def as_collection(samples):
    """A dataset / view as is; a dataset ``fo.Sample`` as a one-sample view."""
    if isinstance(samples, fo.Sample):
        if not samples.in_dataset:
            raise SampdInputError("the sample is not in a dataset: add it to one first")
        return samples._dataset.select(samples.id)
    return samples


def frame_size(sample) -> Tuple[int, int]:
    """``(H, W)`` of a video sample's frames from its ``metadata`` (computed when missing)."""
    meta = sample.metadata
    if meta is None or not getattr(meta, "frame_height", None):
        sample.compute_metadata()
        meta = sample.metadata
    if meta is None or not getattr(meta, "frame_height", None):
        raise SampdInputError(f"sample {sample.id} ({sample.filepath}): cannot read the video's frame size")
    return int(meta.frame_height), int(meta.frame_width)


def check_label_field(samples, field: str, role: str = "prompt field", types=(fo.Detections,)) -> str:
    """Returns the frame-level field name ``field`` (``"x"`` or ``"frames.x"``) after checking that ``samples`` is
    a video collection on which it is a frame-level field of one of ``types``; raises :class:`SampdInputError`."""
    if samples.media_type != "video":
        raise SampdInputError(
            f"dataset '{samples._root_dataset.name}' holds {samples.media_type} samples: SAM-PD tracks videos"
        )
    name = field_name(field)
    f = samples.get_field("frames." + name)
    if f is None:
        raise SampdInputError(f"the {role} 'frames.{name}' does not exist on dataset '{samples._root_dataset.name}'")
    doc_type = getattr(f, "document_type", None)
    if doc_type is None or not issubclass(doc_type, tuple(types)):
        want = " or ".join(t.__name__ for t in types)
        raise SampdInputError(f"the {role} 'frames.{name}' is a {type(f).__name__}, not a frame-level {want} field")
    return name


def check_output_field(samples, label_field: str, prompt_field: Optional[str] = None) -> str:
    """Validates an output field name; the prompt / ground-truth field is never an output (even with
    ``overwrite``)."""
    name = field_name(label_field)
    if not name or not name.isidentifier() or name.startswith("_") or name in _RESERVED:
        raise SampdInputError(f"'{label_field}' is not a valid output field name (use letters, digits and '_')")
    if prompt_field is not None:
        pf = field_name(prompt_field)
        if name == pf:
            raise SampdInputError(
                f"the output field 'frames.{name}' is the prompt field: prompts / ground truth are never "
                "overwritten; choose another output field"
            )
    f = samples.get_field("frames." + name)
    if f is not None and not issubclass(getattr(f, "document_type", None) or type, fo.Detections):
        raise SampdInputError(f"'frames.{name}' exists and is a {type(f).__name__}, not a Detections field")
    marker = samples.get_field(marker_field(name))
    if marker is not None and not isinstance(marker, fof.DictField):
        raise SampdInputError(f"the marker field '{marker_field(name)}' exists and is not a dict field")
    return name


def prompt_index_table(samples, prompt_field: str) -> Dict[str, Dict[int, List[Optional[int]]]]:
    """``{sample_id: {frame_number: [Detection.index, ...]}}`` of the frames of ``samples`` whose prompt field has
    detections (one aggregation; no masks are loaded)."""
    ids = samples.values("id")
    fns = samples.values("frames.frame_number")
    idx = samples.values(f"frames.{prompt_field}.detections.index")
    table = {}
    for sid, sfns, sidx in zip(ids, fns, idx):
        table[sid] = {int(fn): list(v) for fn, v in zip(sfns or [], sidx or []) if v}
    return table


def prompt_plan(sample_id: str, frames: Dict[int, List[Optional[int]]], prompt_field: str,
                where: str = "") -> Dict[int, Tuple[int, Optional[int]]]:
    """Which detection prompts which object: ``{object_id: (frame_number, position in that frame's detections or
    None)}``, the frame where each ``index`` first appears.

    If no detection of the sample has an ``index``, the detections of its first annotated frame become objects
    ``1..n`` in list order (then ``position`` is the list position). Raises :class:`SampdInputError` naming the
    sample, frame and field for: no detections at all, a mix of detections with and without ``index``, an index
    repeated on one frame.
    """
    where = where or f"sample {sample_id}"
    if not frames:
        raise SampdInputError(f"{where}: no prompts: 'frames.{prompt_field}' has no detections on any frame")
    anyindex = any(i is not None for v in frames.values() for i in v)
    if not anyindex:
        first = min(frames)
        return {k + 1: (first, k) for k in range(len(frames[first]))}
    plan = {}
    for fn in sorted(frames):
        v = frames[fn]
        if any(i is None for i in v):
            raise SampdInputError(
                f"{where}, frame {fn}: a detection of 'frames.{prompt_field}' has no index (object id) while "
                "others have one: set Detection.index on every prompt"
            )
        if len(set(v)) != len(v):
            dup = sorted({i for i in v if v.count(i) > 1})
            raise SampdInputError(f"{where}, frame {fn}: index {dup} repeated in 'frames.{prompt_field}'")
        for i in v:
            plan.setdefault(int(i), (fn, None))
    return plan


def detection_to_prompt(det, hw: Tuple[int, int], frame_number: int, object_id: int, where: str) -> ObjectPrompt:
    """One ``fo.Detection`` -> :class:`ObjectPrompt` in pixels: its pasted full-frame mask when it has a non-empty
    mask, else its box (the tracker then asks the backend for the mask)."""
    label = det.label
    if det.has_mask:
        mask = paste_mask(det, hw)
        if mask.any():
            return ObjectPrompt(object_id=int(object_id), frame_number=int(frame_number), mask=mask, label=label)
    h, w = hw
    box = relative_to_xyxy(det.bounding_box or [0, 0, 0, 0], hw)
    box = np.clip(box, 0, [w, h, w, h]).astype(np.float32)
    if not (box[2] > box[0] and box[3] > box[1]):
        raise SampdInputError(
            f"{where}, frame {frame_number}, object {object_id}: the prompt has no mask and an empty box "
            f"{list(det.bounding_box or [])} (relative [x, y, w, h])"
        )
    return ObjectPrompt(object_id=int(object_id), frame_number=int(frame_number), box=box, label=label)


def read_prompts(dataset, sample_id: str, prompt_field: str, hw: Tuple[int, int],
                 frames: Optional[Dict[int, List[Optional[int]]]] = None, where: str = "") -> List[ObjectPrompt]:
    """The prompts of one sample: each object's detection on the frame where its ``index`` first appears
    (:func:`prompt_plan`), as :class:`ObjectPrompt` in pixels. Only those frames' labels are loaded."""
    view = dataset.select(sample_id)
    if frames is None:
        frames = prompt_index_table(view, prompt_field)[sample_id]
    plan = prompt_plan(sample_id, frames, prompt_field, where)
    wanted = sorted({fn for fn, _ in plan.values()})
    labels = dict(zip(*_frame_values(view, prompt_field, wanted)))
    prompts = []
    for oid, (fn, pos) in sorted(plan.items()):
        dets = labels[fn].detections
        det = dets[pos] if pos is not None else next(d for d in dets if d.index == oid)
        prompts.append(detection_to_prompt(det, hw, fn, oid, where or f"sample {sample_id}"))
    return prompts


def read_frame_prompts(dataset, sample_id: str, label_field: str, frame_number: int, hw: Tuple[int, int],
                       object_ids: Optional[Iterable[int]] = None, where: str = "") -> List[ObjectPrompt]:
    """Prompts from one frame of a (corrected) output field: every detection with an ``index`` that is not
    ``lost`` (optionally only ``object_ids``), for :func:`sampd_plugin.repropagate`."""
    where = where or f"sample {sample_id}"
    fns, labels = _frame_values(dataset.select(sample_id), label_field, [frame_number])
    label = labels[0] if labels else None
    wanted = None if object_ids is None else {int(i) for i in object_ids}
    prompts, seen = [], set()
    for det in (label.detections if label is not None else []):
        if det.index is None or bool(det.get_field("lost") if det.has_field("lost") else False):
            continue
        if wanted is not None and det.index not in wanted:
            continue
        if det.index in seen:
            raise SampdInputError(
                f"{where}, frame {frame_number}: index {det.index} repeated in 'frames.{label_field}'"
            )
        seen.add(det.index)
        prompts.append(detection_to_prompt(det, hw, frame_number, det.index, where))
    if not prompts:
        which = "" if wanted is None else f" with index in {sorted(wanted)}"
        raise SampdInputError(
            f"{where}, frame {frame_number}: 'frames.{label_field}' has no detection{which} (with an index and not "
            "lost) to propagate from"
        )
    return prompts


def _frame_values(view, field: str, frame_numbers: Sequence[int]):
    """``(frame_numbers, labels)`` of ``field`` on the given frames of a one-sample view (one query)."""
    if not frame_numbers:
        return [], []
    v = view.match_frames(F("frame_number").is_in(list(frame_numbers)), omit_empty=False)
    fns = v.values("frames.frame_number")[0] or []
    labels = v.values(f"frames.{field}")[0] or []
    return [int(f) for f in fns], labels


def ensure_output_field(dataset, label_field: str):
    """Declares ``frames.<label_field>`` as ``fo.Detections`` with the label attributes and the sample-level marker
    field, and colours its objects by ``index`` in the App (:func:`sampd_plugin.app.color_by_object`) (idempotent;
    done once before workers write, so they never race on the schema)."""
    if not dataset.has_frame_field(label_field):
        dataset.add_frame_field(label_field, fof.EmbeddedDocumentField, embedded_doc_type=fo.Detections)
    for attr, ftype in LABEL_ATTRIBUTES.items():
        path = f"{label_field}.detections.{attr}"
        if not dataset.has_frame_field(path):
            dataset.add_frame_field(path, ftype)
    marker = marker_field(label_field)
    if not dataset.has_sample_field(marker):
        dataset.add_sample_field(marker, fof.DictField)
    app.color_by_object(dataset, label_field)


def labeled_frame_counts(samples, label_field: str) -> Dict[str, int]:
    """``{sample_id: number of frames whose label_field is set}`` (one aggregation, no labels loaded)."""
    ids = samples.values("id")
    if samples.get_field("frames." + label_field) is None:
        return {sid: 0 for sid in ids}
    counts = samples.values(F("frames").filter(F(label_field) != None).length())  # noqa: E711
    return {sid: int(c or 0) for sid, c in zip(ids, counts)}


class FrameLabelWriter:
    """Buffers frame labels of one output field and writes them with ``set_values`` every ``batch_frames`` frames
    (memory stays flat in the video's length).

    Args:
        dataset: the ``fo.Dataset``
        label_field: frame-level output field
        batch_frames: frames per ``set_values`` call
        replace_ids: if given, the object ids whose *new* detections replace their old ones: the old detections
            of every other object on the written frames are kept (repropagation); ``None`` replaces whole frames
    """

    def __init__(self, dataset, label_field: str, batch_frames: int = DEFAULT_BATCH_FRAMES,
                 replace_ids: Optional[Iterable[int]] = None):
        if batch_frames < 1:
            raise ValueError(f"batch_frames must be >= 1, got {batch_frames}")
        self.dataset = dataset
        self.label_field = label_field
        self.batch_frames = int(batch_frames)
        self.replace_ids = None if replace_ids is None else {int(i) for i in replace_ids}
        self._buf: Dict[str, Dict[int, object]] = {}
        self._n = 0
        self.frames_written = 0
        self.calls = 0

    def add(self, sample_id: str, frame_number: int, label):
        self._buf.setdefault(sample_id, {})[int(frame_number)] = label
        self._n += 1
        if self._n >= self.batch_frames:
            self.flush()

    def flush(self):
        if not self._n:
            return
        if self.replace_ids is not None:
            for sid, frames in self._buf.items():
                fns, old = _frame_values(self.dataset.select(sid), self.label_field, sorted(frames))
                for fn, label in zip(fns, old):
                    if label is None or fn not in frames:
                        continue
                    kept = [d for d in label.detections if d.index not in self.replace_ids]
                    frames[fn] = fo.Detections(detections=kept + list(frames[fn].detections))
        # the labels are built here and the field is declared (ensure_output_field): skip per-value validation
        self.dataset.set_values(f"frames.{self.label_field}", self._buf, key_field="id", validate=False)
        self.frames_written += self._n
        self.calls += 1
        self._buf, self._n = {}, 0
