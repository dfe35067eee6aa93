"""The SDK behind ``sampd_plugin.track`` / ``auto_track`` / ``repropagate`` and the scale-out helpers; the FiftyOne
operators of the plugin call these functions and nothing else.

Per video sample, :func:`track`:

1. reads the prompts of the prompt field (``fo_labels.read_prompts``: each object's detection on the frame where
   its ``index`` first appears, with its mask, else its box);
2. streams the video's frames from that frame on (``video.iter_frames``: one frame in memory at a time) through
   :class:`sampd_plugin.tracker.SamPDTracker`;
3. writes ``frames.<label_field>`` in chunks of ``batch_frames`` frames with ``set_values``
   (``fo_labels.FrameLabelWriter``) and finally marks the sample finished (``<label_field>_track``).

Safety rules (nothing is lost):

- the prompt / ground-truth field is never written: ``label_field == prompt_field`` is refused, even with
  ``overwrite=True``;
- all input is validated before anything is written (:func:`plan_track`): not a video collection, a missing or
  non-Detections field, a missing video file, a sample without prompts, a detection without ``index`` among indexed
  ones -> a :class:`~sampd_plugin.fo_labels.SampdInputError` naming the sample, frame and field; a prompt's
  geometry (no mask and an empty box) is checked when its sample starts, before anything of that sample is written;
- an output field that already holds labels needs ``overwrite=True``, EXCEPT labels written by an identical run
  (same mode, prompt field, model, checkpoint and :class:`~sampd_plugin.config.SamPDConfig`): that run is resumed;
- resume: a sample whose marker says an identical run finished it is skipped; a sample the run started but did not
  finish (interrupted job, killed worker) is cleared and tracked again. Re-running a job, or re-queuing a delegated
  operation, therefore only processes unfinished samples;
- a sample's old labels are cleared only when that sample is about to be re-tracked (after its prompts were read),
  never all at once up front, so a job that stops half-way leaves the untouched samples as they were.

Scale-out on delegated GPU workers (:func:`queue_track`, :func:`run_worker`, the operators' delegated mode) uses
FiftyOne's own delegated-operation engine, no second queue:

1. every machine points at one MongoDB (``FIFTYONE_DATABASE_URI``), sees the media at the same paths and finds the
   plugin (``FIFTYONE_PLUGINS_DIR``; ``pip install -e`` the checkout or let the plugin add it to ``sys.path``), with
   ``FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS=true``;
2. each GPU machine runs ``fiftyone delegated launch`` (one process per GPU, e.g. with ``CUDA_VISIBLE_DEVICES=i``);
   ``device="auto"`` (the default) builds the model on ``cuda`` when the machine has one;
3. the job is queued: ``queue_track(dataset, samples_per_operation=1)`` from Python, or ``track_objects`` scheduled
   in the App / with ``foo.execute_operator(..., request_delegation=True)``, whose operation splits itself into one
   queued operation per ``samples_per_operation`` samples when a worker runs it;
4. a worker claims a QUEUED operation atomically (QUEUED -> RUNNING with a conditional update), runs it, and polls
   again: each operation runs on exactly one worker, several workers share a job. Progress
   (``"sample 1/1 · frame 45/90"``) and results are stored on the operation (``fiftyone delegated list``);
5. a failed or killed operation can be re-run (``fiftyone delegated`` CLI / App): it resumes, skipping samples
   that are finished (markers), and re-queuing the whole job only queues unfinished samples.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import logging
import os
import time
import uuid
from typing import Dict, Iterator, List, Optional, Tuple, Union

import fiftyone as fo
import fiftyone.core.utils as fou

from sampd_plugin import fo_labels, fo_models
from sampd_plugin.config import SamPDConfig
from sampd_plugin.fo_labels import SampdInputError
from sampd_plugin.tracker import ObjectPrompt, SamPDTracker
from sampd_plugin.video import iter_frames

logger = logging.getLogger(__name__)

PLUGIN_NAME = "@sampd/sampd"
DEFAULT_BATCH_FRAMES = 128
DIRECTIONS = ("forward", "backward", "both")
AUTO_LABEL = "object"

ConfigLike = Union[None, str, dict, SamPDConfig]


# --- settings --------------------------------------------------------------------------------------------------------
def make_config(config: ConfigLike = None) -> SamPDConfig:
    """``None`` -> the paper's full method; a preset name (``config.PRESETS``); a dict of settings; a config."""
    if config is None:
        return SamPDConfig()
    if isinstance(config, SamPDConfig):
        config.validate()
        return config
    if isinstance(config, str):
        return SamPDConfig.preset(config)
    if isinstance(config, dict):
        return SamPDConfig.from_dict(config)
    raise TypeError(f"config must be None, a preset name, a dict or a SamPDConfig, got {type(config).__name__}")


