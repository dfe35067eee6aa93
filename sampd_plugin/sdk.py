"""The SDK behind ``sampd_plugin.track`` / ``auto_track`` / ``repropagate`` / ``evaluate_jf``; the FiftyOne
operators of the plugin call these functions (through the package's public names) and nothing else.

A collection holds *sequences* (:mod:`sampd_plugin.sources`): video samples, or image sequences (image samples
grouped by ``sequence_field`` and ordered by ``order_field``, e.g. FiftyOne's DAVIS zoo layout). Per sequence,
:func:`track`:

1. reads the prompts of the prompt field (``store.read_prompts``: each object's detection on the frame where
   its ``index`` first appears, with its mask, else its box);
2. streams the sequence's frames from that frame on (``Sequence.frames()``: one frame in memory at a time) through
   :class:`sampd_plugin.tracker.SamPDTracker`;
3. writes the output field (``frames.<label_field>`` of a video, ``<label_field>`` of each image) in chunks of
   ``batch_frames`` frames with ``set_values`` (``store.FrameLabelWriter``) and finally marks the sequence finished
   (``<label_field>_track`` on its head sample).

Safety rules (nothing is lost):

- the prompt / ground-truth field is never written: ``label_field == prompt_field`` is refused, even with
  ``overwrite=True``;
- all input is validated before anything is written (:func:`sampd_plugin.runs.plan_track`): no sequences, a
  missing or non-Detections field, a missing video or image file, a sequence without prompts, a detection without
  ``index`` among indexed ones, a prompt without mask and with an empty / NaN box -> a
  :class:`~sampd_plugin.errors.SampdInputError` naming the sequence, frame and field;
- an output field that already holds labels needs ``overwrite=True``, EXCEPT labels written by an identical run
  (same mode, prompt field, model, checkpoint and :class:`~sampd_plugin.config.SamPDConfig`): that run is resumed;
- resume: a sequence whose marker says an identical run finished it is skipped; a sequence the run started but did
  not finish (interrupted job, killed worker) is cleared and tracked again. Re-running a job, or re-queuing a
  delegated operation, therefore only processes unfinished sequences;
- a sequence's old labels are cleared only when that sequence is about to be re-tracked (after its prompts were
  read), never all at once up front, so a job that stops half-way leaves the untouched sequences as they were.

Scale-out on delegated workers: :mod:`sampd_plugin.delegated`.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import time
from typing import Iterator, Optional, Tuple

import fiftyone.core.utils as fou

from sampd_plugin import labels, runs, store
from sampd_plugin.backends.registry import BackendCache
from sampd_plugin.config import SamPDConfig
from sampd_plugin.errors import SampdInputError
from sampd_plugin.runs import ConfigLike, TrackPlan, make_config, plan_repropagate, plan_track
from sampd_plugin.sources import Layout, Sequence, as_collection
from sampd_plugin.store import DEFAULT_BATCH_FRAMES
from sampd_plugin.tracker import SamPDTracker

logger = logging.getLogger(__name__)

AUTO_LABEL = "object"


# --- progress ------------------------------------------------------------------------------------------------------
class FramesProgressBar(fou.ProgressBar):
    """FiftyOne's progress bar over the frames of a job; :attr:`label` reads ``"sequence 3/10 · frame 45/90"``.

    ``progress`` follows FiftyOne's convention: ``True``/``False``/``None`` (a bar on stdout or not), or a callable
    receiving this bar (wrap it in ``fo.report_progress(fn, dt=...)`` to throttle; the operators pass one that calls
    ``ctx.set_progress(pb.progress, pb.label)``).
    """

    def __init__(self, total=None, progress=None, **kwargs):
        kwargs.setdefault("iters_str", "frames")
        super().__init__(total=total, progress=progress, **kwargs)
        self.label = ""

    def step(self, label: str, count: int = 1):
        self.label = label
        self.update(count, suffix=label)


# --- tracking ------------------------------------------------------------------------------------------------------
def track(samples, prompt_field: str = "ground_truth", label_field: str = "sampd", config: ConfigLike = None,
          model: str = "vit_h", checkpoint: Optional[str] = None, device: Optional[str] = None,
          batch_frames: int = DEFAULT_BATCH_FRAMES, overwrite: bool = False, progress=True,
          job_id: Optional[str] = None, sequence_field: Optional[str] = None,
          order_field: Optional[str] = None) -> dict:
    """Tracks and segments the prompted objects of every sequence of ``samples`` with SAM-PD.

    Prompts: the ``fo.Detections`` of the prompt field, each object (``Detection.index``; 0 is a valid id)
    prompted by its detection on the frame where it first appears (frame 1 usually; later frames for objects that
    enter later), with its mask when it has one (else its box: SAM segments it on that frame). If no detection of a
    sequence has an ``index``, the detections of its first annotated frame become objects ``1..n``.

    Output: the output field as ``fo.Detections`` from each sequence's first prompt frame to its last frame
    (``frames.<label_field>`` of a video sample, ``<label_field>`` of each image of an image sequence): one
    ``fo.Detection(label, bounding_box, mask, index, confidence)`` per started object and frame, with attributes
    ``score`` (selection score), ``iou`` (SAM's predicted IoU; also ``confidence``), ``lost`` and ``is_prompt``.
    Masks are cropped to the box (FiftyOne's convention). A sample-level ``<label_field>_track`` dict on each
    sequence's head sample records the run and marks finished sequences (resume: see the module docstring).

    Args:
        samples: a video or image ``fo.Dataset``, a view (also a dynamic grouped view of images), or a ``fo.Sample``
        prompt_field: Detections field with the prompts (never written)
        label_field: output field
        config: a :class:`~sampd_plugin.config.SamPDConfig`, a preset name (``"full"``, ``"box"``, ...), a dict of
            settings, or ``None`` for the paper's full method
        model: ``"vit_h"``, ``"vit_l"``, ``"vit_b"``, ``"tiny"`` or ``"synthetic"``
            (:mod:`sampd_plugin.backends.registry`)
        checkpoint: optional SAM checkpoint path
        device: torch device; ``None``/``"auto"``: cuda when available
        batch_frames: frames per bulk write (memory is flat in the sequence length)
        overwrite: replace labels in ``label_field`` not written by an identical run
        progress: FiftyOne progress setting (bool / None / callable receiving a :class:`FramesProgressBar`)
        job_id: optional id of a job split into several calls (delegated operations,
            :func:`sampd_plugin.queue_track`): with ``overwrite=True``, sequences this job already finished are
            skipped
        sequence_field, order_field: image collections: the field naming each image's sequence and the field
            ordering its images (defaults: the grouped view's, else ``sequence_id`` and ``frame_number``)

    Returns:
        a JSON-serialisable summary dict: ``label_field, samples`` (sequences), ``tracked, skipped`` (sequence
        keys: video sample ids / image sequence names), ``frames, objects, seconds, frames_per_second, device,
        model, run``

    Raises:
        SampdInputError: invalid input (named sequence / frame / field); nothing was written
    """
    return _run(samples, "track", label_field, prompt_field=prompt_field, config=config, model=model,
                checkpoint=checkpoint, device=device, batch_frames=batch_frames, overwrite=overwrite,
                progress=progress, job_id=job_id, sequence_field=sequence_field, order_field=order_field)


def auto_track(samples, label_field: str = "sampd_auto", max_objects: int = 100, config: ConfigLike = None,
               model: str = "vit_h", checkpoint: Optional[str] = None, device: Optional[str] = None,
               batch_frames: int = DEFAULT_BATCH_FRAMES, overwrite: bool = False, progress=True,
               job_id: Optional[str] = None, sequence_field: Optional[str] = None,
               order_field: Optional[str] = None) -> dict:
    """VIS mode (paper Sec. IV-B): no prompts; the model's automatic masks on each sequence's first frame (at most
    ``max_objects``, best first, objects ``1..n`` with label ``"object"``) are tracked through the sequence.

    Same output, markers, resume and arguments as :func:`track`.
    """
    return _run(samples, "auto", label_field, prompt_field=None, config=config, model=model, checkpoint=checkpoint,
                device=device, batch_frames=batch_frames, overwrite=overwrite, progress=progress,
                max_objects=max_objects, job_id=job_id, sequence_field=sequence_field, order_field=order_field)


def _run(samples, mode, label_field, prompt_field, config, model, checkpoint, device, batch_frames, overwrite,
         progress, max_objects=None, job_id=None, sequence_field=None, order_field=None) -> dict:
    if int(batch_frames) < 1:
        raise SampdInputError(f"batch_frames must be >= 1, got {batch_frames!r}")
    plan = plan_track(samples, label_field, prompt_field, config, model, checkpoint, overwrite, mode, max_objects,
                      job_id, sequence_field, order_field)
    plan.raise_if_invalid()
    try:
        backends = BackendCache(model, checkpoint, device)
    except ValueError as e:  # an unknown or absent device
        raise SampdInputError(str(e)) from None
    cfg = make_config(config)
    store.ensure_output_field(plan.layout, plan.label_field)
    t0 = time.time()
    summary = dict(label_field=plan.label_field, samples=len(plan.todo) + len(plan.done), tracked=[],
                   skipped=list(plan.done), frames=0, objects=0, seconds=0.0, frames_per_second=None,
                   device=backends.device, model=model, run=plan.key, mode=mode)
    if not plan.todo:
        return summary
    seqs = plan.sequences
    with FramesProgressBar(total=plan.total_frames, progress=progress) as pb:
        for i, key in enumerate(plan.todo):
            stats = _track_sequence(plan, seqs[key], cfg, backends, int(batch_frames), pb,
                                    f"sequence {i + 1}/{len(plan.todo)}", max_objects)
            summary["tracked"].append(key)
            summary["frames"] += stats["frames"]
            summary["objects"] += stats["objects"]
    summary["seconds"] = round(time.time() - t0, 3)
    if summary["seconds"] > 0:
        summary["frames_per_second"] = round(summary["frames"] / summary["seconds"], 3)
    return summary


def _track_sequence(plan: TrackPlan, seq: Sequence, cfg: SamPDConfig, backends, batch_frames, pb, prefix,
                    max_objects) -> dict:
    layout = plan.layout
    hw = layout.frame_size(seq)
    t0 = time.time()
    tracker = SamPDTracker(_backend(backends, layout, seq), cfg)
    source = seq.frames()
    # prompts are read (and checked) before this sequence's marker or labels are written
    if plan.settings["mode"] == "track":
        prompts = store.read_prompts(layout, seq, plan.prompt_field, hw, plan.prompt_tables.get(seq.key))
        frames = source.iter_frames(start=min(p.frame_number for p in prompts))
    else:
        frames = source.iter_frames()
        first = next(frames, None)
        if first is None:
            raise SampdInputError(f"{seq.name}: no readable frames")
        _check_image(first[1], hw, seq.name, first[0])
        masks = tracker.auto_prompts(first[1], first[0], max_objects)
        prompts = [dataclasses.replace(p, label=AUTO_LABEL) for p in masks]
        frames = itertools.chain([first], frames)
    if seq.key in plan.clear:  # overwrite, or an unfinished run of these settings: replaced only now
        runs.clear_outputs(layout, [seq], plan.label_field)
    marker = runs.new_marker(plan.key, plan.settings, backends.device, plan.job_id)
    runs.write_marker(layout, plan.label_field, seq, marker)
    writer = store.FrameLabelWriter(layout, plan.label_field, batch_frames)
    count = 0
    if prompts:
        count = _stream(tracker, _checked(frames, hw, seq.name), prompts, hw, writer, seq, pb, prefix)
    marker.update(done=True, frames=count, objects=len(prompts), seconds=round(time.time() - t0, 3),
                  finished_at=runs.now())
    runs.write_marker(layout, plan.label_field, seq, marker)
    return dict(frames=count, objects=len(prompts))


def _stream(tracker, frames, prompts, hw, writer, seq: Sequence, pb, prefix, skip_frame=None, where=None) -> int:
    """Runs the tracker over ``frames`` and writes every result (but ``skip_frame``); returns frames written."""
    count = 0
    last = None
    total = seq.num_frames or "?"
    try:
        for res in tracker.track(frames, prompts):
            last = res.frame_number
            if res.frame_number != skip_frame:
                writer.add(seq, res.frame_number, labels.frame_detections(res, hw))
                count += 1
            pb.step(f"{prefix} · frame {res.frame_number}/{total}")
        writer.flush()
    except SampdInputError:
        writer.flush()
        raise
    except Exception as e:
        writer.flush()
        at = f"after frame {last}" if last is not None else "on its first frame"
        raise RuntimeError(f"{where or seq.name}: tracking failed {at}: {type(e).__name__}: {e}") from e
    return count


def _backend(backends: BackendCache, layout: Layout, seq: Sequence):
    """The backend for one sequence (``synthetic`` is built from the scene the sequence was generated from)."""
    scene = None
    if backends.model == "synthetic":
        from sampd_plugin.synthetic.scene import SyntheticScene

        params = layout.head_value("synthetic", seq)
        scene = SyntheticScene.from_params(params) if params else None
    return backends.get(scene)


def _check_image(image, hw, where, fn):
    if image.shape[:2] != tuple(hw):
        raise SampdInputError(
            f"{where}, frame {fn}: the decoded frame is {image.shape[1]}x{image.shape[0]} but the metadata says "
            f"{hw[1]}x{hw[0]}: recompute the metadata (or fix the frame)"
        )


def _checked(frames, hw, where) -> Iterator[Tuple[int, "object"]]:
    for fn, img in frames:
        _check_image(img, hw, where, fn)
        yield fn, img


# --- correction and repropagation ----------------------------------------------------------------------------------
def repropagate(samples, label_field: str, from_frame: Optional[int] = None, direction: str = "forward",
                object_ids=None, config: ConfigLike = None, model: Optional[str] = None,
                checkpoint: Optional[str] = None, device: Optional[str] = None,
                batch_frames: int = DEFAULT_BATCH_FRAMES, progress=True, sequence_field: Optional[str] = None,
                order_field: Optional[str] = None) -> dict:
    """Re-runs SAM-PD from a corrected frame and replaces the labels on one side of it.

    After a person corrects objects on frame ``k = from_frame`` of the output field (edits a detection's mask/box or
    draws a new one, keeping its ``index``), the detections of frame ``k`` (those with an ``index`` and not
    ``lost``; only ``object_ids`` if given) are the prompts; SAM-PD propagates them forwards (frames ``k+1 ..`` end),
    backwards (frames ``k-1 .. 1``) or both, and on those frames replaces the detections of the re-propagated
    objects (other objects' detections are kept). Frame ``k`` itself and the other side are not touched. Backward
    propagation of a video decodes it forwards in chunks and feeds them to the tracker in reverse (memory: one
    chunk).

    The field must have been written by :func:`track` / :func:`auto_track`: its ``<label_field>_track`` marker gives
    the model, checkpoint and config (unless overridden here) and records the edit; the prompt / ground-truth field
    is never written.

    Args:
        samples: a video ``fo.Sample`` (or one-sample view); or, for image sequences, the corrected image sample
            (``from_frame`` defaults to its position in its sequence) or any images of one sequence
        label_field: the SAM-PD output field to correct
        from_frame: 1-based frame number ``k`` of the correction (the image's position in its sequence for image
            sequences)
        direction: ``"forward"``, ``"backward"`` or ``"both"``
        object_ids: optional object ids (``index``) to re-propagate; default all on frame ``k``
        config, model, checkpoint: override the run's settings
        device, batch_frames, progress: as in :func:`track`
        sequence_field, order_field: image sequences, as in :func:`track`

    Returns:
        a summary dict: ``frames`` written per direction, ``objects``, ``seconds``, ...

    Raises:
        SampdInputError: invalid input (named sequence / frame / field); nothing was written
    """
    plan = plan_repropagate(samples, label_field, from_frame, direction, object_ids, config, model, checkpoint,
                            sequence_field, order_field)
    if int(batch_frames) < 1:
        raise SampdInputError(f"batch_frames must be >= 1, got {batch_frames!r}")
    try:
        backends = BackendCache(plan.model, plan.checkpoint, device)
    except ValueError as e:
        raise SampdInputError(str(e)) from None
    seq, k, total = plan.sequence, plan.from_frame, plan.sequence.num_frames
    t0 = time.time()
    written = {}
    todo = ["forward", "backward"] if direction == "both" else [direction]
    n_frames = sum((total - k) if d == "forward" else (k - 1) for d in todo) if total else None
    source = seq.frames()
    with FramesProgressBar(total=n_frames, progress=progress) as pb:
        for d in todo:
            frames = source.iter_frames(start=k) if d == "forward" else source.iter_frames_backward(k, 1)
            tracker = SamPDTracker(_backend(backends, plan.layout, seq), plan.config)
            writer = store.FrameLabelWriter(plan.layout, plan.label_field, batch_frames, replace_ids=plan.object_ids)
            written[d] = _stream(tracker, _checked(frames, plan.hw, seq.name), plan.prompts, plan.hw, writer, seq, pb,
                                 f"{d} from frame {k}", skip_frame=k, where=f"{seq.name} ({d} from frame {k})")
    marker = dict(plan.marker)
    marker["edits"] = list(marker.get("edits") or []) + [
        dict(from_frame=k, direction=direction, objects=plan.object_ids, at=runs.now())
    ]
    runs.write_marker(plan.layout, plan.label_field, seq, marker)
    return dict(sequence=seq.key, sample_id=seq.head_id, label_field=plan.label_field, from_frame=k,
                direction=direction, objects=plan.object_ids, frames=written, seconds=round(time.time() - t0, 3),
                device=backends.device, model=plan.model)


# --- evaluation ----------------------------------------------------------------------------------------------------
def evaluate_jf(samples, pred_field: str = "sampd", gt_field: str = "ground_truth", eval_key: Optional[str] = "jf",
                **kwargs):
    """DAVIS J&F of ``pred_field`` against ``gt_field`` as a FiftyOne evaluation run
    (:func:`sampd_plugin.evaluation.evaluate_jf`; see it for the arguments, fields and saved views); works on
    video collections and on image sequences (``sequence_field`` / ``order_field`` as in :func:`track`)."""
    from sampd_plugin.evaluation import evaluate_jf as _evaluate_jf

    return _evaluate_jf(as_collection(samples), pred_field, gt_field=gt_field, eval_key=eval_key, **kwargs)


__all__ = ["track", "auto_track", "repropagate", "evaluate_jf", "FramesProgressBar"]
