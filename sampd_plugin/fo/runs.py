"""Run identity, completion markers and plans: what a tracking job is, which samples it tracks, skips or refuses.

A run's identity is its settings (mode, prompt field, model, checkpoint,
:class:`~sampd_plugin.core.config.SamPDConfig`): two runs with the same settings are the same run (:func:`run_key`),
whatever the device or batch size.

Markers (:func:`new_marker`): a sample-level dict field ``<label_field>_track`` per output field
(:func:`sampd_plugin.fo.labels.marker_field`), e.g. ``sampd_track``, on each sequence's head sample, holding
``{"run": <settings key>, "done": bool, "settings": {...}, "owner", "operation", "heartbeat", "worker", "host",
"device", "frames", "last_frame", "objects", "seconds", "started_at", "finished_at", "error"}``. A sequence is
finished for a run when its marker has that run's key and ``done`` is true; a re-run (or a re-queued delegated
operation) with the same settings skips it. The marker is claimed atomically when a sequence starts
(:mod:`sampd_plugin.ops.ownership`: one owner, a heartbeat, take-over of dead owners only), and marked done by its owner
after every frame was written and checked.

Plans (:func:`plan_track`, :func:`plan_repropagate`) validate everything before anything is written.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import socket
from typing import Dict, Iterable, List, Optional, Tuple

from sampd_plugin.backends import registry
from sampd_plugin.core import checks
from sampd_plugin.core.config import ConfigLike, SamPDConfig, as_config
from sampd_plugin.core.tracker import ObjectPrompt
from sampd_plugin.errors import SampdInputError
from sampd_plugin.fo import evaluation, identity, labels, store
from sampd_plugin.fo.request import TrackRequest
from sampd_plugin.fo.sources import Layout, SampleSequence, as_collection, layout_of
from sampd_plugin.ops import ownership

DIRECTIONS = ("forward", "backward", "both")


# --- settings --------------------------------------------------------------------------------------------------------
def run_settings(mode: str, prompt_field: Optional[str], model: str, checkpoint: Optional[str], config: SamPDConfig,
                 max_objects: Optional[int] = None, layout: Optional[Layout] = None) -> dict:
    """What makes two runs identical (device and batch size do not); image sequences add their sequence and order
    fields."""
    s = dict(mode=mode, prompt_field=prompt_field, model=model, checkpoint=checkpoint, config=config.to_dict())
    if mode == "auto":
        s["max_objects"] = int(max_objects)
    if layout is not None and not layout.is_video:
        s.update(sequence_field=layout.sequence_field, order_field=layout.order_field)
    return s


def run_key(settings: dict) -> str:
    return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


# --- markers ---------------------------------------------------------------------------------------------------------
def read_markers(layout: Layout, label_field: str) -> Dict[str, Optional[dict]]:
    """``{sequence key: marker dict or None}`` of the layout's sequences (markers live on the head samples); all
    ``None`` unless ``label_field`` is provably a SAM-PD output (:func:`sampd_plugin.fo.identity.output_identity`):
    a stale marker (its output field was deleted or renamed) or a field a person named like a marker says nothing."""
    if not identity.is_output(layout.dataset, label_field):
        return {seq.key: None for seq in layout.sequences()}
    return layout.head_values(labels.marker_field(label_field))


def write_marker(layout: Layout, label_field: str, seq: SampleSequence, marker: dict):
    layout.set_head_value(labels.marker_field(label_field), seq, dict(marker))


def new_marker(run_key: str, settings: dict, device: str, job_id: Optional[str] = None,
               owner: Optional[str] = None, operation: Optional[str] = None) -> dict:
    """The marker a run writes when it claims a sequence (``done=False``, its ``owner`` id)."""
    return dict(run=run_key, job=job_id, done=False, settings=settings, device=str(device), host=socket.gethostname(),
                worker=ownership.this_worker(), owner=owner or ownership.new_owner(), operation=operation,
                heartbeat=None, started_at=now(), finished_at=None, frames=0, last_frame=None, objects=0,
                seconds=None, error=None)


def clear_outputs(layout: Layout, sequences: Iterable[SampleSequence], label_field: str):
    """Clears the output field and its frame quality fields on every frame of the given sequences, and their markers
    (``overwrite=True``, or an unfinished run being restarted)."""
    sequences = list(sequences)
    if sequences:
        for field in (label_field, *labels.quality_fields(label_field)):
            layout.clear(field, sequences)
        layout.clear_head_value(labels.marker_field(label_field), sequences)


def run_states(samples, label_field: Optional[str] = None, sequence_field: Optional[str] = None,
               order_field: Optional[str] = None, stale_seconds: float = ownership.DEFAULT_STALE_SECONDS
               ) -> List[dict]:
    """The state of every SAM-PD run on every sequence of ``samples``: one row per (output field, sequence) with
    ``label_field, sequence, sample_id, state`` (:data:`sampd_plugin.ops.ownership.STATES`), ``message`` (e.g.
    ``"stale, last heartbeat 14 min ago (host:1234, delegated operation ...)"``), ``heartbeat_age`` (s),
    ``worker, operation, frames, last_frame, error, run``. Output fields are those with a run marker field (all of
    them, or only ``label_field``)."""
    layout = layout_of(samples, sequence_field, order_field)
    fields = [label_field] if label_field else identity.output_fields(layout.dataset)
    rows = []
    now_ = ownership.utcnow()
    for field in fields:
        markers = read_markers(layout, field)
        for seq in layout.sequences():
            m = markers.get(seq.key)
            state, message = ownership.marker_state(m, stale_seconds, now_)
            m = m or {}
            rows.append(dict(label_field=field, sequence=seq.key, sample_id=seq.head_id, state=state,
                             message=message, heartbeat_age=ownership.heartbeat_age(m, now_),
                             worker=m.get("worker"), operation=m.get("operation"), frames=m.get("frames"),
                             last_frame=m.get("last_frame"), error=m.get("error"), run=m.get("run")))
    return rows


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


# --- planning / validation -------------------------------------------------------------------------------------------
@dataclasses.dataclass
class TrackPlan:
    """What a tracking job will do on a collection (no side effects).

    Attributes:
        layout: the collection's :class:`~sampd_plugin.fo.sources.Layout` (videos or image sequences)
        request: the job's :class:`~sampd_plugin.fo.request.TrackRequest`, resolved on the collection (checked
            field names; an image collection's sequence and order fields); ``request.config`` is the parsed config
        settings, key: the run (:func:`run_settings`, :func:`run_key`)
        todo: keys of the sequences to track, in collection order
        done: keys of the sequences an identical run already finished (skipped)
        clear: keys of ``todo`` sequences that hold labels or a marker, cleared just before each is re-tracked
        conflicts: keys of sequences with labels from another run (need ``overwrite=True``)
        busy: ``{key: message}`` of sequences another live run is writing (skipped: never two writers)
        stale: ``{key: message}`` of ``todo`` sequences whose previous owner is presumed dead (taken over)
        markers: the run markers as read by the plan (``{key: marker or None}``)
        problems: per-sequence input errors (each names the sequence, frame and field)
        prompt_tables: ``{key: {frame_number: [index, ...]}}`` of the prompt field (track mode)
        total_frames: frames of the ``todo`` sequences (None if unknown)
    """

    layout: Layout
    request: TrackRequest
    settings: dict
    key: str
    todo: List[str] = dataclasses.field(default_factory=list)
    done: List[str] = dataclasses.field(default_factory=list)
    clear: List[str] = dataclasses.field(default_factory=list)
    conflicts: List[str] = dataclasses.field(default_factory=list)
    busy: Dict[str, str] = dataclasses.field(default_factory=dict)
    stale: Dict[str, str] = dataclasses.field(default_factory=dict)
    markers: Dict[str, Optional[dict]] = dataclasses.field(default_factory=dict)
    problems: List[str] = dataclasses.field(default_factory=list)
    prompt_tables: Dict[str, dict] = dataclasses.field(default_factory=dict)
    total_frames: Optional[int] = None

    @property
    def label_field(self) -> str:
        return self.request.label_field

    @property
    def prompt_field(self) -> Optional[str]:
        return self.request.prompt_field

    @property
    def sequences(self) -> Dict[str, SampleSequence]:
        """``{key: SampleSequence}`` of the collection."""
        return self.layout.by_key()

    @property
    def errors(self) -> List[str]:
        """Messages that make the job invalid (nothing is written while there are any)."""
        errs = list(self.problems)
        if self.conflicts:
            seqs = self.sequences
            names = ", ".join(seqs[k].name for k in self.conflicts[:5]) + (" ..." if len(self.conflicts) > 5 else "")
            errs.append(
                f"'{self.layout.path(self.label_field)}' already holds labels on {len(self.conflicts)} "
                f"sequence(s) ({names}) that were not written by an identical SAM-PD run: pass overwrite=True to "
                "replace them, or choose another output field"
                + (f" (the prompt field '{self.prompt_field}' is never written)" if self.prompt_field else "")
            )
        return errs

    def raise_if_invalid(self):
        errs = self.errors
        if errs:
            more = f"\n... and {len(errs) - 10} more" if len(errs) > 10 else ""
            field = "label_field" if self.conflicts and not self.problems else None
            raise SampdInputError("\n".join(errs[:10]) + more, field=field)


def plan_track(samples, request: Optional[TrackRequest] = None, *, check_prompts: bool = True,
               **settings) -> TrackPlan:
    """Validates a tracking job and works out which sequences it tracks, skips and clears (nothing is written).

    ``samples`` is a video collection, or an image collection of sequences (the request's ``sequence_field`` /
    ``order_field``, see :func:`sampd_plugin.fo.sources.layout_of`); the job is ``request`` (a
    :class:`~sampd_plugin.fo.request.TrackRequest`) with ``settings`` replaced, or ``TrackRequest(**settings)``.
    With ``check_prompts`` every prompt of every sequence to track is read and checked (masks, boxes, frame size)
    so that a bad prompt is refused before anything is written; the operators' forms skip it on large targets.

    The output field is never the prompt field, a field an evaluation uses as ground truth, or a field SAM-PD did
    not write (:func:`sampd_plugin.fo.store.check_output_field`), whatever ``overwrite`` says, unless
    ``allow_overwrite_ground_truth`` (which the operators' forms never set). A sequence another live run is writing
    is skipped (:attr:`TrackPlan.busy`); one whose owner stopped heart-beating ``stale_seconds`` ago is taken over.

    Raises :class:`SampdInputError` for job-level errors (no sequences, a missing field, a protected output field,
    unknown model or preset, an ``evaluate`` whose ground truth or key ``evaluate_jf`` would refuse:
    :func:`sampd_plugin.fo.evaluation.check_eval_key`); per-sequence errors are collected in
    :attr:`TrackPlan.problems`.
    """
    request = TrackRequest.of(request, **settings)
    layout = layout_of(samples, request.sequence_field, request.order_field)
    prompt_field = None
    if request.mode == "track":
        prompt_field = store.check_label_field(layout, request.prompt_field, "prompt field")
    label_field = store.check_output_field(layout, request.label_field, prompt_field,
                                           request.allow_overwrite_ground_truth)
    request = dataclasses.replace(request, prompt_field=prompt_field, label_field=label_field,
                                  sequence_field=layout.sequence_field, order_field=layout.order_field)
    if request.evaluate:  # the evaluation that follows the run (replacing its key's older run) is checked now
        evaluation.check_eval_key(layout, label_field, request.gt_field, request.eval_key, overwrite=True)
    settings = run_settings(request.mode, prompt_field, registry.model_name(request.model), request.checkpoint,
                            request.config, request.max_objects, layout)
    plan = TrackPlan(layout, request, settings, run_key(settings))
    overwrite, job_id = request.overwrite, request.job_id

    seqs = layout.sequences()
    markers = plan.markers = read_markers(layout, label_field)
    counts = layout.labeled_counts(label_field)
    if request.mode == "track":
        plan.prompt_tables = layout.index_table(prompt_field)
    for seq in seqs:
        m = markers.get(seq.key)
        same = bool(m) and m.get("run") == plan.key
        state, message = ownership.marker_state(m, request.stale_seconds)
        if state == "done" and same and (not overwrite or (job_id is not None and m.get("job") == job_id)):
            plan.done.append(seq.key)
            continue
        if state == "running":
            plan.busy[seq.key] = f"{seq.name}: {message}"
            continue
        if counts[seq.key] and not same and not overwrite:
            plan.conflicts.append(seq.key)
            continue
        problem = _sequence_problem(plan, seq, check_prompts)
        if problem:
            plan.problems.append(problem)
            continue
        plan.todo.append(seq.key)
        if state in ("stale", "dead"):
            plan.stale[seq.key] = f"{seq.name}: {message}: taken over"
        if counts[seq.key] or m:
            plan.clear.append(seq.key)
    by_key = layout.by_key()
    n = [by_key[k].num_frames for k in plan.todo]
    plan.total_frames = sum(n) if all(n) else None
    return plan


def _sequence_problem(plan: TrackPlan, seq: SampleSequence, check_prompts: bool) -> Optional[str]:
    """Why ``seq`` cannot be tracked (a message naming it), or ``None``."""
    missing = seq.missing_files()
    if missing:
        what = "the video file does not exist" if seq.is_video else (
            f"{len(missing)} image file(s) do not exist, e.g. {missing[0]}")
        return f"{seq.name}: {what}"
    try:
        if plan.prompt_field is not None:
            store.prompt_plan(plan.prompt_tables.get(seq.key) or {}, plan.layout.path(plan.prompt_field), seq.name)
        if check_prompts:
            hw = plan.layout.frame_size(seq)
            if plan.prompt_field is not None:
                store.read_prompts(plan.layout, seq, plan.prompt_field, hw, plan.prompt_tables.get(seq.key))
    except SampdInputError as e:
        return str(e)
    return None


@dataclasses.dataclass
class RepropagationPlan:
    """A validated repropagation (see :func:`plan_repropagate`)."""

    layout: Layout
    sequence: SampleSequence
    label_field: str
    from_frame: int
    direction: str
    prompts: List[ObjectPrompt]
    model: str
    checkpoint: Optional[str]
    config: SamPDConfig
    hw: Tuple[int, int]
    marker: dict

    @property
    def object_ids(self) -> List[int]:
        return [p.object_id for p in self.prompts]

    @property
    def where(self) -> str:
        return self.sequence.name


def plan_repropagate(samples, label_field: str, from_frame: Optional[int] = None, direction: str = "forward",
                     object_ids=None, config: ConfigLike = None, model: Optional[str] = None,
                     checkpoint: Optional[str] = None, sequence_field: Optional[str] = None,
                     order_field: Optional[str] = None) -> RepropagationPlan:
    """Validates a repropagation and reads its prompts (nothing is written); raises :class:`SampdInputError`
    naming the sequence, frame and field. Arguments as :func:`sampd_plugin.repropagate`."""
    layout = _one_sequence_layout(samples, sequence_field, order_field)
    seq = layout.sequences()[0]
    checks.choice("direction", direction, DIRECTIONS)
    checks.integer("from_frame", from_frame, 1, allow_none=True)
    if object_ids is not None:
        if isinstance(object_ids, (str, bytes)) or not hasattr(object_ids, "__iter__"):
            raise SampdInputError(f"object_ids must be a list of object ids (Detection.index), got {object_ids!r}",
                                  field="object_ids")
        object_ids = [checks.integer("object_ids[]", i, 0) for i in object_ids]
    if from_frame is None:
        picked = as_collection(samples)
        if seq.is_video or len(picked) != 1:
            raise SampdInputError(f"{seq.name}: from_frame is required (the 1-based frame number of the correction)")
        from_frame = seq.frame_of(picked.first().id)
    label_field = store.check_output_field(layout, label_field)
    path = layout.path(label_field)
    if not layout.has_field(label_field):
        raise SampdInputError(f"{seq.name}: '{path}' does not exist")
    marker = read_markers(layout, label_field).get(seq.key)
    if not marker:
        raise SampdInputError(
            f"{seq.name}: '{path}' was not written by SAM-PD (no '{labels.marker_field(label_field)}' marker): only "
            "SAM-PD output fields are repropagated (ground truth is never written)"
        )
    settings = marker.get("settings") or {}
    if label_field == settings.get("prompt_field"):
        raise SampdInputError(f"{seq.name}: '{path}' is the prompt field of its run; it is never written")
    model = model or settings.get("model") or TrackRequest.model
    checkpoint = checkpoint if checkpoint is not None else settings.get("checkpoint")
    registry.check_model(model, checkpoint)
    cfg = as_config(config if config is not None else settings.get("config"))
    hw = layout.frame_size(seq)
    total = seq.num_frames
    k = int(from_frame)
    if k < 1 or (total and k > total):
        raise SampdInputError(f"{seq.name}: frame {from_frame} is outside the sequence (frames 1..{total})")
    prompts = store.read_frame_prompts(layout, seq, label_field, k, hw, object_ids)
    return RepropagationPlan(layout, seq, label_field, k, direction, prompts, model, checkpoint, cfg, hw, marker)


def _one_sequence_layout(samples, sequence_field, order_field) -> Layout:
    """The layout of the ONE sequence ``samples`` designate: one video sample, or the whole image sequence of the
    given image sample(s)."""
    layout = layout_of(samples, sequence_field, order_field)
    if layout.is_video:
        if len(layout.sequences()) != 1:
            raise SampdInputError(f"repropagate works on one video, got {len(layout.sequences())}")
        return layout
    keys = {s.key for s in layout.sequences()}
    if len(keys) != 1:
        raise SampdInputError(f"repropagate works on one image sequence, got {len(keys)} ({sorted(keys)[:5]})")
    from fiftyone import ViewField as F

    key = keys.pop()
    whole = layout.dataset.match(F(layout.sequence_field).to_string() == key)
    return layout_of(whole, layout.sequence_field, layout.order_field)