def run_settings(mode: str, prompt_field: Optional[str], model: str, checkpoint: Optional[str], config: SamPDConfig,
                 max_objects: Optional[int] = None) -> dict:
    """What makes two runs identical (device and batch size do not)."""
    s = dict(mode=mode, prompt_field=prompt_field, model=model, checkpoint=checkpoint, config=config.to_dict())
    if mode == "auto":
        s["max_objects"] = int(max_objects)
    return s


def run_key(settings: dict) -> str:
    return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


# --- planning / validation -------------------------------------------------------------------------------------------
@dataclasses.dataclass
class TrackPlan:
    """What a tracking job will do on a collection (no side effects).

    Attributes:
        label_field, prompt_field, settings, key: the run
        todo: sample ids to track, in collection order
        done: sample ids an identical run already finished (skipped)
        clear: ids of ``todo`` samples that hold labels or a marker, cleared just before each is re-tracked
        conflicts: sample ids with labels from another run (need ``overwrite=True``)
        problems: per-sample input errors (each names the sample, frame and field)
        prompt_tables: ``{sample_id: {frame_number: [index, ...]}}`` of the prompt field (track mode)
        total_frames: frames of the ``todo`` videos (from metadata; None if unknown)
    """

    label_field: str
    prompt_field: Optional[str]
    settings: dict
    key: str
    overwrite: bool
    job_id: Optional[str] = None
    todo: List[str] = dataclasses.field(default_factory=list)
    done: List[str] = dataclasses.field(default_factory=list)
    clear: List[str] = dataclasses.field(default_factory=list)
    conflicts: List[str] = dataclasses.field(default_factory=list)
    problems: List[str] = dataclasses.field(default_factory=list)
    names: Dict[str, str] = dataclasses.field(default_factory=dict)
    prompt_tables: Dict[str, dict] = dataclasses.field(default_factory=dict)
    total_frames: Optional[int] = None

    @property
    def errors(self) -> List[str]:
        """Messages that make the job invalid (nothing is written while there are any)."""
        errs = list(self.problems)
        if self.conflicts:
            names = ", ".join(self.names[s] for s in self.conflicts[:5]) + (" ..." if len(self.conflicts) > 5 else "")
            errs.append(
                f"'frames.{self.label_field}' already holds labels on {len(self.conflicts)} sample(s) ({names}) "
                "that were not written by an identical SAM-PD run: pass overwrite=True to replace them, or choose "
                "another output field"
                + (f" (the prompt field '{self.prompt_field}' is never written)" if self.prompt_field else "")
            )
        return errs

    def raise_if_invalid(self):
        errs = self.errors
        if errs:
            more = f"\n... and {len(errs) - 10} more" if len(errs) > 10 else ""
            raise SampdInputError("\n".join(errs[:10]) + more)


