"""One tracking request: every setting of a tracking job, with its one default, validated once.

A :class:`TrackRequest` is what a person asks for, whoever builds it: the SDK functions (``sp.track(dataset,
model="vit_b")`` builds ``TrackRequest(model="vit_b")``), the operators' forms (:meth:`TrackRequest.from_params` of
the form's values) and the delegated operations that :func:`sampd_plugin.queue_track` queues
(:meth:`TrackRequest.to_params` there, :meth:`~TrackRequest.from_params` on the worker: the same request comes back).
It holds nothing that needs the dataset; :func:`sampd_plugin.fo.runs.plan_track` checks it against a collection
before anything is written.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

from sampd_plugin.backends import registry
from sampd_plugin.core import checks
from sampd_plugin.core.config import ConfigLike, as_config
from sampd_plugin.errors import SampdInputError
from sampd_plugin.fo.store import DEFAULT_BATCH_FRAMES
from sampd_plugin.ops.ownership import DEFAULT_STALE_SECONDS

#: ``"track"``: prompted tracking (VOS); ``"auto"``: automatic masks on the first frame, then tracking (VIS)
MODES = ("track", "auto")
#: the default output field of each mode
DEFAULT_LABEL_FIELDS = {"track": "sampd", "auto": "sampd_auto"}
#: most objects automatic mode tracks per sequence (``max_objects``; the paper's VIS setting is 100)
MAX_AUTO_OBJECTS = 1000
#: most frames per bulk write (``batch_frames``)
MAX_BATCH_FRAMES = 100_000
#: sequences per delegated operation when a job is split for several workers (:func:`sampd_plugin.queue_track`,
#: the operators' forms)
SAMPLES_PER_OPERATION = 1


@dataclasses.dataclass(frozen=True)
class TrackRequest:
    """A tracking job's settings (validated when built, by type and range with :mod:`sampd_plugin.core.checks`:
    :class:`~sampd_plugin.errors.SampdInputError` naming the setting in ``error.field``; a string is never read as
    a number nor a flag).

    Attributes:
        mode: one of :data:`MODES`
        prompt_field: Detections field with the prompts (``"track"``; never written); ``None`` in ``"auto"``
        label_field: output field (default: :data:`DEFAULT_LABEL_FIELDS` of the mode)
        max_objects: ``"auto"``: automatic masks tracked per sequence, best first
        config: a :class:`~sampd_plugin.core.config.SamPDConfig`; given as a preset name, a dict or ``None`` (the
            mode's :data:`~sampd_plugin.core.config.DEFAULT_PRESETS`: ``"overlap"``, overlap-aware tracking, for
            ``"track"``; ``"adaptive"`` for ``"auto"``), it is parsed here, once
        model: ``"vit_h"``, ``"vit_l"``, ``"vit_b"``, ``"mobile_sam"``, ``"tiny"``, ``"synthetic"``
            (:mod:`sampd_plugin.backends.registry`) or a segmenter instance (not for delegated operations)
        checkpoint: optional checkpoint path
        device: torch device; ``None`` (also given as ``"auto"``): cuda when the machine running the job has one
        batch_frames: frames per bulk write
        overwrite: replace labels in ``label_field`` that an identical run did not write
        sequence_field, order_field: image collections: the field naming each image's sequence and the field ordering
            its images (defaults: the grouped view's, else ``sequence_id`` and ``frame_number``)
        allow_overwrite_ground_truth: allow an output field that an evaluation uses as ground truth or that SAM-PD
            did not write (never set by the forms); the prompt field is never written
        stale_seconds: a sequence another run is writing is skipped unless that run's heartbeat is older than this
        job_id: the job a delegated operation belongs to (:func:`sampd_plugin.queue_track`)
        evaluate: after tracking, evaluate J&F of ``label_field`` against ``gt_field`` under ``eval_key`` (a job
            split into delegated operations: by its last operation); also given as ``{"gt_field", "eval_key"}``
        gt_field: ground truth of the evaluation (default: the prompt field)
        eval_key: evaluation key (default: ``<label_field>_jf``; an older run of that key is replaced)
    """

    mode: str = "track"
    prompt_field: Optional[str] = "ground_truth"
    label_field: Optional[str] = None
    max_objects: int = 100
    config: ConfigLike = None
    model: Any = "vit_h"
    checkpoint: Optional[str] = None
    device: Optional[str] = None
    batch_frames: int = DEFAULT_BATCH_FRAMES
    overwrite: bool = False
    sequence_field: Optional[str] = None
    order_field: Optional[str] = None
    allow_overwrite_ground_truth: bool = False
    stale_seconds: float = DEFAULT_STALE_SECONDS
    job_id: Optional[str] = None
    evaluate: Any = False
    gt_field: Optional[str] = None
    eval_key: Optional[str] = None

    def __post_init__(self):
        def put(name, value):
            object.__setattr__(self, name, value)

        checks.choice("mode", self.mode, MODES)
        for name in ("prompt_field", "label_field", "checkpoint", "device", "sequence_field", "order_field",
                     "job_id", "gt_field", "eval_key"):  # a form's empty text box means "not given"
            if getattr(self, name) in ("", None):
                put(name, None)
        if self.mode == "track":
            if not self.prompt_field:
                raise SampdInputError("a prompt field is required", field="prompt_field")
        else:
            put("prompt_field", None)
        put("label_field", self.label_field or DEFAULT_LABEL_FIELDS[self.mode])
        put("max_objects", checks.integer("max_objects", self.max_objects, 1, MAX_AUTO_OBJECTS))
        put("batch_frames", checks.integer("batch_frames", self.batch_frames, 1, MAX_BATCH_FRAMES))
        put("config", as_config(self.config, self.mode))
        registry.check_model(self.model, self.checkpoint)
        device = checks.device(self.device)
        put("device", None if device == "auto" else device)
        for name in ("overwrite", "allow_overwrite_ground_truth"):
            checks.flag(name, getattr(self, name))
        put("stale_seconds", checks.number("stale_seconds", self.stale_seconds, 0, low_open=True))
        if isinstance(self.evaluate, Mapping):  # queue_track(evaluate={"gt_field": ..., "eval_key": ...}), {} too
            put("gt_field", self.gt_field or self.evaluate.get("gt_field") or None)
            put("eval_key", self.eval_key or self.evaluate.get("eval_key") or None)
            put("evaluate", True)
        put("evaluate", bool(self.evaluate))
        if self.evaluate:
            if self.mode != "track":
                raise SampdInputError("J&F is evaluated against ground truth of prompted tracking: an automatic "
                                      "run (mode 'auto') has no object ids in common with it", field="evaluate")
            put("gt_field", self.gt_field or self.prompt_field)
            put("eval_key", self.eval_key or f"{self.label_field}_jf")

    @classmethod
    def of(cls, request: Optional["TrackRequest"] = None, **settings) -> "TrackRequest":
        """``request`` with ``settings`` replaced, or a new request of ``settings`` (how the SDK functions build
        theirs: ``sp.track(dataset, request)``, ``sp.track(dataset, model="vit_b")``)."""
        if request is None:
            return cls(**settings)
        if not isinstance(request, cls):
            raise TypeError(f"request must be a TrackRequest, got {type(request).__name__} {request!r}: settings are "
                            "keyword arguments (sp.track(dataset, prompt_field='ground_truth', label_field='sampd'))")
        return dataclasses.replace(request, **settings)

    # --- operator parameters -----------------------------------------------------------------------------------------
    def to_params(self) -> dict:
        """The operator parameters of this request (JSON): what :func:`sampd_plugin.queue_track` gives each
        delegated operation; :meth:`from_params` reads them back into an equal request."""
        if not isinstance(self.model, str):
            raise SampdInputError(
                f"a segmenter instance ({type(self.model).__module__}.{type(self.model).__qualname__}) cannot be "
                "delegated: workers rebuild models by name. Track in this process with sampd_plugin.track(..., "
                "model=instance), or use a built-in model name", field="model")
        params = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        params.update(config=self.config.to_dict(), device=self.device or "auto")
        return params

    @classmethod
    def from_params(cls, params: Mapping, **defaults) -> "TrackRequest":
        """The request of operator parameters: a form's values or :meth:`to_params`'s. A parameter that is absent
        or ``None`` takes ``defaults[name]`` when given (a form's dataset-dependent default, e.g. a free output
        field name), else the request's default. The form's ``preset`` stands for ``config``."""
        values = dict(defaults)
        for f in dataclasses.fields(cls):
            if params.get(f.name) is not None:
                values[f.name] = params[f.name]
        if params.get("config") is None and params.get("preset"):
            values["config"] = params["preset"]
        return cls(**values)

    # --- derived -----------------------------------------------------------------------------------------------------
    @property
    def sequence_kwargs(self) -> dict:
        """``sequence_field`` / ``order_field`` keyword arguments (the given ones only)."""
        return {k: v for k, v in (("sequence_field", self.sequence_field), ("order_field", self.order_field)) if v}


__all__ = ["TrackRequest", "MODES", "DEFAULT_LABEL_FIELDS", "SAMPLES_PER_OPERATION"]
