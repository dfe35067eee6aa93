"""Run identity, completion markers and plans: what a tracking job is, which samples it tracks, skips or refuses.

A run's identity is its settings (mode, prompt field, model, checkpoint, :class:`~sampd_plugin.config.SamPDConfig`):
two runs with the same settings are the same run (:func:`run_key`), whatever the device or batch size.

Markers (:func:`new_marker`): a sample-level dict field ``<label_field>_track`` per output field
(:func:`sampd_plugin.labels.marker_field`), e.g. ``sampd_track``, holding ``{"run": <settings key>, "done": bool,
"settings": {...}, "frames", "objects", "seconds", "device", "host", "worker", "started_at", "finished_at"}``. A
sample is finished for a run when its marker has that run's key and ``done`` is true; a re-run (or a re-queued
delegated operation) with the same settings skips it. The marker is written when a sample starts (``done=False``)
and again after its last frame was written.

Plans (:func:`plan_track`, :func:`plan_repropagate`) validate everything before anything is written.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import socket
from typing import Dict, List, Optional, Tuple, Union

from sampd_plugin import labels, store
from sampd_plugin.backends import registry
from sampd_plugin.config import SamPDConfig
from sampd_plugin.errors import SampdInputError
from sampd_plugin.tracker import ObjectPrompt

DIRECTIONS = ("forward", "backward", "both")

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


def checked_settings(config, model, checkpoint):
    """``(SamPDConfig, model)`` or :class:`SampdInputError` for an unknown preset / setting / model."""
    try:
        cfg = make_config(config)
        registry.check_model(model, checkpoint)
    except (ValueError, TypeError) as e:
        raise SampdInputError(str(e)) from e
    return cfg, model


# --- markers ---------------------------------------------------------------------------------------------------------
def read_markers(samples, label_field: str) -> Dict[str, Optional[dict]]:
    """``{sample_id: marker dict or None}`` for the samples of ``samples``."""
    ids = samples.values("id")
    if samples.get_field(labels.marker_field(label_field)) is None:
        return {sid: None for sid in ids}
    return dict(zip(ids, samples.values(labels.marker_field(label_field))))


def write_marker(dataset, label_field: str, sample_id: str, marker: dict):
    dataset.set_values(labels.marker_field(label_field), {sample_id: dict(marker)}, key_field="id")


def new_marker(run_key: str, settings: dict, device: str, job_id: Optional[str] = None) -> dict:
    return dict(run=run_key, job=job_id, done=False, settings=settings, device=str(device), host=socket.gethostname(),
                worker=f"{socket.gethostname()}:{os.getpid()}", started_at=now(), finished_at=None,
                frames=0, objects=0, seconds=None)


def clear_outputs(dataset, sample_ids: Sequence[str], label_field: str):
    """Clears ``frames.<label_field>`` and the marker of the given samples (``overwrite=True``)."""
    if not sample_ids:
        return
    view = dataset.select(list(sample_ids))
    if dataset.has_frame_field(label_field):
        view.clear_frame_field(label_field)
    if dataset.has_sample_field(labels.marker_field(label_field)):
        view.clear_sample_field(labels.marker_field(label_field))


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


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
    samples = store.as_collection(samples)
    if mode not in ("track", "auto"):
        raise ValueError(f"mode must be 'track' or 'auto', got {mode!r}")
    if samples.media_type != "video":
        raise SampdInputError(
            f"'{samples._root_dataset.name}' holds {samples.media_type} samples: SAM-PD tracks objects in videos"
        )
    if mode == "track":
        if not prompt_field:
            raise SampdInputError("a prompt field is required")
        prompt_field = store.check_label_field(samples, prompt_field, "prompt field")
    else:
        prompt_field = None
        if max_objects is None or int(max_objects) < 1:
            raise SampdInputError(f"max_objects must be >= 1, got {max_objects!r}")
    label_field = store.check_output_field(samples, label_field, prompt_field)
    cfg, _ = checked_settings(config, model, checkpoint)
    settings = run_settings(mode, prompt_field, model, checkpoint, cfg, max_objects)
    plan = TrackPlan(label_field, prompt_field, settings, run_key(settings), bool(overwrite), job_id)

    ids = samples.values("id")
    paths = samples.values("filepath")
    plan.names = {sid: f"sample {sid} ({os.path.basename(p)})" for sid, p in zip(ids, paths)}
    markers = read_markers(samples, label_field)
    counts = store.labeled_frame_counts(samples, label_field)
    if mode == "track":
        plan.prompt_tables = store.prompt_index_table(samples, prompt_field)
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
                store.prompt_plan(sid, plan.prompt_tables.get(sid) or {}, prompt_field, plan.names[sid])
            except SampdInputError as e:
                plan.problems.append(str(e))
                continue
        plan.todo.append(sid)
        if counts[sid] or m:
            plan.clear.append(sid)
    n = [frame_counts.get(s) for s in plan.todo]
    plan.total_frames = sum(n) if all(n) else None
    return plan


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
    coll = store.as_collection(sample)
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
    label_field = store.check_output_field(coll, label_field)
    if not dataset.has_frame_field(label_field):
        raise SampdInputError(f"{where}: 'frames.{label_field}' does not exist")
    marker = read_markers(coll, label_field).get(sid)
    if not marker:
        raise SampdInputError(
            f"{where}: 'frames.{label_field}' was not written by SAM-PD (no '{labels.marker_field(label_field)}' "
            "marker): only SAM-PD output fields are repropagated (ground truth is never written)"
        )
    settings = marker.get("settings") or {}
    if label_field == settings.get("prompt_field"):
        raise SampdInputError(f"{where}: 'frames.{label_field}' is the prompt field of its run; it is never written")
    model = model or settings.get("model", "vit_h")
    checkpoint = checkpoint if checkpoint is not None else settings.get("checkpoint")
    cfg, _ = checked_settings(config if config is not None else settings.get("config"), model, checkpoint)
    hw = store.frame_size(sample)
    total = sample.metadata.total_frame_count
    k = int(from_frame)
    if k < 1 or (total and k > total):
        raise SampdInputError(f"{where}: frame {from_frame} is outside the video (frames 1..{total})")
    prompts = store.read_frame_prompts(dataset, sid, label_field, k, hw, object_ids, where)
    return RepropagationPlan(sample, where, label_field, k, direction, prompts, model, checkpoint, cfg, hw, total,
                             marker)