def plan_track(samples, label_field: str = "sampd", prompt_field: Optional[str] = "ground_truth",
               config: ConfigLike = None, model: str = "vit_h", checkpoint: Optional[str] = None,
               overwrite: bool = False, mode: str = "track", max_objects: Optional[int] = None,
               job_id: Optional[str] = None) -> TrackPlan:
    """Validates a tracking job and works out which samples it tracks, skips and clears (nothing is written).

    Raises :class:`SampdInputError` for job-level errors (not a video collection, a missing field, output field ==
    prompt field, unknown model or preset); per-sample errors are collected in :attr:`TrackPlan.problems`.
    """
    samples = _as_collection(samples)
    if mode not in ("track", "auto"):
        raise ValueError(f"mode must be 'track' or 'auto', got {mode!r}")
    if samples.media_type != "video":
        raise SampdInputError(
            f"'{samples._root_dataset.name}' holds {samples.media_type} samples: SAM-PD tracks objects in videos"
        )
    if mode == "track":
        if not prompt_field:
            raise SampdInputError("a prompt field is required")
        prompt_field = fo_labels.check_label_field(samples, prompt_field, "prompt field")
    else:
        prompt_field = None
        if max_objects is None or int(max_objects) < 1:
            raise SampdInputError(f"max_objects must be >= 1, got {max_objects!r}")
    label_field = fo_labels.check_output_field(samples, label_field, prompt_field)
    cfg, _ = _checked_settings(config, model, checkpoint)
    settings = run_settings(mode, prompt_field, model, checkpoint, cfg, max_objects)
    plan = TrackPlan(label_field, prompt_field, settings, run_key(settings), bool(overwrite), job_id)

    ids = samples.values("id")
    paths = samples.values("filepath")
    plan.names = {sid: f"sample {sid} ({os.path.basename(p)})" for sid, p in zip(ids, paths)}
    markers = fo_labels.read_markers(samples, label_field)
    counts = fo_labels.labeled_frame_counts(samples, label_field)
    if mode == "track":
        plan.prompt_tables = fo_labels.prompt_index_table(samples, prompt_field)
    frame_counts = dict(zip(ids, samples.values("metadata.total_frame_count")))
    scenes = dict(zip(ids, samples.values("synthetic"))) if samples.get_field("synthetic") is not None else {}
    exists = {sid: "://" in p or os.path.exists(p) for sid, p in zip(ids, paths)}
    for sid in ids:
        m = markers.get(sid)
        same = bool(m) and m.get("run") == plan.key
        finished = same and m.get("done")
        if finished and (not overwrite or (job_id is not None and m.get("job") == job_id)):
            plan.done.append(sid)
            continue
        if counts[sid] and not same and not overwrite:
            plan.conflicts.append(sid)
            continue
        if not exists[sid]:
            plan.problems.append(f"{plan.names[sid]}: the video file does not exist")
            continue
        if model == "synthetic" and not scenes.get(sid):
            plan.problems.append(
                f"{plan.names[sid]}: model 'synthetic' only segments videos made by "
                "sampd_plugin.synthetic.make_dataset (no 'synthetic' scene parameters); choose a SAM model"
            )
            continue
        if mode == "track":
            try:
                fo_labels.prompt_plan(sid, plan.prompt_tables.get(sid) or {}, prompt_field, plan.names[sid])
            except SampdInputError as e:
                plan.problems.append(str(e))
                continue
        plan.todo.append(sid)
        if counts[sid] or m:
            plan.clear.append(sid)
    n = [frame_counts.get(s) for s in plan.todo]
    plan.total_frames = sum(n) if all(n) else None
    return plan


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
        model: ``"vit_h"``, ``"vit_l"``, ``"vit_b"``, ``"tiny"`` or ``"synthetic"`` (:mod:`sampd_plugin.fo_models`)
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
    samples = _as_collection(samples)
    if int(batch_frames) < 1:
        raise SampdInputError(f"batch_frames must be >= 1, got {batch_frames!r}")
    plan = plan_track(samples, label_field, prompt_field, config, model, checkpoint, overwrite, mode, max_objects,
                      job_id)
    plan.raise_if_invalid()
    cfg = make_config(config)
    dataset = samples._dataset
    label_field = plan.label_field
    fo_labels.ensure_output_field(dataset, label_field)
    backends = fo_models.BackendCache(model, checkpoint, device)
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
    hw = fo_labels.frame_size(sample)
    total = sample.metadata.total_frame_count
    t0 = time.time()
    tracker = SamPDTracker(backends.get(sample), cfg)
    # prompts are read (and checked) before this sample's marker or labels are written
    if plan.settings["mode"] == "track":
        prompts = fo_labels.read_prompts(dataset, sid, plan.prompt_field, hw, plan.prompt_tables.get(sid), where)
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
        fo_labels.clear_outputs(dataset, [sid], plan.label_field)
    marker = fo_labels.new_marker(plan.key, plan.settings, backends.device, plan.job_id)
    fo_labels.write_marker(dataset, plan.label_field, sid, marker)
    writer = fo_labels.FrameLabelWriter(dataset, plan.label_field, batch_frames)
    count = 0
    if prompts:
        count = _stream(tracker, _checked(frames, hw, where), prompts, hw, writer, sid, where, pb,
                        f"sample {i + 1}/{n}", total)
    marker.update(done=True, frames=count, objects=len(prompts), seconds=round(time.time() - t0, 3),
                  finished_at=fo_labels._now())
    fo_labels.write_marker(dataset, plan.label_field, sid, marker)
    return dict(frames=count, objects=len(prompts))


