"""The SDK behind ``sampd_plugin.track`` / ``auto_track`` / ``repropagate`` and the scale-out helpers; the FiftyOne
operators of the plugin call these functions (through the package's public names) and nothing else.

Per video sample, :func:`track`:

1. reads the prompts of the prompt field (``store.read_prompts``: each object's detection on the frame where
   its ``index`` first appears, with its mask, else its box);
2. streams the video's frames from that frame on (``frames.iter_frames``: one frame in memory at a time) through
   :class:`sampd_plugin.tracker.SamPDTracker`;
3. writes ``frames.<label_field>`` in chunks of ``batch_frames`` frames with ``set_values``
   (``store.FrameLabelWriter``) and finally marks the sample finished (``<label_field>_track``).

Safety rules (nothing is lost):

- the prompt / ground-truth field is never written: ``label_field == prompt_field`` is refused, even with
  ``overwrite=True``;
- all input is validated before anything is written (:func:`sampd_plugin.runs.plan_track`): not a video
  collection, a missing or non-Detections field, a missing video file, a sample without prompts, a detection without ``index`` among indexed
  ones -> a :class:`~sampd_plugin.errors.SampdInputError` naming the sample, frame and field; a prompt's
  geometry (no mask and an empty box) is checked when its sample starts, before anything of that sample is written;
- an output field that already holds labels needs ``overwrite=True``, EXCEPT labels written by an identical run
  (same mode, prompt field, model, checkpoint and :class:`~sampd_plugin.config.SamPDConfig`): that run is resumed;
- resume: a sample whose marker says an identical run finished it is skipped; a sample the run started but did not
  finish (interrupted job, killed worker) is cleared and tracked again. Re-running a job, or re-queuing a delegated
  operation, therefore only processes unfinished samples;
- a sample's old labels are cleared only when that sample is about to be re-tracked (after its prompts were read),
  never all at once up front, so a job that stops half-way leaves the untouched samples as they were.

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
from sampd_plugin.frames import iter_frames, iter_frames_backward
from sampd_plugin.runs import ConfigLike, TrackPlan, make_config, plan_repropagate, plan_track
from sampd_plugin.store import DEFAULT_BATCH_FRAMES, as_collection
from sampd_plugin.tracker import SamPDTracker

logger = logging.getLogger(__name__)

AUTO_LABEL = "object"


# --- progress ------------------------------------------------------------------------------------------------------
class FramesProgressBar(fou.ProgressBar):
    """FiftyOne's progress bar over the frames of a job; :attr:`label` reads ``"sample 3/10 · frame 45/90"``.

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
          job_id: Optional[str] = None) -> dict:
    """Tracks and segments the prompted objects of every video of ``samples`` with SAM-PD.

    Prompts: the ``fo.Detections`` of ``frames.<prompt_field>``, each object (``Detection.index``) prompted by its
    detection on the frame where it first appears (frame 1 usually; later frames for objects that enter later),
    with its mask when it has one (else its box: SAM segments it on that frame). If no detection of a video has an
    ``index``, the detections of its first annotated frame become objects ``1..n``.

    Output: ``frames.<label_field>`` as ``fo.Detections`` from each video's first prompt frame to its last frame:
    one ``fo.Detection(label, bounding_box, mask, index, confidence)`` per started object and frame, with
    attributes ``score`` (selection score), ``iou`` (SAM's predicted IoU; also ``confidence``), ``lost`` and
    ``is_prompt``. Masks are cropped to the box (FiftyOne's convention). A sample-level ``<label_field>_track`` dict
    records the run and marks finished samples (resume: see the module docstring).

    Args:
        samples: a video ``fo.Dataset``, view, or a single ``fo.Sample``
        prompt_field: frame-level Detections field with the prompts (never written)
        label_field: frame-level output field
        config: a :class:`~sampd_plugin.config.SamPDConfig`, a preset name (``"full"``, ``"box"``, ...), a dict of
            settings, or ``None`` for the paper's full method
        model: ``"vit_h"``, ``"vit_l"``, ``"vit_b"``, ``"tiny"`` or ``"synthetic"``
            (:mod:`sampd_plugin.backends.registry`)
        checkpoint: optional SAM checkpoint path
        device: torch device; ``None``/``"auto"``: cuda when available
        batch_frames: frames per bulk write (memory is flat in the video length)
        overwrite: replace labels in ``label_field`` not written by an identical run
        progress: FiftyOne progress setting (bool / None / callable receiving a :class:`FramesProgressBar`)
        job_id: optional id of a job split into several calls (delegated operations, :func:`queue_track`): with
            ``overwrite=True``, samples this job already finished are skipped

    Returns:
        a JSON-serialisable summary dict: ``label_field, samples, tracked, skipped (ids), frames, objects,
        seconds, frames_per_second, device, model, run``

    Raises:
        SampdInputError: invalid input (named sample / frame / field); nothing was written
    """
    return _run(samples, "track", label_field, prompt_field=prompt_field, config=config, model=model,
                checkpoint=checkpoint, device=device, batch_frames=batch_frames, overwrite=overwrite,
                progress=progress, job_id=job_id)


