"""Pixels <-> FiftyOne labels: the ONE place where coordinates are converted between the library and FiftyOne.

- library (tracker, backends): ``xyxy`` boxes in image pixels, ``x1``/``y1`` exclusive (``prompts.mask_to_box``),
  full-frame ``(H, W)`` bool masks, 1-based frame numbers;
- FiftyOne: ``Detection.bounding_box`` relative ``[x, y, w, h]`` (divided by the frame width/height) and
  ``Detection.mask`` cropped to that box. Masks are cropped with FiftyOne's own :meth:`fo.Detection.from_mask` and
  pasted back with :func:`paste_mask`, so a mask survives the round trip exactly.

Objects are identified by ``Detection.index`` (FiftyOne's tracking-id convention; 0 is a valid id).

Written labels (:func:`frame_detections`): one ``fo.Detection`` per started object and frame with ``label``,
``bounding_box``, ``mask`` (cropped), ``index``, ``confidence`` (SAM's predicted IoU, clipped to [0, 1]) and the
attributes ``score`` (the many-to-one selection score of the chosen candidate: its Eq. 2 similarity relative to the
template's own, its IoU with the object's previous mask, or SAM's predicted IoU, by ``SamPDConfig.selection``),
``iou`` (SAM's predicted IoU), ``lost`` (the object was not found: no mask, an empty box), ``is_prompt`` (the
object's prompt frame), ``confusion`` (``"switch"`` / ``"merge"``: identity evidence against the other objects,
:func:`sampd_plugin.core.identity.confusions`; ``None`` without) and ``occluded`` (overlap-aware tracking: hidden by
others); doubtful objects (:func:`sampd_plugin.core.quality.is_doubtful`) carry the label tag
``"doubtful"``. Per frame, :func:`frame_quality` gives the values of the frame-level quality fields
(:func:`quality_fields`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Iterable, List, Optional, Sequence, Tuple

import cv2
import numpy as np

import fiftyone as fo
import fiftyone.core.fields as fof

from sampd_plugin.core import quality

if TYPE_CHECKING:  # the tracker (torch) is not imported at run time
    from sampd_plugin.core.tracker import FrameResult


#: label attributes declared on an output field (besides FiftyOne's Detection fields)
LABEL_ATTRIBUTES = {"score": fof.FloatField, "iou": fof.FloatField, "lost": fof.BooleanField,
                    "is_prompt": fof.BooleanField, "confusion": fof.StringField, "occluded": fof.BooleanField}


#: sample-level run marker field of output field ``f``: ``f + MARKER_SUFFIX`` (see :mod:`sampd_plugin.fo.runs`)
MARKER_SUFFIX = "_track"


def field_name(field: str) -> str:
    """``"x"`` for ``"x"`` or ``"frames.x"``: the name of a label field without the frame prefix."""
    return field[len("frames."):] if field.startswith("frames.") else field


def marker_field(label_field: str) -> str:
    """The sample-level run marker field of an output field (``sampd`` -> ``sampd_track``)."""
    return field_name(label_field) + MARKER_SUFFIX


def output_fields(dataset) -> List[str]:
    """The SAM-PD output fields of a dataset, sorted: the names ``f`` that have a sample-level run marker field
    ``f + MARKER_SUFFIX`` (whether the label field ``f`` itself exists is the caller's question)."""
    return sorted(f[: -len(MARKER_SUFFIX)] for f in dataset.get_field_schema() if f.endswith(MARKER_SUFFIX))


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
    m = detection.get_mask()
    if m is None:
        return out
    m = np.asarray(m)
    m = (m[..., 0] if m.ndim == 3 else m) != 0
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


def object_detection(object_id: int, result, hw: Tuple[int, int]) -> "fo.Detection":
    """One tracked object on one frame -> ``fo.Detection`` (see the module docstring for the fields)."""
    conf = float(min(max(result.iou, 0.0), 1.0))
    attrs = dict(index=int(object_id), confidence=conf, score=float(result.score), iou=float(result.iou),
                 lost=bool(result.lost), is_prompt=bool(result.is_prompt),
                 confusion=getattr(result, "confusion", None), occluded=bool(getattr(result, "occluded", False)))
    mask = None if result.mask is None else np.asarray(result.mask)
    x = y = w = h = 0
    if not result.lost and mask is not None:
        mask = mask if mask.dtype == bool else mask != 0
        x, y, w, h = cv2.boundingRect(np.ascontiguousarray(mask).view(np.uint8))
    attrs["lost"] = w == 0
    if quality.is_doubtful(result.score, result.iou, attrs["lost"], confusion=attrs["confusion"]):
        attrs["tags"] = [quality.DOUBTFUL_TAG]
    if w == 0:
        return fo.Detection(label=result.label, bounding_box=[0.0, 0.0, 0.0, 0.0], **attrs)
    # what fo.Detection.from_mask stores (tight box, x / W, (x1 - x0 + 1) / W; the crop), without its full-frame
    # copies and reductions; the crop is copied so the label does not keep the tracker's frame mask alive
    H, W = mask.shape
    return fo.Detection(label=result.label, bounding_box=[x / W, y / H, w / W, h / H],
                        mask=mask[y:y + h, x:x + w].copy(), **attrs)


def frame_detections(result: "FrameResult", hw: Tuple[int, int], only: Optional[Iterable[int]] = None
                     ) -> "fo.Detections":
    """A tracker :class:`FrameResult` -> ``fo.Detections`` (objects in id order; optionally only ``only``)."""
    keep = None if only is None else set(only)
    return fo.Detections(detections=[object_detection(oid, r, hw) for oid, r in sorted(result.objects.items())
                                     if keep is None or oid in keep])


def frame_quality(label: Optional["fo.Detections"]) -> Tuple[Optional[float], Optional["fo.Classification"]]:
    """The values of the frame quality fields (:func:`quality_fields`) of one frame's output label: the lowest object
    confidence (``None`` without objects), and ``fo.Classification(label="doubtful", confidence=<that>,
    objects=[doubtful ids])`` when an object is doubtful, else ``None``
    (:func:`sampd_plugin.core.quality.frame_quality`).
    Detections without ``score`` / ``iou`` (e.g. drawn by hand) are left out."""
    attr = lambda d, name: d.get_field(name) if d.has_field(name) else None  # noqa: E731
    objects = {d.index: (attr(d, "score"), attr(d, "iou"), bool(attr(d, "lost")), attr(d, "confusion"))
               for d in (label.detections if label is not None else [])}
    conf, ids = quality.frame_quality({i: o for i, o in objects.items() if None not in o[:2] and i is not None})
    return conf, (fo.Classification(label=quality.DOUBTFUL_TAG, confidence=conf, objects=ids) if ids else None)
