"""Per-frame quality signal of a tracked object without ground truth, from the tracker's own scores.

The tracker (:class:`sampd_plugin.core.tracker.ObjectResult`) reports, per object and frame, ``iou`` (SAM's predicted
IoU of the output mask), ``score`` (the many-to-one selection score of the chosen candidate: by default its Eq. 2
similarity to the object's template relative to the template's own; its IoU with the object's previous mask, or
SAM's predicted IoU, with other ``SamPDConfig.selection`` settings), ``lost`` and ``confusion``, its identity evidence
against the other objects (:func:`sampd_plugin.core.identity.confusions`: ``"switch"`` when its mask lies more on another
object's previous mask than on its own, ``"merge"`` when it shares most of itself with another object's mask). The
rule (:func:`is_doubtful`): an object is *doubtful* on a frame when it is lost, its predicted IoU is below
:data:`IOU_BELOW` = 0.5, its score is below :data:`SCORE_BELOW` = 0.1, or it has a confusion: the same evidence
that the interaction benchmark counts as an identity switch against the ground truth (``python -m
sampd_plugin.benchmark --scenario crossing``). :func:`object_confidence` folds them into one number in ``[0, 1]``
(``min(iou, score * 0.5 / SCORE_BELOW)``, at most :data:`CONFUSED` with a confusion, 0 when lost) that is below 0.5
exactly when the object is doubtful.

Why these thresholds:

- a confusion: SAM's predicted IoU and the Eq. 2 similarity both judge a mask on its own; a mask of the wrong
  object, or of two objects, is a good mask to both (and to the twin of a look-alike object, a similar one).
  Measured on generated videos where objects cross (``perf/doubtful.py --scenario crossing``, ``full``): the rule's
  recall of J < 0.5 rises from 0.19 to 0.88 with confusions (of identity switches: 0.18 to 0.87), precision 0.53;
  on the standard videos it flags 3 more object-frames (precision 0.74, recall 1.00);
- predicted IoU 0.5: SAM's predicted IoU estimates the mask's IoU (J) with the object it segmented, and J < 0.5 is
  the evaluation's failure threshold (``failure_th``): below it SAM itself expects a failing mask. It cannot see a
  switch to *another* object (the mask is good, of the wrong object);
- score 0.1: Eq. 2 is an unnormalised correlation, so the relative similarity also drops with the mask's area
  (occlusion, shrinking) and correct masks spread widely below 1; only a mask with almost nothing in common with
  the template is doubtful. Measured on generated videos (``perf/doubtful.py``, default ``full`` preset):
  adding ``score < 0.1`` to ``iou < 0.5`` raises the recall of J < 0.5 from 0.97 to 0.99 at a precision of 0.75;
  ``score < 0.5`` flags 258 frames where 78 fail. These are SYNTHETIC measurements (the synthetic
  segmenter's predicted IoU is informative by construction): check the thresholds on your own data.

The output fields (``sampd_plugin.fo.labels``, ``sampd_plugin.fo.store``): a ``"doubtful"`` tag on each doubtful
detection, and per frame ``<label_field>_confidence`` (the lowest :func:`object_confidence` of the frame's objects)
and ``<label_field>_doubtful``, a ``Classification`` ``"doubtful"`` (confidence: the frame's, ``objects``: the
doubtful ids) on frames with a doubtful object only, which the App draws on the frame while a video plays.

This module imports no FiftyOne.
"""

from __future__ import annotations

from typing import List, Mapping, Optional, Tuple

#: an object whose SAM predicted IoU is below this is doubtful (the J failure threshold)
IOU_BELOW = 0.5
#: an object whose selection score (relative Eq. 2 similarity) is below this is doubtful
SCORE_BELOW = 0.1
#: the highest confidence of an object with a confusion (below IOU_BELOW: doubtful)
CONFUSED = 0.25
#: the label tag written on doubtful detections
DOUBTFUL_TAG = "doubtful"
#: suffixes of the frame-level quality fields of an output field ``f``: ``f_confidence``, ``f_doubtful``
#: (declared by ``sampd_plugin.fo.labels.quality_fields``)
CONFIDENCE_SUFFIX = "_confidence"
DOUBTFUL_SUFFIX = "_doubtful"


def object_confidence(score: float, iou: float, lost: bool, iou_below: float = IOU_BELOW,
                      score_below: float = SCORE_BELOW, confusion: Optional[str] = None) -> float:
    """The confidence of one tracked object on one frame, in ``[0, 1]``: 0 when lost, else the lower of its predicted
    IoU and its score rescaled so that ``score_below`` maps to ``iou_below``, at most :data:`CONFUSED` (scaled like
    ``iou_below``) with a ``confusion``. Below ``iou_below`` exactly when :func:`is_doubtful`."""
    if lost:
        return 0.0
    score, iou = float(score), float(iou)
    scaled = score * iou_below / score_below if score == score else 0.0  # NaN score: no evidence
    conf = float(min(max(min(iou, scaled), 0.0), 1.0))
    return min(conf, CONFUSED * iou_below / IOU_BELOW) if confusion else conf


def is_doubtful(score: float, iou: float, lost: bool, iou_below: float = IOU_BELOW,
                score_below: float = SCORE_BELOW, confusion: Optional[str] = None) -> bool:
    """Whether a tracked object is doubtful on a frame: lost, predicted IoU ``< iou_below``, selection score
    ``< score_below`` or a ``confusion`` (identity switch or merge)."""
    return bool(lost) or bool(confusion) or float(iou) < iou_below or not float(score) >= score_below


def frame_quality(objects: Mapping[int, tuple]) -> Tuple[Optional[float], List[int]]:
    """``(confidence, doubtful ids)`` of a frame from its objects' ``{object id: (score, iou, lost[, confusion])}``:
    the lowest :func:`object_confidence` (``None`` without objects) and the ids of the doubtful objects, sorted."""
    evidence = {i: dict(zip(("score", "iou", "lost", "confusion"), o)) for i, o in objects.items()}
    conf = [object_confidence(**o) for o in evidence.values()]
    return (min(conf) if conf else None), sorted(i for i, o in evidence.items() if is_doubtful(**o))