def auto_track(samples, label_field: str = "sampd_auto", max_objects: int = 100, config: ConfigLike = None,
               model: str = "vit_h", checkpoint: Optional[str] = None, device: Optional[str] = None,
               batch_frames: int = DEFAULT_BATCH_FRAMES, overwrite: bool = False, progress=True,
               job_id: Optional[str] = None) -> dict:
    """VIS mode (paper Sec. IV-B): no prompts; the model's automatic masks on each video's first frame (at most
    ``max_objects``, best first, objects ``1..n`` with label ``"object"``) are tracked through the video.

    Same output, markers, resume and arguments as :func:`track`.
    """
    return _run(samples, "auto", label_field, prompt_field=None, config=config, model=model, checkpoint=checkpoint,
                device=device, batch_frames=batch_frames, overwrite=overwrite, progress=progress,
                max_objects=max_objects, job_id=job_id)


def _run(samples, mode, label_field, prompt_field, config, model, checkpoint, device, batch_frames, overwrite,
         progress, max_objects=None, job_id=None) -> dict:
    samples = as_collection(samples)
    if int(batch_frames) < 1:
        raise SampdInputError(f"batch_frames must be >= 1, got {batch_frames!r}")
    plan = plan_track(samples, label_field, prompt_field, config, model, checkpoint, overwrite, mode, max_objects,
                      job_id)
    plan.raise_if_invalid()
    cfg = make_config(config)
    dataset = samples._dataset
    label_field = plan.label_field
    store.ensure_output_field(dataset, label_field)
    backends = BackendCache(model, checkpoint, device)
    t0 = time.time()
    summary = dict(label_field=label_field, samples=len(plan.todo) + len(plan.done), tracked=[],
                   skipped=list(plan.done), frames=0, objects=0, seconds=0.0, frames_per_second=None,
                   device=backends.device, model=model, run=plan.key, mode=mode)
    if not plan.todo:
        return summary
    pb = FramesProgressBar(total=plan.total_frames, progress=progress)
    with pb:
        for i, sid in enumerate(plan.todo):
            sample = dataset[sid]
            stats = _track_sample(dataset, sample, plan, cfg, backends, int(batch_frames), pb, i, len(plan.todo),
                                  max_objects)
            summary["tracked"].append(sid)
            summary["frames"] += stats["frames"]
            summary["objects"] += stats["objects"]
    summary["seconds"] = round(time.time() - t0, 3)
    if summary["seconds"] > 0:
        summary["frames_per_second"] = round(summary["frames"] / summary["seconds"], 3)
    return summary


