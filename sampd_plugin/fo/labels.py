"""Pixels <-> FiftyOne labels: the ONE place where coordinates are converted between the library and FiftyOne.

- library (tracker, backends): ``xyxy`` boxes in image pixels, ``x1``/``y1`` exclusive (``prompts.mask_to_box``),
  full-frame ``(H, W)`` bool masks, 1-based frame numbers;
- FiftyOne: ``Detection.bounding_box`` relative ``[x, y, w, h]`` (divided by the frame width/height) and
  ``Detection.mask`` cropped to that box. Masks are cropped with FiftyOne's own :meth:`fo.Detection.from_mask` and
  pasted back with :func:`paste_mask`, so a mask survives the round trip exactly.

Objects are identified by ``Detection.index`` (FiftyOne's tracking-id convention; 0 is a valid id).

Written labels (:func:`frame_detections`; the label writer stores the same documents from :func:`frame_labels`
through :func:`detections_document`): one ``fo.Detection`` per started object and frame with ``label``,
``bounding_box``, ``mask`` (cropped), ``index``, ``confidence`` (SAM's predicted IoU, clipped to [0, 1]) and the
attributes ``score`` (the many-to-one selection score of the chosen candidate: its Eq. 2 similarity relative to the
template's own, its IoU with the object's previous mask, or SAM's predicted IoU, by ``SamPDConfig.selection``),
``iou`` (SAM's predicted IoU), ``lost`` (the object was not found: no mask, an empty box), ``is_prompt`` (the
object's prompt frame), ``confusion`` (``"switch"`` / ``"merge"``: identity evidence against the other objects,
:func:`sampd_plugin.core.identity.confusions`; ``None`` without) and ``occluded`` (overlap-aware tracking: hidden by
others), and, when written (``store.FrameLabelWriter``), the object's ``instance`` (:func:`object_instance`);
doubtful objects (:func:`sampd_plugin.core.quality.is_doubtful`) carry the label tag
``"doubtful"``. Per frame, :func:`frame_quality` gives the values of the frame-level quality fields
(:func:`quality_fields`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

import hashlib

import cv2
import numpy as np
from bson import Binary, ObjectId

import fiftyone as fo
import fiftyone.core.fields as fof
import fiftyone.core.utils as fou

from sampd_plugin.core import quality

if TYPE_CHECKING:  # the tracker (torch) is not imported at run time
    from sampd_plugin.core.tracker import FrameResult


#: label attributes declared on an output field (besides FiftyOne's Detection fields)
LABEL_ATTRIBUTES = {"score": fof.FloatField, "iou": fof.FloatField, "lost": fof.BooleanField,
                    "is_prompt": fof.BooleanField, "confusion": fof.StringField, "occluded": fof.BooleanField}
#: the attributes the tracker writes, read-only where a person corrects labels (the App's annotation schema)
TRACKER_ATTRIBUTES = ("confidence", "score", "iou", "lost", "is_prompt")


#: sample-level run marker field of output field ``f``: ``f + MARKER_SUFFIX`` (see :mod:`sampd_plugin.fo.runs`)
MARKER_SUFFIX = "_track"


def field_name(field: str) -> str:
    """``"x"`` for ``"x"`` or ``"frames.x"``: the name of a label field without the frame prefix."""
    return field[len("frames."):] if field.startswith("frames.") else field


def marker_field(label_field: str) -> str:
    """The sample-level run marker field of an output field (``sampd`` -> ``sampd_track``)."""
    return field_name(label_field) + MARKER_SUFFIX


def quality_fields(label_field: str) -> Dict[str, Tuple[type, dict]]:
    """The frame-level quality fields of an output field, ``{name: (field type, add_field kwargs)}``:
    ``<f>_confidence`` (float: the lowest object confidence of the frame) and ``<f>_doubtful`` (a ``Classification``
    on frames with doubtful objects) (:mod:`sampd_plugin.core.quality`)."""
    name = field_name(label_field)
    return {name + quality.CONFIDENCE_SUFFIX: (fof.FloatField, {}),
            name + quality.DOUBTFUL_SUFFIX: (fof.EmbeddedDocumentField, {"embedded_doc_type": fo.Classification})}


def is_absent_box(bounding_box) -> bool:
    """Whether a detection's box is the ``[0, 0, 0, 0]`` placeholder that marks an object absent from a frame
    (FiftyOne's DAVIS zoo loader writes one, without a mask, for an object missing from a frame)."""
    return bounding_box is not None and len(bounding_box) == 4 and all(v == 0 for v in bounding_box)


def is_absent(detection) -> bool:
    """Whether a detection only says that its object is absent from the frame: no mask and the ``[0, 0, 0, 0]``
    box (:func:`is_absent_box`). Such detections are not prompts and not ground-truth appearances."""
    return not detection.has_mask and is_absent_box(detection.bounding_box)


def relative_to_xyxy(bounding_box: Sequence[float], hw: Tuple[int, int]) -> np.ndarray:
    """FiftyOne relative ``[x, y, w, h]`` -> ``(4,)`` pixel ``xyxy`` (``x1``/``y1`` exclusive), rounded as
    :func:`paste_mask` rounds (``floor(v + 0.5)``)."""
    h, w = hw
    x, y, bw, bh = (float(v) for v in bounding_box)
    r = lambda v: float(np.floor(v + 0.5))  # noqa: E731
    return np.array([r(x * w), r(y * h), r((x + bw) * w), r((y + bh) * h)], dtype=np.float32)


def xyxy_to_relative(box: Sequence[float], hw: Tuple[int, int]) -> List[float]:
    """Pixel ``xyxy`` (``x1``/``y1`` exclusive) -> FiftyOne relative ``[x, y, w, h]``."""
    h, w = hw
    x0, y0, x1, y1 = (float(v) for v in box)
    return [x0 / w, y0 / h, (x1 - x0) / w, (y1 - y0) / h]


def paste_mask(detection, hw: Tuple[int, int]) -> np.ndarray:
    """Full-frame bool ``(H, W)`` mask of a ``fo.Detection`` whose ``mask`` is cropped to its relative
    ``bounding_box`` ``[x, y, w, h]`` (FiftyOne convention, as ``fo.Detection.from_mask`` writes it).

    The pixel box is ``x0 = round(x W), x1 = round((x + w) W)`` (same for y); the crop is pasted as is when
    its shape is the box's, else resized to it (nearest); parts outside the frame are clipped; no mask ->
    empty. (``Detection.to_segmentation`` is not used: it re-derives the box size with eta's rounding and
    resamples the crop bilinearly, dropping a row or column of ~1 in 5 masks, which breaks exact J.)
    """
    out = np.zeros(hw, bool)
    m = mask_array(detection.get_mask())
    if m is None:
        return out
    x, y, w, h = detection.bounding_box
    x0, y0 = int(np.floor(x * hw[1] + 0.5)), int(np.floor(y * hw[0] + 0.5))
    x1, y1 = int(np.floor((x + w) * hw[1] + 0.5)), int(np.floor((y + h) * hw[0] + 0.5))
    if m.shape != (y1 - y0, x1 - x0) and y1 > y0 and x1 > x0:
        m = cv2.resize(m.view(np.uint8), (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST_EXACT) > 0
    ya, xa = max(y0, 0), max(x0, 0)
    yb, xb = min(y0 + m.shape[0], hw[0]), min(x0 + m.shape[1], hw[1])
    if yb > ya and xb > xa:
        out[ya:yb, xa:xb] = m[ya - y0:yb - y0, xa - x0:xb - x0]
    return out


def object_instance(head_id: str, label_field: str, index: int) -> "fo.Instance":
    """The FiftyOne ``Instance`` of object ``index`` of one sequence (its head sample ``head_id``) in ``label_field``,
    derived from those three: every frame, a resumed run and a re-propagation give the object the same instance, so
    the App's annotation timeline draws one track per object."""
    digest = hashlib.sha1(f"{head_id}/{field_name(label_field)}/{int(index)}".encode()).digest()[:12]
    return fo.Instance(id=str(ObjectId(digest)))


def mark_prompt(detection) -> "fo.Detection":
    """Marks a corrected detection as the prompt of a re-propagation (in place): ``is_prompt``, not ``lost``, its
    tracker scores (``confidence``, ``score``, ``iou``), identity and occlusion flags (``confusion``, ``occluded``) and
    ``doubtful`` tag cleared: they described the tracker's mask, which the correction replaced."""
    detection.is_prompt, detection.lost, detection.occluded = True, False, False
    detection.confidence = detection.score = detection.iou = detection.confusion = None
    detection.tags = [t for t in (detection.tags or []) if t != quality.DOUBTFUL_TAG]
    return detection


def box_fits_mask(detection, hw: Tuple[int, int], tolerance: float = 0.15) -> bool:
    """Whether a detection's mask crop has the shape of its box: the same aspect ratio, within ``tolerance``
    (relative) and 2 px (the App stores a mask painted with its brush at its canvas's resolution, a multiple of the
    frame's). A box resized without its mask (e.g. the App's copy of a corrected box on the object's later frames)
    does not fit; a box only moved cannot be told apart."""
    if not detection.has_mask or detection.mask is None:
        return True
    x0, y0, x1, y1 = relative_to_xyxy(detection.bounding_box, hw)
    mh, mw = np.asarray(detection.mask).shape[:2]
    bw, bh = x1 - x0, y1 - y0
    if min(mh, mw, bw, bh) <= 0:
        return bool(mh * mw == 0 and bw * bh <= 0)
    fit_w = bh * mw / mh  # the box's width if it had the mask's aspect ratio
    return abs(fit_w - bw) <= max(2.0, tolerance * bw)


def mask_array(mask) -> Optional[np.ndarray]:
    """A ``fo.Detection.mask`` (its crop) as a bool ``(h, w)`` array, after checking it: 2-D (or one channel of a
    3-D array), not empty, of a boolean / integer / float type, finite (non-zero pixels are the object);
    ``None`` stays ``None``.

    Raises:
        ValueError: a mask that is empty (0 pixels), not numeric, or holds NaN / inf values
    """
    if mask is None:
        return None
    m = np.asarray(mask)
    m = m[..., 0] if m.ndim == 3 else m
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f"its mask has shape {np.shape(mask)}: a mask is a non-empty (h, w) array")
    if m.dtype.kind not in "biuf":
        raise ValueError(f"its mask holds {m.dtype} values: a mask holds booleans or numbers")
    if m.dtype.kind == "f" and not np.isfinite(m).all():
        raise ValueError(f"its mask holds {int((~np.isfinite(m)).sum())} NaN / inf value(s)")
    return m != 0


class ObjectLabel(NamedTuple):
    """One tracked object on one frame as it is written: the fields of its ``fo.Detection`` (module docstring),
    without FiftyOne documents, so that the tracking thread only crops the mask (:func:`frame_labels`) and the
    label writer's thread builds what is stored (:func:`detections_document`)."""

    index: int
    label: Optional[str]
    bounding_box: List[float]  # relative [x, y, w, h]; [0, 0, 0, 0] when lost
    mask: Optional[np.ndarray]  # (h, w) bool, cropped to the box; None when lost
    confidence: float  # SAM's predicted IoU clipped to [0, 1]
    score: float
    iou: float
    lost: bool
    is_prompt: bool
    doubtful: bool
    confusion: Optional[str] = None  # "switch" / "merge" (core.identity.confusions)
    occluded: bool = False


def object_label(object_id: int, result, hw: Tuple[int, int]) -> ObjectLabel:
    """One tracked object on one frame (a tracker ``ObjectResult``) -> :class:`ObjectLabel`. The box is the
    result's (the tight box of its mask, :func:`sampd_plugin.core.prompts.mask_to_box`), or the mask's own when the
    result has none; an empty mask is written as lost."""
    mask = None if result.mask is None else np.asarray(result.mask)
    x = y = w = h = 0
    if not result.lost and mask is not None:
        mask = mask if mask.dtype == bool else mask != 0
        if result.box is not None:
            x0, y0, x1, y1 = (int(v) for v in result.box)
            x, y, w, h = x0, y0, x1 - x0, y1 - y0
        else:
            x, y, w, h = cv2.boundingRect(np.ascontiguousarray(mask).view(np.uint8))
    lost = w == 0
    confusion = getattr(result, "confusion", None)
    H, W = hw
    # the box and crop fo.Detection.from_mask stores (tight box, x / W, (x1 - x0 + 1) / W), without its full-frame
    # copies and reductions; the crop is copied so the label does not keep the tracker's frame mask alive
    return ObjectLabel(index=int(object_id), label=result.label,
                       bounding_box=[0.0, 0.0, 0.0, 0.0] if lost else [x / W, y / H, w / W, h / H],
                       mask=None if lost else mask[y:y + h, x:x + w].copy(),
                       confidence=float(min(max(result.iou, 0.0), 1.0)), score=float(result.score),
                       iou=float(result.iou), lost=lost, is_prompt=bool(result.is_prompt),
                       doubtful=quality.is_doubtful(result.score, result.iou, lost, confusion=confusion),
                       confusion=confusion, occluded=bool(getattr(result, "occluded", False)))


def frame_labels(result: "FrameResult", hw: Tuple[int, int], only: Optional[Iterable[int]] = None
                 ) -> List[ObjectLabel]:
    """A tracker :class:`FrameResult` -> its objects' :class:`ObjectLabel` s in id order (optionally only ``only``):
    what the tracking loop hands to the label writer (cheap: a crop per object)."""
    keep = None if only is None else set(only)
    return [object_label(oid, r, hw) for oid, r in sorted(result.objects.items()) if keep is None or oid in keep]


def _detection_fields(o: ObjectLabel) -> dict:
    fields = dict(label=o.label, bounding_box=o.bounding_box, index=o.index, confidence=o.confidence, score=o.score,
                  iou=o.iou, lost=o.lost, is_prompt=o.is_prompt, confusion=o.confusion, occluded=o.occluded)
    if o.doubtful:
        fields["tags"] = [quality.DOUBTFUL_TAG]
    return fields


def object_detection(object_id: int, result, hw: Tuple[int, int]) -> "fo.Detection":
    """One tracked object on one frame -> ``fo.Detection`` (see the module docstring for the fields)."""
    o = object_label(object_id, result, hw)
    return fo.Detection(**_detection_fields(o), **({} if o.mask is None else {"mask": o.mask}))


def frame_detections(result: "FrameResult", hw: Tuple[int, int], only: Optional[Iterable[int]] = None
                     ) -> "fo.Detections":
    """A tracker :class:`FrameResult` -> ``fo.Detections`` (objects in id order; optionally only ``only``)."""
    return fo.Detections(detections=[fo.Detection(**_detection_fields(o), **({} if o.mask is None else
                                                                            {"mask": o.mask}))
                                     for o in frame_labels(result, hw, only)])


def detections_document(objects: Iterable[ObjectLabel]) -> dict:
    """The stored form of ``fo.Detections`` of :class:`ObjectLabel` s, what ``Detections.to_dict()`` gives (new ids;
    the masks serialised by FiftyOne's ``serialize_numpy_array``), built without FiftyOne documents: a
    ``set_values(..., validate=False)`` of the output field writes it as it is (100 objects: ~10x faster than
    building the ``fo.Detection`` s; ``perf/writeback.py``)."""
    dets = []
    for o in objects:
        d = dict(_id=ObjectId(), _cls="Detection", tags=[quality.DOUBTFUL_TAG] if o.doubtful else [], attributes={},
                 label=o.label, bounding_box=o.bounding_box, confidence=o.confidence, index=o.index, score=o.score,
                 iou=o.iou, lost=o.lost, is_prompt=o.is_prompt, confusion=o.confusion, occluded=o.occluded)
        if o.mask is not None:
            d["mask"] = Binary(fou.serialize_numpy_array(o.mask))
        if o.label is None:
            del d["label"]
        dets.append(d)
    return dict(_cls="Detections", detections=dets)


def detection_quality(detections: Iterable["fo.Detection"]) -> Dict[int, tuple]:
    """``{index: (score, iou, lost, confusion)}`` of stored detections; those without ``score`` / ``iou`` (e.g.
    drawn by hand) or ``index`` are left out."""
    attr = lambda d, name: d.get_field(name) if d.has_field(name) else None  # noqa: E731
    objects = {d.index: (attr(d, "score"), attr(d, "iou"), bool(attr(d, "lost")), attr(d, "confusion"))
               for d in detections}
    return {i: o for i, o in objects.items() if None not in o[:2] and i is not None}


def frame_quality(objects: Dict[int, tuple]) -> Tuple[Optional[float], Optional["fo.Classification"]]:
    """The values of the frame quality fields (:func:`quality_fields`) of one frame from its objects'
    ``{index: (score, iou, lost, confusion)}`` (:class:`ObjectLabel` s, or stored ones: :func:`detection_quality`): the lowest
    object confidence (``None`` without objects), and ``fo.Classification(label="doubtful", confidence=<that>,
    objects=[doubtful ids])`` when an object is doubtful, else ``None`` (:func:`sampd_plugin.core.quality.frame_quality`)."""
    conf, ids = quality.frame_quality(objects)
    return conf, (fo.Classification(label=quality.DOUBTFUL_TAG, confidence=conf, objects=ids) if ids else None)