def _stream(tracker, frames, prompts, hw, writer, sid, where, pb, prefix, total, skip_frame=None) -> int:
    """Runs the tracker over ``frames`` and writes every result (but ``skip_frame``); returns frames written."""
    count = 0
    last = None
    try:
        for res in tracker.track(frames, prompts):
            last = res.frame_number
            if res.frame_number != skip_frame:
                writer.add(sid, res.frame_number, fo_labels.frame_detections(res, hw))
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


def _iter_frames_backward(path: str, last: int, first: int = 1, chunk: int = DEFAULT_BATCH_FRAMES):
    """Frames ``last, last-1, ..., first`` of a video, decoded forwards in chunks of ``chunk`` frames and yielded in
    reverse (memory: one chunk; decoding cost grows with the number of chunks as ffmpeg reads from the start)."""
    hi = int(last)
    while hi >= first:
        lo = max(int(first), hi - int(chunk) + 1)
        buf = list(iter_frames(path, start=lo, stop=hi))
        for item in reversed(buf):
            yield item
        hi = lo - 1


# --- correction and repropagation ----------------------------------------------------------------------------------
@dataclasses.dataclass
class RepropagationPlan:
    """A validated repropagation (see :func:`plan_repropagate`)."""

    sample: "fo.Sample"
    where: str
    label_field: str
    from_frame: int
    direction: str
    prompts: List[ObjectPrompt]
    model: str
    checkpoint: Optional[str]
    config: SamPDConfig
    hw: Tuple[int, int]
    total_frames: Optional[int]
    marker: dict

    @property
    def object_ids(self) -> List[int]:
        return [p.object_id for p in self.prompts]