def _track_sample(dataset, sample, plan: TrackPlan, cfg: SamPDConfig, backends, batch_frames, pb, i, n,
                  max_objects) -> dict:
    sid, where = sample.id, plan.names[sample.id]
    hw = store.frame_size(sample)
    total = sample.metadata.total_frame_count
    t0 = time.time()
    tracker = SamPDTracker(_backend(backends, sample), cfg)
    # prompts are read (and checked) before this sample's marker or labels are written
    if plan.settings["mode"] == "track":
        prompts = store.read_prompts(dataset, sid, plan.prompt_field, hw, plan.prompt_tables.get(sid), where)
        frames = iter_frames(sample.filepath, start=min(p.frame_number for p in prompts))
    else:
        frames = iter_frames(sample.filepath)
        first = next(frames, None)
        if first is None:
            raise SampdInputError(f"{where}: the video has no readable frames")
        _check_image(first[1], hw, where, first[0])
        masks = tracker.auto_prompts(first[1], first[0], max_objects)
        prompts = [dataclasses.replace(p, label=AUTO_LABEL) for p in masks]
        frames = itertools.chain([first], frames)
    if sid in plan.clear:  # overwrite, or an unfinished run of these settings: replaced only now
        runs.clear_outputs(dataset, [sid], plan.label_field)
    marker = runs.new_marker(plan.key, plan.settings, backends.device, plan.job_id)
    runs.write_marker(dataset, plan.label_field, sid, marker)
    writer = store.FrameLabelWriter(dataset, plan.label_field, batch_frames)
    count = 0
    if prompts:
        count = _stream(tracker, _checked(frames, hw, where), prompts, hw, writer, sid, where, pb,
                        f"sample {i + 1}/{n}", total)
    marker.update(done=True, frames=count, objects=len(prompts), seconds=round(time.time() - t0, 3),
                  finished_at=runs.now())
    runs.write_marker(dataset, plan.label_field, sid, marker)
    return dict(frames=count, objects=len(prompts))


def _stream(tracker, frames, prompts, hw, writer, sid, where, pb, prefix, total, skip_frame=None) -> int:
    """Runs the tracker over ``frames`` and writes every result (but ``skip_frame``); returns frames written."""
    count = 0
    last = None
    try:
        for res in tracker.track(frames, prompts):
            last = res.frame_number
            if res.frame_number != skip_frame:
                writer.add(sid, res.frame_number, labels.frame_detections(res, hw))
                count += 1
            pb.step(f"{prefix} · frame {res.frame_number}/{total or '?'}")
        writer.flush()
    except SampdInputError:
        writer.flush()
        raise
    except Exception as e:
        writer.flush()
        at = f"after frame {last}" if last is not None else "on its first frame"
        raise RuntimeError(f"{where}: tracking failed {at}: {type(e).__name__}: {e}") from e
    return count


def _backend(backends: BackendCache, sample):
    """The backend for one video (``synthetic`` is built from the scene the sample was generated from)."""
    scene = None
    if backends.model == "synthetic":
        from sampd_plugin.synthetic.dataset import dataset_scene

        try:
            scene = dataset_scene(sample)
        except (ValueError, KeyError):
            scene = None  # BackendCache.get explains that 'synthetic' needs a generated video
    return backends.get(scene)


def _check_image(image, hw, where, fn):
    if image.shape[:2] != tuple(hw):
        raise SampdInputError(
            f"{where}, frame {fn}: decoded frame is {image.shape[1]}x{image.shape[0]} but the sample's metadata "
            f"says {hw[1]}x{hw[0]}: recompute its metadata"
        )


def _checked(frames, hw, where) -> Iterator[Tuple[int, "object"]]:
    for fn, img in frames:
        _check_image(img, hw, where, fn)
        yield fn, img


