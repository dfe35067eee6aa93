"""The SDK behind ``sampd_plugin.track`` / ``auto_track`` / ``repropagate`` / ``evaluate_jf``; the FiftyOne
operators of the plugin call these functions (through the package's public names) and nothing else.

A collection holds *sequences* (:mod:`sampd_plugin.fo.sources`): video samples, or image sequences (image samples
grouped by ``sequence_field`` and ordered by ``order_field``, e.g. FiftyOne's DAVIS zoo layout). Per sequence,
:func:`track`:

1. reads the prompts of the prompt field (``store.read_prompts``: each object's detection on the frame where
   its ``index`` first appears, with its mask, else its box);
2. streams the sequence's frames from that frame on (``SampleSequence.frames()``: one frame in memory at a time) through
   :class:`sampd_plugin.core.tracker.SamPDTracker`;
3. writes the output field (``frames.<label_field>`` of a video, ``<label_field>`` of each image) in chunks of
   ``batch_frames`` frames with ``set_values`` (``store.FrameLabelWriter``, on a background thread:
   ``store.BackgroundWriter``) and finally marks the sequence finished
   (``<label_field>_track`` on its head sample).

Safety rules (nothing is lost):

- the prompt / ground-truth field is never written: ``label_field == prompt_field`` is refused, even with
  ``overwrite=True``;
- all input is validated before anything is written (:func:`sampd_plugin.fo.runs.plan_track`): no sequences, a
  missing or non-Detections field, a missing video or image file, a sequence without prompts, a detection without
  ``index`` among indexed ones, a prompt without mask and with an empty / NaN box -> a
  :class:`~sampd_plugin.errors.SampdInputError` naming the sequence, frame and field;
- an output field that already holds labels needs ``overwrite=True``, EXCEPT labels written by an identical run
  (same mode, prompt field, model, checkpoint and :class:`~sampd_plugin.core.config.SamPDConfig`): that run is resumed;
- resume: a sequence whose marker says an identical run finished it is skipped; a sequence the run started but did
  not finish (interrupted job, killed worker) is cleared and tracked again. Re-running a job, or re-queuing a
  delegated operation, therefore only processes unfinished sequences;
- a sequence's old labels are cleared only when that sequence is about to be re-tracked (after its prompts were
  read), never all at once up front, so a job that stops half-way leaves the untouched sequences as they were.

Scale-out on delegated workers: :mod:`sampd_plugin.ops.delegated`.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import time
from typing import Dict, Iterator, List, Optional, Tuple

import fiftyone.core.utils as fou

from sampd_plugin.backends.registry import BackendCache
from sampd_plugin.core import checks
from sampd_plugin.core.config import ConfigLike
from sampd_plugin.core.tracker import SamPDTracker
from sampd_plugin.errors import OwnershipLostError, SampdInputError, SampdRunError
from sampd_plugin.fo import labels, runs, store
from sampd_plugin.fo.jobs import finish_job
from sampd_plugin.fo.request import MAX_BATCH_FRAMES, TrackRequest
from sampd_plugin.fo.runs import TrackPlan, plan_repropagate, plan_track
from sampd_plugin.fo.sources import Layout, SampleSequence, as_collection
from sampd_plugin.fo.store import DEFAULT_BATCH_FRAMES
from sampd_plugin.ops import ownership, threads

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
@threads.working
def track(samples, request: Optional[TrackRequest] = None, *, progress=True, operation: Optional[str] = None,
          **settings) -> dict:
    """Tracks and segments the prompted objects of every sequence of ``samples`` with SAM-PD, then finishes the job
    (a delegated operation's part of a split job: :func:`sampd_plugin.fo.jobs.finish_job`) or evaluates J&F
    (``evaluate=True``).

    The job is a :class:`~sampd_plugin.fo.request.TrackRequest`: ``request``, or the one ``settings`` build
    (``sp.track(dataset, prompt_field="gt", model="vit_b")``; settings given with a request replace its values).
    Its settings and their defaults: ``prompt_field="ground_truth"``, ``label_field="sampd"``, ``config=None`` (a
    :class:`~sampd_plugin.core.config.SamPDConfig`, a preset name or a dict; ``None``: overlap-aware tracking, preset
    ``"overlap"``; the paper's full method is ``"full"``),
    ``model="vit_h"`` (or ``"vit_l"``, ``"vit_b"``, ``"mobile_sam"``, ``"tiny"``, ``"synthetic"``, or your own
    :class:`~sampd_plugin.backends.base.PromptableSegmenter` instance, recorded as ``custom:<module>.<Class>``;
    README "Bring your own segmenter"), ``checkpoint``, ``device`` (``None``: cuda when available),
    ``batch_frames`` (frames per bulk write), ``overwrite``, ``sequence_field`` / ``order_field`` (image
    collections), ``allow_overwrite_ground_truth``, ``stale_seconds``, ``job_id``, ``evaluate`` / ``gt_field`` /
    ``eval_key``; see :class:`~sampd_plugin.fo.request.TrackRequest`.

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
        request: the job (default: ``TrackRequest(**settings)``)
        progress: FiftyOne progress setting (bool / None / callable receiving a :class:`FramesProgressBar`)
        operation: the delegated operation running this job (recorded in the markers, see
            :func:`sampd_plugin.recover_stale`)
        **settings: :class:`~sampd_plugin.fo.request.TrackRequest` settings

    Returns:
        a JSON-serialisable summary dict: ``label_field, samples`` (sequences), ``tracked, skipped`` (sequence
        keys: video sample ids / image sequence names), ``busy`` (``{key: message}``: another live run is writing
        them), ``frames, objects, seconds, frames_per_second, device, model, run, mode``, ``evaluation`` (the J&F
        scores of the evaluation this call ran: ``eval_key, jf, j, f, num_objects, num_sequences``; else ``None``)

    Raises:
        SampdInputError: invalid input (named sequence / frame / field); nothing was written
        SampdRunError: some sequences could not be tracked to their end (a truncated video, a sequence deleted
            mid-run, ...): the others were tracked; those are not marked finished (``error.summary``)
    """
    request = TrackRequest.of(request, **settings)
    summary = _run(samples, request, progress, operation)
    summary["evaluation"] = _finish(samples, request, summary)
    return summary


@threads.working
def auto_track(samples, request: Optional[TrackRequest] = None, *, progress=True, operation: Optional[str] = None,
               **settings) -> dict:
    """VIS mode (paper Sec. IV-B): no prompts; the model's automatic masks on each sequence's first frame (at most
    ``max_objects``, default 100, best first, objects ``1..n`` with label ``"object"``) are tracked through the
    sequence: :func:`track` with ``mode="auto"`` (default output field ``"sampd_auto"``). Same output, markers,
    resume and settings."""
    return track(samples, request, progress=progress, operation=operation, **dict(settings, mode="auto"))


def _finish(samples, request: TrackRequest, summary: dict) -> Optional[dict]:
    """After tracking: a delegated part of a split job finishes the job (the last one evaluates it); else the J&F
    evaluation the request asks for. Returns the scores of the evaluation run here, else ``None``."""
    if request.job_id:
        results = finish_job(samples, request.job_id)
    elif request.evaluate and summary["tracked"] + summary["skipped"]:
        results = evaluate_jf(samples, summary["label_field"], gt_field=request.gt_field, eval_key=request.eval_key,
                              overwrite=True, **request.sequence_kwargs)
    else:
        return None
    return None if results is None else results.scores()


def _run(samples, request: TrackRequest, progress, operation) -> dict:
    plan = plan_track(samples, request)
    plan.raise_if_invalid()
    request = plan.request
    backends = _checked_backends(request.model, request.checkpoint, request.device, load=bool(plan.todo))
    _check_segmenter(backends, plan)
    if plan.todo:  # declared only when something will be written (an empty view declares nothing)
        store.ensure_output_field(plan.layout, plan.label_field, adopt=request.allow_overwrite_ground_truth)
    t0 = time.time()
    summary = dict(label_field=plan.label_field, samples=len(plan.todo) + len(plan.done) + len(plan.busy),
                   tracked=[], skipped=list(plan.done), busy=dict(plan.busy), failed={}, frames=0, objects=0,
                   seconds=0.0, frames_per_second=None, device=backends.device, model=backends.model, run=plan.key,
                   mode=request.mode, method=request.config.preset_name or "custom")
    for key, message in plan.busy.items():
        logger.warning("skipped (another run is writing it): %s", message)
    for message in plan.stale.values():
        logger.warning("%s", message)
    seqs = plan.sequences
    owner = ownership.new_owner()
    with FramesProgressBar(total=plan.total_frames, progress=progress) as pb:
        for i, key in enumerate(plan.todo):
            seq = seqs[key]
            try:
                stats = _track_sequence(plan, seq, backends, pb, f"sequence {i + 1}/{len(plan.todo)}", owner,
                                        operation)
            except Exception as e:
                if getattr(plan.layout.dataset, "deleted", False):
                    raise SampdRunError(f"dataset was deleted during the run (at {seq.name})", summary) from e
                message = str(e) if plan.layout.exists(seq) else f"{seq.name} was deleted during the run"
                if not isinstance(e, (SampdInputError, SampdRunError)):
                    logger.exception("%s: tracking failed", seq.name)
                summary["failed"][key] = message
                continue
            if stats.get("busy"):
                summary["busy"][key] = stats["busy"]
                logger.warning("skipped (another run is writing it): %s", stats["busy"])
                continue
            summary["tracked"].append(key)
            summary["frames"] += stats["frames"]
            summary["objects"] += stats["objects"]
    summary["seconds"] = round(time.time() - t0, 3)
    if summary["seconds"] > 0 and summary["frames"]:
        summary["frames_per_second"] = round(summary["frames"] / summary["seconds"], 3)
    if summary["failed"]:
        failed = summary["failed"]
        raise SampdRunError(
            f"{len(failed)} sequence(s) could not be tracked to their end and are not marked finished (run again to "
            f"redo them; {len(summary['tracked'])} other sequence(s) were tracked):\n" + "\n".join(
                list(failed.values())[:10]), summary)
    return summary


def _checked_backends(model, checkpoint, device, load=True) -> BackendCache:
    """The model, built (checkpoint found and loaded, device resolved) BEFORE anything is written; any problem is a
    :class:`SampdInputError`."""
    try:
        backends = BackendCache(model, checkpoint, device)
        if load:
            backends.get()
    except (ValueError, OSError, RuntimeError) as e:  # device, checkpoint not found / not loadable
        raise SampdInputError(f"model {model!r}: {e}", field=getattr(e, "field", None) or "model") from None
    return backends


def _check_segmenter(backends: BackendCache, plan: TrackPlan):
    """Refuses the job before anything is written when the segmenter cannot segment a sequence to track
    (:meth:`~sampd_plugin.backends.base.PromptableSegmenter.for_sequence`)."""
    problems = []
    if plan.todo:
        segmenter = backends.get()
        for key in plan.todo:
            seq = plan.sequences[key]
            try:
                segmenter.for_sequence(plan.layout.sequence_meta(seq))
            except ValueError as e:
                problems.append(f"{seq.name}: {e}")
    if problems:
        raise SampdInputError("\n".join(problems[:10]), field="model")


def _track_sequence(plan: TrackPlan, seq: SampleSequence, backends, pb, prefix, owner, operation) -> dict:
    """Tracks one sequence as the owner of its marker (:class:`sampd_plugin.ops.ownership.Claim`): claimed before any
    of its labels is cleared or written, heart-beating while it runs, marked done only after every frame from the
    first prompt frame to the last frame has a label. Returns ``{"frames", "objects"}``, or ``{"busy": message}``
    when another live run holds the sequence."""
    layout, request = plan.layout, plan.request
    hw = layout.frame_size(seq)
    t0 = time.time()
    tracker = SamPDTracker(backends.get().for_sequence(layout.sequence_meta(seq)), request.config)
    source = seq.frames()
    # prompts are read (and checked) before this sequence's marker or labels are written
    if request.mode == "track":
        prompts = store.read_prompts(layout, seq, plan.prompt_field, hw, plan.prompt_tables.get(seq.key))
        start = min(p.frame_number for p in prompts)
        frames = source.iter_frames(start=start)
    else:
        start = 1
        frames = source.iter_frames()
        first = next(frames, None)
        if first is None:
            raise SampdRunError(f"{seq.name}: no readable frames")
        _check_image(first[1], hw, seq.name, first[0])
        masks = tracker.auto_prompts(first[1], first[0], request.max_objects)
        prompts = [dataclasses.replace(p, label=AUTO_LABEL) for p in masks]
        frames = itertools.chain([first], frames)
    seen = plan.markers.get(seq.key)
    marker = runs.new_marker(plan.key, plan.settings, backends.device, request.job_id, owner, operation)
    claim, current = ownership.Claim.acquire(layout, labels.marker_field(plan.label_field), seq, marker,
                                             overwrite=request.overwrite or bool(seen and seen.get("done")),
                                             stale_seconds=request.stale_seconds)
    if claim is None:
        return dict(busy=f"{seq.name}: {ownership.marker_state(current, request.stale_seconds)[1]}")
    try:
        layout.clear(plan.label_field, [seq])  # whatever was there is replaced by this run (overwrite / restart)
        progress = dict(frames=0, last_frame=None)

        def on_frame(fn, count):
            progress.update(frames=count, last_frame=fn)
            claim.beat(**progress)

        writer = store.BackgroundWriter(store.FrameLabelWriter(  # writes overlap the model (issue 14)
            layout, plan.label_field, request.batch_frames, before_write=lambda: claim.beat(force=True, **progress)))
        count = 0
        if prompts:
            count = _stream(tracker, _checked(frames, hw, seq.name), prompts, hw, writer, seq, pb, prefix,
                            on_frame=on_frame)
        _check_complete(layout, seq, plan.label_field, start if prompts else None, progress["last_frame"],
                        max(plan.prompt_tables.get(seq.key) or [0]))
        claim.finish(frames=count, last_frame=progress["last_frame"], objects=len(prompts),
                     seconds=round(time.time() - t0, 3), finished_at=runs.now())
    except OwnershipLostError:
        raise
    except BaseException as e:
        claim.fail(f"{type(e).__name__}: {e}")
        raise
    return dict(frames=count, objects=len(prompts))


def _check_complete(layout: Layout, seq: SampleSequence, label_field: str, start: Optional[int], last: Optional[int],
                    labeled_until: int = 0):
    """Raises :class:`SampdRunError` unless every frame from ``start`` to the sequence's last frame has a label in
    the database (``start=None``: nothing to track). The last frame is the container's frame count when it knows
    it, else the last frame that decoded (``last``: the count measured by decoding); it may not be before ``start``
    (an empty range is never complete) nor before ``labeled_until``, the last frame the dataset holds prompt labels
    for (a video that decodes to fewer frames than its labelled frames is truncated, whatever its container says)."""
    if start is None:
        return
    end = seq.num_frames or last
    if end is None or end < max(start, labeled_until):
        decoded = "no frame decoded" if last is None else f"decoding stopped after frame {last}"
        raise SampdRunError(
            f"{seq.name}: {decoded} but the sequence has labels up to frame {max(start, labeled_until)} (truncated "
            "or corrupt video): not marked finished")
    written = set(layout.labeled_frames(seq, label_field))
    missing = [fn for fn in range(start, end + 1) if fn not in written]
    if missing:
        good = [fn for fn in range(start, end + 1) if fn in written]
        raise SampdRunError(
            f"{seq.name}: {len(missing)} of {end - start + 1} frames have no label after tracking (first missing: "
            f"frame {missing[0]}; last good frame: {good[-1] if good else 'none'}): not marked finished")


def _stream(tracker, frames, prompts, hw, writer, seq: SampleSequence, pb, prefix, skip_frame=None, where=None,
            on_frame=None) -> int:
    """Runs the tracker over ``frames`` and writes every result (but ``skip_frame``); returns frames written.
    ``on_frame(frame_number, frames written)`` is called after each frame (the owner's heartbeat). On an error the
    labels computed so far are flushed (unless the run lost ownership) and a :class:`SampdRunError` naming the
    sequence and frame is raised (input / run errors are re-raised as they are)."""
    count = 0
    last = None
    total = seq.num_frames or "?"
    try:
        for res in tracker.track(frames, prompts):
            last = res.frame_number
            if res.frame_number != skip_frame:
                writer.add(seq, res.frame_number, labels.frame_labels(res, hw))  # crops only: the rest on the writer's thread
                count += 1
            pb.step(f"{prefix} · frame {res.frame_number}/{total}")
            if on_frame is not None:
                on_frame(res.frame_number, count)
            threads.refresh()
        writer.flush()
    except OwnershipLostError:
        raise
    except BaseException as e:
        try:
            writer.flush()
        except Exception:  # the original error is the one to report
            logger.debug("flushing after an error failed", exc_info=True)
        if isinstance(e, (SampdInputError, SampdRunError)) or not isinstance(e, Exception):
            raise
        at = f"after frame {last}" if last is not None else "on its first frame"
        raise SampdRunError(f"{where or seq.name}: tracking failed {at}: {type(e).__name__}: {e}") from e
    return count


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
@threads.working
def repropagate(samples, label_field: str, from_frame: Optional[int] = None, direction: str = "forward",
                object_ids=None, config: ConfigLike = None, model: Optional[str] = None,
                checkpoint: Optional[str] = None, device: Optional[str] = None,
                batch_frames: int = DEFAULT_BATCH_FRAMES, progress=True, sequence_field: Optional[str] = None,
                order_field: Optional[str] = None) -> dict:
    """Re-runs SAM-PD from a corrected frame and replaces the labels on one side of it.

    After a person corrects objects on frame ``k = from_frame`` of the output field (edits a detection's mask/box, in
    the App's Annotate tab or from Python, or draws a new one), the detections of frame ``k`` that are not ``lost``
    (only ``object_ids`` if given) are the prompts; a detection without ``index`` (a new object) gets the sequence's
    next free one. SAM-PD propagates them forwards (frames ``k+1 ..`` end), backwards (frames ``k-1 .. 1``) or both,
    and on those frames replaces the detections of the re-propagated objects, each where it was in the frame's list
    (other objects' detections are kept). Frame ``k`` keeps its masks and boxes; its re-propagated detections are
    marked as prompts (``is_prompt``, tracker scores and the ``doubtful`` tag cleared). Each object keeps its FiftyOne
    ``instance`` (one track in the App's timeline). The other side is not touched. Backward propagation of a video
    decodes it forwards in chunks and feeds them to the tracker in reverse (memory: one chunk).

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
        a summary dict: ``from_frame`` (1-based position) and ``frame_name`` (what the dataset calls it: an image
        sequence's order value), ``frames`` written per direction, ``objects``, ``misfits`` (:func:`misfit_boxes`
        after the run: detections whose box no longer fits their mask), ``seconds``, ...

    Raises:
        SampdInputError: invalid input (named sequence / frame / field); nothing was written
    """
    batch_frames = checks.integer("batch_frames", batch_frames, 1, MAX_BATCH_FRAMES)
    device = checks.device(device)
    plan = plan_repropagate(samples, label_field, from_frame, direction, object_ids, config, model, checkpoint,
                            sequence_field, order_field)
    backends = _checked_backends(plan.model, plan.checkpoint, device)
    seq, k, total = plan.sequence, plan.from_frame, plan.sequence.num_frames
    marker = dict(plan.marker, owner=ownership.new_owner(), worker=ownership.this_worker(), done=False)
    claim, current = ownership.Claim.acquire(plan.layout, labels.marker_field(plan.label_field), seq, marker,
                                             overwrite=True)
    if claim is None:
        raise SampdInputError(f"{seq.name}: another run is writing '{plan.layout.path(plan.label_field)}' "
                              f"({ownership.marker_state(current)[1]}): re-propagate when it is done")
    t0 = time.time()
    written = {}
    store.ensure_output_field(plan.layout, plan.label_field)  # fields written before the App's schema existed
    instances = store.object_instances(plan.layout, seq, plan.label_field)  # each object keeps its instance
    instances.update({d.index: d.instance for d in plan.corrected.detections if d.instance_id is not None})
    todo = ["forward", "backward"] if direction == "both" else [direction]
    n_frames = sum((total - k) if d == "forward" else (k - 1) for d in todo) if total else None
    source = seq.frames()
    try:
        with FramesProgressBar(total=n_frames, progress=progress) as pb:
            for d in todo:
                frames = source.iter_frames(start=k) if d == "forward" else source.iter_frames_backward(k, 1)
                tracker = SamPDTracker(backends.get().for_sequence(plan.layout.sequence_meta(seq)), plan.config)
                writer = store.BackgroundWriter(store.FrameLabelWriter(
                    plan.layout, plan.label_field, batch_frames, replace_ids=plan.object_ids,
                    before_write=lambda: claim.beat(True), instances=instances))
                written[d] = _stream(tracker, _checked(frames, plan.hw, seq.name), plan.prompts, plan.hw, writer,
                                     seq, pb, f"{d} from frame {k}", skip_frame=k,
                                     where=f"{seq.name} ({d} from frame {k})", on_frame=lambda *_: claim.beat())
        # the corrected frame keeps its masks and boxes (and new objects their new index); the re-propagated objects
        # are marked as the prompts they now are
        for det in plan.corrected.detections:
            if det.index in plan.object_ids:
                labels.mark_prompt(det)
        prompt_frame = store.FrameLabelWriter(plan.layout, plan.label_field, before_write=lambda: claim.beat(True),
                                              instances=instances)
        prompt_frame.add(seq, k, plan.corrected.detections)
        prompt_frame.flush()
    except OwnershipLostError:
        raise
    except BaseException as e:  # the run's state is what it was; the error is recorded
        claim.release(done=bool(plan.marker.get("done")), error=f"re-propagation failed: {type(e).__name__}: {e}")
        raise
    edits = list(plan.marker.get("edits") or []) + [
        dict(from_frame=k, direction=direction, objects=plan.object_ids, at=runs.now())]
    claim.release(done=bool(plan.marker.get("done")), error=plan.marker.get("error"), edits=edits)
    return dict(sequence=seq.key, sample_id=seq.head_id, label_field=plan.label_field, from_frame=k,
                frame_name=seq.frame_name(k), direction=direction, objects=plan.object_ids, frames=written,
                misfits=misfit_boxes(plan.layout, seq, plan.label_field, plan.hw),
                seconds=round(time.time() - t0, 3), device=backends.device, model=backends.model)


def misfit_boxes(layout: Layout, seq: SampleSequence, label_field: str, hw) -> Dict[int, List[int]]:
    """``{frame number: [object indexes]}`` of the detections of one sequence whose box no longer fits their mask
    (:func:`sampd_plugin.fo.labels.box_fits_mask`): boxes moved or resized in the App without their mask, e.g. the
    copies the App makes of a moved box on the object's later frames. Re-propagating the object replaces them."""
    out = {}
    for fn, label in layout.read_labels(seq, label_field).items():
        bad = [d.index for d in (label.detections if label is not None else []) if not labels.box_fits_mask(d, hw)]
        if bad:
            out[int(fn)] = bad
    return out


# --- evaluation ----------------------------------------------------------------------------------------------------
def evaluate_jf(samples, pred_field: str = "sampd", gt_field: str = "ground_truth", eval_key: Optional[str] = "jf",
                **kwargs):
    """DAVIS J&F of ``pred_field`` against ``gt_field`` as a FiftyOne evaluation run
    (:func:`sampd_plugin.fo.evaluation.evaluate_jf`; see it for the arguments, fields and saved views); works on
    video collections and on image sequences (``sequence_field`` / ``order_field`` as in :func:`track`)."""
    from sampd_plugin.fo.evaluation import evaluate_jf as _evaluate_jf

    return _evaluate_jf(as_collection(samples), pred_field, gt_field=gt_field, eval_key=eval_key, **kwargs)


__all__ = ["track", "auto_track", "repropagate", "misfit_boxes", "evaluate_jf", "FramesProgressBar"]