def plan_repropagate(sample, label_field: str, from_frame: int, direction: str = "forward", object_ids=None,
                     config: ConfigLike = None, model: Optional[str] = None,
                     checkpoint: Optional[str] = None) -> RepropagationPlan:
    """Validates a repropagation and reads its prompts (nothing is written); raises :class:`SampdInputError`
    naming the sample, frame and field. Arguments as :func:`repropagate`."""
    coll = _as_collection(sample)
    if coll.media_type != "video":
        raise SampdInputError(f"repropagate works on video samples, got {coll.media_type}")
    if len(coll) != 1:
        raise SampdInputError(f"repropagate works on one sample, got {len(coll)}")
    if direction not in DIRECTIONS:
        raise SampdInputError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    dataset = coll._dataset
    sample = dataset[coll.values("id")[0]]
    sid = sample.id
    where = f"sample {sid} ({os.path.basename(sample.filepath)})"
    label_field = fo_labels.check_output_field(coll, label_field)
    if not dataset.has_frame_field(label_field):
        raise SampdInputError(f"{where}: 'frames.{label_field}' does not exist")
    marker = fo_labels.read_markers(coll, label_field).get(sid)
    if not marker:
        raise SampdInputError(
            f"{where}: 'frames.{label_field}' was not written by SAM-PD (no '{fo_labels.marker_field(label_field)}' "
            "marker): only SAM-PD output fields are repropagated (ground truth is never written)"
        )
    settings = marker.get("settings") or {}
    if label_field == settings.get("prompt_field"):
        raise SampdInputError(f"{where}: 'frames.{label_field}' is the prompt field of its run; it is never written")
    model = model or settings.get("model", "vit_h")
    checkpoint = checkpoint if checkpoint is not None else settings.get("checkpoint")
    cfg, _ = _checked_settings(config if config is not None else settings.get("config"), model, checkpoint)
    hw = fo_labels.frame_size(sample)
    total = sample.metadata.total_frame_count
    k = int(from_frame)
    if k < 1 or (total and k > total):
        raise SampdInputError(f"{where}: frame {from_frame} is outside the video (frames 1..{total})")
    prompts = fo_labels.read_frame_prompts(dataset, sid, label_field, k, hw, object_ids, where)
    return RepropagationPlan(sample, where, label_field, k, direction, prompts, model, checkpoint, cfg, hw, total,
                             marker)


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
    backends = fo_models.BackendCache(plan.model, plan.checkpoint, device)
    t0 = time.time()
    written = {}
    todo = ["forward", "backward"] if direction == "both" else [direction]
    n_frames = sum((total - k) if d == "forward" else (k - 1) for d in todo) if total else None
    with FramesProgressBar(total=n_frames, progress=progress) as pb:
        for d in todo:
            if d == "forward":
                frames = iter_frames(sample.filepath, start=k)
            else:
                frames = _iter_frames_backward(sample.filepath, k, 1, batch_frames)
            tracker = SamPDTracker(backends.get(sample), plan.config)
            writer = fo_labels.FrameLabelWriter(dataset, plan.label_field, batch_frames, replace_ids=plan.object_ids)
            written[d] = _stream(tracker, _checked(frames, plan.hw, plan.where), plan.prompts, plan.hw, writer,
                                 sample.id, f"{plan.where} ({d} from frame {k})", pb, f"{d} from frame {k}", total,
                                 skip_frame=k)
    marker = dict(plan.marker)
    marker["edits"] = list(marker.get("edits") or []) + [
        dict(from_frame=k, direction=direction, objects=plan.object_ids, at=fo_labels._now())
    ]
    fo_labels.write_marker(dataset, plan.label_field, sample.id, marker)
    return dict(sample_id=sample.id, label_field=plan.label_field, from_frame=k, direction=direction,
                objects=plan.object_ids, frames=written, seconds=round(time.time() - t0, 3), device=backends.device,
                model=plan.model)


# --- evaluation ----------------------------------------------------------------------------------------------------
def evaluate_jf(samples, pred_field: str = "sampd", gt_field: str = "ground_truth", eval_key: Optional[str] = "jf",
                **kwargs):
    """DAVIS J&F of ``pred_field`` against ``gt_field`` as a FiftyOne evaluation run
    (:func:`sampd_plugin.evaluation.evaluate_jf`; see it for the arguments, fields and saved views)."""
    from sampd_plugin.evaluation import evaluate_jf as _evaluate_jf

    return _evaluate_jf(_as_collection(samples), pred_field, gt_field=gt_field, eval_key=eval_key, **kwargs)