# --- correction and repropagation ----------------------------------------------------------------------------------
def repropagate(sample, label_field: str, from_frame: int, direction: str = "forward", object_ids=None,
                config: ConfigLike = None, model: Optional[str] = None, checkpoint: Optional[str] = None,
                device: Optional[str] = None, batch_frames: int = DEFAULT_BATCH_FRAMES, progress=True) -> dict:
    """Re-runs SAM-PD from a corrected frame and replaces the labels on one side of it.

    After a person corrects objects on frame ``k = from_frame`` of ``frames.<label_field>`` (edits a detection's
    mask/box or draws a new one, keeping its ``index``), the detections of frame ``k`` (those with an ``index`` and
    not ``lost``; only ``object_ids`` if given) are the prompts; SAM-PD propagates them forwards (frames
    ``k+1 ..`` end), backwards (frames ``k-1 .. 1``) or both, and on those frames replaces the detections of the
    re-propagated objects (other objects' detections are kept). Frame ``k`` itself and the other side are not
    touched. Backward propagation decodes the video forwards in chunks of ``batch_frames`` frames and feeds them
    to the tracker in reverse (memory: one chunk).

    The field must have been written by :func:`track` / :func:`auto_track`: its ``<label_field>_track`` marker gives
    the model, checkpoint and config (unless overridden here) and records the edit; the prompt / ground-truth field
    is never written.

    Args:
        sample: an ``fo.Sample`` of a dataset, or a one-sample view
        label_field: the SAM-PD output field to correct
        from_frame: 1-based frame number ``k`` of the correction
        direction: ``"forward"``, ``"backward"`` or ``"both"``
        object_ids: optional object ids (``index``) to re-propagate; default all on frame ``k``
        config, model, checkpoint: override the run's settings
        device, batch_frames, progress: as in :func:`track`

    Returns:
        a summary dict: ``frames`` written per direction, ``objects``, ``seconds``, ...

    Raises:
        SampdInputError: invalid input (named sample / frame / field); nothing was written
    """
    plan = plan_repropagate(sample, label_field, from_frame, direction, object_ids, config, model, checkpoint)
    if int(batch_frames) < 1:
        raise SampdInputError(f"batch_frames must be >= 1, got {batch_frames!r}")
    sample, k, total = plan.sample, plan.from_frame, plan.total_frames
    dataset = sample._dataset
    backends = BackendCache(plan.model, plan.checkpoint, device)
    t0 = time.time()
    written = {}
    todo = ["forward", "backward"] if direction == "both" else [direction]
    n_frames = sum((total - k) if d == "forward" else (k - 1) for d in todo) if total else None
    with FramesProgressBar(total=n_frames, progress=progress) as pb:
        for d in todo:
            if d == "forward":
                frames = iter_frames(sample.filepath, start=k)
            else:
                frames = iter_frames_backward(sample.filepath, k, 1, batch_frames)
            tracker = SamPDTracker(_backend(backends, sample), plan.config)
            writer = store.FrameLabelWriter(dataset, plan.label_field, batch_frames, replace_ids=plan.object_ids)
            written[d] = _stream(tracker, _checked(frames, plan.hw, plan.where), plan.prompts, plan.hw, writer,
                                 sample.id, f"{plan.where} ({d} from frame {k})", pb, f"{d} from frame {k}", total,
                                 skip_frame=k)
    marker = dict(plan.marker)
    marker["edits"] = list(marker.get("edits") or []) + [
        dict(from_frame=k, direction=direction, objects=plan.object_ids, at=runs.now())
    ]
    runs.write_marker(dataset, plan.label_field, sample.id, marker)
    return dict(sample_id=sample.id, label_field=plan.label_field, from_frame=k, direction=direction,
                objects=plan.object_ids, frames=written, seconds=round(time.time() - t0, 3), device=backends.device,
                model=plan.model)


# --- evaluation ----------------------------------------------------------------------------------------------------
def evaluate_jf(samples, pred_field: str = "sampd", gt_field: str = "ground_truth", eval_key: Optional[str] = "jf",
                **kwargs):
    """DAVIS J&F of ``pred_field`` against ``gt_field`` as a FiftyOne evaluation run
    (:func:`sampd_plugin.evaluation.evaluate_jf`; see it for the arguments, fields and saved views)."""
    from sampd_plugin.evaluation import evaluate_jf as _evaluate_jf

    return _evaluate_jf(as_collection(samples), pred_field, gt_field=gt_field, eval_key=eval_key, **kwargs)


__all__ = ["track", "auto_track", "repropagate", "evaluate_jf", "FramesProgressBar"]