# --- scale-out: delegated operations -------------------------------------------------------------------------------
def queue_track(samples, prompt_field: str = "ground_truth", label_field: str = "sampd", config: ConfigLike = None,
                model: str = "vit_h", checkpoint: Optional[str] = None, device: Optional[str] = None,
                batch_frames: int = DEFAULT_BATCH_FRAMES, overwrite: bool = False, samples_per_operation: int = 1,
                delegation_target: Optional[str] = None, mode: str = "track", max_objects: int = 100,
                job_id: Optional[str] = None) -> dict:
    """Queues a tracking job as delegated operations of the plugin's ``track_objects`` (``mode="track"``) or
    ``auto_track_objects`` (``mode="auto"``) operator, one per ``samples_per_operation`` unfinished samples, for
    ``fiftyone delegated launch`` workers to run.

    The job is validated first (same rules as :func:`track`) and gets a ``job_id``: its operations skip samples
    that are finished (with ``overwrite=True``: finished by this job), so a re-queued or re-run operation never
    tracks a sample twice. Needs the plugin to be visible to FiftyOne (``FIFTYONE_PLUGINS_DIR``) here and on the
    workers, and every worker must reach the same MongoDB (``FIFTYONE_DATABASE_URI``) and the media.

    Returns:
        ``{"operations": [delegated operation ids], "samples": n queued, "skipped": [finished sample ids],
        "job_id": ...}``
    """
    samples = _as_collection(samples)
    k = int(samples_per_operation)
    if k < 1:
        raise SampdInputError(f"samples_per_operation must be >= 1, got {samples_per_operation!r}")
    job_id = job_id or uuid.uuid4().hex
    plan = plan_track(samples, label_field, prompt_field if mode == "track" else None, config, model, checkpoint,
                      overwrite, mode, max_objects if mode == "auto" else None, job_id)
    plan.raise_if_invalid()
    cfg = make_config(config)
    dataset = samples._dataset
    fo_labels.ensure_output_field(dataset, plan.label_field)  # declared once, before workers write
    params = dict(label_field=plan.label_field, model=model, checkpoint=checkpoint or None, job_id=job_id,
                  device=device or "auto", batch_frames=int(batch_frames), overwrite=bool(overwrite),
                  samples_per_operation=0,
                  config=cfg.to_dict(), view_target="CURRENT_VIEW", evaluate=False)
    if mode == "track":
        params["prompt_field"] = plan.prompt_field
        operator = f"{PLUGIN_NAME}/track_objects"
    else:
        params["max_objects"] = int(max_objects)
        operator = f"{PLUGIN_NAME}/auto_track_objects"
    ops = []
    for lo in range(0, len(plan.todo), k):
        chunk = plan.todo[lo:lo + k]
        res = _execute_operator(operator, ctx=dict(view=dataset.select(chunk, ordered=True), params=dict(params),
                                                   delegation_target=delegation_target),
                                request_delegation=True)
        ops.append(str(res.result["id"]))
    return dict(operations=ops, samples=len(plan.todo), skipped=list(plan.done), label_field=plan.label_field,
                job_id=job_id)


def run_worker(dataset_name: Optional[str] = None, operator: Optional[str] = None, poll_seconds: float = 0.5,
               idle_exit_seconds: Optional[float] = None, max_operations: Optional[int] = None,
               log: bool = True) -> int:
    """A ``fiftyone delegated launch`` worker loop that can stop by itself (batch schedulers, tests).

    Same engine as the CLI: FiftyOne's ``DelegatedOperationService.execute_queued_operations(limit=1)``, which claims
    one QUEUED operation atomically (QUEUED -> RUNNING) and runs it; an operation claimed by another worker is
    skipped. Optionally restricted to one dataset / operator; exits after ``idle_exit_seconds`` without work or
    after ``max_operations`` executed operations.

    Returns:
        the number of operations this worker executed
    """
    from fiftyone.operators.delegated import DelegatedOperationService

    service = DelegatedOperationService()
    executed, idle_since = 0, time.time()
    while max_operations is None or executed < max_operations:
        results = service.execute_queued_operations(operator=operator, dataset_name=dataset_name, limit=1, log=log)
        ran = [r for r in results if r is not None]
        if ran:
            executed += len(ran)
            idle_since = time.time()
            continue
        if idle_exit_seconds is not None and time.time() - idle_since > idle_exit_seconds:
            break
        time.sleep(poll_seconds)
    return executed


# --- helpers -------------------------------------------------------------------------------------------------------
def _execute_operator(*args, **kwargs):
    """``foo.execute_operator`` that also works where an event loop is running (notebooks), via a helper thread."""
    import asyncio
    import concurrent.futures

    import fiftyone.operators as foo

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return foo.execute_operator(*args, **kwargs)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(foo.execute_operator, *args, **kwargs).result()


def _checked_settings(config, model, checkpoint):
    """``(SamPDConfig, model)`` or :class:`SampdInputError` for an unknown preset / setting / model."""
    try:
        cfg = make_config(config)
        fo_models.check_model(model, checkpoint)
    except (ValueError, TypeError) as e:
        raise SampdInputError(str(e)) from e
    return cfg, model


def _as_collection(samples):
    """A dataset / view as is; a dataset ``fo.Sample`` as a one-sample view."""
    if isinstance(samples, fo.Sample):
        if not samples.in_dataset:
            raise SampdInputError("the sample is not in a dataset: add it to one first")
        return samples._dataset.select(samples.id)
    return samples


__all__ = ["track", "auto_track", "repropagate", "evaluate_jf", "queue_track", "run_worker", "plan_track",
           "plan_repropagate", "make_config", "TrackPlan", "RepropagationPlan", "FramesProgressBar"]
